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
class MM_CAPABILITY("spinlock") EmuSpinLock {
 public:
  void lock() MM_ACQUIRE();
  bool try_lock() MM_TRY_ACQUIRE(true);
  void unlock() MM_RELEASE();

 private:
  std::atomic<bool> locked_{false};
};

class EmuPlatform {
 public:
  using SpinLock = EmuSpinLock;

  explicit EmuPlatform(Machine& machine) : machine_(machine) {}

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
  void log(mm::LogLevel level, const char* text);

 private:
  Machine& machine_;
};

static_assert(mm::Platform<EmuPlatform>);

}  // namespace pagelab::emu
