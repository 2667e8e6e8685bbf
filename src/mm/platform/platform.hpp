// The platform seam: everything the core asks of the world it runs in.
//
// The core (src/mm) is written once and runs in two worlds: the user-space
// emulator (src/emu), where a "CPU" is a simulated processor with its own TLB
// and every page-table store is a traced, schedulable event; and the
// bare-metal kernel (src/kernel), where the same calls execute the real
// instructions. Code that needs the world is a template over a type that
// models `mm::Platform`; it reaches physical memory, TLBs, other CPUs and
// locks only through it. The concept is deliberately small; growing it is a
// design decision, not a convenience.
//
// The one part of the seam not in the concept is mm::panic (base/panic.hpp),
// resolved at link time because every binary has exactly one way to die.
//
// Contract of each requirement (p is a Platform&, cp a const Platform&):
//
//   Direct map
//     cp.direct_map(PhysAddr) -> std::byte*
//       A pointer through which the core reads and writes the byte at that
//       physical address. Valid for every frame the core was given. The kernel
//       returns 0xFFFF800000000000 + pa; the emulator returns a pointer into
//       its RAM buffer. Never fails: asking for an address outside RAM is a bug.
//
//   CPU identity
//     cp.current_cpu() -> CpuId     the CPU executing the caller, < cpu_count().
//       May be stale by the time it is used (preemption, migration): per-CPU
//       data it selects must still be locked.
//     cp.cpu_count() -> u32         the number of CPUs, at most kMaxCpus.
//
//   Local TLB maintenance (affects the calling CPU only)
//     p.invalidate_page(VirtAddr)   INVLPG: drop the translation of one page
//                                   (and paging-structure caches) for the
//                                   current PCID.
//     p.flush_pcid(Pcid)            INVPCID type 1: drop every non-global
//                                   translation tagged with that PCID.
//     p.flush_all()                 drop every translation, global ones too.
//     p.load_address_space(PhysAddr root, Pcid, CrFlush)
//                                   write CR3. CrFlush::No sets bit 63 so the
//                                   PCID's cached translations survive.
//
//   Page-table entry access (every PTE load/store/CAS of the core goes here)
//     p.pte_load(const u64* entry) -> u64
//     p.pte_store(u64* entry, u64 value)
//     p.pte_compare_exchange(u64* entry, u64& expected, u64 desired) -> bool
//       Atomic with respect to the MMU's accessed/dirty updates. The kernel's
//       are plain atomics; the emulator's order them against its simulated
//       page walkers and record them in the trace.
//
//   Inter-processor interrupts
//     p.send_ipi(CpuSet targets)    raise the core's shootdown interrupt on
//                                   each target CPU. Never targets the caller.
//     p.relax()                     called in every wait loop: a PAUSE on real
//                                   CPUs, a scheduling point in the emulator,
//                                   and where a waiting CPU services its own
//                                   pending IPIs.
//
//   Per-CPU sections and cross-CPU ordering (per-CPU data with plain
//   loads and stores on its owner's fast path: phys/cpu_frame_cache.hpp)
//     p.enter_cpu_section(LockClass, const LockSite&)
//     p.leave_cpu_section()         the caller works on its own CPU's data
//                                   (of that lock class) until leave: it
//                                   stays on this CPU and no interrupt
//                                   handler of this CPU runs in between that
//                                   could touch that data. Not nested; a
//                                   SpinLock of a later class may be taken
//                                   inside. The kernel (not preemptible, and
//                                   its handlers never reach such data) and
//                                   the host do nothing; the emulator treats
//                                   the section as a per-CPU lock of that
//                                   class: scheduling points, no interrupt
//                                   taken in between, and its place in the
//                                   lock order checked.
//     p.synchronize_cpus()          returns once every other CPU has executed
//                                   a full memory barrier after the call
//                                   began (Linux's membarrier(2)): what a CPU
//                                   stored before that barrier is visible to
//                                   the caller's loads after the call, and
//                                   what the caller stored before the call is
//                                   visible to that CPU's loads after its
//                                   barrier. So an owner's fast path needs no
//                                   fence against a rare remote reader. The
//                                   kernel sends an IPI and waits for each
//                                   acknowledgement (relax() and its lock
//                                   waits answer one sent to the waiting
//                                   CPU); the hosted worlds call membarrier.
//                                   Slow: for the rare path only.
//
//   Mutual exclusion
//     typename P::SpinLock          constructed from its mm::LockClass
//                                   (base/lock_class.hpp: the classes and their
//                                   order); lock(), unlock(), try_lock() -> bool.
//       Holding it also keeps this CPU's interrupt handlers out (the kernel's
//       saves and disables interrupts), so data shared with an IPI handler may
//       be guarded by it. Not recursive. Released in the reverse order of
//       acquisition (the kernel's restores the interrupt flag saved when it
//       was taken). Optionally lock(const LockSite&): the same, told where and
//       with what nesting it is taken; the core goes through mm::acquire
//       (below), which calls it when the lock has it (the emulator's checks
//       the lock order with it) and plain lock() otherwise.
//
//   Diagnostics
//     p.log(LogLevel, const char* text)   a line for the console or the trace.
#pragma once

#include <concepts>
#include <cstddef>

#include "mm/base/lock_class.hpp"
#include "mm/base/thread_annotations.hpp"
#include "mm/base/types.hpp"

