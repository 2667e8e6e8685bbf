// The emulator's own speed: scheduling steps, and replaying a memory trace
// through one CPU's TLB and page walker.
#include <benchmark/benchmark.h>

#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "emu/cli/lackey_replay.hpp"
#include "emu/hw/tlb_geometry.hpp"
#include "emu/io/text_input.hpp"
#include "emu/sched/scheduler.hpp"

namespace pagelab::bench {
namespace {

// Deterministic scheduling steps per second with N CPUs, each taking its
// share of 20,000 scheduling points, run as a deterministic run runs them:
// each CPU a fiber on one host thread (Scheduler::run_cpus). With one CPU
// every step is a decision and nothing else; with more, most steps also
// switch fibers (and carry a CpuContext-sized thread_local along).
struct CarriedContext {  // as big as emu's CpuContext
  void* machine = nullptr;
  std::uint32_t cpu = 0;
  bool scheduled = false;
  std::uint32_t locks_held = 0;
};
thread_local CarriedContext carried_context;

constexpr int kSchedulerSteps = 20'000;

void report_steps(benchmark::State& state) {
  state.SetItemsProcessed(state.iterations() * kSchedulerSteps);
  state.counters["steps_per_second"] = benchmark::Counter(static_cast<double>(state.iterations()) * kSchedulerSteps,
                                                          benchmark::Counter::kIsRate);
}

void BM_Scheduler_Step(benchmark::State& state) {
  const auto cpus = static_cast<std::uint32_t>(state.range(0));
  std::uint64_t seed = 1;
  for (auto _ : state) {
    emu::Scheduler::Options options;
    options.seed = seed++;
    emu::Scheduler scheduler(cpus, options);
    scheduler.run_cpus(
        [&](std::uint32_t cpu) {
          carried_context = CarriedContext{&scheduler, cpu, true, 0};
          scheduler.enter(cpu);
          for (int i = 0; i < kSchedulerSteps / static_cast<int>(cpus); ++i) {
            benchmark::DoNotOptimize(carried_context.cpu);
            scheduler.point(cpu);
          }
          scheduler.exit(cpu);
        },
        carried_context);
    benchmark::DoNotOptimize(scheduler.steps());
  }
  report_steps(state);
}
BENCHMARK(BM_Scheduler_Step)->Arg(1)->Arg(2)->Arg(4)->UseRealTime()->Unit(benchmark::kMillisecond);

// The same with each CPU a host thread of its own, as deterministic runs
// were before fibers (issue 4/5): most steps hand the turn to another thread
// (a futex wake-up and a wait past a short spin).
void BM_Scheduler_Step_Threads(benchmark::State& state) {
  const auto cpus = static_cast<std::uint32_t>(state.range(0));
  std::uint64_t seed = 1;
  for (auto _ : state) {
    emu::Scheduler::Options options;
    options.seed = seed++;
    emu::Scheduler scheduler(cpus, options);
    std::vector<std::thread> threads;
    for (std::uint32_t cpu = 0; cpu < cpus; ++cpu) {
      threads.emplace_back([&, cpu] {
        scheduler.enter(cpu);
        for (int i = 0; i < kSchedulerSteps / static_cast<int>(cpus); ++i) scheduler.point(cpu);
        scheduler.exit(cpu);
      });
    }
    for (auto& t : threads) t.join();
    benchmark::DoNotOptimize(scheduler.steps());
  }
  report_steps(state);
}
BENCHMARK(BM_Scheduler_Step_Threads)->Arg(1)->Arg(2)->Arg(4)->UseRealTime()->Unit(benchmark::kMillisecond);

// A lackey-format trace of a loop over a working set of `working_set` bytes
// (an instruction fetch, a load and a store per iteration), replayed through
// a skylake TLB with demand-zero mapping: accesses per second.
std::string synthetic_trace(int lines, std::uint64_t working_set = 256 << 10) {
  std::string text;
  text.reserve(static_cast<std::size_t>(lines) * 24);
  std::uint64_t data = 0x10000000;
  for (int i = 0; i < lines / 3; ++i) {
    char line[64];
    std::snprintf(line, sizeof line, "I  %08llx,4\n", static_cast<unsigned long long>(0x401000 + (i % 64) * 4));
    text += line;
    std::snprintf(line, sizeof line, " L %08llx,8\n", static_cast<unsigned long long>(data + (i * 72ull) % working_set));
    text += line;
    std::snprintf(line, sizeof line, " S %08llx,8\n", static_cast<unsigned long long>(data + (i * 136ull) % working_set));
    text += line;
  }
  return text;
}

void BM_LackeyReplay(benchmark::State& state) {
  const std::string trace = synthetic_trace(300'000);
  const hw::NamedTlbGeometry geometry = hw::tlb_geometry_named("skylake");
  std::uint64_t accesses = 0;
  for (auto _ : state) {
    std::istringstream in(trace);
    std::string error;
    const auto stats = emu::replay_lackey(in, "synthetic", geometry.geometry, error);
    if (!stats) {
      state.SkipWithError(error.c_str());
      return;
    }
    accesses += stats->accesses;
  }
  state.counters["accesses_per_second"] = benchmark::Counter(static_cast<double>(accesses), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_LackeyReplay)->Unit(benchmark::kMillisecond);

// What `pagelab trace FILE` does, minus the report: the file opened as the
// CLI opens it (open_text_input) and replayed through its bounded line
// reader. The trace is written to a temporary file once, before the timing;
// the page cache holds it. The argument is the working set in KiB: 256 (65
// pages, the in-memory benchmark's, which the TLB holds after the first
// sweep) and 65536 (64 MiB, 16,385 pages, far more than the 1,536-entry
// STLB holds: each page the sweep reaches misses and walks once per sweep;
// the counter miss_share says how often that is per access).
void BM_LackeyReplay_File(benchmark::State& state) {
  const std::uint64_t working_set = static_cast<std::uint64_t>(state.range(0)) << 10;
  const std::string trace = synthetic_trace(300'000, working_set);
  char path[] = "/tmp/pagelab-bench-lackey-XXXXXX";
  const int fd = ::mkstemp(path);
  if (fd < 0 || ::write(fd, trace.data(), trace.size()) != static_cast<ssize_t>(trace.size())) {
    if (fd >= 0) ::close(fd);
    state.SkipWithError("cannot write the temporary trace file");
    return;
  }
  ::close(fd);
  const hw::NamedTlbGeometry geometry = hw::tlb_geometry_named("skylake");
  std::uint64_t accesses = 0;
  std::uint64_t misses = 0;
  for (auto _ : state) {
    std::ifstream in;
    if (const std::optional<emu::InputError> failure = emu::open_text_input(path, in)) {
      state.SkipWithError(failure->message("pagelab").c_str());
      break;
    }
    std::string error;
    const auto stats = emu::replay_lackey(in, path, geometry.geometry, error);
    if (!stats) {
      state.SkipWithError(error.c_str());
      break;
    }
    accesses += stats->accesses;
    misses += stats->misses;
  }
  ::unlink(path);
  state.counters["accesses_per_second"] = benchmark::Counter(static_cast<double>(accesses), benchmark::Counter::kIsRate);
  state.counters["miss_share"] = accesses == 0 ? 0 : static_cast<double>(misses) / static_cast<double>(accesses);
}
BENCHMARK(BM_LackeyReplay_File)->Arg(256)->Arg(65536)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace pagelab::bench
