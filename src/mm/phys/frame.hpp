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
  // References: one for each page-table entry that maps the frame, one for
  // each removed entry whose drop waits for a TLB shootdown (the TlbBatch
  // holds it), one for each page-table page's place in its tree. 1 when
  // first allocated, 0 when free or cached. The last drop frees the frame
  // (PhysicalMemory::put_frame).
  Atomic<u32> refcount{0};
  // Page-table entries that map the frame right now (Linux's _mapcount):
  // refcount minus the drops still waiting for their shootdown. A mapping
  // leaves it the moment its entry is cleared; its reference only after the
  // flush. Anonymous and shared memory only (0 for page tables and kernel
  // frames). Copy-on-write accounting counts sharers with it
  // (address_space.hpp).
  Atomic<u32> mapcount{0};
  FrameState state = FrameState::Reserved;
  FrameOwner owner = FrameOwner::Reserved;
  // For a block head (Free or Allocated): log2 of the block's frame count.
  u8 order = 0;
  u8 flags = 0;
  // Free-list links, as indices into the FrameTable; kNoFrameLink ends a list.
  // Unused while the frame is allocated (reclaim's aging lists will use them).
  u32 next = kNoFrameLink;
  u32 prev = kNoFrameLink;
  // Owner-defined word: a page table's count of non-empty entries, a tag.
  u64 owner_data = 0;
};

// 32 bytes: under 1% of the RAM it describes (Linux's struct page is 64).
static_assert(sizeof(Frame) == 32, "keep the per-frame record small: it exists for every frame of RAM");

const char* frame_state_name(FrameState state);
const char* frame_owner_name(FrameOwner owner);

}  // namespace mm
