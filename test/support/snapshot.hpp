// A full copy of an allocator's observable state: every Frame record of its
// table, its free count and its free blocks by order. Tests take one before a
// call that must fail and compare after, to prove the call changed nothing.
#pragma once

#include <vector>

#include "mm/phys/frame_allocator.hpp"

namespace pagelab::test {

struct FrameRecord {
  mm::FrameState state;
  mm::FrameOwner owner;
  mm::u8 order;
  mm::u32 refcount;
  mm::u32 next;
  mm::u32 prev;
  bool operator==(const FrameRecord&) const = default;
};

struct AllocatorSnapshot {
  std::vector<FrameRecord> frames;
  mm::FrameCount free_frames = 0;
  std::vector<mm::FrameCount> free_blocks;
  bool operator==(const AllocatorSnapshot&) const = default;
};

inline AllocatorSnapshot snapshot(const mm::FrameTable& table, const mm::FrameAllocator& allocator) {
  AllocatorSnapshot s;
  for (mm::Pfn pfn = table.base(); pfn < table.end(); pfn = pfn + 1) {
    const mm::Frame& f = table[pfn];
    s.frames.push_back({f.state, f.owner, f.order, f.refcount.load(), f.next, f.prev});
  }
  s.free_frames = allocator.free_frames();
  const mm::FreeBlockCounts counts = allocator.free_blocks();
  s.free_blocks.assign(std::begin(counts.blocks), std::end(counts.blocks));
  return s;
}

}  // namespace pagelab::test
