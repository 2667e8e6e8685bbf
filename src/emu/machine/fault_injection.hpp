// Fault injection: `pagelab run --inject SPEC` (docs/EMULATOR.md, "Fault
// injection"). Four kinds, any combination, each a way the world can treat
// the core worse than a quiet test machine does:
//
//   alloc-fail@N   the Nth frame allocation of the run fails (ENOMEM), N >= 1.
//                  Counted: every allocate_frame / allocate_run /
//                  allocate_batch call the core makes after the machine is
//                  built (its zero frame is not counted; the scenario's set-up
//                  is), except AllocFlags::Committed ones, which draw on a
//                  promise (mm::FrameFailHook). Repeatable: several Ns.
//   ipi-delay:K    a raised shootdown IPI is taken only after the target CPU
//                  has passed K more access boundaries or interruptible
//                  waits (0 <= K <= 10000).
//   spec-fill:P    at each access boundary, with probability P, the CPU walks
//                  one present mapping of its current page tables (a leaf
//                  picked uniformly among the present ones) with the
//                  emulator's own walker, as a speculative walk may (SDM
//                  4.10.2.3: any translation that is present may be cached),
//                  and caches the result in its TLB and paging-structure
//                  caches. The walk is a demand walk's: its loads are
//                  scheduling points, it sets accessed flags, and it caches
//                  nothing from a not-present entry or one with reserved bits.
//   evict:P        at each access boundary, with probability P, one valid TLB
//                  entry, chosen uniformly, is evicted (hw::Tlb::evict_random).
//
// Randomness: each CPU has its own generator (splitmix64) seeded from the
// run's seed and the CPU's number, drawn only by that CPU at its own access
// boundaries; so in deterministic mode a run stays a function of (scenario,
// seed, options). A spec with no randomness (alloc-fail, ipi-delay) draws
// nothing, and an empty spec changes nothing: the trace is byte for byte the
// one without --inject. Every injection is a trace event (`inject`).
//
// The allocation counter also serves the tests that sweep alloc-fail@N over
// every N a run has (RunResult::allocations).
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mm/phys/physical_memory.hpp"
#include "mm/vm/address_space.hpp"

namespace pagelab::scenario {
struct Statement;
}

namespace pagelab::emu {

class Machine;
struct EmuCpu;

struct InjectionSpec {
  static constexpr std::uint32_t kMaxIpiDelay = 10'000;

  std::vector<std::uint64_t> alloc_fail;  // the Ns, ascending, distinct
  std::optional<std::uint32_t> ipi_delay;  // K
  std::optional<double> spec_fill;         // P
  std::optional<double> evict;             // P

  bool empty() const { return alloc_fail.empty() && !ipi_delay && !spec_fill && !evict; }
  // The spec as --inject arguments, comma-separated, in a fixed order
  // (alloc-fail, ipi-delay, spec-fill, evict); "" when empty. Parses back
  // to the same spec.
  std::string text() const;
};

// Adds one --inject argument to `spec`: a SPEC, or several separated by
// commas. False, with `error` naming the argument and what is wrong, for an
// unknown kind, a malformed or out-of-range number (alloc-fail@0,
// alloc-fail@x, spec-fill:1.5), or ipi-delay / spec-fill / evict given twice.
bool add_injection(std::string_view argument, InjectionSpec& spec, std::string& error);

// The injections of one run, on one Machine.
class FaultInjector {
 public:
  FaultInjector(Machine& machine, const InjectionSpec& spec, std::uint64_t seed, std::uint32_t cpus);
  FaultInjector(const FaultInjector&) = delete;
  FaultInjector& operator=(const FaultInjector&) = delete;

  const InjectionSpec& spec() const { return spec_; }

  // For PhysicalMemoryConfig::fail_hook: counts allocations (once
  // start_counting() was called) and fails the ones alloc-fail names.
  mm::FrameFailHook fail_hook();
  void start_counting() { counting_.store(true, std::memory_order_relaxed); }
  // Allocations counted so far, and how many of them were made to fail.
  std::uint64_t allocations() const { return allocations_.load(std::memory_order_relaxed); }
  std::uint64_t failures() const { return failures_.load(std::memory_order_relaxed); }

