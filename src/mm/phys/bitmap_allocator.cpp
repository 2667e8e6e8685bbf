#include "mm/phys/bitmap_allocator.hpp"

#include <bit>

#include "mm/phys/free_block_scan.hpp"

namespace mm {

namespace {

// Bits [from % 64, 64) of a word.
constexpr u64 mask_from(u64 bit) { return ~u64{0} << (bit % 64); }

}  // namespace

BitmapAllocator::BitmapAllocator(FrameTable& table, Span<u64> storage)
    : FrameAllocator(table), bits_(storage.data()), words_(words_for(table.size())) {
  MM_ASSERT(storage.size() >= words_);
  for (u64 i = 0; i < words_; ++i) {
    bits_[i] = 0;
  }
  lowest_free_ = table.size();
}

u64 BitmapAllocator::first_free(u64 from, u64 to) const {
  if (from >= to) {
    return kNone;
  }
  u64 word = from / 64;
  u64 bits = bits_[word] & mask_from(from);
  const u64 last_word = (to - 1) / 64;
  while (bits == 0) {
    if (++word > last_word) {
      return kNone;
    }
    bits = bits_[word];
  }
  const u64 index = word * 64 + static_cast<u64>(std::countr_zero(bits));
  return index < to ? index : kNone;
}

u64 BitmapAllocator::first_used(u64 from, u64 to) const {
  if (from >= to) {
    return kNone;
  }
  u64 word = from / 64;
  u64 bits = ~bits_[word] & mask_from(from);
  const u64 last_word = (to - 1) / 64;
  while (bits == 0) {
    if (++word > last_word) {
      return kNone;
    }
    bits = ~bits_[word];
  }
  const u64 index = word * 64 + static_cast<u64>(std::countr_zero(bits));
  return index < to ? index : kNone;
}

void BitmapAllocator::set_range(u64 from, u64 count, bool free) {
  u64 index = from;
  const u64 end = from + count;
  while (index < end) {
    const u64 bit = index % 64;
    const u64 span = (end - index) < (64 - bit) ? (end - index) : (64 - bit);
    const u64 mask = (span == 64 ? ~u64{0} : ((u64{1} << span) - 1)) << bit;
    if (free) {
      bits_[index / 64] |= mask;
    } else {
      bits_[index / 64] &= ~mask;
    }
    index += span;
  }
}

u64 BitmapAllocator::find_run(FrameCount count, FrameCount alignment, u64 end) const {
  const u64 base = table_.base().value();
  u64 start = first_free(lowest_free_, table_.size());
  if (start == kNone) {
    lowest_free_ = table_.size();
    return kNone;
  }
  lowest_free_ = start;
  while (true) {
    start = align_up(base + start, alignment) - base;
    if (start > end || count > end - start) {
      return kNone;
    }
    const u64 used = first_used(start, start + count);
    if (used == kNone) {
      return start;
    }
    start = first_free(used + 1, end);
    if (start == kNone) {
      return kNone;
    }
  }
}

Status BitmapAllocator::add_free_range(Pfn first, FrameCount count) {
  MM_TRY(check_donation(first, count));
  release(first, count);
  managed_ += count;
  return Status::Ok;
}

void BitmapAllocator::release(Pfn first, FrameCount count) {
  Frame* frames = &table_[first];
  for (FrameCount i = 0; i < count; ++i) {
    mark_free(frames[i], 0);
  }
  const u64 index = first - table_.base();
  set_range(index, count, true);
  lowest_free_ = index < lowest_free_ ? index : lowest_free_;
  free_frames_ += count;
}

Result<Pfn> BitmapAllocator::allocate(const FrameRequest& request) {
  MM_TRY(check_request(request));
  const Pfn base = table_.base();
  const u64 end = request.limit <= base ? 0
                  : request.limit - base < table_.size() ? request.limit - base
                                                         : table_.size();
  const u64 start = find_run(request.count, request.alignment, end);
  if (start == kNone) {
    return Status::OutOfMemory;
  }
  // Locals, so the loop does not reload the request after every Frame store.
  const FrameCount count = request.count;
  const FrameOwner owner = request.owner;
  set_range(start, count, false);
  Frame* frames = &table_[base + start];  // the run is inside the table: no per-frame bounds check
  for (FrameCount i = 0; i < count; ++i) {
    mark_allocated(frames[i], 0, owner);
  }
  free_frames_ -= count;
  return base + start;
}

Status BitmapAllocator::free(Pfn first, FrameCount count) {
  if (count == 0) {
    return Status::InvalidArgument;
  }
  if (!table_.contains_run(first, count)) {
    return Status::BadAddress;
  }
  // The common case in one tight pass; the precise error only on a miss.
  const Frame* frames = &table_[first];
  for (FrameCount i = 0; i < count; ++i) {
    const Frame& frame = frames[i];
    if (frame.state != FrameState::Allocated || allocated_status(frame, 0) != Status::Ok) [[unlikely]] {
      return check_allocated(first + i, 0);
    }
  }
  release(first, count);
  return Status::Ok;
}

FreeBlockCounts BitmapAllocator::free_blocks() const {
  const Pfn base = table_.base();
  return scan_free_blocks(base, table_.size(), [&](Pfn pfn) { return is_free(pfn - base); });
}

}  // namespace mm
