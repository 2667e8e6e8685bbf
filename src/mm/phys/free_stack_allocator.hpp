// The free stack: single frames in O(1), last freed first reused (warm in
// the cache). Serves only one-frame requests; contiguous runs are the
// bitmap's and the buddy's business. Batch calls move N non-contiguous
// frames in one call, so a caller takes its lock once for all of them
// (PatchworkOS pmm_alloc_pages).
#pragma once

#include "mm/phys/frame_allocator.hpp"
#include "mm/phys/frame_list.hpp"

namespace mm {

class FreeStackAllocator final : public FrameAllocator {
 public:
  explicit FreeStackAllocator(FrameTable& table) : FrameAllocator(table) {}

  const char* name() const override { return "stack"; }
  Status add_free_range(Pfn first, FrameCount count) override;
  // EOPNOTSUPP unless the request is one frame, alignment 1, and the limit
  // covers the whole table (a stack cannot search by address).
  Result<Pfn> allocate(const FrameRequest& request) override;
  Status free(Pfn first, FrameCount count) override;
  FrameCount allocate_batch(Span<Pfn> out, FrameOwner owner) override;
  Status free_batch(Span<const Pfn> frames) override;
  FrameCount free_frames() const override { return free_.size(); }
  FrameCount managed_frames() const override { return managed_; }
  FreeBlockCounts free_blocks() const override;

  // The O(1) paths, callable without the virtual dispatch.
  Result<Pfn> allocate_one(FrameOwner owner);
  Status free_one(Pfn pfn);

 private:
  FrameList free_;
  FrameCount managed_ = 0;
};

}  // namespace mm
