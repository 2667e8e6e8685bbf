// Per-frame metadata: one Frame record for every 4 KiB frame of RAM the core
// manages, kept in a FrameTable (frame_table.hpp) and found from a frame
// number in O(1). Zircon calls this vm_page_t, Linux struct page.
#pragma once

#include "mm/base/atomic.hpp"

#include "mm/base/types.hpp"

namespace mm {

// Where a frame is in the allocator's life cycle. Only the allocators and the
// per-CPU caches change it, always under the lock that guards the frame.
enum class FrameState : u8 {
  Reserved,   // never handed out: firmware, kernel image, below 1 MiB, holes
  Free,       // head of a free block held by an allocator
  Cached,     // free, parked in a per-CPU cache
  Allocated,  // head of a block handed to an owner (order says how big)
  Interior,   // a non-head frame inside a buddy block, free or allocated;
              // its state is its head's
};

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
  // References from mappings and from the core; 1 when first allocated.
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
