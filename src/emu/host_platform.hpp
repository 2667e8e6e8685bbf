// HostPlatform: the simplest world the core runs in, for unit tests and
// benchmarks. "Physical memory" is a caller-provided byte buffer, a "CPU" is
// whichever host thread bound itself to a CPU number, and locks are real
// spinlocks on host atomics (so ThreadSanitizer sees every ordering).
//
// It has no MMU: a hosted process cannot change its own TLB. It therefore
// records every TLB request, CR3 load and IPI the core makes, so tests can
// check what the core asked for. The emulator (src/emu, issue 4/5) is the
// platform whose requests change simulated TLBs; the kernel's execute them.
#pragma once

#include <atomic>
#include <span>

#include "emu/host_membarrier.hpp"
#include "mm/base/panic.hpp"
#include "mm/base/thread_annotations.hpp"
#include "mm/platform/platform.hpp"

namespace pagelab {

using mm::CpuId;
using mm::u32;
using mm::u64;

// A test-and-test-and-set spinlock with a PAUSE in its wait loop. Its lock
// class is not checked here (the emulator's EmuSpinLock checks the order).
class MM_CAPABILITY("spinlock") HostSpinLock {
 public:
  explicit HostSpinLock(mm::LockClass) {}
  void lock() MM_ACQUIRE() {
    while (locked_.exchange(true, std::memory_order_acquire)) {
      while (locked_.load(std::memory_order_relaxed)) {
        __builtin_ia32_pause();
      }
    }
  }
  bool try_lock() MM_TRY_ACQUIRE(true) {
    return !locked_.load(std::memory_order_relaxed) && !locked_.exchange(true, std::memory_order_acquire);
  }
  void unlock() MM_RELEASE() { locked_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> locked_{false};
};

// Counts of what the core asked of the (absent) MMU and interrupt controller.
// Bumped with a relaxed load and store, not a locked add: they sit on the
// page-table hot path, and a hosted count should not cost what the kernel's
// plain store does not. Exact on one thread; under concurrency a count may
// lose increments (race-free, only approximate).
struct HostPlatformCounters {
  std::atomic<u64> page_invalidations{0};
  std::atomic<u64> pcid_flushes{0};
  std::atomic<u64> full_flushes{0};
  std::atomic<u64> cr3_loads{0};
  std::atomic<u64> ipis_sent{0};  // one per target CPU
  std::atomic<u64> cpu_synchronizations{0};  // synchronize_cpus() calls

  static void bump(std::atomic<u64>& counter, u64 by = 1) {
    counter.store(counter.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
  }
};

namespace detail {
// The CPU number the calling thread acts as, across every HostPlatform.
inline thread_local CpuId host_current_cpu = 0;
}  // namespace detail

class HostPlatform {
 public:
  using SpinLock = HostSpinLock;

  // `ram` stands for physical memory starting at physical address `ram_base`.
  HostPlatform(std::span<std::byte> ram, mm::PhysAddr ram_base, u32 cpus);

  // Makes the calling thread act as `cpu` (for every HostPlatform).
  static void bind_current_thread(CpuId cpu) { detail::host_current_cpu = cpu; }

  std::byte* direct_map(mm::PhysAddr address) const {
    const u64 offset = address.value() - ram_base_.value();
    if (address < ram_base_ || offset >= ram_.size()) [[unlikely]] {
      MM_PANIC("direct_map of an address outside host RAM", address.value());
    }
    return ram_.data() + offset;
  }
  CpuId current_cpu() const {
    const CpuId cpu = detail::host_current_cpu;
    if (cpu >= cpus_) [[unlikely]] {
      MM_PANIC("thread bound to a CPU beyond cpu_count()", cpu);
    }
    return cpu;
  }
  u32 cpu_count() const { return cpus_; }

  void invalidate_page(mm::VirtAddr) { HostPlatformCounters::bump(counters_.page_invalidations); }
  void flush_pcid(mm::Pcid) { HostPlatformCounters::bump(counters_.pcid_flushes); }
  void flush_all() { HostPlatformCounters::bump(counters_.full_flushes); }
  void load_address_space(mm::PhysAddr, mm::Pcid, mm::CrFlush) { HostPlatformCounters::bump(counters_.cr3_loads); }

  u64 pte_load(const u64* entry) { return std::atomic_ref<const u64>(*entry).load(std::memory_order_acquire); }
  void pte_store(u64* entry, u64 value) { std::atomic_ref<u64>(*entry).store(value, std::memory_order_release); }
  bool pte_compare_exchange(u64* entry, u64& expected, u64 desired) {
    return std::atomic_ref<u64>(*entry).compare_exchange_strong(expected, desired, std::memory_order_acq_rel);
  }

  void send_ipi(mm::CpuSet targets) {
    HostPlatformCounters::bump(counters_.ipis_sent, static_cast<u64>(__builtin_popcountll(targets.bits())));
  }
  void relax() { __builtin_ia32_pause(); }
  // A thread is bound to its CPU, and the host has no interrupts to keep out.
  void enter_cpu_section(mm::LockClass, const mm::LockSite&) {}
  void leave_cpu_section() {}
  void synchronize_cpus() {
    HostPlatformCounters::bump(counters_.cpu_synchronizations);
    host_membarrier();
  }
  // Warnings and errors go to stderr; debug and info are dropped.
  void log(mm::LogLevel level, const char* text);

  const HostPlatformCounters& counters() const { return counters_; }

 private:
  std::span<std::byte> ram_;
  mm::PhysAddr ram_base_;
  u32 cpus_;
  HostPlatformCounters counters_;
};

static_assert(mm::Platform<HostPlatform>);

}  // namespace pagelab