namespace mm {

inline constexpr u32 kMaxCpus = 64;

using CpuId = u32;

// A set of CPUs, one bit per CpuId.
class CpuSet {
 public:
  constexpr CpuSet() = default;
  static constexpr CpuSet of(CpuId cpu) { return CpuSet(u64{1} << cpu); }
  static constexpr CpuSet from_bits(u64 bits) { return CpuSet(bits); }
  static constexpr CpuSet first(u32 count) {
    return CpuSet(count >= 64 ? ~u64{0} : (u64{1} << count) - 1);
  }

  constexpr bool contains(CpuId cpu) const { return (bits_ >> cpu) & 1; }
  constexpr bool empty() const { return bits_ == 0; }
  constexpr u64 bits() const { return bits_; }
  constexpr CpuSet with(CpuId cpu) const { return CpuSet(bits_ | (u64{1} << cpu)); }
  constexpr CpuSet without(CpuId cpu) const { return CpuSet(bits_ & ~(u64{1} << cpu)); }
  // (Not __builtin_popcountll: without -mpopcnt it calls libgcc, which the kernel does not link.)
  constexpr u32 count() const {
    u32 n = 0;
    for (u64 rest = bits_; rest != 0; rest &= rest - 1) ++n;
    return n;
  }
  // Calls f(CpuId) for each member, lowest first.
  template <typename F>
  constexpr void for_each(F&& f) const {
    for (u64 rest = bits_; rest != 0; rest &= rest - 1) f(static_cast<CpuId>(__builtin_ctzll(rest)));
  }
  constexpr bool operator==(const CpuSet&) const = default;

 private:
  constexpr explicit CpuSet(u64 bits) : bits_(bits) {}
  u64 bits_ = 0;
};

// A 12-bit process-context identifier (CR3 bits 11:0 when CR4.PCIDE = 1).
struct Pcid {
  u16 value = 0;
  constexpr bool operator==(const Pcid&) const = default;
};

// Whether a CR3 load flushes the new PCID's cached translations.
enum class CrFlush : u8 { Yes, No };

enum class LogLevel : u8 { Debug, Info, Warn, Error };

template <typename L>
concept SpinLockType = std::constructible_from<L, LockClass> && requires(L& lock) {
  { lock.lock() } -> std::same_as<void>;
  { lock.unlock() } -> std::same_as<void>;
  { lock.try_lock() } -> std::same_as<bool>;
};

template <typename P>
concept Platform = SpinLockType<typename P::SpinLock> &&
    requires(P& p, const P& cp, PhysAddr pa, VirtAddr va, Pcid pcid, CrFlush flush,
             CpuSet cpus, u64* entry, const u64* centry, u64 value, u64& expected,
             LogLevel level, const char* text, LockClass lock_class, const LockSite& site) {
      { cp.direct_map(pa) } -> std::same_as<std::byte*>;
      { cp.current_cpu() } -> std::same_as<CpuId>;
      { cp.cpu_count() } -> std::same_as<u32>;
      { p.invalidate_page(va) } -> std::same_as<void>;
      { p.flush_pcid(pcid) } -> std::same_as<void>;
      { p.flush_all() } -> std::same_as<void>;
      { p.load_address_space(pa, pcid, flush) } -> std::same_as<void>;
      { p.pte_load(centry) } -> std::same_as<u64>;
      { p.pte_store(entry, value) } -> std::same_as<void>;
      { p.pte_compare_exchange(entry, expected, value) } -> std::same_as<bool>;
      { p.send_ipi(cpus) } -> std::same_as<void>;
      { p.relax() } -> std::same_as<void>;
      { p.enter_cpu_section(lock_class, site) } -> std::same_as<void>;
      { p.leave_cpu_section() } -> std::same_as<void>;
      { p.synchronize_cpus() } -> std::same_as<void>;
      { p.log(level, text) } -> std::same_as<void>;
    };

// Takes `lock`, telling it where (a LockSite) if it wants to know. (Not
// analysed: a lock type without annotations takes nothing Clang can see.)
template <SpinLockType L>
void acquire(L& lock, [[maybe_unused]] const LockSite& site) MM_ACQUIRE(lock) MM_NO_THREAD_SAFETY_ANALYSIS {
  if constexpr (requires { lock.lock(site); }) {
    lock.lock(site);
  } else {
    lock.lock();
  }
}

// RAII holder for a Platform::SpinLock (or any SpinLockType). The site of
// the acquisition is the line that constructs the guard. `nesting` annotates
// the second of two locks of one class held at once (base/lock_class.hpp).
template <SpinLockType L>
class [[nodiscard]] MM_SCOPED_CAPABILITY LockGuard {
 public:
  explicit LockGuard(L& lock, const char* file = __builtin_FILE(), u32 line = __builtin_LINE()) MM_ACQUIRE(lock)
      : lock_(lock) {
    acquire(lock_, LockSite{file, line, LockNesting::Outer});
  }
  LockGuard(L& lock, LockNesting nesting, const char* file = __builtin_FILE(), u32 line = __builtin_LINE())
      MM_ACQUIRE(lock)
      : lock_(lock) {
    acquire(lock_, LockSite{file, line, nesting});
  }
  ~LockGuard() MM_RELEASE() { lock_.unlock(); }
  LockGuard(const LockGuard&) = delete;
  LockGuard& operator=(const LockGuard&) = delete;

 private:
  L& lock_;
};

}  // namespace mm
