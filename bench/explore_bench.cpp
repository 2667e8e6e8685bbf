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
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "emu/machine/emu_platform.hpp"
#include "emu/runner/run_workspace.hpp"
#include "emu/runner/scenario_runner.hpp"
#include "emu/scenario/parser.hpp"
#include "emu/sched/scheduler.hpp"
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

// Runs `text` seed after seed (1, 2, ...) with `options` (the trace off),
// reusing the worker's machine when `reuse`, as explore's workers do.
void explore_seeds(benchmark::State& state, const std::string& text, const std::string& name, emu::RunOptions options,
                   bool reuse) {
  const scenario::ParseResult parsed = scenario::parse_scenario(text, name);
  if (!parsed.ok()) {
    state.SkipWithError(parsed.error().to_string().c_str());
    return;
  }
  emu::RunWorkspace workspace;
  options.trace = false;
  options.workspace = reuse ? &workspace : nullptr;
  options.seed = 0;
  (void)emu::run_scenario(parsed.scenario(), options);  // warm: the workspace's machine is built (not timed)
  emu::cpu_context = emu::CpuContext{};
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

void explore_seeds(benchmark::State& state, bool reuse) {
  explore_seeds(state, explore_scenario(), "explore_bench.scenario", emu::RunOptions{}, reuse);
}

// --- The bundled race examples ----------------------------------------------
// As the fix sweep of scripts/explore-all.sh runs them: the correct protocol
// (batched), the strategy the scenario's `# explore:` line names (random
// when it names none), the worker's machine reused. One benchmark per
// example, named for it; items are seeds (issue 2/10's target: 10,000 per
// second per core).

std::vector<std::filesystem::path> race_examples() {
  std::vector<std::filesystem::path> out;
  const std::filesystem::path dir = std::filesystem::path(PAGELAB_SOURCE_DIR) / "examples" / "races";
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    if (entry.path().extension() == ".scenario") out.push_back(entry.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// The `--strategy S` of the scenario's `# explore:` line, or random.
emu::Strategy header_strategy(const std::string& text) {
  static const std::regex line(R"(#\s*explore:.*--strategy\s+(\S+))");
  std::smatch match;
  std::string error;
  if (std::regex_search(text, match, line)) {
    if (const auto parsed = emu::Strategy::parse(match[1].str(), error)) return *parsed;
  }
  return emu::Strategy{};
}

void explore_race(benchmark::State& state, const std::filesystem::path& file) {
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  emu::RunOptions options;
  options.shootdown = mm::ShootdownPolicy::Batched;
  options.strategy = header_strategy(text.str());
  explore_seeds(state, text.str(), file.string(), options, /*reuse=*/true);
}

const bool races_registered = [] {
  for (const std::filesystem::path& file : race_examples()) {
    benchmark::RegisterBenchmark(("BM_Explore_Race/" + file.stem().string()).c_str(),
                                 [file](benchmark::State& state) { explore_race(state, file); })
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
  }
  return true;
}();

void BM_Explore(benchmark::State& state) { explore_seeds(state, /*reuse=*/false); }
BENCHMARK(BM_Explore)->UseRealTime()->Unit(benchmark::kMicrosecond);

void BM_Explore_Reuse(benchmark::State& state) { explore_seeds(state, /*reuse=*/true); }
BENCHMARK(BM_Explore_Reuse)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace pagelab::bench
