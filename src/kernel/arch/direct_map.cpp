#include "arch/direct_map.hpp"

#include "arch/x86.hpp"
#include "boot/physical.hpp"

namespace kernel {

namespace {

constexpr mm::u64 kPresent = 1, kWritable = 2, kLarge = 0x80;
constexpr mm::u64 kGiB = mm::u64{1} << 30;
constexpr mm::u64 kAddressMask = 0x000FFFFFFFFFF000;
constexpr mm::u64 kBootMapped = 4 * kGiB;  // what entry.S mapped

mm::u64* table_at(mm::u64 entry) { return phys_to_virt<mm::u64>(entry & kAddressMask); }
// The live PML4, through the direct map (the boot tables' own address is
// only reachable while the identity map lasts).
mm::u64* pml4() { return table_at(x86::read_cr3()); }

// RAM the kernel may touch; reserved holes (firmware, the HyperTransport
// window QEMU reports under 1 TiB) and devices stay out of the direct map.
bool is_ram(mm::MemoryKind kind) {
  return kind == mm::MemoryKind::Free || kind == mm::MemoryKind::Reclaimable || kind == mm::MemoryKind::Kernel;
}

mm::Result<mm::u64*> new_table(mm::MemoryMap& map, DirectMapReport& report, mm::u64& entry) {
  const mm::Result<mm::Pfn> frame = map.take_for_kernel(1, mm::MemoryMap::Placement::Bottom);
  if (!frame.ok()) {
    return frame.status();
  }
  ++report.table_frames;
  mm::u64* table = phys_to_virt<mm::u64>(frame.value().address().value());
  for (int i = 0; i < 512; ++i) table[i] = 0;
  entry = frame.value().address().value() | kPresent | kWritable;
  return table;
}

// Maps the GiB at `gib` (physical gib << 30) into the direct map.
mm::Status map_gigabyte(mm::u64 gib, mm::MemoryMap& map, DirectMapReport& report) {
  mm::u64& pml4e = pml4()[256 + gib / 512];
  mm::u64* pdpt = nullptr;
  if (pml4e & kPresent) {
    pdpt = table_at(pml4e);
  } else {
    pdpt = MM_TRY(new_table(map, report, pml4e));
  }
  mm::u64& pdpte = pdpt[gib % 512];
  if (pdpte & kPresent) {
    return mm::Status::Ok;
  }
  const mm::u64 physical = gib * kGiB;
  if (report.gigabyte_pages) {
    pdpte = physical | kPresent | kWritable | kLarge;
    return mm::Status::Ok;
  }
  mm::u64* pd = MM_TRY(new_table(map, report, pdpte));
  for (mm::u64 i = 0; i < 512; ++i) {
    pd[i] = (physical + (i << 21)) | kPresent | kWritable | kLarge;
  }
  return mm::Status::Ok;
}

}  // namespace

mm::Status extend_direct_map(mm::MemoryMap& map, DirectMapReport& report) {
  report.gigabyte_pages = (x86::cpuid(0x80000001).edx >> 26) & 1;
  mm::u64 top = kBootMapped;
  for (const mm::MemoryRange& r : map.ranges()) {
    if (!is_ram(r.kind) || r.end() <= kBootMapped) {
      continue;
    }
    if (r.end() > kDirectMapSize) {
      report.first_unmappable = r.base.value() > kDirectMapSize ? r.base.value() : kDirectMapSize;
      return mm::Status::BadAddress;
    }
  }
  // Snapshot the ranges: taking page-table frames edits the map.
  mm::MemoryRange ranges[mm::MemoryMap::kMaxRanges];
  const mm::usize count = map.ranges().size();
  for (mm::usize i = 0; i < count; ++i) ranges[i] = map.ranges()[i];
  for (mm::usize i = 0; i < count; ++i) {
    const mm::MemoryRange& r = ranges[i];
    if (!is_ram(r.kind) || r.end() <= kBootMapped) {
      continue;
    }
    const mm::u64 first = (r.base.value() < kBootMapped ? kBootMapped : r.base.value()) / kGiB;
    const mm::u64 last = (r.end() - 1) / kGiB;
    for (mm::u64 gib = first; gib <= last; ++gib) {
      MM_TRY(map_gigabyte(gib, map, report));
    }
    top = r.end() > top ? r.end() : top;
  }
  report.mapped_bytes = mm::align_up(top, kGiB);
  x86::write_cr3(x86::read_cr3());
  return mm::Status::Ok;
}

void drop_identity_map() {
  pml4()[0] = 0;
  x86::write_cr3(x86::read_cr3());
}

}  // namespace kernel
