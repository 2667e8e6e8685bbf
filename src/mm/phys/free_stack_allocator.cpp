#include "mm/phys/free_stack_allocator.hpp"

#include "mm/phys/free_block_scan.hpp"

namespace mm {

Status FreeStackAllocator::add_free_range(Pfn first, FrameCount count) {
  MM_TRY(check_donation(first, count));
  // Push from the top so the lowest frame is handed out first.
  for (FrameCount i = count; i-- > 0;) {
    mark_free(table_[first + i], 0);
    free_.push_front(table_, first + i);
  }
  managed_ += count;
  return Status::Ok;
}

Result<Pfn> FreeStackAllocator::allocate(const FrameRequest& request) {
  MM_TRY(check_request(request));
  if (request.count != 1 || request.alignment != 1 || request.limit < table_.end()) {
    return Status::NotSupported;
  }
  return allocate_one(request.owner);
}

Result<Pfn> FreeStackAllocator::allocate_one(FrameOwner owner) {
  if (free_.empty()) {
    return Status::OutOfMemory;
  }
  const Pfn pfn = free_.pop_front(table_);
  mark_allocated(table_[pfn], 0, owner);
  return pfn;
}

Status FreeStackAllocator::free(Pfn first, FrameCount count) {
  if (count != 1) {
    return Status::InvalidArgument;
  }
  return free_one(first);
}

Status FreeStackAllocator::free_one(Pfn pfn) {
  MM_TRY(check_allocated(pfn, 0));
  mark_free(table_[pfn], 0);
  free_.push_front(table_, pfn);
  return Status::Ok;
}

FrameCount FreeStackAllocator::allocate_batch(Span<Pfn> out, FrameOwner owner) {
  FrameCount got = 0;
  while (got < out.size() && !free_.empty()) {
    const Pfn pfn = free_.pop_front(table_);
    mark_allocated(table_[pfn], 0, owner);
    out[got++] = pfn;
  }
  return got;
}

Status FreeStackAllocator::free_batch(Span<const Pfn> frames) {
  MM_TRY(check_batch(frames));
  for (const Pfn pfn : frames) {
    mark_free(table_[pfn], 0);
    free_.push_front(table_, pfn);
  }
  return Status::Ok;
}

FreeBlockCounts FreeStackAllocator::free_blocks() const {
  return scan_free_blocks(table_.base(), table_.size(),
                          [this](Pfn pfn) { return table_[pfn].state == FrameState::Free; });
}

}  // namespace mm
