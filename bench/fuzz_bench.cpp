// The speed of `pagelab fuzz`: generated cases per second of one worker, each
// case what the campaign's worker does with it (src/emu/fuzz/campaign.cpp,
// run_case): generated from its seed (fuzz::generate_case), printed and
// parsed back, then run under 10 seeds (odd seeds `random`, even `pct:3`)
// with the trace off under the correct shootdown protocol. The cases are
// those of `pagelab fuzz --seed 1`, 0 to 255 over and over, so every run
// sees the same mix of machines (1 to 8 CPUs, 8 to 32 MiB, three TLB
// presets, three allocators, with and without PCIDs and paging-structure
// caches).
//
// BM_Fuzz_Judged is what the campaign does: the worker's RunWorkspace
// restarts the last run's machine for the next, exchanging its RAM and CPUs
// for kept ones when the next has another shape, and the reference model
// judges every run (RunOptions::judge). BM_Fuzz_Reuse is the same without
// the judge, BM_Fuzz without the judge and building and tearing down a
// machine for every run, for comparison.
//
// Items are cases. Counters: runs_per_second; host_minor_faults_per_run
// (getrusage RUSAGE_THREAD, building included); reset_ns, the mean time of
// a Machine::restart(); reshapes_per_case, how often a case's machine had
// another shape than the one before (its RAM or CPUs exchanged).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "emu/fuzz/campaign.hpp"
#include "emu/fuzz/generator.hpp"
#include "emu/machine/emu_platform.hpp"
#include "emu/runner/run_workspace.hpp"
#include "emu/runner/scenario_runner.hpp"
#include "emu/scenario/parser.hpp"
#include "emu/scenario/printer.hpp"
#include "host_faults.hpp"

namespace pagelab::bench {
namespace {

constexpr std::uint64_t kSeedsPerCase = 10;
constexpr std::uint64_t kCases = 256;

// Case `index` of `pagelab fuzz --seed 1`, as the campaign gets it.
scenario::Scenario generated_case(std::uint64_t index) {
  fuzz::ChoiceStream choices = fuzz::ChoiceStream::recording(fuzz::case_seed(1, index));
  const fuzz::GeneratedCase generated = fuzz::generate_case(choices);
  scenario::ParseResult parsed = scenario::parse_scenario(scenario::print_scenario(generated.scenario), "case.scenario");
  return parsed.ok() ? std::move(parsed).scenario() : scenario::Scenario{};
}

void fuzz_cases(benchmark::State& state, bool reuse, bool judge) {
  emu::RunWorkspace workspace;
  emu::RunOptions options;
  options.trace = false;
  options.judge = judge;
  options.workspace = reuse ? &workspace : nullptr;
  const emu::RunWorkspace::Stats before = workspace.stats();
  const std::uint64_t faults_before = host_minor_faults();
  std::uint64_t index = 0, runs = 0;
  for (auto _ : state) {
    const scenario::Scenario s = generated_case(index++ % kCases);
    for (std::uint64_t seed = 1; seed <= kSeedsPerCase; ++seed) {
      options.seed = seed;
      options.strategy = fuzz::run_strategy(seed);
      const emu::RunResult result = emu::run_scenario(s, options);
      emu::cpu_context = emu::CpuContext{};
      if (result.exit_code != 0) {
        state.SkipWithError(result.report.c_str());
        return;
      }
      ++runs;
    }
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["runs_per_second"] = benchmark::Counter(static_cast<double>(runs), benchmark::Counter::kIsRate);
  state.counters["host_minor_faults_per_run"] =
      static_cast<double>(host_minor_faults() - faults_before) / static_cast<double>(std::max<std::uint64_t>(1, runs));
  if (reuse) {
    const emu::RunWorkspace::Stats& after = workspace.stats();
    state.counters["reset_ns"] = static_cast<double>(after.restart_ns - before.restart_ns) /
                                 static_cast<double>(std::max<std::uint64_t>(1, after.restarts - before.restarts));
    state.counters["reshapes_per_case"] =
        static_cast<double>(after.reshapes - before.reshapes) / static_cast<double>(state.iterations());
  }
}

void BM_Fuzz(benchmark::State& state) { fuzz_cases(state, /*reuse=*/false, /*judge=*/false); }
BENCHMARK(BM_Fuzz)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_Fuzz_Reuse(benchmark::State& state) { fuzz_cases(state, /*reuse=*/true, /*judge=*/false); }
BENCHMARK(BM_Fuzz_Reuse)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_Fuzz_Judged(benchmark::State& state) { fuzz_cases(state, /*reuse=*/true, /*judge=*/true); }
BENCHMARK(BM_Fuzz_Judged)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace pagelab::bench
