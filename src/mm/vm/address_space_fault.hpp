// AddressSpace: the page-fault path, populate, and kernel reads and writes.
// Included by address_space.hpp.
#pragma once

#include "mm/vm/address_space.hpp"

namespace mm {

template <Platform P>
FaultOutcome AddressSpace<P>::handle_fault(VirtAddr address, Access access, AccessMode mode) {
  FaultOutcome outcome;
  {
    LockGuard guard(lock_);
    Batch batch = new_batch();
    outcome = live_ ? fault_locked(address, access, mode, batch) : FaultOutcome::Segv;
    batch.flush();
  }
  vm_.count_fault(outcome);
  return outcome;
}

// The fault path. In order: is there a region, and does it allow the access;
// then what the page table holds: nothing (demand-zero, or the device
// frame), the zero frame or a copy-on-write frame on a write (a frame of its
// own: copied only if still shared), or an entry that already allows the
// access (a stale translation: nothing to do).
//
// With Unshare::Yes (pin's populate, Linux's FAULT_FLAG_UNSHARE) the page
// ends with a frame of its own whatever the access: never the zero frame,
// never one shared copy-on-write, so that the pinned frame stays the one
// this page maps. A pinned region's first touch of a page does the same (a
// page pin skipped, PROT_NONE then, keeps what it had until it is written).
template <Platform P>
FaultOutcome AddressSpace<P>::fault_locked(VirtAddr address, Access access, AccessMode mode, Batch& batch,
                                           Unshare unshare) {
  if (!address.is_canonical() || (mode == AccessMode::User && address.value() >= kUserSpaceEnd)) {
    return FaultOutcome::Segv;
  }
  const Region* region = regions_.find(address);
  if (region == nullptr || region->kind == RegionKind::Guard) {
    return FaultOutcome::Segv;
  }
  const Prot need = access == Access::Write ? Prot::Write : access == Access::Execute ? Prot::Exec : Prot::None;
  if (region->prot == Prot::None || !allows(region->prot, need)) {
    return FaultOutcome::Segv;
  }
  const VirtAddr page(align_down(address.value(), kPageSize));
  const Result<Translation> now = tables_.query(page);
  if (!now.ok()) {
    return map_backing_locked(*region, page, access, unshare, batch);
  }

  const Pte leaf = now.value().leaf;
  const bool allowed = leaf.present() && (access == Access::Read || (access == Access::Write && leaf.writable()) ||
                                          (access == Access::Execute && !leaf.no_execute()));
  const bool shared_frame =
      leaf.present() && region->kind != RegionKind::Physical && (leaf.address() == vm_.zero_frame() || leaf.copy_on_write());
  if (allowed && !(unshare == Unshare::Yes && shared_frame)) {
    return FaultOutcome::Complete;
  }
  if (!leaf.present() || (access != Access::Write && unshare == Unshare::No) || !shared_frame) {
    return FaultOutcome::Segv;  // the entry disagrees with a region that allows the access: not ours to fix
  }

  const u64 keep = leaf.raw() & pte::kAccessed;
  if (leaf.address() == vm_.zero_frame()) {
    const Result<PhysAddr> fresh = vm_.memory().allocate_frame(FrameOwner::Anonymous, AllocFlags::Zero);
    if (!fresh.ok()) return FaultOutcome::OutOfMemory;
    frame_of(fresh.value()).mapcount.store(1, MemoryOrder::Relaxed);
    const Status set = tables_.set_leaf(page, leaf_for(*region, fresh.value(), keep), batch);
    MM_ASSERT(set == Status::Ok);  // the table exists: the zero frame is mapped there
    return FaultOutcome::MapBacking;
  }
  return break_cow_locked(*region, page, leaf, batch);
}

// Nothing mapped at `page` yet: the region's device frame, the zero frame
// (a read of private memory), or a zeroed frame of the page's own.
template <Platform P>
FaultOutcome AddressSpace<P>::map_backing_locked(const Region& region, VirtAddr page, Access access, Unshare unshare,
                                                 Batch& batch) {
  if (region.kind == RegionKind::Physical) {
    if (map_large_physical_locked(region, page)) return FaultOutcome::MapBacking;
    const PhysAddr device = region.physical + (page.value() - region.base.value());
    if (tables_.set_leaf(page, leaf_for(region, device, 0), batch) != Status::Ok) return FaultOutcome::OutOfMemory;
    return FaultOutcome::MapBacking;
  }
  // A pinned region's first touch gives the page a frame of its own too.
  if (access != Access::Write && region.fork == ForkPolicy::Private && unshare == Unshare::No && region.pins == 0) {
    if (tables_.set_leaf(page, leaf_for(region, vm_.zero_frame(), 0), batch) != Status::Ok) {
      return FaultOutcome::OutOfMemory;
    }
    return FaultOutcome::MapBackingReadOnly;
  }
  const FrameOwner owner = region.fork == ForkPolicy::Shared ? FrameOwner::Shared : FrameOwner::Anonymous;
  const Result<PhysAddr> fresh = vm_.memory().allocate_frame(owner, AllocFlags::Zero);
  if (!fresh.ok()) return FaultOutcome::OutOfMemory;
  if (tables_.set_leaf(page, leaf_for(region, fresh.value(), 0), batch) != Status::Ok) {
    const Status freed = vm_.memory().free_frame(fresh.value());  // never mapped: no TLB has seen it
    MM_ASSERT(freed == Status::Ok);
    return FaultOutcome::OutOfMemory;
  }
  frame_of(fresh.value()).mapcount.store(1, MemoryOrder::Relaxed);
  return FaultOutcome::MapBacking;
}

// A write to a copy-on-write page (or pin's unshare): the page gets a frame
// of its own. Who may do what, with several sharers faulting at once:
//
//  - refcount 1: this mapping is the frame's only reference: no other
//    mapping, and no removed one whose drop still waits for its shootdown
//    (whose CPUs might still read through it). Take the frame as it is.
//  - mapcount > 1: another mapping shares it. Claim a sharer's place by
//    taking mapcount down by one (a compare-and-swap, so that of two sharers
//    faulting together only one copies when one copy is all fork committed),
//    then copy. A claimed place carries one of fork's commitments: the copy
//    draws on it if memory is short, else gives it back.
//  - mapcount 1 and refcount > 1: the last mapping, waiting for the other
//    sharers' drops. Wait for them (they are in flight: each belongs to a
//    batch that is flushing, or about to), holding no pending drop of our
//    own, so two waiters cannot wait on each other; then take the frame.
//
// The old frame's reference goes to the batch: dropped after the flush.
template <Platform P>
FaultOutcome AddressSpace<P>::break_cow_locked(const Region& region, VirtAddr page, Pte leaf, Batch& batch) {
  const PhysAddr old = leaf.address();
  const u64 keep = leaf.raw() & pte::kAccessed;
  Frame& shared = frame_of(old);
  u32 sharers = 0;
  for (;;) {
    if (shared.refcount.load(MemoryOrder::Acquire) == 1) {
      vm_.coherence().note_unshared(&tlb_context(), page, old, old);
      shared.owner = FrameOwner::Anonymous;
      const Status set = tables_.set_leaf(page, leaf_for(region, old, keep), batch);
      MM_ASSERT(set == Status::Ok);
      return FaultOutcome::MapBacking;
    }
    sharers = shared.mapcount.load(MemoryOrder::Acquire);
    while (sharers > 1 && !shared.mapcount.compare_exchange_strong(sharers, sharers - 1, MemoryOrder::AcqRel)) {
    }
    if (sharers > 1) break;
    batch.flush();
    while (shared.refcount.load(MemoryOrder::Acquire) != 1 && shared.mapcount.load(MemoryOrder::Acquire) == 1) {
      vm_.coherence().handle_ipi();
      vm_.platform().relax();
    }
  }

  // Copy: an ordinary frame if there is one, else the commitment claimed above.
  bool drew_commitment = false;
  Result<PhysAddr> copy = vm_.memory().allocate_frame(FrameOwner::Anonymous);
  if (!copy.ok()) {
    copy = vm_.memory().allocate_frame(FrameOwner::Anonymous, AllocFlags::Committed);
    drew_commitment = copy.ok();
  }
  if (!copy.ok()) {
    shared.mapcount.fetch_add(1, MemoryOrder::AcqRel);  // give the place back: nothing changed
    return FaultOutcome::OutOfMemory;
  }
  if (!drew_commitment) vm_.memory().uncommit(1);
  __builtin_memcpy(vm_.platform().direct_map(copy.value()), vm_.platform().direct_map(old), kPageSize);
  frame_of(copy.value()).mapcount.store(1, MemoryOrder::Relaxed);
  const Status set = tables_.set_leaf(page, leaf_for(region, copy.value(), keep), batch);
  MM_ASSERT(set == Status::Ok);
  vm_.coherence().note_unshared(&tlb_context(), page, old, copy.value());
  batch.release_after_flush(old);
  return FaultOutcome::CopyBacking;
}

// A physical region maps 2 MiB pages where it can: the 2 MiB block around
// `page` lies inside the region, virtual and physical addresses agree modulo
// 2 MiB, and nothing is mapped in the block yet (no table there).
template <Platform P>
bool AddressSpace<P>::map_large_physical_locked(const Region& region, VirtAddr page) {
  constexpr u64 kLarge = page_bytes(PageSize::Size2M);
  const VirtAddr block(align_down(page.value(), kLarge));
  if (block < region.base || region.end().value() - block.value() < kLarge) return false;
  const PhysAddr frame = region.physical + (block.value() - region.base.value());
  if ((frame.value() & (kLarge - 1)) != 0) return false;
  const u64 attributes = leaf_for(region, frame, 0).attributes();
  return tables_.map(block, frame, 1, PageSize::Size2M, attributes) == Status::Ok;
}

template <Platform P>
Status AddressSpace<P>::populate_locked(VirtAddr lo, VirtAddr hi, Batch& batch, Unshare unshare) {
  for (VirtAddr page = lo; page < hi; page = page + kPageSize) {
    const Region* region = regions_.find(page);
    if (region == nullptr || region->kind == RegionKind::Guard || region->prot == Prot::None) continue;
    const Access access = allows(region->prot, Prot::Write) ? Access::Write : Access::Read;
    const FaultOutcome outcome = fault_locked(page, access, AccessMode::Kernel, batch, unshare);
    if (outcome == FaultOutcome::OutOfMemory) return Status::OutOfMemory;
    MM_ASSERT(outcome != FaultOutcome::Segv);
  }
  return Status::Ok;
}

template <Platform P>
Result<PhysAddr> AddressSpace<P>::kernel_access_locked(VirtAddr address, Access access, Batch& batch) {
  if ((address.value() & 7) != 0) return Status::InvalidArgument;
  for (int attempt = 0; attempt < 2; ++attempt) {
    const Result<Translation> t = tables_.query(address);
    if (t.ok() && t.value().leaf.present() && (access == Access::Read || t.value().leaf.writable())) {
      return t.value().physical;
    }
    if (attempt == 1) break;
    const FaultOutcome outcome = fault_locked(address, access, AccessMode::Kernel, batch);
    if (outcome == FaultOutcome::OutOfMemory) return Status::OutOfMemory;
    if (outcome == FaultOutcome::Segv) return Status::BadAddress;
  }
  return Status::BadAddress;
}

template <Platform P>
Status AddressSpace<P>::write_u64(VirtAddr address, u64 value) {
  LockGuard guard(lock_);
  if (!live_) return Status::NotFound;
  Batch batch = new_batch();
  const Result<PhysAddr> at = kernel_access_locked(address, Access::Write, batch);
  if (at.ok()) {
    __atomic_store_n(reinterpret_cast<u64*>(vm_.platform().direct_map(at.value())), value, __ATOMIC_RELAXED);
  }
  batch.flush();
  return at.status();
}

template <Platform P>
Result<u64> AddressSpace<P>::read_u64(VirtAddr address) {
  LockGuard guard(lock_);
  if (!live_) return Status::NotFound;
  Batch batch = new_batch();
  const Result<PhysAddr> at = kernel_access_locked(address, Access::Read, batch);
  batch.flush();
  if (!at.ok()) return at.status();
  return __atomic_load_n(reinterpret_cast<const u64*>(vm_.platform().direct_map(at.value())), __ATOMIC_RELAXED);
}

}  // namespace mm
