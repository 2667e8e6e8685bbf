// Per-frame metadata: one Frame record for every 4 KiB frame of RAM the core
// manages, kept in a FrameTable (frame_table.hpp) and found from a frame
// number in O(1). Zircon calls this vm_page_t, Linux struct page.
#pragma once

#include "mm/base/atomic.hpp"

#include "mm/base/types.hpp"

namespace mm {

// Where a frame is in the allocator's life cycle. Only the allocators change
// it, under the zone lock, so the buddy may read a neighbour's state while
// merging without racing anyone.
//
// A frame parked in a per-CPU cache is Allocated as far as the allocator
// knows (Linux counts per-cpu pages the same way), with refcount 0 and owner
// Free: the refcount, not the state, says that nobody owns it.
enum class FrameState : u8 {
  Reserved,   // never handed out: firmware, kernel image, below 1 MiB, holes
  Free,       // head of a free block held by an allocator
  Allocated,  // head of a block handed out (order says how big); owned when refcount > 0
  Interior,   // a non-head frame inside a buddy block, free or allocated;
              // its state is its head's
};

// Frame::flags bits.
inline constexpr u8 kFrameFlagBatchMark = 1 << 0;  // transient: seen in the batch being validated

// Who holds an allocated frame and why. Set by the allocating caller.
enum class FrameOwner : u8 {
  Free,       // nobody: the frame is free or cached
  Anonymous,  // private anonymous memory of one address space
  CowShared,  // anonymous memory shared copy-on-write after fork
  Shared,     // memory deliberately shared between address spaces
  PageTable,  // a page-table page
  Kernel,     // kernel data
  Reserved,   // not RAM the core may hand out
};

inline constexpr u32 kNoFrameLink = ~u32{0};

struct Frame {
  // References from mappings and from the core; 1 when first allocated, 0
  // when free or cached. Freeing takes it from 1 to 0 with a compare-and-swap.
  Atomic<u32> refcount{0};
  FrameState state = FrameState::Reserved;
  FrameOwner owner = FrameOwner::Reserved;
  // For a block head (Free or Allocated): log2 of the block's frame count.
  u8 order = 0;
  u8 flags = 0;
  // Free-list links, as indices into the FrameTable; kNoFrameLink ends a list.
  u32 next = kNoFrameLink;
  u32 prev = kNoFrameLink;
  // Owner-defined word: a back pointer, a tag, a page-table level.
  u64 owner_data = 0;
};

static_assert(sizeof(Frame) == 24, "keep the per-frame record small: it exists for every frame of RAM");

const char* frame_state_name(FrameState state);
const char* frame_owner_name(FrameOwner owner);

}  // namespace mm
