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
    outcome = fault_locked(address, access, mode, batch);
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
template <Platform P>
FaultOutcome AddressSpace<P>::fault_locked(VirtAddr address, Access access, AccessMode mode, Batch& batch) {
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
    PhysAddr frame;
    FaultOutcome outcome = FaultOutcome::MapBacking;
    if (region->kind == RegionKind::Physical) {
      if (map_large_physical_locked(*region, page)) return FaultOutcome::MapBacking;
      frame = region->physical + (page.value() - region->base.value());
    } else if (access != Access::Write && region->fork == ForkPolicy::Private) {
      frame = vm_.zero_frame();
      outcome = FaultOutcome::MapBackingReadOnly;
    } else {
      const FrameOwner owner = region->fork == ForkPolicy::Shared ? FrameOwner::Shared : FrameOwner::Anonymous;
      const Result<PhysAddr> fresh = vm_.memory().allocate_frame(owner, AllocFlags::Zero);
      if (!fresh.ok()) return FaultOutcome::OutOfMemory;
      frame = fresh.value();
    }
    if (tables_.set_leaf(page, leaf_for(*region, frame, 0), batch) != Status::Ok) {
      if (outcome == FaultOutcome::MapBacking && region->kind != RegionKind::Physical) {
        frame_of(frame).refcount.store(0, MemoryOrder::Relaxed);
        batch.free_after_flush(frame, 1);
      }
      return FaultOutcome::OutOfMemory;
    }
    return outcome;
  }

  const Pte leaf = now.value().leaf;
  const bool allowed = leaf.present() && (access == Access::Read || (access == Access::Write && leaf.writable()) ||
                                          (access == Access::Execute && !leaf.no_execute()));
  if (allowed) {
    return FaultOutcome::Complete;
  }
  if (access != Access::Write || !leaf.present()) {
    return FaultOutcome::Segv;  // the entry disagrees with a region that allows the access: not ours to fix
  }

  const PhysAddr old = leaf.address();
  const u64 keep = leaf.raw() & pte::kAccessed;
  if (old == vm_.zero_frame()) {
    const Result<PhysAddr> fresh = vm_.memory().allocate_frame(FrameOwner::Anonymous, AllocFlags::Zero);
    if (!fresh.ok()) return FaultOutcome::OutOfMemory;
    const Status set = tables_.set_leaf(page, leaf_for(*region, fresh.value(), keep), batch);
    MM_ASSERT(set == Status::Ok);  // the table exists: the zero frame is mapped there
    return FaultOutcome::MapBacking;
  }

  // A copy-on-write frame. Its only user takes it as it is.
  Frame& shared = frame_of(old);
  if (shared.refcount.load(MemoryOrder::Acquire) == 1) {
    shared.owner = FrameOwner::Anonymous;
    const Status set = tables_.set_leaf(page, leaf_for(*region, old, keep), batch);
    MM_ASSERT(set == Status::Ok);
    return FaultOutcome::MapBacking;
  }
  // Still shared: copy. An ordinary frame if there is one; else one of the
  // frames fork committed for exactly this.
  bool drew_commitment = false;
  Result<PhysAddr> copy = vm_.memory().allocate_frame(FrameOwner::Anonymous);
  if (!copy.ok() && leaf.copy_on_write()) {
    copy = vm_.memory().allocate_frame(FrameOwner::Anonymous, AllocFlags::Committed);
    drew_commitment = copy.ok();
  }
  if (!copy.ok()) return FaultOutcome::OutOfMemory;
  __builtin_memcpy(vm_.platform().direct_map(copy.value()), vm_.platform().direct_map(old), kPageSize);
  const Status set = tables_.set_leaf(page, leaf_for(*region, copy.value(), keep), batch);
  MM_ASSERT(set == Status::Ok);
  // Drop this space's share of the old frame. Each sharer beyond the first
  // carries one commitment: give it back unless the copy already used it, or
  // the other sharers let go meanwhile (then it was given back by them).
  const u32 before = shared.refcount.fetch_sub(1, MemoryOrder::AcqRel);
  if (before == 1) {
    batch.free_after_flush(old, 1);
  } else if (leaf.copy_on_write() && !drew_commitment) {
    vm_.memory().uncommit(1);
  }
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
Status AddressSpace<P>::populate_locked(VirtAddr lo, VirtAddr hi, Batch& batch) {
  for (VirtAddr page = lo; page < hi; page = page + kPageSize) {
    const Region* region = regions_.find(page);
    if (region == nullptr || region->kind == RegionKind::Guard || region->prot == Prot::None) continue;
    const Access access = allows(region->prot, Prot::Write) ? Access::Write : Access::Read;
    const FaultOutcome outcome = fault_locked(page, access, AccessMode::Kernel, batch);
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
  Batch batch = new_batch();
  const Result<PhysAddr> at = kernel_access_locked(address, Access::Read, batch);
  batch.flush();
  if (!at.ok()) return at.status();
  return __atomic_load_n(reinterpret_cast<const u64*>(vm_.platform().direct_map(at.value())), __ATOMIC_RELAXED);
}

}  // namespace mm
