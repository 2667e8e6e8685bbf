#include "mm/phys/frame_allocator.hpp"

namespace mm {

FrameCount FreeBlockCounts::frames_at_or_above(u32 order) const {
  FrameCount frames = 0;
  for (u32 k = order; k < kOrderCount; ++k) {
    frames += blocks[k] << k;
  }
  return frames;
}

Status FrameAllocator::check_request(const FrameRequest& request) {
  if (request.count == 0 || !is_power_of_two(request.alignment)) {
    return Status::InvalidArgument;
  }
  if (request.limit.value() < request.count) {
    return Status::InvalidArgument;
  }
  return Status::Ok;
}

namespace {

// For an Interior frame: whether the block containing it is free. The
// covering block's head is the nearest aligned head whose order reaches pfn.
bool interior_block_is_free(const FrameTable& table, Pfn pfn) {
  for (u32 k = 1; k <= kMaxOrder; ++k) {
    const Pfn head(align_down(pfn.value(), u64{1} << k));
    if (!table.contains(head)) {
      break;
    }
    const Frame& frame = table[head];
    const bool is_head = frame.state == FrameState::Free || frame.state == FrameState::Allocated;
    if (is_head && frame.order >= k) {
      return frame.state == FrameState::Free;
    }
  }
  return false;
}

}  // namespace

Status check_allocated(const FrameTable& table, Pfn first, u32 order) {
  if (!table.contains(first)) {
    return Status::BadAddress;
  }
  const Frame& head = table[first];
  switch (head.state) {
    case FrameState::Reserved:
      return Status::BadAddress;
    case FrameState::Free:
      return Status::NotFound;
    case FrameState::Interior:
      // Inside a block: a double free if the block is free, else not its head.
      return interior_block_is_free(table, first) ? Status::NotFound : Status::InvalidArgument;
    case FrameState::Allocated:
      return allocated_status(head, order);
  }
  return Status::InvalidArgument;
}

Status FrameAllocator::check_donation(Pfn first, FrameCount count) const {
  if (count == 0) {
    return Status::InvalidArgument;
  }
  if (!table_.contains_run(first, count)) {
    return Status::BadAddress;
  }
  for (FrameCount i = 0; i < count; ++i) {
    if (table_[first + i].state != FrameState::Reserved) {
      return Status::BadAddress;
    }
  }
  return Status::Ok;
}

FrameCount FrameAllocator::allocate_batch(Span<Pfn> out, FrameOwner owner) {
  FrameCount got = 0;
  for (Pfn& slot : out) {
    const Result<Pfn> frame = allocate(FrameRequest{.owner = owner});
    if (!frame.ok()) {
      break;
    }
    slot = frame.value();
    ++got;
  }
  return got;
}

Status FrameAllocator::check_batch(Span<const Pfn> frames) {
  // Tag each checked frame so a frame named twice fails too; then untag.
  usize checked = 0;
  Status status = Status::Ok;
  for (; checked < frames.size(); ++checked) {
    status = check_allocated(frames[checked], 0);
    if (status == Status::Ok && (table_[frames[checked]].flags & kFrameFlagBatchMark)) {
      status = Status::NotFound;  // already in this batch: the second free is a double free
    }
    if (status != Status::Ok) {
      break;
    }
    table_[frames[checked]].flags |= kFrameFlagBatchMark;
  }
  for (usize i = 0; i < checked; ++i) {
    table_[frames[i]].flags &= static_cast<u8>(~kFrameFlagBatchMark);
  }
  return status;
}

Status FrameAllocator::free_batch(Span<const Pfn> frames) {
  MM_TRY(check_batch(frames));
  for (const Pfn pfn : frames) {
    const Status freed = free(pfn, 1);
    MM_ASSERT(freed == Status::Ok);
  }
  return Status::Ok;
}

}  // namespace mm
