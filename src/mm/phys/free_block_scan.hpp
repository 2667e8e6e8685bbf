// Splitting frame runs into naturally aligned power-of-two blocks: how the
// buddy allocator takes a boot range, and how the other allocators report
// their free memory by order (the fragmentation statistic).
#pragma once

#include <bit>

#include "mm/phys/frame_allocator.hpp"

namespace mm {

// Calls f(pfn, order) for each block of the unique decomposition of
// [first, first + count) into the largest naturally aligned blocks of at
// most 2^max_order frames, in ascending address order.
template <typename F>
void for_each_aligned_block(Pfn first, FrameCount count, u32 max_order, F&& f) {
  u64 pfn = first.value();
  const u64 end = pfn + count;
  while (pfn < end) {
    u32 order = pfn == 0 ? max_order : static_cast<u32>(std::countr_zero(pfn));
    const u32 fits = static_cast<u32>(std::bit_width(end - pfn) - 1);
    order = order < fits ? order : fits;
    order = order < max_order ? order : max_order;
    f(Pfn(pfn), order);
    pfn += u64{1} << order;
  }
}

// Free blocks by order over [base, base + size), where is_free(pfn) says
// whether one frame is free: each maximal free run is decomposed as above.
template <typename IsFree>
FreeBlockCounts scan_free_blocks(Pfn base, FrameCount size, IsFree&& is_free) {
  FreeBlockCounts counts;
  FrameCount i = 0;
  while (i < size) {
    if (!is_free(base + i)) {
      ++i;
      continue;
    }
    const FrameCount run_start = i;
    while (i < size && is_free(base + i)) {
      ++i;
    }
    for_each_aligned_block(base + run_start, i - run_start, kMaxOrder,
                           [&](Pfn, u32 order) { ++counts.blocks[order]; });
  }
  return counts;
}

}  // namespace mm
