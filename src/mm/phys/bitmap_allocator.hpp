// The bitmap allocator: one bit per frame, set when the frame is free. It
// finds contiguous runs of any length, at any power-of-two alignment, below
// a maximum address (PatchworkOS pmm_alloc_bitmap): what DMA buffers and
// large-page backing need. The frames of a run are owned one by one, so any
// sub-run of an allocation may be freed on its own (Linux free_pages_exact).
//
// Search is first fit from the lowest free frame, word at a time: a run is
// checked by testing whole 64-bit words, and after a miss the search jumps
// past the used frame that broke the run, to the next free one.
#pragma once

#include "mm/phys/frame_allocator.hpp"

namespace mm {

class BitmapAllocator final : public FrameAllocator {
 public:
  static constexpr usize words_for(FrameCount frames) { return (frames + 63) / 64; }

  // `storage` holds at least words_for(table.size()) words; the allocator
  // uses it as its bitmap for its lifetime.
  BitmapAllocator(FrameTable& table, Span<u64> storage);

  const char* name() const override { return "bitmap"; }
  Status add_free_range(Pfn first, FrameCount count) override;
  Result<Pfn> allocate(const FrameRequest& request) override;
  // Frees any run of allocated frames; each must be allocated.
  Status free(Pfn first, FrameCount count) override;
  FrameCount free_frames() const override { return free_frames_; }
  FrameCount managed_frames() const override { return managed_; }
  FreeBlockCounts free_blocks() const override;

 private:
  static constexpr u64 kNone = ~u64{0};

  bool is_free(u64 index) const { return (bits_[index / 64] >> (index % 64)) & 1; }
  // First set (free) bit in [from, to), or kNone.
  u64 first_free(u64 from, u64 to) const;
  // First clear (used) bit in [from, to), or kNone.
  u64 first_used(u64 from, u64 to) const;
  void set_range(u64 from, u64 count, bool free);
  // Marks [first, first + count) free in the table and the bitmap.
  void release(Pfn first, FrameCount count);
  // Table-relative index of the first frame of a fitting run, or kNone.
  u64 find_run(FrameCount count, FrameCount alignment, u64 end) const;

  u64* bits_;
  u64 words_;
  // Every frame below this index is allocated (or not managed).
  mutable u64 lowest_free_ = 0;
  FrameCount free_frames_ = 0;
  FrameCount managed_ = 0;
};

}  // namespace mm
