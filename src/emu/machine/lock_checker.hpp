// The lock checker: lockdep for the emulator's spinlocks (EmuSpinLock).
//
// Every lock of the core names its class (mm/base/lock_class.hpp). For each
// CPU the checker keeps the stack of locks it holds (the lock, its class and
// nesting, the source line and step of the acquisition); for the machine, a
// graph of the orders it has seen, one bit per "a lock of class B was taken
// while one of class A was held" (a node is a class at one nesting level, so
// fork's parent-then-child is its own order). It reports, as a run failure:
//
//   lock-order    a lock taken while holding one of a class that the graph
//                 says comes after it (B->...->A seen, now A then B): the
//                 order that can deadlock, whether or not this run does, with
//                 the first sighting of each order involved; and two locks of
//                 one class at one nesting level held at once (no LockNesting
//                 annotation says which comes first);
//   deadlock      CPUs each waiting for a lock the next one holds (found when
//                 the last of them starts waiting), a CPU taking a lock it
//                 already holds, and every CPU waiting for long with no such
//                 cycle (the scheduler's verdict, e.g. a holder waiting for a
//                 shootdown's acknowledgement from a CPU that spins with
//                 interrupts off);
//   lock-release  a release of a lock the CPU does not hold, or of one taken
//                 before another it still holds (the kernel's SpinLock
//                 restores, on release, the interrupt flag saved when that
//                 lock was taken: out of order, the inner lock would be held
//                 with interrupts on).
//
// A report is a Violation (oracle.hpp) like the oracle's: the first one is
// kept, with the CPU and the step, and stops the scheduler; the runner turns
// it into the failure report (exit 1). An order or release report lets the
// CPU go on; a deadlock would leave CPUs waiting for ever, so it abandons
// the run (Machine::abandon): each CPU leaves its program through
// Machine::run_guarded, and the machine is thrown away without its teardown.
//
// The graph lives for one run (one Machine), not for a whole `explore`
// worker. Lockdep's graph is global because a kernel lives for long; here
// a report must come back with `pagelab run --seed N` alone, and explore
// hands seeds to its workers in no fixed order, so a graph carried from
// other seeds would make a seed's verdict depend on which seeds its worker
// ran before. Every seed of a scenario runs the same programs, so the orders
// one seed can show are mostly shown by each.
//
// Cost: a fixed stack per CPU and a 64-bit row per node; an acquisition
// compares its node with each lock held (a bit test each) and pushes one
// entry; only an order seen for the first time in the run takes a mutex,
// searches the graph and records where it was seen. Nothing is allocated on
// the lock path.
//
// Parallel runs (`--parallel`): the same checks; the graph's rows are atomic
// and new orders are added under the mutex. A cycle of waiting CPUs is
// reported once it has stood still between two looks (a CPU's wait epoch
// changes whenever it starts or stops waiting). Reports then name the locks
// and CPUs but not where the other CPUs took them (their stacks are theirs).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "emu/machine/oracle.hpp"
#include "mm/base/lock_class.hpp"

namespace pagelab::emu {

class EmuSpinLock;
class Machine;

// A node of the order graph: a lock class at one nesting level.
inline constexpr std::uint32_t kLockNodes = mm::kLockClassCount * mm::kLockNestingLevels;
static_assert(kLockNodes <= 64, "a row of the order graph is one 64-bit mask");

constexpr std::uint32_t lock_node(mm::LockClass lock_class, mm::LockNesting nesting) {
  return static_cast<std::uint32_t>(lock_class) * mm::kLockNestingLevels + static_cast<std::uint32_t>(nesting);
}
constexpr mm::LockClass node_class(std::uint32_t node) { return static_cast<mm::LockClass>(node / mm::kLockNestingLevels); }
constexpr mm::LockNesting node_nesting(std::uint32_t node) {
  return static_cast<mm::LockNesting>(node % mm::kLockNestingLevels);
}
// "address-space", or "address-space (inner)" at a nesting level below the outer one.
std::string lock_node_name(std::uint32_t node);

// Orders seen: bit b of after[a] when a lock of node b was taken while one of
// node a was held.
struct LockOrders {
  std::uint64_t after[kLockNodes] = {};

  bool has(std::uint32_t a, std::uint32_t b) const { return ((after[a] >> b) & 1) != 0; }
  void merge(const LockOrders& other) {
    for (std::uint32_t a = 0; a < kLockNodes; ++a) after[a] |= other.after[a];
  }
};

class LockChecker {
 public:
  static constexpr std::uint32_t kMaxHeld = 16;      // locks one CPU holds at once
  static constexpr std::uint32_t kMaxSightings = 64;  // first sightings kept per run

  LockChecker(Machine& machine, std::uint32_t cpus);
  ~LockChecker();
  LockChecker(const LockChecker&) = delete;
  LockChecker& operator=(const LockChecker&) = delete;

  // --- EmuSpinLock's hooks, on the calling CPU (cpu_context.cpu) ---

