// `pagelab explore`: one scenario under every seed of a range, to search the
// interleavings of its CPUs for one that breaks an expectation, a check or
// an oracle invariant.
//
//   pagelab explore SCENARIO --seeds A..B [--strategy random|pct:D] [--shootdown POLICY]
//                   [--jobs N] [--shard I/N] [--allow-unsafe] [--max-failures K] [--record FILE] [--quiet] [--verbose]
//
// Each seed is one run_scenario() with the trace off; the seeds are shared
// out among N worker threads, each with a RunWorkspace whose machine it
// restarts for every seed (run_workspace.hpp; the simulated CPUs are fibers
// of the worker's thread, one running at a time). `--shard I/N`
// keeps the seeds with (seed - A) % N == I, so N machines (a Slurm array, a
// Kubernetes indexed Job, GNU parallel) together cover the range exactly once.
//
// Determinism: seeds are handed out in increasing order and a stop (at
// --max-failures) only stops the handing out, so the seeds that ran are
// always a prefix of the shard's seeds, and the first failing seed reported
// (the lowest) is the same whatever --jobs is.
//
// Concurrency contract (checked under TSan by test/emu/explore_cli_test.sh's
// cases run in the TSan build): run_scenario() keeps all of a run's state in
// its worker's RunWorkspace (the machine, a disabled trace, which opens no
// spdlog logger) and its threads; the one process-wide state it touches is
// the thread_local cpu_context (a worker resets its own after each run) and
// the scheduler's start mutex (shared, short).
// An mm::panic inside any run still ends the whole process (it aborts):
// explore_command then names the seeds that were running, and the command
// that reproduces each, from a SIGABRT handler.
//
// Interruption: the first SIGINT or SIGTERM stops the handing out of seeds
// (ExploreHooks::interrupt); the seeds running finish, so the seeds run are
// still a prefix, and the summary, the reproduce command and --record are
// given as at a normal end. A second signal ends the process at once (its
// default action is back from the first).
//
// Exit status: 0 when every seed held, 1 when one did not, 2 for bad input
// (a seed range, a shard, a strategy, a scenario the machine cannot run),
// 3 when the --record file could not be written, 128+N when signal N
// stopped the sweep (130 for SIGINT, 143 for SIGTERM), failures or not.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "emu/machine/fault_injection.hpp"
#include "emu/scenario/ast.hpp"
#include "emu/sched/scheduler.hpp"
#include "mm/paging/shootdown_policy.hpp"

namespace pagelab::emu {

struct RunOptions;

// An inclusive range of seeds.
struct SeedRange {
  std::uint64_t first = 1;
  std::uint64_t last = 1;

  // "A..B" with A <= B (decimal or 0x hex), or one seed "N". nullopt, with a
  // message, for anything else (5..3, a..b, 1..).
  static std::optional<SeedRange> parse(std::string_view text, std::string& error);
};

// Shard I of N: the seeds whose offset from the range's first is I modulo N.
struct Shard {
  std::uint64_t index = 0;
  std::uint64_t count = 1;

