// The speed of `pagelab explore`: seeds per second of one worker, each seed
// a whole run_scenario() (machine built, set-up, two CPUs under the
// deterministic scheduler, checks, leak check, machine torn down) with the
// trace off — exactly what explore does per seed.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>

#include <fmt/format.h>

#include "emu/machine/emu_platform.hpp"
#include "emu/runner/scenario_runner.hpp"
#include "emu/scenario/parser.hpp"

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

void BM_Explore(benchmark::State& state) {
  const scenario::ParseResult parsed = scenario::parse_scenario(explore_scenario(), "explore_bench.scenario");
  if (!parsed.ok()) {
    state.SkipWithError(parsed.error().to_string().c_str());
    return;
  }
  std::uint64_t seed = 1, steps = 0;
  for (auto _ : state) {
    emu::RunOptions options;
    options.seed = seed++;
    options.trace = false;
    const emu::RunResult result = emu::run_scenario(parsed.scenario(), options);
    emu::cpu_context = emu::CpuContext{};  // as explore's workers do: no stale Machine pointer between runs
    if (result.exit_code != 0) {
      state.SkipWithError(result.report.c_str());
      return;
    }
    steps += result.steps;
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["steps_per_seed"] = static_cast<double>(steps) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_Explore)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace pagelab::bench