  // A lock about to be taken: which one it is among its class, from now on.
  void name(EmuSpinLock& lock);
  // Before a blocking acquisition. True when the CPU already holds `lock`
  // (reported: the caller would wait for itself). Otherwise records each
  // order this acquisition shows, and returns in `inversion` the stack index
  // of a held lock whose order it breaks (kNone if none), reported by the
  // caller with report_inversion once it has the lock: a wait for it that
  // turns out to be a deadlock is reported as that instead.
  static constexpr std::uint32_t kNone = ~std::uint32_t{0};
  bool check_acquire(const EmuSpinLock& lock, const mm::LockSite& site, std::uint32_t& inversion);
  void report_inversion(const EmuSpinLock& lock, const mm::LockSite& site, std::uint32_t held_index);
  // The CPU finds `lock` held and starts (stops) waiting for it. A wait can
  // hold another: the shootdown interrupt, taken while waiting, takes a lock
  // of its own. begin_wait returns what the CPU waited for before, for end_wait
  // to put back.
  struct Wait {
    const EmuSpinLock* lock = nullptr;
    mm::LockSite site;
  };
  Wait begin_wait(const EmuSpinLock& lock, const mm::LockSite& site);
  void end_wait(const Wait& outer);
  // Does the wait for `lock` close a cycle of CPUs each waiting for a lock
  // the next one holds? Reports it and returns true. Deterministic runs: an
  // exact answer. Parallel runs: true only for a cycle already seen, with
  // every CPU's wait epoch unchanged, at the previous call.
  bool check_deadlock(const EmuSpinLock& lock);
  // The scheduler declared the run deadlocked (every CPU waiting for long):
  // reports who waits for what.
  void report_stuck();
  // `lock` is now held (also after a try_lock, which never waits and so is
  // not checked by check_acquire, but orders the locks taken under it).
  void acquired(EmuSpinLock& lock, const mm::LockSite& site);
  // `lock` is about to be released.
  void releasing(EmuSpinLock& lock);

  // --- For the machine and the runner ---

  // The first report, if any.
  std::optional<Violation> violation() const;
  bool reported() const { return reported_.load(std::memory_order_acquire); }
  // Records a run failure (the first of a run is kept), stops the scheduler
  // and, when `abandons`, abandons the run. Also the path of a core panic
  // (Machine::core_panicked).
  void report(const char* invariant, std::string message, bool abandons);
  // The orders seen so far.
  LockOrders orders() const;

 private:
  // (No member initializers: the stacks and the sightings are written
  // before they are read, and a machine is made for every seed.)
  struct Held {
    const EmuSpinLock* lock;
    std::uint32_t node;
    std::uint32_t serial;
    mm::LockSite site;
    std::uint64_t step;
    bool setup;  // taken outside the scheduled run (the set-up, the final checks)
  };
  struct alignas(64) CpuLocks {
    std::uint32_t depth = 0;
    Held held[kMaxHeld];
    // What the CPU waits for, and where it takes it (written before the
    // pointer is published).
    std::atomic<const EmuSpinLock*> waiting_for{nullptr};
    mm::LockSite waiting_site;
    std::atomic<std::uint64_t> wait_epoch{0};
    // Parallel runs: the cycle this CPU saw at its last look (0: none).
    std::uint64_t suspected_cycle = 0;
  };
  // Where an order was first seen: node `to` taken while `from` was held.
  struct Sighting {
    std::uint32_t from;
    std::uint32_t to;
    std::uint32_t cpu;
    Held held;   // the lock of `from` the CPU held
    Held taken;  // the lock of `to` it took (its stack entry to be)
  };
  struct WaitLink {
    std::uint32_t cpu = 0;
    const EmuSpinLock* lock = nullptr;
    std::uint32_t holder = 0;
  };

  CpuLocks& mine();
  Held entry_for(const EmuSpinLock& lock, const mm::LockSite& site) const;
  // Is `to` reachable from `from` in the graph?
  bool reaches(std::uint32_t from, std::uint32_t to) const;
  // Follows waits from the calling CPU's wait for `lock`; fills `chain` and
  // returns its length when it comes back to the calling CPU, else 0.
  std::uint32_t wait_cycle(const EmuSpinLock& lock, WaitLink* chain) const;
  const Sighting* sighting(std::uint32_t from, std::uint32_t to) const;
  std::string describe_sighting(const Sighting& s) const;
  std::string describe_holder(const EmuSpinLock& lock) const;

  Machine& machine_;
  const std::uint32_t cpus_;
  const bool deterministic_;
  std::unique_ptr<CpuLocks[]> per_cpu_;
  std::atomic<std::uint64_t> after_[kLockNodes] = {};
  std::atomic<std::uint32_t> serials_[mm::kLockClassCount] = {};

  std::mutex mutex_;  // guards new orders (after_'s bits being set) and sightings_
  Sighting sightings_[kMaxSightings];
  std::uint32_t sighting_count_ = 0;

  std::atomic<bool> reported_{false};
  mutable std::mutex report_mutex_;
  std::optional<Violation> violation_;
};

}  // namespace pagelab::emu