  // "I/N" with 0 <= I < N. nullopt, with a message, otherwise.
  static std::optional<Shard> parse(std::string_view text, std::string& error);
  // How many seeds of `range` this shard holds.
  std::uint64_t size(const SeedRange& range) const;
  // Its k-th seed (k < size(range)).
  std::uint64_t seed(const SeedRange& range, std::uint64_t k) const { return range.first + index + k * count; }
};

struct ExploreOptions {
  SeedRange seeds;
  Shard shard;
  Strategy strategy;
  std::optional<mm::ShootdownPolicy> shootdown;  // wins over the scenario's (RunOptions::shootdown)
  InjectionSpec inject;                          // --inject, for every seed (RunOptions::inject)
  bool allow_unsafe = false;
  bool judge = false;                            // RunOptions::judge, for every seed
  unsigned jobs = 1;
  std::uint64_t max_failures = 0;  // stop handing out seeds after this many failures; 0: never
};

// The failing seeds whose reports begin with the same line, once the numbers
// that vary from seed to seed are taken out (failure_group_key()).
struct FailureGroup {
  std::string key;
  std::string example;          // the first line of the report of ...
  std::uint64_t first_seed = 0;  // ... the group's lowest seed
  std::uint64_t seeds = 0;
};

struct ExploreResult {
  std::uint64_t planned = 0;   // seeds in the shard
  std::uint64_t run = 0;       // seeds that ran to the end
  std::uint64_t failed = 0;
  double seconds = 0;
  bool stopped_early = false;  // --max-failures was reached
  int interrupted_by = 0;      // the signal that stopped the handing out of seeds; 0 when none did
  std::vector<FailureGroup> groups;  // by first seed
  // The lowest failing seed, its whole report and its schedule.
  std::optional<std::uint64_t> first_failing_seed;
  std::string first_report;
  std::vector<std::uint32_t> first_schedule;
  // A seed whose run said "bad input" (exit 2: an unsafe policy without
  // --allow-unsafe, an unknown TLB preset): its report. Nothing else counts then.
  std::optional<std::string> bad_input;
};

struct ExploreProgress {
  std::uint64_t done = 0;
  std::uint64_t planned = 0;
  std::uint64_t failed = 0;
  double seconds = 0;
};

// One seed's outcome, for ExploreHooks::seed_done: the seed, its exit
// status (0 or 1) and the first line of its report.
struct SeedOutcome {
  std::uint64_t seed = 0;
  int exit_code = 0;
  std::string_view first_line;
};

struct ExploreHooks {
  // Called on the calling thread every `interval` while the workers run.
  std::function<void(const ExploreProgress&)> progress;
  std::chrono::milliseconds interval{1000};
  // Called after each seed, from the worker that ran it, one call at a time
  // (under the sweep's lock: keep it short), in completion order.
  std::function<void(const SeedOutcome&)> seed_done;
  // Called by a worker with each seed's RunOptions just before the run, to
  // add to them (tests: an outcome sink); from several workers at once.
  std::function<void(RunOptions&)> prepare;
  // Called by worker `worker` (0 .. jobs-1) with the seed it starts, and
  // with nullopt when that seed is over; no lock held. For a record of the
  // seeds in flight that survives a crash (explore_command's abort handler).
  std::function<void(unsigned worker, std::optional<std::uint64_t> seed)> running;
  // When set and nonzero (a signal's number, stored by a signal handler):
  // no more seeds are handed out; the ones running finish.
  const std::atomic<int>* interrupt = nullptr;
};

// Runs the sweep.
ExploreResult explore(const scenario::Scenario& scenario, const ExploreOptions& options, const ExploreHooks& hooks = {});

// The grouping key of a failure report: its first line with every number
// after the FILE:LINE:COL location replaced by '#', so "got 0x0, expected
// 0x2a" and "got 0x1, expected 0x2a" at one line are one kind of failure.
std::string failure_group_key(std::string_view report, std::string_view scenario_file);

// `pagelab explore` as the command line has it.
struct ExploreCommand {
  std::string program = "pagelab";  // argv[0], for the reproduce command
  std::string scenario_path;
  std::uint64_t scenario_hash = 0;   // scenario_text_hash() of the file
  ExploreOptions options;
  bool quiet = false;                // no progress on stderr
  bool verbose = false;              // a line per seed on stdout: "seed S: pass" or "seed S: FAIL: ..."
  std::string record_path;           // write the first failing seed's schedule here
  std::string json_path;             // write the results as JSON here (results_json.hpp)
};

// Runs the sweep with progress on stderr (one updating line on a terminal,
// a line every few seconds otherwise) and prints the summary on stdout.
// Returns the exit status.
int explore_command(const scenario::Scenario& scenario, const ExploreCommand& command);

// `word` quoted for a POSIX shell when it needs it.
std::string shell_quote(std::string_view word);

}  // namespace pagelab::emu
