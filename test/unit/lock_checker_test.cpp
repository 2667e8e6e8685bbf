// The lock checker (src/emu/machine/lock_checker.hpp): whole runs of small
// scenarios whose CPUs also take locks of the test's own, from the runner's
// outcome sink (called on the CPU, after each statement), so a run can show
// an order inversion, an ABBA deadlock, recursion or a bad release; and the
// bundled scenarios, which must raise nothing and whose observed orders must
// agree with the order declared in mm/base/lock_class.hpp.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "emu/cli/explore.hpp"
#include "emu/machine/emu_platform.hpp"
#include "emu/machine/lock_checker.hpp"
#include "emu/machine/machine.hpp"
#include "emu/runner/scenario_runner.hpp"
#include "emu/scenario/parser.hpp"

namespace {

namespace emu = pagelab::emu;
using emu::EmuSpinLock;
using emu::Outcome;
using mm::LockClass;
using mm::LockNesting;
using Guard = mm::LockGuard<EmuSpinLock>;

std::string source_path(const std::string& relative) {
  return (std::filesystem::path(__FILE__).parent_path().parent_path().parent_path() / relative).string();
}

pagelab::scenario::Scenario parse(const std::string& text, const std::string& name = "t.scenario") {
  pagelab::scenario::ParseResult parsed = pagelab::scenario::parse_scenario(text, name);
  if (!parsed.ok()) ADD_FAILURE() << parsed.error().to_string();
  return std::move(parsed).scenario();
}

pagelab::scenario::Scenario load(const std::string& relative) {
  std::ifstream in(source_path(relative));
  std::stringstream text;
  text << in.rdbuf();
  return parse(text.str(), relative);
}

std::string first_line(const std::string& report) { return report.substr(0, report.find('\n')); }

// Two CPUs, each writing once (CPU 1 at line 12) to a space both run. A
// barrier puts CPU 1's write after CPU 0's whole program when `ordered`;
// otherwise the two writes start together, after a barrier.
pagelab::scenario::Scenario two_writers(bool ordered) {
  return parse(fmt::format(R"(machine cpus=2 ram=16M
space a
map a 0x10000000 16K rw populate
cpu 0
  use a{0}
  write 0x10000000 1{1}
end
cpu 1
  use a
  barrier b
  write 0x10001000 2
end
)",
                           ordered ? "" : "\n  barrier b", ordered ? "\n  barrier b" : ""));
}

// The mistakes the checker must catch, written where Clang's
// -Wthread-safety (which would catch them at compile time) looks away.
void take_twice(EmuSpinLock& lock) MM_NO_THREAD_SAFETY_ANALYSIS {
  Guard once(lock);
  Guard twice(lock);
}
void take(EmuSpinLock& lock) MM_NO_THREAD_SAFETY_ANALYSIS { lock.lock(); }
void release(EmuSpinLock& lock) MM_NO_THREAD_SAFETY_ANALYSIS { lock.unlock(); }

// Some work between two acquisitions: scheduling points, where the other
// CPU may run.
void work() {
  for (int i = 0; i < 4; ++i) emu::cpu_context.machine->point();
}

// Locks of the test's own, made afresh for every run (an abandoned run
// leaves them held).
struct TestLocks {
  EmuSpinLock busy_page{LockClass::BusyPage};
  EmuSpinLock swap{LockClass::Swap};
  EmuSpinLock zone{LockClass::Zone};
  EmuSpinLock vm_system{LockClass::VmSystem};
  EmuSpinLock space_one{LockClass::AddressSpace};
  EmuSpinLock space_two{LockClass::AddressSpace};
};

// Runs `s` with `on_write(locks, cpu)` called on each CPU after each of its
// `write` statements (on the CPU: what it does there is part of the run), or
// after each `use` with `at_use`.
template <typename F>
emu::RunResult run_with(const pagelab::scenario::Scenario& s, std::uint64_t seed, F on_write, bool deterministic = true,
                        bool at_use = false) {
  auto locks = std::make_shared<TestLocks>();
  emu::RunOptions options;
  options.seed = seed;
  options.trace = false;
  options.deterministic = deterministic;
  options.outcomes = [locks, on_write, at_use](const Outcome& o) {
    if (o.section == Outcome::Section::Cpu && o.keyword == (at_use ? "use" : "write")) on_write(*locks, o.cpu);
  };
  return emu::run_scenario(s, options);
}