  // Machine::take_interrupts, on the CPU that has an IPI pending and
  // interrupts on: true while ipi-delay holds the interrupt back. The count
  // starts at the first boundary that sees the interrupt pending.
  bool hold_interrupt(EmuCpu& cpu) { return ipi_delay_ != 0 && hold_interrupt_slow(cpu); }

  // Machine::access, at the access boundary (after pending interrupts): the
  // evictions and speculative fills.
  void at_access_boundary(EmuCpu& cpu) {
    if (boundary_work_) at_access_boundary_slow(cpu);
  }

  // Frames handed to the core and returned by it (the machine's frame
  // observer): frames_in_use() is their difference, for the audit below.
  void frames_changed(bool allocated, std::uint64_t count) {
    in_use_.fetch_add(allocated ? static_cast<std::int64_t>(count) : -static_cast<std::int64_t>(count),
                      std::memory_order_relaxed);
  }
  std::int64_t frames_in_use() const { return in_use_.load(std::memory_order_relaxed); }

 private:
  struct PerCpu {
    std::uint64_t random = 0;  // splitmix64 state
    std::uint32_t delay_left = 0;
    bool delay_armed = false;
    std::vector<std::uint64_t> leaves;  // scratch for spec-fill
  };

  static bool should_fail(void* context, mm::FrameCount count, mm::FrameOwner owner);
  bool hold_interrupt_slow(EmuCpu& cpu);
  void at_access_boundary_slow(EmuCpu& cpu);
  void evict_one(EmuCpu& cpu, PerCpu& state);
  void speculative_fill(EmuCpu& cpu, PerCpu& state);
  // The virtual addresses of the present leaves under the tables at `root`
  // (read without scheduling points or A/D updates), into `out`.
  void present_leaves(std::uint64_t root, std::vector<std::uint64_t>& out) const;
  static std::uint64_t next(PerCpu& state);
  static bool chance(PerCpu& state, double p);

  Machine& machine_;
  const InjectionSpec spec_;
  const std::uint32_t ipi_delay_;
  const bool boundary_work_;
  std::vector<PerCpu> cpus_;
  std::atomic<bool> counting_{false};
  std::atomic<std::uint64_t> allocations_{0};
  std::atomic<std::uint64_t> failures_{0};
  std::atomic<std::int64_t> in_use_{0};
};

// With alloc-fail: checks that an operation that failed left nothing
// half-done. Before each statement it notes what the statement may touch
// (the regions and page counts of its space, the commitments, the frames in
// use); after a statement that failed (an error status, or an access that
// was a segmentation fault) it checks that they are as they were, but for
// page-table frames, which an undone walk may leave, empty, behind (they are
// freed with the space) and the documented exceptions: a failed fork may
// leave the parent's private pages write-protected and its shared regions
// populated; a failed pin may leave its range populated.
//
// Only where one CPU runs at a time by itself: the set-up, and scenarios with
// one CPU (elsewhere another CPU may change the space meanwhile).
class OperationAudit {
 public:
  OperationAudit(Machine& machine, bool enabled) : machine_(machine), enabled_(enabled) {}
  bool enabled() const { return enabled_; }

  // Before the statement runs on `space` ("" for a statement on the CPU's current space).
  void before(const scenario::Statement& statement);
  // After it; `failed`: it returned an error or was a segmentation fault.
  // Empty, or what it left half-done.
  std::optional<std::string> after(const scenario::Statement& statement, bool failed);

 private:
  struct RegionView {
    std::uint64_t base, size;
    mm::Prot prot;
    mm::RegionKind kind;
    mm::ForkPolicy fork;
    std::uint32_t pins;
    bool operator==(const RegionView&) const = default;
  };
  struct Snapshot {
    std::string space;  // the space the statement works on
    bool exists = false;
    std::string child;  // fork: the child, which must not exist after a failure
    std::vector<RegionView> regions;
    mm::AddressSpaceStats stats;
    std::int64_t frames_in_use = 0;
    mm::FrameCount committed = 0;
  };
  Snapshot take(const std::string& space) const;

  Machine& machine_;
  const bool enabled_;
  std::optional<Snapshot> before_;
};

// At the end of a run with alloc-fail, passed or failed (a failed run's
// report names its first failure; the runner's leak check runs only after
// a pass): destroys every space and says what leaked — frames in use
// against `free_at_start`, commitments, region objects. Empty when nothing did.
std::optional<std::string> audit_after_run(Machine& machine, std::uint64_t free_at_start);

}  // namespace pagelab::emu
