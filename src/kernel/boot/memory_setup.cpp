#include "boot/memory_setup.hpp"

#include <new>

#include "console/kprintf.hpp"
#include "mm/phys/bitmap_allocator.hpp"
#include "mm/phys/buddy_allocator.hpp"
#include "mm/phys/free_stack_allocator.hpp"

namespace kernel {

namespace {

// Placement storage: the core has no heap, and neither does the kernel yet.
alignas(mm::FrameTable) mm::u8 table_storage[sizeof(mm::FrameTable)];
alignas(mm::BuddyAllocator) mm::u8 buddy_storage[sizeof(mm::BuddyAllocator)];
alignas(mm::BitmapAllocator) mm::u8 bitmap_storage[sizeof(mm::BitmapAllocator)];
alignas(mm::FreeStackAllocator) mm::u8 stack_storage[sizeof(mm::FreeStackAllocator)];
alignas(KernelPmm) mm::u8 pmm_storage[sizeof(KernelPmm)];

// Ordinary allocations must keep at least this much beside the reserve.
constexpr mm::FrameCount kMinimumWorkingFrames = 256;

void print_map(const mm::MemoryMap& map) {
  for (const mm::MemoryRange& r : map.ranges()) {
    kprintf("  [%016lx-%016lx) %-11s %8lu KiB\n", r.base.value(), r.end(), mm::memory_kind_name(r.kind),
            r.length >> 10);
  }
}

// Firmware maps may overlap and leave edges unaligned; ingestion resolves
// both (memory_map.hpp). Say so on the console, entry by entry.
void report_irregular_entries(mm::Span<const mm::MemoryRange> raw) {
  for (mm::usize i = 0; i < raw.size(); ++i) {
    const mm::u64 base = raw[i].base.value(), end = base + raw[i].length;
    if (raw[i].length != 0 && (!raw[i].base.is_page_aligned() || (end & mm::kPageMask) != 0)) {
      kprintf("pmm: entry %lu [%lx-%lx) %s is not page-aligned: %s\n", i, base, end,
              mm::memory_kind_name(raw[i].kind),
              raw[i].kind <= mm::MemoryKind::Reclaimable ? "trimmed inward" : "widened outward");
    }
    for (mm::usize j = 0; j < i; ++j) {
      const mm::u64 b2 = raw[j].base.value(), e2 = b2 + raw[j].length;
      if (base < e2 && b2 < end) {
        kprintf("pmm: entries %lu (%s) and %lu (%s) overlap: the overlap is taken as %s\n", j,
                mm::memory_kind_name(raw[j].kind), i, mm::memory_kind_name(raw[i].kind),
                mm::memory_kind_name(raw[i].kind > raw[j].kind ? raw[i].kind : raw[j].kind));
      }
    }
  }
}

mm::Result<mm::Pfn> take(mm::MemoryMap& map, mm::u64 bytes, const char* what) {
  const mm::FrameCount frames = mm::align_up(bytes, mm::kPageSize) / mm::kPageSize;
  const mm::Result<mm::Pfn> pfn = map.take_for_kernel(frames);
  if (!pfn.ok()) {
    kprintf("pmm: no free range holds the %s (%lu KiB): %s\n", what, bytes >> 10, mm::errno_name(pfn.status()));
  }
  return pfn;
}

}  // namespace

bool memory_init(const MultibootInfo& info, const BootOptions& options, KernelMemory& memory) {
  mm::MemoryRange raw[mm::MemoryMap::kMaxInputRanges];
  const mm::Result<mm::usize> firmware = multiboot_firmware_ranges(info, raw);
  if (!firmware.ok()) {
    kprintf("pmm: the firmware memory map has more than %lu entries\n", mm::MemoryMap::kMaxInputRanges);
    return false;
  }
  mm::usize n = firmware.value();
  for (mm::usize i = 0; i < options.extra_count; ++i) {
    if (n == mm::MemoryMap::kMaxInputRanges) {
      kprintf("pmm: no room for memmap= entry %lu\n", i + 1);
      return false;
    }
    const mm::MemoryRange& e = options.extra_ranges[i];
    kprintf("pmm: memmap= adds [%016lx-%016lx) as %s\n", e.base.value(), e.base.value() + e.length,
            mm::memory_kind_name(e.kind));
    raw[n++] = e;
  }
  report_irregular_entries({raw, n});
  const mm::Result<mm::usize> own = multiboot_kernel_ranges(info, {raw + n, mm::MemoryMap::kMaxInputRanges - n});
  if (!own.ok()) {
    kprintf("pmm: no room in the memory map for the kernel's own ranges\n");
    return false;
  }
  n += own.value();

  const mm::Status ingested = memory.map.ingest({raw, n});
  if (ingested != mm::Status::Ok) {
    if (ingested == mm::Status::InvalidArgument) {
      kprintf("pmm: memory-map entry %lu wraps past the end of the address space\n", memory.map.rejected_entry());
    } else {
      kprintf("pmm: the memory map has no usable RAM at or above 1 MiB (%s)\n", mm::errno_name(ingested));
    }
    return false;
  }

  const mm::Status mapped = extend_direct_map(memory.map, memory.direct_map);
  if (mapped != mm::Status::Ok) {
    if (mapped == mm::Status::BadAddress) {
      kprintf("pmm: RAM at 0x%lx lies beyond the direct map, which covers %lu TiB from 0\n",
              memory.direct_map.first_unmappable, kDirectMapSize >> 40);
    } else {
      kprintf("pmm: no memory for the direct map's page tables (%s)\n", mm::errno_name(mapped));
    }
    return false;
  }

  // The frame table covers every usable frame; it and the bitmap live in RAM.
  const mm::Pfn first = memory.map.first_usable();
  const mm::FrameCount frames = memory.map.end_usable() - first;
  const mm::u64 table_bytes = mm::FrameTable::bytes_for(frames);
  const mm::Pfn table_pfn = MM_TRY_OR(take(memory.map, table_bytes, "frame table"), return false);
  memory.table_frames = mm::align_up(table_bytes, mm::kPageSize) / mm::kPageSize;
  auto* frame_records = reinterpret_cast<mm::Frame*>(kernel_platform.direct_map(table_pfn.address()));
  memory.table = new (table_storage) mm::FrameTable(first, {frame_records, frames});

  switch (options.pmm) {
    case PmmKind::Buddy:
      memory.allocator = new (buddy_storage) mm::BuddyAllocator(*memory.table);
      break;
    case PmmKind::Stack:
      memory.allocator = new (stack_storage) mm::FreeStackAllocator(*memory.table);
      break;
    case PmmKind::Bitmap: {
      const mm::u64 bytes = mm::BitmapAllocator::words_for(frames) * sizeof(mm::u64);
      const mm::Pfn bits_pfn = MM_TRY_OR(take(memory.map, bytes, "allocation bitmap"), return false);
      auto* words = reinterpret_cast<mm::u64*>(kernel_platform.direct_map(bits_pfn.address()));
      memory.allocator = new (bitmap_storage)
          mm::BitmapAllocator(*memory.table, {words, mm::BitmapAllocator::words_for(frames)});
      break;
    }
  }

  kprintf("pmm: memory map (%lu ranges):\n", memory.map.ranges().size());
  print_map(memory.map);
  const mm::Status seeded = memory.map.seed(*memory.allocator, *memory.table);
  if (seeded != mm::Status::Ok) {
    kprintf("pmm: seeding the %s allocator failed: %s\n", memory.allocator->name(), mm::errno_name(seeded));
    return false;
  }

  const mm::FrameCount usable = memory.allocator->free_frames();
  const mm::FrameCount reserve = mm::align_up(options.reserve_bytes, mm::kPageSize) / mm::kPageSize;
  if (usable < reserve + kMinimumWorkingFrames) {
    kprintf("pmm: %lu usable frames (%lu KiB) cannot hold the emergency reserve of %lu frames and leave %lu for "
            "ordinary use: give the machine more memory (-m) or a smaller reserve=\n",
            usable, usable * 4, reserve, kMinimumWorkingFrames);
    return false;
  }
  mm::PhysicalMemoryConfig config;
  config.watermarks = {.reserve = reserve, .emergency = usable / 64, .warning = usable / 16};
  memory.pmm = new (pmm_storage) KernelPmm(kernel_platform, *memory.table, *memory.allocator, config);

  const mm::PhysicalMemoryStats s = memory.pmm->stats();
  kprintf("pmm: %s allocator, %lu frames (%lu MiB) usable, %lu free, %lu in the frame-table window not usable, "
          "reserve %lu frames\n",
          memory.allocator->name(), s.total, (s.total * mm::kPageSize) >> 20, s.free, s.reserved, s.reserve);
  kprintf("pmm: RAM %lu MiB, kernel %lu KiB, reserved %lu KiB, reclaimable %lu KiB; frame table %lu KiB; "
          "direct map %lu GiB (%s pages, %lu table frames)\n",
          (memory.map.frames_of(mm::MemoryKind::Free) + memory.map.frames_of(mm::MemoryKind::Kernel) +
           memory.map.frames_of(mm::MemoryKind::Reclaimable)) * mm::kPageSize >> 20,
          memory.map.frames_of(mm::MemoryKind::Kernel) * 4, memory.map.frames_of(mm::MemoryKind::Reserved) * 4,
          memory.map.frames_of(mm::MemoryKind::Reclaimable) * 4, table_bytes >> 10,
          memory.direct_map.mapped_bytes >> 30, memory.direct_map.gigabyte_pages ? "1 GiB" : "2 MiB",
          memory.direct_map.table_frames);
  return true;
}

}  // namespace kernel