// --- Order inversions -------------------------------------------------------

// CPU 0 takes busy-page then swap; CPU 1, well after (a barrier), swap then
// busy-page. No run can deadlock, and every run must say lock-order, naming
// both orders where they were first seen.
TEST(LockChecker, InversionAcrossCpusIsReportedWithoutADeadlock) {
  const auto s = two_writers(/*ordered=*/true);
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    const emu::RunResult r = run_with(s, seed, [](TestLocks& l, std::uint32_t cpu) {
      if (cpu == 0) {
        Guard outer(l.busy_page);
        Guard inner(l.swap);
      } else {
        Guard outer(l.swap);
        Guard inner(l.busy_page);
      }
    });
    SCOPED_TRACE(r.report);
    ASSERT_EQ(r.exit_code, 1);
    const std::string line = first_line(r.report);
    EXPECT_NE(line.find("FAIL: t.scenario:12:3: lock-order: cpu 1 takes busy-page lock #1 at test/unit/lock_checker_test.cpp:"),
              std::string::npos);
    EXPECT_NE(line.find("while holding swap lock #1 (taken at test/unit/lock_checker_test.cpp:"), std::string::npos);
    EXPECT_NE(line.find("but the opposite order was seen first: cpu 0 took swap lock #1 at test/unit/lock_checker_test.cpp:"),
              std::string::npos);
    EXPECT_NE(line.find("while holding busy-page lock #1"), std::string::npos);
    EXPECT_NE(r.report.find(fmt::format("seed {}, cpu 1, step", seed)), std::string::npos);
    EXPECT_EQ(r.report.find("deadlock"), std::string::npos);
  }
}

// The other order may be the core's own: VmSystem's lock is taken before the
// zone lock when the region pool grows (in the set-up's map). A zone lock
// then VmSystem's, on one CPU, inverts it.
TEST(LockChecker, InversionOfTheCoresOwnOrderIsReported) {
  const auto s = two_writers(/*ordered=*/false);
  const emu::RunResult r = run_with(s, 1, [](TestLocks& l, std::uint32_t cpu) {
    if (cpu != 0) return;
    Guard outer(l.zone);
    Guard inner(l.vm_system);
  });
  ASSERT_EQ(r.exit_code, 1) << r.report;
  const std::string line = first_line(r.report);
  EXPECT_NE(line.find("lock-order: cpu 0 takes vm-system lock #2 at test/unit/lock_checker_test.cpp:"), std::string::npos) << line;
  // The core orders them through a CPU's frame cache: the report gives the
  // path, each step where it was first seen.
  EXPECT_NE(line.find("but the opposite order was seen first: cpu 0 took cpu-frame-cache lock #1 at src/mm/phys/physical_memory.hpp:"),
            std::string::npos)
      << line;
  EXPECT_NE(line.find("while holding vm-system lock #1 (taken at src/mm/vm/vm_system.hpp:"), std::string::npos) << line;
  EXPECT_NE(line.find("in the set-up; and cpu 0 took zone lock #1 at src/mm/phys/physical_memory.hpp:"), std::string::npos) << line;
}

// Two locks of one class at once: an error without a nesting annotation,
// nothing with one.
TEST(LockChecker, SameClassNestingNeedsAnAnnotation) {
  const auto s = two_writers(/*ordered=*/false);
  const emu::RunResult bare = run_with(s, 1, [](TestLocks& l, std::uint32_t cpu) {
    if (cpu != 0) return;
    Guard outer(l.space_one);
    Guard inner(l.space_two);
  });
  ASSERT_EQ(bare.exit_code, 1) << bare.report;
  EXPECT_NE(first_line(bare.report).find("need a LockNesting annotation"), std::string::npos) << bare.report;

  const emu::RunResult annotated = run_with(s, 1, [](TestLocks& l, std::uint32_t cpu) {
    if (cpu != 0) return;
    Guard outer(l.space_one);
    Guard inner(l.space_two, LockNesting::Inner);
  });
  EXPECT_EQ(annotated.exit_code, 0) << annotated.report;
}

