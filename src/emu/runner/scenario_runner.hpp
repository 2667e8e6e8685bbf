// Runs a parsed scenario on an emulated machine: the set-up on CPU 0, then
// every CPU's program on its own thread under the scheduler, then the final
// checks, and says whether everything held. Exit status: 0 when it did, 1
// with a report of the first failure (its place in the file, the seed, the
// step, and the last trace events of every CPU), 2 for a scenario the
// machine cannot run (an unknown TLB preset, an unsafe policy without
// --allow-unsafe, a trace or RAM file that cannot be created), 3 when the
// trace file could not be written completely (the report still says
// whether the run held).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "emu/machine/fault_injection.hpp"
#include "emu/machine/lock_checker.hpp"
#include "emu/ram/ram.hpp"
#include "emu/runner/outcome.hpp"
#include "mm/paging/shootdown_policy.hpp"
#include "emu/sched/scheduler.hpp"
#include "emu/scenario/ast.hpp"
#include "emu/trace/trace.hpp"

namespace pagelab::emu {

class RunWorkspace;

// The exit statuses of every `pagelab` command (docs/EMULATOR.md).
inline constexpr int kExitHeld = 0;          // every expectation, check and invariant held
inline constexpr int kExitFailed = 1;        // one did not: the report says which
inline constexpr int kExitBadInput = 2;      // a bad argument or file, an output that cannot be opened
inline constexpr int kExitOutputFailed = 3;  // an output (trace, record, outcomes, stdout) lost bytes

struct RunOptions {
  std::optional<std::uint64_t> seed;  // wins over the scenario's `seed`
  bool deterministic = true;
  Strategy strategy;
  bool allow_unsafe = false;
  // Wins over the scenario's `option shootdown=` (an unsafe one still needs allow_unsafe).
  std::optional<mm::ShootdownPolicy> shootdown;
  TraceFormat format = TraceFormat::Text;
  bool trace = true;          // false: no trace output (the failure report still shows the tails)
  std::string trace_out;      // empty: standard output
  TraceFilter filter;
  RamSpec ram;
  std::optional<std::vector<std::uint32_t>> replay;
  // Leave every address space alive in RAM at the end (for `pagelab
  // inspect` of a named RAM): the leak check, which destroys them, is skipped.
  bool keep_spaces = false;
  // Told each statement's outcome and each check's (`pagelab run --outcomes`,
  // the kernel cross-check); empty: nobody listens.
  OutcomeSink outcomes;
  // When set, the orders of lock classes the run saw (lock_checker.hpp) are
  // merged into it (tests compare them with mm/base/lock_class.hpp's order).
  LockOrders* lock_orders = nullptr;
  // Faults to inject (`--inject`, docs/EMULATOR.md "Fault injection"). With
  // alloc-fail, a failed operation must leave nothing half-done (in the
  // set-up, and with one CPU) and the spaces are destroyed and checked for
  // leaks whether the run passed or failed (fault_injection.hpp).
  InjectionSpec inject;
  // Judge the run against the reference model (model/judge.hpp): its
  // history is recorded and replayed after the CPUs finish. Deterministic
  // runs without alloc-fail only (the model does not predict ENOMEM).
  bool judge = false;
  // A schedule to follow where it fits, the strategy elsewhere
  // (Scheduler::Options::replay_hint). Unlike `replay`, never a reason to fail.
  std::optional<std::vector<std::uint32_t>> schedule_hint;
  // Where the machine comes from: a worker's workspace (run_workspace.hpp),
  // which restarts the machine of its last run when it has the same shape;
  // null: a machine of the run's own, built and torn down. The result is the
  // same either way. A run on a named RAM (`ram`) or with `keep_spaces`
  // always gets a machine of its own: its RAM outlives it, for inspect.
  RunWorkspace* workspace = nullptr;
};

struct RunResult {
  int exit_code = 0;
  std::string report;  // the PASS line, or the failure report
  std::uint64_t seed = 0;
  std::uint64_t steps = 0;
  std::vector<std::uint32_t> schedule;  // deterministic runs
  // Frame allocations the run made, counted as `--inject alloc-fail@N`
  // counts them (fault_injection.hpp): N = 1 .. allocations is every one.
  std::uint64_t allocations = 0;
};

RunResult run_scenario(const scenario::Scenario& scenario, const RunOptions& options);

}  // namespace pagelab::emu
