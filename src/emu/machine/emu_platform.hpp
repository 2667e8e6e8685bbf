// EmuPlatform: mm::Platform inside the emulated machine. Every request the
// core makes goes to the simulated CPU that is running it: an INVLPG drops
// entries from that CPU's simulated TLB, a CR3 load changes its CR3 and
// flushes as the SDM says, a page-table store is a scheduling point and a
// trace event's neighbour. The core cannot tell this machine from a real one.
//
// Which CPU is "current" is per host thread (cpu_context): each simulated
// CPU is a thread, and the scenario's set-up runs on the main thread as CPU 0.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <vector>

#include "mm/base/thread_annotations.hpp"
#include "mm/platform/platform.hpp"

namespace pagelab::emu {

class Machine;

// The simulated CPU a host thread is, and whether its steps go through the
// deterministic scheduler (false for the set-up and the final checks, which
// run alone).
struct CpuContext {
  Machine* machine = nullptr;
  mm::u32 cpu = 0;
  bool scheduled = false;
  // EmuSpinLocks held: the kernel's spinlocks keep interrupts off, so a CPU
  // holding one takes no shootdown interrupt (it polls its queue instead).
  mm::u32 locks_held = 0;
};
inline thread_local CpuContext cpu_context;

// A spinlock whose acquire and release are scheduling points, and whose wait
// loop tells the scheduler it is spinning, so the holder gets to run.
//
// Every acquisition and release goes past the machine's lock checker
// (lock_checker.hpp): the order of lock classes, recursion, a release out of
// order, and a deadlock among CPUs are reported as a run failure, like an
// oracle violation. A report that leaves a CPU waiting for ever (a deadlock,
// recursion) abandons the run: the CPUs leave their programs through
// Machine::run_guarded instead of spinning.
class MM_CAPABILITY("spinlock") EmuSpinLock {
 public:
  explicit EmuSpinLock(mm::LockClass lock_class) : class_(lock_class) {}
  EmuSpinLock(const EmuSpinLock&) = delete;
  EmuSpinLock& operator=(const EmuSpinLock&) = delete;

  void lock() MM_ACQUIRE() { lock(mm::LockSite{}); }
  // `site`: where the core takes it, and with what nesting (mm::acquire).
  void lock(const mm::LockSite& site) MM_ACQUIRE();
  bool try_lock() MM_TRY_ACQUIRE(true);
  void unlock() MM_RELEASE();

  mm::LockClass lock_class() const { return class_; }
  // The CPU holding it, or kNoOwner. Written by the holder; read by the
  // checker to follow who waits for whom.
  static constexpr std::uint32_t kNoOwner = ~std::uint32_t{0};
  std::uint32_t owner() const { return owner_.load(std::memory_order_acquire); }
  // Its number among the locks of its class, in the order a run first took
  // them ("address-space lock #2"); 0 until then.
  std::uint32_t serial() const { return serial_.load(std::memory_order_relaxed); }

 private:
  friend class LockChecker;

  std::atomic<bool> locked_{false};
  const mm::LockClass class_;
  std::atomic<std::uint32_t> owner_{kNoOwner};
  std::atomic<std::uint32_t> serial_{0};
};

class EmuPlatform {
 public:
  using SpinLock = EmuSpinLock;

  explicit EmuPlatform(Machine& machine)
      : machine_(machine), sections_(std::size_t{mm::kMaxCpus} * mm::kLockClassCount), open_(mm::kMaxCpus) {}

  std::byte* direct_map(mm::PhysAddr address) const;
  mm::CpuId current_cpu() const { return cpu_context.cpu; }
  mm::u32 cpu_count() const;
  void invalidate_page(mm::VirtAddr page);
  void flush_pcid(mm::Pcid pcid);
  void flush_all();
  void load_address_space(mm::PhysAddr root, mm::Pcid pcid, mm::CrFlush flush);
  mm::u64 pte_load(const mm::u64* entry);
  void pte_store(mm::u64* entry, mm::u64 value);
  bool pte_compare_exchange(mm::u64* entry, mm::u64& expected, mm::u64 desired);
  void send_ipi(mm::CpuSet targets);
  void relax();
  // The section is a lock of its own per CPU and class (an EmuSpinLock):
  // scheduling points, no interrupt taken while in it, the lock checker's
  // order -- what the per-CPU frame caches' lock was before their fast path
  // dropped it.
  void enter_cpu_section(mm::LockClass lock_class, const mm::LockSite& site);
  void leave_cpu_section();
  // membarrier(2): a simulated CPU is a host thread in a parallel run. A
  // deterministic run's CPUs are fibers of one thread, which would need
  // nothing; they get the same call (a microsecond, on the rare steal) and
  // no scheduling point, so schedules are what they were.
  void synchronize_cpus();
  void log(mm::LogLevel level, const char* text);

 private:
  Machine& machine_;
  // sections_[cpu * kLockClassCount + class], made on first use by that CPU;
  // open_[cpu], the one it is in.
  std::vector<std::unique_ptr<EmuSpinLock>> sections_;
  std::vector<EmuSpinLock*> open_;
};

static_assert(mm::Platform<EmuPlatform>);

}  // namespace pagelab::emu