// --- Deadlocks --------------------------------------------------------------

// ABBA with both CPUs at it at once (after their first statement, `use`: a
// CPU released by a barrier would only run once the last one to arrive
// waits or ends): a seed that deadlocks ends with a
// deadlock report (not a panic, not a hang: the run is abandoned and the
// process goes on to the next seed); one that does not says lock-order.
// The same seed gives the same report again.
TEST(LockChecker, AbbaDeadlockIsReportedAndTheProcessGoesOn) {
  const auto s = two_writers(/*ordered=*/false);
  const auto abba = [](TestLocks& l, std::uint32_t cpu) {
    if (cpu == 0) {
      Guard first(l.busy_page);
      work();
      Guard second(l.swap);
    } else {
      Guard first(l.swap);
      work();
      Guard second(l.busy_page);
    }
  };
  std::uint64_t deadlocks = 0;
  std::uint64_t first_deadlock = 0;
  std::string first_report;
  for (std::uint64_t seed = 1; seed <= 60; ++seed) {
    const emu::RunResult r = run_with(s, seed, abba, /*deterministic=*/true, /*at_use=*/true);
    SCOPED_TRACE(r.report);
    ASSERT_EQ(r.exit_code, 1);
    const std::string line = first_line(r.report);
    if (line.find(": deadlock: ") != std::string::npos) {
      ++deadlocks;
      EXPECT_NE(line.find("waits for busy-page lock #1 at test/unit/lock_checker_test.cpp:"), std::string::npos);
      EXPECT_NE(line.find("waits for swap lock #1 at test/unit/lock_checker_test.cpp:"), std::string::npos);
      EXPECT_NE(line.find(", held by cpu "), std::string::npos);
      if (first_deadlock == 0) {
        first_deadlock = seed;
        first_report = r.report;
      }
    } else {
      EXPECT_NE(line.find(": lock-order: "), std::string::npos);
    }
  }
  ASSERT_GT(deadlocks, 0u) << "no seed of 60 interleaved the two CPUs into the deadlock";
  EXPECT_EQ(run_with(s, first_deadlock, abba, true, true).report, first_report) << "a report comes back with its seed";
}

// The same through explore(): every seed is counted, the deadlocking ones
// among the failures, and the sweep finishes.
TEST(LockChecker, ExploreCountsDeadlockingSeedsAndFinishes) {
  const auto s = two_writers(/*ordered=*/false);
  emu::ExploreOptions options;
  options.seeds = emu::SeedRange{1, 40};
  options.jobs = 2;
  emu::ExploreHooks hooks;
  hooks.prepare = [](emu::RunOptions& run) {
    auto locks = std::make_shared<TestLocks>();
    run.outcomes = [locks](const Outcome& o) {
      if (o.section != Outcome::Section::Cpu || o.keyword != "use") return;
      if (o.cpu == 0) {
        Guard first(locks->busy_page);
        work();
        Guard second(locks->swap);
      } else {
        Guard first(locks->swap);
        work();
        Guard second(locks->busy_page);
      }
    };
  };
  const emu::ExploreResult result = emu::explore(s, options, hooks);
  EXPECT_EQ(result.run, 40u);
  EXPECT_EQ(result.failed, 40u);
  bool deadlock_group = false;
  for (const emu::FailureGroup& g : result.groups) deadlock_group = deadlock_group || g.key.find(": deadlock: ") != std::string::npos;
  EXPECT_TRUE(deadlock_group);
  EXPECT_FALSE(result.bad_input);
}

// No cycle of locks, yet every CPU waits: CPU 0 keeps a lock and waits at a
// barrier that CPU 1 reaches only after taking that lock. The scheduler
// declares the deadlock; the CPU waiting for the lock says who waits for what
// and the run is abandoned (before, an MM_PANIC).
TEST(LockChecker, EveryCpuWaitingIsADeadlockReport) {
  const auto s = parse(R"(machine cpus=2 ram=16M
space a
map a 0x10000000 16K rw populate
cpu 0
  use a
  write 0x10000000 1
  barrier b
end
cpu 1
  use a
  write 0x10001000 2
  barrier b
end
)");
  const emu::RunResult r = run_with(s, 1, [](TestLocks& l, std::uint32_t cpu) {
    if (cpu == 0) take(l.swap);  // and keep it
    if (cpu == 1) Guard waits(l.swap);
  });
  ASSERT_EQ(r.exit_code, 1) << r.report;
  EXPECT_NE(first_line(r.report).find("t.scenario:11:3: deadlock: every CPU has waited for a long time and none can go on: "),
            std::string::npos)
      << r.report;
  EXPECT_NE(first_line(r.report).find("cpu 1 for swap lock #1, held by cpu 0 (taken at an unknown place, step "),
            std::string::npos)
      << r.report;
}

