// One CPU's cache of free single frames, in front of the shared allocator
// (Linux's per-cpu pageset, Zircon's PmmNode per-CPU caches). Allocating or
// freeing one frame touches only this CPU's cache line and the frame's
// record; the shared allocator and its lock are reached once per batch, on
// refill and on drain.
//
// The owner's fast path takes no lock and executes no locked instruction:
// it runs in a CPU section (Platform::enter_cpu_section: it stays on its
// CPU, and no interrupt handler of this CPU touches the cache) and marks
// itself busy with a plain store. Another CPU reaches the cache only to
// drain it (drain_all_caches, under memory pressure) or to read its figures;
// it steals:
//
//   stealer                                owner, each operation
//   take steal_lock                        busy = 1
//   steal_wanted = 1                       if steal_wanted: busy = 0, and do the
//   synchronize_cpus()  (every CPU fences)    operation under steal_lock instead
//   wait until busy == 0                   ... the operation ...
//   ... take frames out ...                busy = 0 (release)
//   steal_wanted = 0 (release); unlock
//
// After synchronize_cpus() an owner's operation either had marked itself
// busy before its CPU's barrier (the stealer sees busy == 1 and waits for its
// end) or starts after it (it sees steal_wanted and queues on the lock), so
// the two never touch the cache at once. The barrier is the expensive part
// (an IPI to every CPU), paid only by the rare stealer: the asymmetric fence
// of Linux's membarrier(2) users and of biased locks.
//
// The lock order: steal_lock (LockClass::CpuFrameCache) before the zone
// lock, never two caches' steal locks at once. The owner takes the zone lock
// inside its section to refill or drain, never the other way round.
#pragma once

#include "mm/base/atomic.hpp"
#include "mm/base/thread_annotations.hpp"
#include "mm/base/types.hpp"
#include "mm/platform/platform.hpp"

namespace mm {

struct FrameCacheStats {
  FrameCount cached = 0;  // frames in the cache now
  u64 hits = 0;           // allocations served without the shared allocator
  u64 refills = 0;        // batches taken from the shared allocator
  u64 drains = 0;         // batches given back (over the high mark, or pressure)
};

template <SpinLockType Lock>
class alignas(64) CpuFrameCache {
 public:
  static constexpr u32 kSlots = 256;

  // --- The owner, in a CPU section. ---

  // Marks the start of an operation; false when a stealer wants the cache
  // (the operation must then run under steal_lock instead).
  bool begin() {
    busy_.store(1, MemoryOrder::Relaxed);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);  // the compiler keeps the store first; the stealer's barrier does the rest
    if (steal_wanted_.load(MemoryOrder::Acquire) == 0) [[likely]] return true;
    busy_.store(0, MemoryOrder::Release);
    return false;
  }
  void end() { busy_.store(0, MemoryOrder::Release); }

  // The owner's slow path, and every stealer: the cache under its lock,
  // with no owner operation running (stop_owner).
  // LockClass::CpuFrameCache: after the space's and VmSystem's locks, before
  // the zone lock; never two caches' at once.
  Lock steal_lock{LockClass::CpuFrameCache};

  // A stealer holding steal_lock: announces itself, makes every CPU fence,
  // and waits for an owner operation that began before that to end.
  template <typename P>
  void stop_owner(P& platform) MM_REQUIRES(steal_lock) {
    steal_wanted_.store(1, MemoryOrder::Relaxed);
    platform.synchronize_cpus();
    while (busy_.load(MemoryOrder::Acquire) != 0) platform.relax();
  }
  // The owner may go on with its fast path.
  void release_owner() MM_REQUIRES(steal_lock) { steal_wanted_.store(0, MemoryOrder::Release); }

  // --- The operations: by the owner between begin() and end(), or by
  // whoever holds steal_lock after stop_owner(). ---

  bool empty() const { return count() == 0; }
  u32 count() const { return count_.load(MemoryOrder::Relaxed); }

  // Precondition: !empty().
  Pfn pop() {
    bump(hits_);
    const u32 n = count() - 1;
    count_.store(n, MemoryOrder::Relaxed);
    return slots_[n];
  }
  // Precondition: count() < kSlots.
  void push(Pfn pfn) {
    const u32 n = count();
    slots_[n] = pfn;
    count_.store(n + 1, MemoryOrder::Relaxed);
  }

  // The oldest `n` frames (the coldest), removed and copied to out[0..n).
  void take_oldest(Pfn* out, u32 n) {
    for (u32 i = 0; i < n; ++i) {
      out[i] = slots_[i];
    }
    const u32 had = count();
    for (u32 i = n; i < had; ++i) {
      slots_[i - n] = slots_[i];
    }
    count_.store(had - n, MemoryOrder::Relaxed);
    bump(drains_);
  }

  // Makes room for `n` frames and returns where the caller writes them.
  Pfn* refill_slots(u32 n) {
    Pfn* at = slots_ + count();
    count_.store(count() + n, MemoryOrder::Relaxed);
    bump(refills_);
    return at;
  }
  // Undoes part of refill_slots when fewer frames arrived than asked for.
  void shrink(u32 n) { count_.store(count() - n, MemoryOrder::Relaxed); }

  // Readable by any CPU at any time: each figure as of the owner's last
  // operation (exact when no operation runs, as at quiescence).
  FrameCacheStats stats() const {
    FrameCacheStats s;
    s.cached = count();
    s.hits = hits_.load(MemoryOrder::Relaxed);
    s.refills = refills_.load(MemoryOrder::Relaxed);
    s.drains = drains_.load(MemoryOrder::Relaxed);
    return s;
  }

 private:
  // Counters written by one CPU at a time and read by any: a relaxed load
  // and store, plain moves, not a locked add.
  static void bump(Atomic<u64>& counter) {
    counter.store(counter.load(MemoryOrder::Relaxed) + 1, MemoryOrder::Relaxed);
  }

  // Written by the owner, read by a stealer after synchronize_cpus().
  Atomic<u32> busy_{0};
  // Written by a stealer under steal_lock, read by the owner at each begin().
  Atomic<u32> steal_wanted_{0};
  // Frames in slots_: written by whoever may touch the cache, read by
  // stats() from any CPU (a relaxed atomic: a plain move).
  Atomic<u32> count_{0};
  Atomic<u64> hits_{0};
  Atomic<u64> refills_{0};
  Atomic<u64> drains_{0};
  Pfn slots_[kSlots];
};

}  // namespace mm
