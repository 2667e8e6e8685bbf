// The buddy allocator: naturally aligned blocks of 2^order frames, orders
// 0..kMaxOrder (4 KiB .. 1 GiB). Allocation takes the smallest free block
// that fits and splits it, returning the upper halves to the free lists;
// freeing merges a block with its buddy (pfn ^ 2^order) for as long as the
// buddy is a free block of the same order.
//
// Metadata discipline: only block heads carry a state (Free or Allocated,
// with the order); every other frame of a block is Interior. Splitting or
// merging therefore touches one or two Frame records, never the whole block,
// which keeps an order-9 allocation as cheap as an order-0 one.
#pragma once

#include "mm/phys/frame_allocator.hpp"
#include "mm/phys/frame_list.hpp"

namespace mm {

class BuddyAllocator final : public FrameAllocator {
 public:
  explicit BuddyAllocator(FrameTable& table) : FrameAllocator(table) {}

  const char* name() const override { return "buddy"; }
  Status add_free_range(Pfn first, FrameCount count) override;
  // request.count must be a power of two of at most 2^kMaxOrder frames
  // (EINVAL otherwise); alignment above the block size is EOPNOTSUPP. A
  // limit below the table's end searches the free lists for a low block.
  Result<Pfn> allocate(const FrameRequest& request) override;
  // count must be exactly the allocated block's size.
  Status free(Pfn first, FrameCount count) override;
  FrameCount free_frames() const override { return free_frames_; }
  FrameCount managed_frames() const override { return managed_; }
  FreeBlockCounts free_blocks() const override;

  // The direct order-based paths (Redox allocate_p2frame / deallocate_p2frame).
  Result<Pfn> allocate_order(u32 order, FrameOwner owner);
  Status free_order(Pfn first, u32 order);

 private:
  Result<Pfn> allocate_below(u32 order, Pfn limit, FrameOwner owner);
  // Takes the free block at `pfn` of order `from` off its list and splits it
  // down to `order`, freeing the upper halves. Returns the head of the result.
  void split_down(Pfn pfn, u32 from, u32 order);
  // Inserts a free block, merging it with free buddies as far as possible.
  void insert_and_merge(Pfn pfn, u32 order);

  FrameList lists_[kOrderCount];
  FrameCount free_frames_ = 0;
  FrameCount managed_ = 0;
};

}  // namespace mm
