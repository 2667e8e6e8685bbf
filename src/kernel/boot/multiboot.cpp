#include "boot/multiboot.hpp"

#include "boot/physical.hpp"

extern "C" char kernel_phys_start[];
extern "C" char kernel_phys_end[];

namespace kernel {

namespace {

mm::MemoryKind kind_of(mm::u32 type) {
  switch (type) {
    case 1: return mm::MemoryKind::Free;
    case 3: return mm::MemoryKind::Reclaimable;
    default: return mm::MemoryKind::Reserved;  // reserved, ACPI NVS, bad RAM, unknown
  }
}

class Appender {
 public:
  explicit Appender(mm::Span<mm::MemoryRange> out) : out_(out) {}
  bool add(mm::u64 base, mm::u64 length, mm::MemoryKind kind) {
    if (count_ == out_.size()) {
      return false;
    }
    out_[count_++] = mm::MemoryRange{mm::PhysAddr(base), length, kind};
    return true;
  }
  mm::usize count() const { return count_; }

 private:
  mm::Span<mm::MemoryRange> out_;
  mm::usize count_ = 0;
};

}  // namespace

mm::Result<mm::usize> multiboot_firmware_ranges(const MultibootInfo& info, mm::Span<mm::MemoryRange> out) {
  Appender ranges(out);
  if (info.flags & kMultibootHasMmap) {
    const mm::u64 end = mm::u64{info.mmap_addr} + info.mmap_length;
    for (mm::u64 at = info.mmap_addr; at < end;) {
      const auto* e = phys_to_virt<MultibootMmapEntry>(at);
      if (!ranges.add(e->base, e->length, kind_of(e->type))) {
        return mm::Status::TooBig;
      }
      at += e->size + sizeof(e->size);
    }
  } else {
    // Only the legacy fields: conventional memory and memory above 1 MiB, in KiB.
    if (!ranges.add(0, mm::u64{info.mem_lower} * 1024, mm::MemoryKind::Free) ||
        !ranges.add(1 << 20, mm::u64{info.mem_upper} * 1024, mm::MemoryKind::Free)) {
      return mm::Status::TooBig;
    }
  }
  return ranges.count();
}

mm::Result<mm::usize> multiboot_kernel_ranges(const MultibootInfo& info, mm::Span<mm::MemoryRange> out) {
  Appender ranges(out);
  const mm::u64 image = reinterpret_cast<mm::u64>(kernel_phys_start);
  bool ok = ranges.add(image, reinterpret_cast<mm::u64>(kernel_phys_end) - image, mm::MemoryKind::Kernel);
  // The Multiboot structures stay readable until the boot is over.
  ok = ok && ranges.add(virt_to_phys(&info), sizeof(info), mm::MemoryKind::Kernel);
  if (info.flags & kMultibootHasMmap) {
    ok = ok && ranges.add(info.mmap_addr, info.mmap_length, mm::MemoryKind::Kernel);
  }
  if (info.flags & kMultibootHasMods) {
    const auto* mods = phys_to_virt<MultibootModule>(info.mods_addr);
    ok = ok && ranges.add(info.mods_addr, info.mods_count * sizeof(MultibootModule), mm::MemoryKind::Kernel);
    for (mm::u32 i = 0; ok && i < info.mods_count; ++i) {
      ok = ranges.add(mods[i].start, mods[i].end - mods[i].start, mm::MemoryKind::Kernel);
    }
  }
  if (!ok) {
    return mm::Status::TooBig;
  }
  return ranges.count();
}

const char* multiboot_cmdline(const MultibootInfo& info) {
  if (!(info.flags & kMultibootHasCmdline) || info.cmdline == 0) {
    return "";
  }
  // Loaders (GRUB, QEMU) put the kernel's own path first, then the arguments.
  const char* s = phys_to_virt<const char>(info.cmdline);
  while (*s && *s != ' ') ++s;
  while (*s == ' ') ++s;
  return s;
}

}  // namespace kernel
