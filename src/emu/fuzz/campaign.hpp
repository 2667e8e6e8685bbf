// A fuzzing campaign: `pagelab fuzz`. Cases are generated from the
// campaign's seed (case i from case_seed(seed, i)), each run under a few
// seeds of the deterministic scheduler and judged by the oracle, the
// runner's checks (poison, leaks, deadlocks) and the reference model; a
// failure is grouped by its signature, shrunk once per signature
// (shrinker.hpp) and written out as a ready scenario.
//
//   pagelab fuzz [--seed S] [--cases N | --time DURATION] [--seeds-per-case K] [--jobs N]
//                [--shard I/N] [--shootdown POLICY [--allow-unsafe]] [--inject SPEC]...
//                [--out DIR] [--json FILE]
//
// Run seed j of a case (1..K) uses `random` scheduling when j is odd and
// `pct:3` when it is even: PCT finds the races that need one CPU to run a
// whole operation inside another's window, which uniform choices rarely do.
//
// Each worker keeps one machine (a RunWorkspace, run_workspace.hpp) and
// restarts it for every run, its cases', its shrinking's and its records',
// exchanging the RAM and CPUs for kept ones when a case's machine has
// another shape: a run costs no host mmap, munmap or page fault, and its
// outcome is that of a run on a machine of its own.
//
// Determinism: a case is a function of (campaign seed, case index) and a
// run of (case, run seed, options), so every failure reproduces with the
// `pagelab run` command written beside it. Which cases run depends on
// --cases or on how far --time got; with --jobs > 1 cases complete out of
// order, and the first case found of a signature may differ between runs
// with --time.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "emu/cli/explore.hpp"
#include "emu/fuzz/shrinker.hpp"
#include "emu/machine/fault_injection.hpp"
#include "mm/paging/shootdown_policy.hpp"

namespace pagelab::fuzz {

struct CampaignOptions {
  std::uint64_t seed = 1;
  std::optional<std::uint64_t> cases;               // --cases; with neither this nor time: 1000
  std::optional<std::chrono::milliseconds> time;    // --time
  std::uint64_t seeds_per_case = 10;
  unsigned jobs = 1;
  emu::Shard shard;                                 // cases whose index % count == index
  std::optional<mm::ShootdownPolicy> shootdown;
  bool allow_unsafe = false;
  emu::InjectionSpec inject;
  std::string out_dir;                              // empty: shrunk cases are not written
  std::chrono::milliseconds shrink_budget{60'000};  // per signature
  std::uint64_t max_failures = 0;                   // stop handing out cases after this many signatures; 0: never
  std::optional<std::uint64_t> only_case;           // --case: run (and shrink) just this case
};

struct Failure {
  std::string signature;    // the first report line, place and numbers taken out
  std::string invariant;    // "O1".."O6", "poison", "leak", "deadlock", ...
  std::string first_line;   // of the first report
  std::uint64_t count = 0;  // runs that failed with this signature
  // The first case found with it:
  std::uint64_t case_index = 0;
  std::uint64_t case_seed = 0;
  std::string features;
  std::uint64_t run_seed = 0;
  double found_after = 0;   // seconds into the campaign
  // After shrinking:
  std::string file;         // out_dir/....scenario ("" without --out)
  std::string record;       // its schedule record
  std::string reproduce;    // the `pagelab run` command
  std::uint64_t run_seed_shrunk = 0;
  std::string strategy;
  std::uint64_t lines_before = 0;
  std::uint64_t lines_after = 0;
  double shrink_seconds = 0;
};

struct CampaignResult {
  std::uint64_t cases = 0;
  std::uint64_t runs = 0;
  double seconds = 0;
  bool interrupted = false;  // SIGINT/SIGTERM (CampaignHooks::stop)
  std::vector<Failure> failures;  // by first sighting
  std::optional<std::string> bad_input;  // a run said exit 2 (an unsafe policy without --allow-unsafe...)
};

struct CampaignProgress {
  std::uint64_t cases = 0;
  std::uint64_t runs = 0;
  std::uint64_t failures = 0;  // signatures
  double seconds = 0;
};

struct CampaignHooks {
  std::function<void(const CampaignProgress&)> progress;  // on the calling thread, every `interval`
  std::chrono::milliseconds interval{1000};
  const std::atomic<int>* stop = nullptr;                  // non-zero: hand out no more cases
  std::string program = "pagelab";                         // argv[0], for the reproduce commands
};

// The seed case `index` of a campaign is generated from.
std::uint64_t case_seed(std::uint64_t campaign_seed, std::uint64_t index);

// The strategy run seed `seed` of a case uses.
emu::Strategy run_strategy(std::uint64_t seed);

// The signature of a failure report: its first line, without the
// "FAIL: FILE:LINE:COL: " place and with every number replaced by '#'.
std::string failure_signature(const std::string& report);

CampaignResult run_campaign(const CampaignOptions& options, const CampaignHooks& hooks = {});

}  // namespace pagelab::fuzz
