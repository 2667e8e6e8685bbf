// Region: one contiguous range of an address space with one content kind,
// protection and fork behaviour (MOS vmap_t, SerenityOS Region, Redox Grant).
#pragma once

#include "mm/paging/protection.hpp"
#include "mm/vm/avl_tree.hpp"

namespace mm {

enum class RegionKind : u8 {
  Anonymous,  // demand-zero memory
  Stack,      // demand-zero memory with a guard region below it
  Physical,   // a fixed physical range (device memory, frame buffers): never freed by the space
  Guard,      // no access ever: the page below a stack
};

enum class ForkPolicy : u8 {
  Private,  // the child gets a copy-on-write copy
  Shared,   // parent and child share the frames
};

const char* region_kind_name(RegionKind kind);

struct Region : AvlNode {
  VirtAddr base;
  u64 size = 0;
  Prot prot = Prot::None;
  RegionKind kind = RegionKind::Anonymous;
  ForkPolicy fork = ForkPolicy::Private;
  PhysAddr physical;  // Physical regions: what `base` maps to
  u32 pins = 0;       // pin() calls covering this whole region

  VirtAddr end() const { return base + size; }
  bool contains(VirtAddr va) const { return va >= base && va < end(); }
  u64 pages() const { return size / kPageSize; }

  // Whether `next`, starting where this one ends, could be one region with it.
  bool can_merge_with(const Region& next) const {
    return end() == next.base && kind == next.kind && prot == next.prot && fork == next.fork && pins == next.pins &&
           kind != RegionKind::Guard &&
           (kind != RegionKind::Physical || physical + size == next.physical);
  }
};

struct RegionKey {
  static u64 key(const Region& region) { return region.base.value(); }
};

}  // namespace mm
