// AddressSpace: map, alloc, unmap, protect, pin, and the region editing
// they share (split, isolate, merge). Included by address_space.hpp.
#pragma once

#include "mm/vm/address_space.hpp"

namespace mm {

template <Platform P>
Status AddressSpace<P>::map(const MapRequest& request) {
  LockGuard guard(lock_);
  if (!live_) return Status::NotFound;
  Batch batch = new_batch();
  const Status status = map_locked(request, batch);
  batch.flush();
  return status;
}

template <Platform P>
Result<VirtAddr> AddressSpace<P>::alloc(const MapRequest& request) {
  if (request.length == 0 || (request.length & kPageMask) != 0) {
    return Status::InvalidArgument;
  }
  LockGuard guard(lock_);
  if (!live_) return Status::NotFound;
  // A stack needs its guard page below it, inside the free range too.
  const u64 guard_bytes = request.kind == RegionKind::Stack ? kPageSize : 0;
  const u64 alignment = request.kind == RegionKind::Physical && (request.physical.value() & (page_bytes(PageSize::Size2M) - 1)) == 0 &&
                                request.length >= page_bytes(PageSize::Size2M)
                            ? page_bytes(PageSize::Size2M)
                            : kPageSize;
  VirtAddr found;
  if (!regions_.find_free(request.length + guard_bytes, alignment, VirtAddr(align_down(request.address.value(), kPageSize)),
                          VirtAddr(kUserSpaceStart), VirtAddr(kUserSpaceEnd), found)) {
    return Status::OutOfMemory;
  }
  MapRequest placed = request;
  placed.address = found + guard_bytes;
  placed.fixed = MapFixed::FailIfExists;
  Batch batch = new_batch();
  const Status status = map_locked(placed, batch);
  batch.flush();
  if (status != Status::Ok) {
    return status;
  }
  return placed.address;
}

template <Platform P>
Status AddressSpace<P>::map_locked(const MapRequest& request, Batch& batch) {
  if (!range_ok(request.address, request.length) || request.kind == RegionKind::Guard) {
    return Status::InvalidArgument;
  }
  if (request.kind == RegionKind::Physical &&
      (!request.physical.is_page_aligned() || request.length > kMaxPhysAddr - request.physical.value())) {
    return Status::InvalidArgument;
  }
  const bool stack = request.kind == RegionKind::Stack;
  if (stack && request.address.value() < kUserSpaceStart + kPageSize) {
    return Status::InvalidArgument;  // no room for the guard page
  }
  const VirtAddr lo = stack ? request.address - kPageSize : request.address;  // the guard page
  const VirtAddr hi = request.address + request.length;

  const Region* first = regions_.first_ending_after(lo);
  const bool overlap = first != nullptr && first->base < hi;
  if (overlap) {
    if (request.fixed == MapFixed::FailIfExists) return Status::AlreadyExists;
    if (any_pinned_locked(lo, hi)) return Status::Busy;
  }
  // Everything this call may need, obtained before anything changes: two
  // regions for the splits of a Replace, the region (and a stack's guard),
  // and two more to undo a populate that runs out of memory.
  const bool populate = request.populate && request.prot != Prot::None;
  Spares spares(vm_);
  MM_TRY(spares.reserve((overlap ? 2 : 0) + (stack ? 2 : 1) + (populate ? 2 : 0)));
  if (overlap) {
    MM_TRY(split_large_edges_locked(lo, hi, batch));
    unmap_range_locked(lo, hi, spares, batch);
  }

  Region* region = spares.take();
  region->base = request.address;
  region->size = request.length;
  region->prot = request.prot;
  region->kind = request.kind;
  region->fork = request.kind == RegionKind::Physical ? ForkPolicy::Shared : request.fork;
  region->physical = request.physical;
  region->pins = 0;
  regions_.insert(region);
  if (stack) {
    Region* guard = spares.take();
    guard->base = lo;
    guard->size = kPageSize;
    guard->prot = Prot::None;
    guard->kind = RegionKind::Guard;
    guard->fork = region->fork;
    guard->pins = 0;
    regions_.insert(guard);
  }
  merge_around_locked(region);

  if (populate) {
    const Status populated = populate_locked(request.address, hi, batch);
    if (populated != Status::Ok) {
      unmap_range_locked(lo, hi, spares, batch);
      return populated;
    }
  }
  return Status::Ok;
}

template <Platform P>
Status AddressSpace<P>::unmap(VirtAddr address, u64 length) {
  if (!range_ok(address, length)) return Status::InvalidArgument;
  Batch batch = new_batch();
  Status status = Status::Ok;
  {
    LockGuard guard(lock_);
    status = live_ ? unmap_locked(address, address + length, batch) : Status::NotFound;
    if (!flush_after_unlock()) batch.flush();
  }
  batch.flush();  // UnsafeFlushAfterUnlock flushes only here
  return status;
}

template <Platform P>
Status AddressSpace<P>::unmap_locked(VirtAddr address, VirtAddr hi, Batch& batch) {
  if (any_pinned_locked(address, hi)) return Status::Busy;
  Spares spares(vm_);
  MM_TRY(spares.reserve(2));
  MM_TRY(split_large_edges_locked(address, hi, batch));
  unmap_range_locked(address, hi, spares, batch);
  return Status::Ok;
}

template <Platform P>
Status AddressSpace<P>::split_large_edges_locked(VirtAddr lo, VirtAddr hi, Batch& batch) {
  return tables_.update(lo, hi.value() - lo.value(), batch, [](VirtAddr, Pte old, PageSize) { return old; });
}

template <Platform P>
Status AddressSpace<P>::protect(VirtAddr address, u64 length, Prot prot) {
  if (!range_ok(address, length)) return Status::InvalidArgument;
  Batch batch = new_batch();
  Status status = Status::Ok;
  {
    LockGuard guard(lock_);
    status = live_ ? protect_locked(address, address + length, prot, batch) : Status::NotFound;
    if (!flush_after_unlock()) batch.flush();
  }
  batch.flush();  // UnsafeFlushAfterUnlock flushes only here
  return status;
}

template <Platform P>
Status AddressSpace<P>::protect_locked(VirtAddr address, VirtAddr hi, Prot prot, Batch& batch) {
  if (!covered_locked(address, hi)) return Status::NotFound;
  Spares spares(vm_);
  MM_TRY(spares.reserve(2));
  MM_TRY(split_large_edges_locked(address, hi, batch));
  isolate_locked(address, hi, spares);
  for (Region* r = regions_.find(address); r != nullptr && r->base < hi; r = regions_.next(r)) {
    r->prot = prot;
    const Status updated = tables_.update(r->base, r->size, batch, [&](VirtAddr, Pte old, PageSize size) {
      const Pte fresh = leaf_for(*r, old.address(leaf_level(size)), old.raw() & (pte::kAccessed | pte::kDirty | pte::kCopyOnWrite));
      return size == PageSize::Size4K ? fresh : Pte::leaf(fresh.address(), fresh.attributes(), size);  // a device's large page
    });
    MM_ASSERT(updated == Status::Ok);  // every edge was split above: no table is needed now
  }
  merge_range_locked(address, hi);
  return Status::Ok;
}

template <Platform P>
Status AddressSpace<P>::pin(VirtAddr address, u64 length) {
  if (!range_ok(address, length)) return Status::InvalidArgument;
  LockGuard guard(lock_);
  if (!live_) return Status::NotFound;
  const VirtAddr hi = address + length;
  if (!covered_locked(address, hi)) return Status::NotFound;
  Spares spares(vm_);
  MM_TRY(spares.reserve(2));
  Batch batch = new_batch();
  Status populated = populate_locked(address, hi, batch, Unshare::Yes);
  // A device region's 2 MiB page across an edge is split now: the regions
  // are about to be split there, and tearing one down later must not need
  // a page table it cannot get.
  if (populated == Status::Ok) populated = split_large_edges_locked(address, hi, batch);
  if (populated == Status::Ok) {
    isolate_locked(address, hi, spares);
    for (Region* r = regions_.find(address); r != nullptr && r->base < hi; r = regions_.next(r)) {
      ++r->pins;
    }
  }
  batch.flush();
  return populated;
}

template <Platform P>
Status AddressSpace<P>::unpin(VirtAddr address, u64 length) {
  if (!range_ok(address, length)) return Status::InvalidArgument;
  LockGuard guard(lock_);
  if (!live_) return Status::NotFound;
  const VirtAddr hi = address + length;
  if (!covered_locked(address, hi)) return Status::NotFound;
  for (const Region* r = regions_.find(address); r != nullptr && r->base < hi; r = regions_.next(r)) {
    if (r->pins == 0) return Status::InvalidArgument;
  }
  Spares spares(vm_);
  MM_TRY(spares.reserve(2));
  Batch batch = new_batch();
  const Status split = split_large_edges_locked(address, hi, batch);  // as in pin
  if (split == Status::Ok) {
    isolate_locked(address, hi, spares);
    for (Region* r = regions_.find(address); r != nullptr && r->base < hi; r = regions_.next(r)) {
      --r->pins;
    }
    merge_range_locked(address, hi);
  }
  batch.flush();
  return split;
}

template <Platform P>
Region* AddressSpace<P>::split_locked(Region* region, VirtAddr at, Spares& spares) {
  MM_ASSERT(region->base < at && at < region->end());
  Region* upper = spares.take();
  const u64 lower_size = at.value() - region->base.value();
  upper->base = at;
  upper->size = region->size - lower_size;
  upper->prot = region->prot;
  upper->kind = region->kind;
  upper->fork = region->fork;
  upper->physical = region->physical + lower_size;
  upper->pins = region->pins;
  region->size = lower_size;
  regions_.insert(upper);
  return upper;
}

template <Platform P>
void AddressSpace<P>::isolate_locked(VirtAddr lo, VirtAddr hi, Spares& spares) {
  if (Region* r = regions_.find(lo); r != nullptr && r->base < lo) {
    split_locked(r, lo, spares);
  }
  if (Region* r = regions_.find(hi); r != nullptr && r->base < hi) {
    split_locked(r, hi, spares);
  }
}

template <Platform P>
void AddressSpace<P>::merge_around_locked(Region* region) {
  if (Region* next = regions_.next(region); next != nullptr && region->can_merge_with(*next)) {
    region->size += next->size;
    regions_.erase(next);
    vm_.free_region(next);
  }
  if (Region* prev = regions_.prev(region); prev != nullptr && prev->can_merge_with(*region)) {
    prev->size += region->size;
    regions_.erase(region);
    vm_.free_region(region);
  }
}

template <Platform P>
void AddressSpace<P>::merge_range_locked(VirtAddr lo, VirtAddr hi) {
  // From the region before the range to the one just past it: each region
  // absorbs its successors while they are compatible.
  Region* r = regions_.first_ending_after(lo);
  if (r != nullptr && regions_.prev(r) != nullptr) {
    r = regions_.prev(r);
  }
  while (r != nullptr && r->base <= hi) {
    Region* next = regions_.next(r);
    if (next != nullptr && r->can_merge_with(*next)) {
      r->size += next->size;
      regions_.erase(next);
      vm_.free_region(next);
      continue;
    }
    r = next;
  }
}

template <Platform P>
void AddressSpace<P>::unmap_range_locked(VirtAddr lo, VirtAddr hi, Spares& spares, Batch& batch) {
  isolate_locked(lo, hi, spares);
  for (Region* r = regions_.first_ending_after(lo); r != nullptr && r->base < hi;) {
    Region* next = regions_.next(r);
    // A stack takes its guard page along.
    if (r->kind == RegionKind::Stack) {
      Region* below = regions_.prev(r);
      if (below != nullptr && below->kind == RegionKind::Guard && below->end() == r->base) {
        remove_region_locked(below, batch);
      }
    }
    remove_region_locked(r, batch);
    r = next;
  }
}

template <Platform P>
void AddressSpace<P>::remove_region_locked(Region* region, Batch& batch) {
  if (region->kind != RegionKind::Guard) {
    const Status unmapped = tables_.unmap(region->base, region->size, batch, [&](VirtAddr, Pte leaf, PageSize size) {
      release_leaf(*region, leaf, size, batch);
    });
    MM_ASSERT(unmapped == Status::Ok);
  }
  regions_.erase(region);
  vm_.free_region(region);
}

template <Platform P>
void AddressSpace<P>::release_leaf(const Region& region, Pte leaf, PageSize size, Batch& batch) {
  if (region.kind == RegionKind::Physical) {
    return;  // device memory is never the space's to free
  }
  const PhysAddr frame = leaf.address(leaf_level(size));
  if (frame == vm_.zero_frame()) {
    return;
  }
  MM_ASSERT(size == PageSize::Size4K);  // anonymous memory is mapped in 4 KiB pages
  const u32 sharers = frame_of(frame).mapcount.fetch_sub(1, MemoryOrder::AcqRel);
  MM_ASSERT(sharers >= 1);
  if (leaf.copy_on_write() && sharers > 1) {
    vm_.memory().uncommit(1);  // one fewer sharer that might need a copy
  }
  batch.release_after_flush(frame);
}

template <Platform P>
bool AddressSpace<P>::covered_locked(VirtAddr lo, VirtAddr hi) const {
  VirtAddr at = lo;
  for (const Region* r = regions_.first_ending_after(lo); at < hi; r = regions_.next(r)) {
    if (r == nullptr || r->base > at || r->kind == RegionKind::Guard) return false;
    at = r->end();
  }
  return true;
}

template <Platform P>
bool AddressSpace<P>::any_pinned_locked(VirtAddr lo, VirtAddr hi) const {
  for (const Region* r = regions_.first_ending_after(lo); r != nullptr && r->base < hi; r = regions_.next(r)) {
    if (r->pins > 0) return true;
  }
  return false;
}

template <Platform P>
Pte AddressSpace<P>::leaf_for(const Region& region, PhysAddr frame, u64 keep_bits) const {
  u64 attributes = leaf_attributes(region.prot, /*user=*/true) | keep_bits;
  const bool shared_read_only = frame == vm_.zero_frame() || (keep_bits & pte::kCopyOnWrite);
  if (shared_read_only) attributes &= ~pte::kWritable;
  if (region.prot == Prot::None) attributes |= pte::kParked;
  return Pte::leaf(frame, attributes, PageSize::Size4K);
}

template <Platform P>
AddressSpaceStats AddressSpace<P>::stats() {
  LockGuard guard(lock_);
  AddressSpaceStats s;
  s.regions = regions_.size();
  s.table_frames = tables_.table_frames();
  tables_.for_each_leaf(VirtAddr(0), kUserSpaceEnd, [&](VirtAddr, Pte leaf, PageSize size) {
    s.mapped_pages += page_bytes(size) / kPageSize;
    s.zero_pages += leaf.address() == vm_.zero_frame() ? 1 : 0;
    s.cow_pages += leaf.copy_on_write() ? 1 : 0;
  });
  return s;
}

}  // namespace mm
