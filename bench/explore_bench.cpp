// The speed of `pagelab explore`: seeds per second of one worker, each seed
// a whole run_scenario() (set-up, two CPUs under the deterministic
// scheduler, checks, leak check) with the trace off. BM_Explore_Reuse is
// exactly what explore does per seed: the worker's RunWorkspace restarts
// the machine of the last seed. BM_Explore builds and tears down a machine
// for every seed (RAM mapping included), as explore did before workspaces,
// for comparison.
//
// Counters: host_minor_faults_per_seed, the host's minor page faults of the
// benchmark thread (getrusage RUSAGE_THREAD) per seed, machine building and
// teardown included; reset_ns, the time of Machine::restart() per seed (the
// last run ended, the device window and TLBs cleaned, the core's objects
// rebuilt and the allocator seeded); steps_per_seed.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include <fmt/format.h>

#include "emu/machine/emu_platform.hpp"
#include "emu/runner/run_workspace.hpp"
#include "emu/runner/scenario_runner.hpp"
#include "emu/scenario/parser.hpp"
#include "host_faults.hpp"

namespace pagelab::bench {
namespace {

// A 2-CPU scenario of about 100 statements that holds under every seed: each
// CPU writes and reads back pages of a region of its own in a shared space,
// and maps, uses and unmaps a scratch region (so the run has page faults,
// page-table allocations and frees, and invalidations), then the checks.
std::string explore_scenario() {
  std::string s = "machine cpus=2 ram=16M\n";
  s += "space a\n";
  s += "map a 0x10000000 64K rw\n";
  s += "map a 0x20000000 64K rw\n";
  for (int cpu = 0; cpu < 2; ++cpu) {
    const std::uint64_t own = cpu == 0 ? 0x10000000 : 0x20000000;
    const std::uint64_t scratch = cpu == 0 ? 0x30000000 : 0x40000000;
    s += fmt::format("cpu {}\n  use a\n", cpu);
    for (int i = 0; i < 16; ++i) {
      s += fmt::format("  write {:#x} {}\n", own + i * 0x1000, 100 * cpu + i + 1);
      s += fmt::format("  read {:#x} expect {}\n", own + i * 0x1000, 100 * cpu + i + 1);
    }
    s += fmt::format("  map a {:#x} 16K rw\n", scratch);
    for (int i = 0; i < 4; ++i) {
      s += fmt::format("  write {:#x} {}\n", scratch + i * 0x1000, i + 7);
      s += fmt::format("  read {:#x} expect {}\n", scratch + i * 0x1000, i + 7);
    }
    s += fmt::format("  protect a {:#x} 16K r\n", scratch);
    s += fmt::format("  write {:#x} 1 expect segv\n", scratch);
    s += fmt::format("  unmap a {:#x} 16K\n", scratch);
    s += fmt::format("  read {:#x} expect segv\n", scratch);
    s += "end\n";
  }
  s += "check value a 0x10000000 == 1\n";
  s += "check value a 0x20000000 == 101\n";
  s += "check unmapped a 0x30000000\n";
  s += "check frames leaked == 0\n";
  return s;
}

void explore_seeds(benchmark::State& state, bool reuse) {
  const scenario::ParseResult parsed = scenario::parse_scenario(explore_scenario(), "explore_bench.scenario");
  if (!parsed.ok()) {
    state.SkipWithError(parsed.error().to_string().c_str());
    return;
  }
  emu::RunWorkspace workspace;
  emu::RunOptions options;
  options.trace = false;
  options.workspace = reuse ? &workspace : nullptr;
  options.seed = 0;
  (void)emu::run_scenario(parsed.scenario(), options);  // warm: the workspace's machine is built (not timed)
  const emu::RunWorkspace::Stats before = workspace.stats();
  std::uint64_t seed = 1, steps = 0;
  const std::uint64_t faults_before = host_minor_faults();
  for (auto _ : state) {
    options.seed = seed++;
    const emu::RunResult result = emu::run_scenario(parsed.scenario(), options);
    emu::cpu_context = emu::CpuContext{};  // as explore's workers do: no CPU of this thread runs between runs
    if (result.exit_code != 0) {
      state.SkipWithError(result.report.c_str());
      return;
    }
    steps += result.steps;
  }
  const double seeds = static_cast<double>(state.iterations());
  state.SetItemsProcessed(state.iterations());
  state.counters["steps_per_seed"] = static_cast<double>(steps) / seeds;
  state.counters["host_minor_faults_per_seed"] = static_cast<double>(host_minor_faults() - faults_before) / seeds;
  if (reuse) {
    const emu::RunWorkspace::Stats& after = workspace.stats();
    state.counters["reset_ns"] = static_cast<double>(after.restart_ns - before.restart_ns) /
                                 static_cast<double>(std::max<std::uint64_t>(1, after.restarts - before.restarts));
  }
}

void BM_Explore(benchmark::State& state) { explore_seeds(state, /*reuse=*/false); }
BENCHMARK(BM_Explore)->UseRealTime()->Unit(benchmark::kMicrosecond);

void BM_Explore_Reuse(benchmark::State& state) { explore_seeds(state, /*reuse=*/true); }
BENCHMARK(BM_Explore_Reuse)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace pagelab::bench