// Taking a lock one holds: a deadlock with itself. On a CPU, and in the
// set-up (where the runner's own thread is CPU 0, unscheduled).
TEST(LockChecker, RecursionIsReported) {
  const auto s = two_writers(/*ordered=*/false);
  const emu::RunResult r = run_with(s, 3, [](TestLocks& l, std::uint32_t cpu) {
    if (cpu == 1) take_twice(l.zone);
  });
  ASSERT_EQ(r.exit_code, 1) << r.report;
  EXPECT_NE(first_line(r.report).find("t.scenario:12:3: deadlock: cpu 1 takes zone lock #"), std::string::npos) << r.report;
  EXPECT_NE(first_line(r.report).find("while it holds it already"), std::string::npos) << r.report;

  auto locks = std::make_shared<TestLocks>();
  emu::RunOptions options;
  options.trace = false;
  options.outcomes = [locks](const Outcome& o) {
    if (o.section == Outcome::Section::Setup) take_twice(locks->swap);
  };
  const emu::RunResult setup = emu::run_scenario(s, options);
  ASSERT_EQ(setup.exit_code, 1) << setup.report;
  EXPECT_NE(first_line(setup.report).find("t.scenario:2:1: deadlock: cpu 0 takes swap lock #1"), std::string::npos) << setup.report;
}

// --- Releases ---------------------------------------------------------------

TEST(LockChecker, ReleasesOutOfOrderOrOfALockNotHeldAreReported) {
  const auto s = two_writers(/*ordered=*/true);
  const emu::RunResult out_of_order = run_with(s, 1, [](TestLocks& l, std::uint32_t cpu) {
    if (cpu != 0) return;
    take(l.busy_page);
    take(l.swap);
    release(l.busy_page);
    release(l.swap);
  });
  ASSERT_EQ(out_of_order.exit_code, 1) << out_of_order.report;
  EXPECT_NE(first_line(out_of_order.report)
                .find("lock-release: cpu 0 releases busy-page lock #1 (taken at an unknown place) while it still holds swap lock #1"),
            std::string::npos)
      << out_of_order.report;

  const emu::RunResult not_held = run_with(s, 1, [](TestLocks& l, std::uint32_t cpu) {
    if (cpu == 0) take(l.swap);
    if (cpu == 1) release(l.swap);
  });
  ASSERT_EQ(not_held.exit_code, 1) << not_held.report;
  EXPECT_NE(first_line(not_held.report).find("lock-release: cpu 1 releases swap lock #1, which it does not hold (held by cpu 0"),
            std::string::npos)
      << not_held.report;
}

// --- Parallel runs ----------------------------------------------------------

// Host threads, timing as it comes: an inversion is reported, and an ABBA
// that deadlocks for real ends the run instead of hanging it.
TEST(LockChecker, ParallelRunsReportAndDoNotHang) {
  const auto s = two_writers(/*ordered=*/false);
  const emu::RunResult inverted = run_with(
      s, 1,
      [](TestLocks& l, std::uint32_t cpu) {
        if (cpu != 0) return;
        Guard outer(l.zone);
        Guard inner(l.vm_system);
      },
      /*deterministic=*/false);
  ASSERT_EQ(inverted.exit_code, 1) << inverted.report;
  EXPECT_NE(first_line(inverted.report).find("lock-order: cpu 0 takes vm-system lock"), std::string::npos) << inverted.report;

  const emu::RunResult abba = run_with(
      s, 1,
      [](TestLocks& l, std::uint32_t cpu) {
        Guard first(cpu == 0 ? l.busy_page : l.swap);
        std::this_thread::sleep_for(std::chrono::milliseconds(20));  // both hold their first
        Guard second(cpu == 0 ? l.swap : l.busy_page);
      },
      /*deterministic=*/false);
  ASSERT_EQ(abba.exit_code, 1) << abba.report;
  const std::string line = first_line(abba.report);
  EXPECT_TRUE(line.find(": lock-order: ") != std::string::npos || line.find(": deadlock: ") != std::string::npos) << line;
}

