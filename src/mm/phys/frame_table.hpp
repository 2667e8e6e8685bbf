// The frame table: the Frame records of a contiguous range of frame numbers
// [base, base + size). Storage comes from the caller (the kernel carves it out
// of RAM at boot; tests pass an array), because the core has no heap.
#pragma once

#include "mm/base/span.hpp"

#include "mm/base/panic.hpp"
#include "mm/phys/frame.hpp"

namespace mm {

class FrameTable {
 public:
  // Covers `storage.size()` frames starting at `base`. Every frame starts
  // Reserved until an allocator is given it. Frame indices are 32-bit, so a
  // table covers at most 2^32 - 1 frames (16 TiB).
  FrameTable(Pfn base, Span<Frame> storage);

  FrameTable(const FrameTable&) = delete;
  FrameTable& operator=(const FrameTable&) = delete;

  // Bytes of storage a table of `frames` frames needs.
  static constexpr u64 bytes_for(FrameCount frames) { return frames * sizeof(Frame); }

  Pfn base() const { return base_; }
  Pfn end() const { return base_ + size_; }
  FrameCount size() const { return size_; }
  bool contains(Pfn pfn) const { return pfn >= base_ && pfn < end(); }
  // True when [first, first + count) lies inside the table (overflow-safe).
  bool contains_run(Pfn first, FrameCount count) const {
    return contains(first) && count <= end() - first;
  }

  Frame& operator[](Pfn pfn) {
    MM_ASSERT(contains(pfn));
    return frames_[pfn - base_];
  }
  const Frame& operator[](Pfn pfn) const {
    MM_ASSERT(contains(pfn));
    return frames_[pfn - base_];
  }

  // Free-list links are 32-bit indices into the table.
  u32 index_of(Pfn pfn) const { return static_cast<u32>(pfn - base_); }
  Pfn pfn_at(u32 index) const { return base_ + index; }
  Frame& at_index(u32 index) { return frames_[index]; }

 private:
  Pfn base_;
  FrameCount size_;
  Frame* frames_;
};

}  // namespace mm
