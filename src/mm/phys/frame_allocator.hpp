// The one interface of the physical frame allocators.
//
// Three allocators implement it, each usable on its own over a FrameTable:
// FreeStackAllocator (O(1) single frames), BitmapAllocator (contiguous runs
// under a limit, with alignment) and BuddyAllocator (power-of-two blocks).
// PhysicalMemory (physical_memory.hpp) puts per-CPU caches, a lock, the
// emergency reserve and the watermarks in front of whichever one the system
// chose at run time; that choice is why this is a virtual interface.
//
// Allocators are not synchronized: the caller serializes every call (the
// PhysicalMemory zone lock does). Each call either succeeds completely or
// returns a Status and changes nothing.
#pragma once

#include "mm/base/span.hpp"

#include "mm/base/status.hpp"
#include "mm/phys/frame_table.hpp"

namespace mm {

// Highest buddy order: 2^18 frames = 1 GiB, the largest x86-64 page.
inline constexpr u32 kMaxOrder = 18;
inline constexpr u32 kOrderCount = kMaxOrder + 1;

struct FrameRequest {
  FrameCount count = 1;       // frames wanted, > 0
  FrameCount alignment = 1;   // first frame number is a multiple of this; a power of two
  Pfn limit = Pfn::max();     // every frame of the run lies below this frame number
  FrameOwner owner = FrameOwner::Kernel;
};

// Free memory by block order: blocks[k] counts free, naturally aligned
// blocks of 2^k frames, each counted once at the largest order that fits.
struct FreeBlockCounts {
  FrameCount blocks[kOrderCount] = {};

  FrameCount frames_at_or_above(u32 order) const;
};

// Whether `first` heads an allocated block of 2^order frames: Ok, or the
// status a free of it must fail with. EFAULT outside the table or reserved,
// ENOENT when the frame is free or cached (a double free), EINVAL when it is
// allocated but not as the head of a block of that order, EBUSY when it is
// still referenced more than once.
Status check_allocated(const FrameTable& table, Pfn first, u32 order);

// check_allocated for a frame already known to be in state Allocated.
inline Status allocated_status(const Frame& head, u32 order) {
  if (head.order != order) {
    return Status::InvalidArgument;
  }
  // Acquire: a reference another CPU dropped before (put_frame) happened
  // before whatever the caller does with the frame next.
  const u32 references = head.refcount.load(MemoryOrder::Acquire);
  return references == 1 ? Status::Ok : references == 0 ? Status::NotFound : Status::Busy;
}

class FrameAllocator {
 public:
  FrameAllocator(const FrameAllocator&) = delete;
  FrameAllocator& operator=(const FrameAllocator&) = delete;

  virtual const char* name() const = 0;

  // Hands the allocator the frames [first, first + count). They must lie in
  // its table and still be Reserved (given to nobody). Used at boot.
  // EINVAL on a zero count, EFAULT if any frame is outside the table or
  // already given away.
  virtual Status add_free_range(Pfn first, FrameCount count) = 0;

  // A run of request.count contiguous frames. The head frame becomes
  // Allocated with request.owner and refcount 1. ENOMEM when no run fits,
  // EINVAL for a malformed request, EOPNOTSUPP when this allocator cannot
  // serve its shape (a free stack asked for more than one frame).
  virtual Result<Pfn> allocate(const FrameRequest& request) = 0;

  // Returns a run obtained from allocate(). EFAULT for a frame outside the
  // table or reserved, ENOENT for a frame that is not allocated (a double
  // free), EINVAL for a count that does not match the allocation, EBUSY for a
  // head still referenced more than once.
  virtual Status free(Pfn first, FrameCount count) = 0;

  // Up to out.size() single frames, not necessarily contiguous, in one call.
  // Returns how many it got (fewer only when memory ran out).
  virtual FrameCount allocate_batch(Span<Pfn> out, FrameOwner owner);

  // Frees single frames. Every frame is validated before any is freed: one
  // bad frame (or one named twice) fails the whole batch and frees nothing.
  virtual Status free_batch(Span<const Pfn> frames);

  virtual FrameCount free_frames() const = 0;
  // Frames ever given with add_free_range.
  virtual FrameCount managed_frames() const = 0;
  virtual FreeBlockCounts free_blocks() const = 0;

 protected:
  explicit FrameAllocator(FrameTable& table) : table_(table) {}
  // Not virtual: the core never deletes through the interface (no heap).
  ~FrameAllocator() = default;

  // Shared validation of a request's shape: nonzero count, power-of-two
  // alignment, a limit that leaves room for the run.
  static Status check_request(const FrameRequest& request);
  Status check_allocated(Pfn first, u32 order) const { return mm::check_allocated(table_, first, order); }
  // Validates a free_batch: every frame a single allocated frame, none twice.
  Status check_batch(Span<const Pfn> frames);
  // Checks [first, first + count) is inside the table and entirely Reserved.
  Status check_donation(Pfn first, FrameCount count) const;

  // Inline: the bitmap calls these once per frame of a run.
  static void mark_allocated(Frame& head, u32 order, FrameOwner owner) {
    head.state = FrameState::Allocated;
    head.owner = owner;
    head.order = static_cast<u8>(order);
    head.refcount.store(1, MemoryOrder::Relaxed);
    head.owner_data = 0;
  }
  static void mark_free(Frame& head, u32 order) {
    head.state = FrameState::Free;
    head.owner = FrameOwner::Free;
    head.order = static_cast<u8>(order);
    head.refcount.store(0, MemoryOrder::Relaxed);
  }

  FrameTable& table_;
};

}  // namespace mm