// --- The core's own locks ---------------------------------------------------

// Fork from a CPU program holds the parent's and the child's space locks at
// once (the child's annotated Inner): nothing to report, and the order is seen.
TEST(LockChecker, ForkFromACpuProgramRaisesNothing) {
  const auto s = load("test/data/fork_from_cpu_program.scenario");
  emu::LockOrders orders;
  for (std::uint64_t seed = 1; seed <= 300; ++seed) {
    emu::RunOptions options;
    options.seed = seed;
    options.trace = false;
    options.lock_orders = &orders;
    const emu::RunResult r = emu::run_scenario(s, options);
    ASSERT_EQ(r.exit_code, 0) << "seed " << seed << ":\n" << r.report;
  }
  EXPECT_TRUE(orders.has(emu::lock_node(LockClass::AddressSpace, LockNesting::Outer),
                         emu::lock_node(LockClass::AddressSpace, LockNesting::Inner)));
}

// Every bundled scenario, under its own (correct) policy, over a few hundred
// seeds of both strategies: no report, and every order the runs show goes
// down the list of mm/base/lock_class.hpp (a class further down, or the same
// class at a deeper nesting).
class BundledScenarios : public ::testing::TestWithParam<std::string> {};

std::vector<std::string> bundled_scenarios() {
  std::vector<std::string> files;
  for (const char* dir : {"examples", "examples/races"}) {
    for (const auto& entry : std::filesystem::directory_iterator(source_path(dir))) {
      if (entry.path().extension() == ".scenario") files.push_back(std::string(dir) + "/" + entry.path().filename().string());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::string scenario_name(const ::testing::TestParamInfo<std::string>& param) {
  std::string name = std::filesystem::path(param.param).stem().string();
  for (char& c : name) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return name;
}

TEST_P(BundledScenarios, RaiseNothingAndFollowTheDeclaredOrder) {
  const auto s = load(GetParam());
  emu::LockOrders orders;
  for (std::uint64_t seed = 1; seed <= 300; ++seed) {
    emu::RunOptions options;
    options.seed = seed;
    options.trace = false;
    std::string error;
    options.strategy = *emu::Strategy::parse(seed % 2 == 0 ? "random" : "pct:3", error);
    options.lock_orders = &orders;
    const emu::RunResult r = emu::run_scenario(s, options);
    ASSERT_EQ(r.exit_code, 0) << "seed " << seed << ":\n" << r.report;
  }
  std::uint32_t seen = 0;
  for (std::uint32_t a = 0; a < emu::kLockNodes; ++a) {
    for (std::uint32_t b = 0; b < emu::kLockNodes; ++b) {
      if (!orders.has(a, b)) continue;
      ++seen;
      const bool down = emu::node_class(a) < emu::node_class(b) ||
                        (emu::node_class(a) == emu::node_class(b) && emu::node_nesting(a) < emu::node_nesting(b));
      EXPECT_TRUE(down) << emu::lock_node_name(b) << " is taken while holding " << emu::lock_node_name(a)
                        << ", against the order of mm/base/lock_class.hpp";
    }
  }
  // Every scenario maps memory in its set-up: the space's lock, then the
  // physical memory's.
  EXPECT_TRUE(orders.has(emu::lock_node(LockClass::AddressSpace, LockNesting::Outer),
                         emu::lock_node(LockClass::CpuFrameCache, LockNesting::Outer)));
  EXPECT_TRUE(orders.has(emu::lock_node(LockClass::CpuFrameCache, LockNesting::Outer),
                         emu::lock_node(LockClass::Zone, LockNesting::Outer)));
  EXPECT_GE(seen, 3u);
}

INSTANTIATE_TEST_SUITE_P(All, BundledScenarios, ::testing::ValuesIn(bundled_scenarios()), scenario_name);

}  // namespace
