#include "mm/phys/buddy_allocator.hpp"

#include <bit>

#include "mm/phys/free_block_scan.hpp"

namespace mm {

Status BuddyAllocator::add_free_range(Pfn first, FrameCount count) {
  MM_TRY(check_donation(first, count));
  for (FrameCount i = 0; i < count; ++i) {
    table_[first + i].state = FrameState::Interior;
  }
  for_each_aligned_block(first, count, kMaxOrder, [this](Pfn pfn, u32 order) {
    insert_and_merge(pfn, order);
  });
  managed_ += count;
  return Status::Ok;
}

Result<Pfn> BuddyAllocator::allocate(const FrameRequest& request) {
  MM_TRY(check_request(request));
  if (!is_power_of_two(request.count) || request.count > (FrameCount{1} << kMaxOrder)) {
    return Status::InvalidArgument;
  }
  if (request.alignment > request.count) {
    return Status::NotSupported;
  }
  const u32 order = static_cast<u32>(std::countr_zero(request.count));
  if (request.limit >= table_.end()) {
    return allocate_order(order, request.owner);
  }
  return allocate_below(order, request.limit, request.owner);
}

Result<Pfn> BuddyAllocator::allocate_order(u32 order, FrameOwner owner) {
  if (order > kMaxOrder) {
    return Status::InvalidArgument;
  }
  u32 from = order;
  while (from <= kMaxOrder && lists_[from].empty()) {
    ++from;
  }
  if (from > kMaxOrder) {
    return Status::OutOfMemory;
  }
  const Pfn pfn = lists_[from].pop_front(table_);
  split_down(pfn, from, order);
  mark_allocated(table_[pfn], order, owner);
  free_frames_ -= FrameCount{1} << order;
  return pfn;
}

Result<Pfn> BuddyAllocator::allocate_below(u32 order, Pfn limit, FrameOwner owner) {
  // A block of any order >= `order` will do if its lowest 2^order frames lie
  // below the limit: split_down keeps the lowest piece.
  for (u32 from = order; from <= kMaxOrder; ++from) {
    Pfn found;
    bool have = false;
    lists_[from].for_each(table_, [&](Pfn pfn) {
      if (pfn + (FrameCount{1} << order) <= limit) {
        found = pfn;
        have = true;
      }
      return !have;
    });
    if (have) {
      lists_[from].remove(table_, found);
      split_down(found, from, order);
      mark_allocated(table_[found], order, owner);
      free_frames_ -= FrameCount{1} << order;
      return found;
    }
  }
  return Status::OutOfMemory;
}

void BuddyAllocator::split_down(Pfn pfn, u32 from, u32 order) {
  while (from > order) {
    --from;
    const Pfn upper = pfn + (FrameCount{1} << from);
    mark_free(table_[upper], from);
    lists_[from].push_front(table_, upper);
  }
}

Status BuddyAllocator::free(Pfn first, FrameCount count) {
  if (!is_power_of_two(count) || count > (FrameCount{1} << kMaxOrder)) {
    return Status::InvalidArgument;
  }
  return free_order(first, static_cast<u32>(std::countr_zero(count)));
}

Status BuddyAllocator::free_order(Pfn first, u32 order) {
  if (order > kMaxOrder) {
    return Status::InvalidArgument;
  }
  MM_TRY(check_allocated(first, order));
  table_[first].owner = FrameOwner::Free;
  insert_and_merge(first, order);
  return Status::Ok;
}

void BuddyAllocator::insert_and_merge(Pfn pfn, u32 order) {
  free_frames_ += FrameCount{1} << order;
  while (order < kMaxOrder) {
    const Pfn buddy(pfn.value() ^ (u64{1} << order));
    if (!table_.contains(buddy)) {
      break;
    }
    Frame& other = table_[buddy];
    if (other.state != FrameState::Free || other.order != order) {
      break;
    }
    lists_[order].remove(table_, buddy);
    // The higher of the two heads is now inside the merged block.
    const Pfn low = buddy < pfn ? buddy : pfn;
    const Pfn high = buddy < pfn ? pfn : buddy;
    table_[high].state = FrameState::Interior;
    table_[high].owner = FrameOwner::Free;
    pfn = low;
    ++order;
  }
  mark_free(table_[pfn], order);
  lists_[order].push_front(table_, pfn);
}

FreeBlockCounts BuddyAllocator::free_blocks() const {
  FreeBlockCounts counts;
  for (u32 k = 0; k < kOrderCount; ++k) {
    counts.blocks[k] = lists_[k].size();
  }
  return counts;
}

}  // namespace mm
