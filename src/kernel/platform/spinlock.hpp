// The kernel's spinlock: interrupts off on this CPU while held, so data an
// interrupt handler touches may be guarded by it (the mm::Platform contract).
#pragma once

#include "arch/x86.hpp"
#include "mm/base/atomic.hpp"
#include "mm/base/thread_annotations.hpp"

namespace kernel {

class MM_CAPABILITY("spinlock") SpinLock {
 public:
  void lock() MM_ACQUIRE() {
    const mm::u64 flags = x86::save_flags_and_disable();
    while (locked_.exchange(1, mm::MemoryOrder::Acquire) != 0) {
      while (locked_.load(mm::MemoryOrder::Relaxed) != 0) {
        x86::pause();
      }
    }
    saved_flags_ = flags;
  }
  bool try_lock() MM_TRY_ACQUIRE(true) {
    const mm::u64 flags = x86::save_flags_and_disable();
    if (locked_.exchange(1, mm::MemoryOrder::Acquire) != 0) {
      x86::restore_flags(flags);
      return false;
    }
    saved_flags_ = flags;
    return true;
  }
  void unlock() MM_RELEASE() {
    const mm::u64 flags = saved_flags_;
    locked_.store(0, mm::MemoryOrder::Release);
    x86::restore_flags(flags);
  }

 private:
  mm::Atomic<mm::u32> locked_{0};
  mm::u64 saved_flags_ = 0;  // the holder's RFLAGS from before lock()
};

}  // namespace kernel
