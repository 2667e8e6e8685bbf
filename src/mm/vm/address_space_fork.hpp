// AddressSpace: fork and destroy. Included by address_space.hpp.
#pragma once

#include "mm/vm/address_space.hpp"

namespace mm {

template <Platform P>
Status AddressSpace<P>::fork(AddressSpace& child) {
  LockGuard guard(lock_);
  // The child is new: no one else can hold its lock, so holding two spaces'
  // locks cannot deadlock here; the nesting says so to the lock checker.
  LockGuard child_guard(child.lock_, LockNesting::Inner);
  MM_ASSERT(child.live_ && child.regions_.empty());
  if (!live_) return Status::NotFound;

  // 0. Shared regions get a frame for every page now, so that a page first
  //    touched after the fork is still the same page in both spaces.
  {
    Batch batch = new_batch();
    Status populated = Status::Ok;
    for (const Region* r = regions_.first(); r != nullptr && populated == Status::Ok; r = regions_.next(r)) {
      if (r->fork == ForkPolicy::Shared && r->kind != RegionKind::Physical && r->kind != RegionKind::Guard) {
        populated = populate_locked(r->base, r->end(), batch);
      }
    }
    batch.flush();
    MM_TRY(populated);
  }

  // 1. Commit a frame for every frame that becomes copy-on-write, so a
  //    later write fault in either space can always copy. (Pinned pages are
  //    copied now instead.)
  FrameCount to_share = 0;
  for (const Region* r = regions_.first(); r != nullptr; r = regions_.next(r)) {
    if (!shares_copy_on_write(*r)) continue;
    tables_.for_each_leaf(r->base, r->size, [&](VirtAddr, Pte leaf, PageSize) {
      to_share += leaf.address() != vm_.zero_frame() ? 1 : 0;
    });
  }
  MM_TRY(vm_.memory().commit(to_share));

  // 2. The child's regions: copies of ours.
  for (const Region* r = regions_.first(); r != nullptr; r = regions_.next(r)) {
    const Result<Region*> copy = vm_.new_region();
    if (!copy.ok()) {
      while (Region* c = child.regions_.first()) {
        child.regions_.erase(c);
        vm_.free_region(c);
      }
      vm_.memory().uncommit(to_share);
      return Status::OutOfMemory;
    }
    Region* c = copy.value();
    c->base = r->base;
    c->size = r->size;
    c->prot = r->prot;
    c->kind = r->kind;
    c->fork = r->fork;
    c->physical = r->physical;
    c->pins = 0;  // pins belong to the space that pinned
    child.regions_.insert(c);
  }

  // 3. The page tables, region by region.
  Batch batch = new_batch();
  FrameCount shared = 0;
  Status status = Status::Ok;
  for (const Region* r = regions_.first(); r != nullptr && status == Status::Ok; r = regions_.next(r)) {
    if (r->kind == RegionKind::Guard) continue;
    status = tables_.share_into(child.tables_, r->base, r->size, batch, [&](VirtAddr, Pte& mine, Pte& theirs, PageSize size) {
      const PhysAddr frame = mine.address(leaf_level(size));
      if (r->kind == RegionKind::Physical || frame == vm_.zero_frame()) {
        theirs = mine;
        return Status::Ok;
      }
      if (r->fork == ForkPolicy::Private && r->pins > 0) {
        // A pinned page stays this space's alone: the child gets a copy now.
        const PhysAddr copy = MM_TRY(vm_.memory().allocate_frame(FrameOwner::Anonymous));
        __builtin_memcpy(vm_.platform().direct_map(copy), vm_.platform().direct_map(frame), kPageSize);
        frame_of(copy).mapcount.store(1, MemoryOrder::Relaxed);
        theirs = leaf_for(*r, copy, mine.raw() & pte::kAccessed);
        return Status::Ok;
      }
      Frame& f = frame_of(frame);
      f.refcount.fetch_add(1, MemoryOrder::Relaxed);
      f.mapcount.fetch_add(1, MemoryOrder::AcqRel);
      if (r->fork == ForkPolicy::Private) {
        mine = mine.without(pte::kWritable).with(pte::kCopyOnWrite);
        f.owner = FrameOwner::CowShared;
        ++shared;
      }
      theirs = mine;
      return Status::Ok;
    });
  }
  batch.flush();
  if (status != Status::Ok) {
    // Out of page-table frames: undo the child (which releases its
    // references and their commitments); our pages stay write-protected,
    // and a write to them will find the frame unshared again.
    Batch undo = child.new_batch();
    while (Region* c = child.regions_.first()) {
      child.remove_region_locked(c, undo);
    }
    undo.flush();
    vm_.memory().uncommit(to_share - shared);
    return status;
  }
  MM_ASSERT(shared == to_share);
  return Status::Ok;
}

template <Platform P>
void AddressSpace<P>::destroy() {
  {
    LockGuard guard(lock_);
    if (!live_) return;
    live_ = false;
    // Before the last shootdown reads who runs the space (TlbContext::dying).
    target_.context->dying.store(1);
    Batch batch = new_batch();
    while (Region* r = regions_.first()) {
      remove_region_locked(r, batch);
    }
    tables_.destroy(batch);
    batch.leave_space();
    batch.flush();
  }
  vm_.coherence().retire(*target_.context);
  vm_.count_space(false);
}

}  // namespace mm
