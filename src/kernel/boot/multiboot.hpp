// The Multiboot v1 information structure, as QEMU's loader fills it, and
// its translation into the core's raw memory-map entries.
#pragma once

#include "mm/base/span.hpp"
#include "mm/base/status.hpp"
#include "mm/phys/memory_map.hpp"

namespace kernel {

struct [[gnu::packed]] MultibootInfo {
  mm::u32 flags;
  mm::u32 mem_lower, mem_upper;
  mm::u32 boot_device;
  mm::u32 cmdline;
  mm::u32 mods_count, mods_addr;
  mm::u32 syms[4];
  mm::u32 mmap_length, mmap_addr;
};

struct [[gnu::packed]] MultibootMmapEntry {
  mm::u32 size;  // of the rest of the entry
  mm::u64 base;
  mm::u64 length;
  mm::u32 type;  // 1 RAM, 2 reserved, 3 ACPI reclaimable, 4 ACPI NVS, 5 bad
};

struct [[gnu::packed]] MultibootModule {
  mm::u32 start, end, string, reserved;
};

inline constexpr mm::u32 kMultibootMagic = 0x2BADB002;
inline constexpr mm::u32 kMultibootHasCmdline = 1 << 2;
inline constexpr mm::u32 kMultibootHasMods = 1 << 3;
inline constexpr mm::u32 kMultibootHasMmap = 1 << 6;

// Writes to `out` every range of the firmware's memory map. Returns how many
// entries it wrote, or E2BIG when they do not fit.
mm::Result<mm::usize> multiboot_firmware_ranges(const MultibootInfo& info, mm::Span<mm::MemoryRange> out);
// Writes to `out` what the kernel itself occupies: its image, the Multiboot
// structures and the modules, as Kernel memory. Returns the count, or E2BIG.
mm::Result<mm::usize> multiboot_kernel_ranges(const MultibootInfo& info, mm::Span<mm::MemoryRange> out);

// The command line's arguments, without the kernel path that loaders put first.
const char* multiboot_cmdline(const MultibootInfo& info);

}  // namespace kernel
