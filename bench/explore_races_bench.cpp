// `pagelab explore` on the bundled race examples (examples/races/), as the
// fix sweep of scripts/explore-all.sh runs them: one worker, the correct
// protocol (batched), the strategy the scenario's `# explore:` line names
// (random when it names none), a fresh seed each iteration, the worker's
// RunWorkspace restarting the machine between seeds, the trace off. One
// benchmark per example, named for it; items are seeds, so items_per_second
// is seeds per second per core (issue 2/10's target: 10,000).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "emu/machine/emu_platform.hpp"
#include "emu/runner/run_workspace.hpp"
#include "emu/runner/scenario_runner.hpp"
#include "emu/scenario/parser.hpp"
#include "emu/sched/scheduler.hpp"

namespace pagelab::bench {
namespace {

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
  const scenario::ParseResult parsed = scenario::parse_scenario(text.str(), file.string());
  if (!parsed.ok()) {
    state.SkipWithError(parsed.error().to_string().c_str());
    return;
  }
  emu::RunWorkspace workspace;
  emu::RunOptions options;
  options.trace = false;
  options.workspace = &workspace;
  options.shootdown = mm::ShootdownPolicy::Batched;
  options.strategy = header_strategy(text.str());
  options.seed = 0;
  (void)emu::run_scenario(parsed.scenario(), options);  // warm: the workspace's machine is built (not timed)
  emu::cpu_context = emu::CpuContext{};
  std::uint64_t seed = 1;
  for (auto _ : state) {
    options.seed = seed++;
    const emu::RunResult result = emu::run_scenario(parsed.scenario(), options);
    emu::cpu_context = emu::CpuContext{};
    if (result.exit_code != 0) {
      state.SkipWithError(result.report.c_str());
      return;
    }
  }
  state.SetItemsProcessed(state.iterations());
}

// One benchmark per example, registered before main runs.
const bool registered = [] {
  for (const std::filesystem::path& file : race_examples()) {
    benchmark::RegisterBenchmark(("BM_Explore_Race/" + file.stem().string()).c_str(),
                                 [file](benchmark::State& state) { explore_race(state, file); })
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
  }
  return true;
}();

}  // namespace
}  // namespace pagelab::bench
