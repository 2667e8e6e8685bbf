// The kernel's spinlock: interrupts off on this CPU while held, so data an
// interrupt handler touches may be guarded by it (the mm::Platform contract).
#pragma once

#include "arch/x86.hpp"
#include "smp/cpu_barrier.hpp"
#include "mm/base/atomic.hpp"
#include "mm/base/lock_class.hpp"
#include "mm/base/thread_annotations.hpp"

namespace kernel {

class MM_CAPABILITY("spinlock") SpinLock {
 public:
  // The class (mm/base/lock_class.hpp) is kept for a debugger and not
  // checked: the emulator checks the lock order of the same core code.
  constexpr explicit SpinLock(mm::LockClass lock_class) : class_(lock_class) {}
  mm::LockClass lock_class() const { return class_; }

  // Waiting runs with the caller's interrupt state; holding runs with
  // interrupts off. The TLB shootdown protocol needs the first half: an
  // initiator holds its address space's lock, with interrupts off, while it
  // waits for every CPU that runs the space to acknowledge an IPI. A CPU
  // spinning here for that same lock (a page fault in that space, say) with
  // interrupts off would never take the IPI, and both would wait forever. So
  // a caller that had interrupts on gets them back while it spins (Linux's
  // old spin_lock_irqsave slow path), and they go off again before each
  // try: the lock is only ever taken, and held, with interrupts off. A caller
  // that had them off (an interrupt handler) spins with them off; such code
  // must not wait for a lock whose holder waits for it, which is why the #PF
  // handler turns them back on before it enters the core (user/user_mode.cpp).
  // The SMP shootdown self-test's faulter hangs the boot without either.
  void lock() MM_ACQUIRE() {
    const mm::u64 flags = x86::save_flags_and_disable();
    while (locked_.exchange(1, mm::MemoryOrder::Acquire) != 0) {
      x86::restore_flags(flags);
      while (locked_.load(mm::MemoryOrder::Relaxed) != 0) {
        answer_cpu_barrier();  // the holder may be waiting for this CPU's barrier
        x86::pause();
      }
      x86::disable_interrupts();
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
  mm::LockClass class_;
};

}  // namespace kernel
