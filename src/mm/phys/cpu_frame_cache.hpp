// One CPU's cache of free single frames, in front of the shared allocator
// (Linux's per-cpu pageset, Zircon's PmmNode per-CPU caches). Allocating or
// freeing one frame touches only this CPU's cache line; the shared allocator
// and its lock are reached once per batch, on refill and on drain.
//
// Each cache has its own lock, taken by its CPU on every operation and by
// another CPU only to drain it under memory pressure (drain_all_caches). The
// lock makes a stale current_cpu() harmless and lets a drain be synchronous;
// uncontended it stays in this CPU's L1, which is the cost Linux accepted
// when it gave its per-cpu lists a spinlock. Lock order: a CPU cache lock is
// taken before the zone lock, never after.
#pragma once

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

  // LockClass::CpuFrameCache: after the space's and VmSystem's locks, before
  // the zone lock; never two caches' at once.
  Lock lock{LockClass::CpuFrameCache};

  bool empty() const MM_REQUIRES(lock) { return count_ == 0; }
  u32 count() const MM_REQUIRES(lock) { return count_; }

  // Precondition: !empty().
  Pfn pop() MM_REQUIRES(lock) {
    ++stats_.hits;
    return slots_[--count_];
  }
  // Precondition: count() < kSlots.
  void push(Pfn pfn) MM_REQUIRES(lock) { slots_[count_++] = pfn; }

  // The oldest `n` frames (the coldest), removed and copied to out[0..n).
  void take_oldest(Pfn* out, u32 n) MM_REQUIRES(lock) {
    for (u32 i = 0; i < n; ++i) {
      out[i] = slots_[i];
    }
    for (u32 i = n; i < count_; ++i) {
      slots_[i - n] = slots_[i];
    }
    count_ -= n;
    ++stats_.drains;
  }

  // Makes room for `n` frames and returns where the caller writes them.
  Pfn* refill_slots(u32 n) MM_REQUIRES(lock) {
    Pfn* at = slots_ + count_;
    count_ += n;
    ++stats_.refills;
    return at;
  }
  // Undoes part of refill_slots when fewer frames arrived than asked for.
  void shrink(u32 n) MM_REQUIRES(lock) { count_ -= n; }

  FrameCacheStats stats() const MM_REQUIRES(lock) {
    FrameCacheStats s = stats_;
    s.cached = count_;
    return s;
  }

 private:
  u32 count_ MM_GUARDED_BY(lock) = 0;
  FrameCacheStats stats_ MM_GUARDED_BY(lock);
  Pfn slots_[kSlots] MM_GUARDED_BY(lock);
};

}  // namespace mm
