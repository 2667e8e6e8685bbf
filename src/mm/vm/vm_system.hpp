// VmSystem: what every address space of one machine shares: the physical
// memory manager, the TLB shootdown protocol, the shared zero frame, the pool that region objects come
// from, the kernel half of the page tables, and the fault counters.
#pragma once

#include "mm/paging/page_tables.hpp"
#include "mm/paging/tlb_coherence.hpp"
#include "mm/vm/fault.hpp"
#include "mm/vm/object_pool.hpp"
#include "mm/vm/region.hpp"

namespace mm {

struct VmStats {
  u64 faults[kFaultOutcomeCount] = {};
  u64 spaces_created = 0;
  u64 spaces_destroyed = 0;
};

template <Platform P>
class VmSystem {
 public:
  VmSystem(P& platform, PhysicalMemory<P>& memory, TlbCoherenceConfig coherence = {})
      : platform_(platform), memory_(memory), coherence_(platform, coherence), regions_(platform, memory) {}
  ~VmSystem() { MM_ASSERT(zero_frame_.value() == 0 && own_idle_root_.value() == 0); }
  VmSystem(const VmSystem&) = delete;
  VmSystem& operator=(const VmSystem&) = delete;

  // Allocates the zero frame. `kernel_half`, if given, is the page-table
  // tree whose upper half every new address space shares; its root is the
  // idle root CPUs load when they run no user space. Without one (the
  // emulator, tests) the idle root is an empty top-level table of its own.
  Status init(const PageTables<P>* kernel_half = nullptr) {
    zero_frame_ = MM_TRY(memory_.allocate_frame(FrameOwner::Shared, AllocFlags::Zero));
    kernel_half_ = kernel_half;
    if (kernel_half == nullptr) {
      const Result<PhysAddr> idle = memory_.allocate_frame(FrameOwner::PageTable, AllocFlags::Zero);
      if (!idle.ok()) {
        shutdown();
        return idle.status();
      }
      own_idle_root_ = idle.value();
    }
    coherence_.set_idle_root(kernel_half != nullptr ? kernel_half->root() : own_idle_root_);
    return Status::Ok;
  }
  // Frees the zero frame (and an idle root of its own). Every address space must be gone.
  void shutdown() {
    MM_ASSERT(regions_.live() == 0);
    release(zero_frame_);
    release(own_idle_root_);
  }

  P& platform() { return platform_; }
  PhysicalMemory<P>& memory() { return memory_; }
  TlbCoherence<P>& coherence() { return coherence_; }
  const TlbCoherence<P>& coherence() const { return coherence_; }
  // The one frame of zeros every untouched anonymous page maps read-only.
  // Never freed while the system lives, never counted per mapping.
  PhysAddr zero_frame() const { return zero_frame_; }
  const PageTables<P>* kernel_half() const { return kernel_half_; }

  Result<Region*> new_region() {
    LockGuard guard(lock_);
    return regions_.allocate();
  }
  void free_region(Region* region) {
    LockGuard guard(lock_);
    regions_.free(region);
  }
  u64 live_regions() {
    LockGuard guard(lock_);
    return regions_.live();
  }

  void count_fault(FaultOutcome outcome) {
    LockGuard guard(lock_);
    ++stats_.faults[static_cast<u32>(outcome)];
  }
  void count_space(bool created) {
    LockGuard guard(lock_);
    ++(created ? stats_.spaces_created : stats_.spaces_destroyed);
  }
  VmStats stats() {
    LockGuard guard(lock_);
    return stats_;
  }

 private:
  void release(PhysAddr& frame) {
    if (frame.value() == 0) return;
    const Status freed = memory_.free_frame(frame);
    MM_ASSERT(freed == Status::Ok);
    frame = PhysAddr(0);
  }

  P& platform_;
  PhysicalMemory<P>& memory_;
  TlbCoherence<P> coherence_;
  // Guards regions_ and stats_. LockClass::VmSystem: taken after an address
  // space's lock, before the physical memory's (the pool grows and shrinks
  // under it).
  typename P::SpinLock lock_{LockClass::VmSystem};
  ObjectPool<Region, P> regions_ MM_GUARDED_BY(lock_);
  VmStats stats_ MM_GUARDED_BY(lock_);
  PhysAddr zero_frame_;
  PhysAddr own_idle_root_;  // without a kernel half: an empty top-level table
  const PageTables<P>* kernel_half_ = nullptr;
};

}  // namespace mm
