// Extends the boot page tables' direct map (which covers the first 4 GiB)
// to every byte of RAM (free, reclaimable, kernel) the memory map reports, and later drops the identity
// map the 32-bit entry needed.
#pragma once

#include "mm/base/status.hpp"
#include "mm/phys/memory_map.hpp"

namespace kernel {

struct DirectMapReport {
  mm::u64 mapped_bytes = 0;    // the direct map's extent, from physical 0
  mm::u64 table_frames = 0;    // page-table frames taken from the map
  bool gigabyte_pages = false;
  mm::u64 first_unmappable = 0;  // with EFAULT: the RAM address past the direct map
};

// Page-table frames come from the bottom of `map` (low memory is already
// mapped). EFAULT when RAM lies beyond the direct map's 32 TiB.
mm::Status extend_direct_map(mm::MemoryMap& map, DirectMapReport& report);

// Removes PML4[0], the identity map of low memory, on every CPU's next CR3 load.
void drop_identity_map();

}  // namespace kernel
