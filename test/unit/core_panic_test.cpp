// A panic of the core during a run (src/emu/host_panic.cpp,
// Machine::core_panicked): the run fails with "panic: ..." at the statement
// its CPU was running, deterministically, the process goes on, and the
// worker's machine serves the next run; explore counts such seeds. The panic
// is raised from the runner's outcome sink (called on the CPU, after a
// statement) through mm::panic with a file of the core, as MM_ASSERT in
// src/mm would.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "emu/cli/explore.hpp"
#include "emu/machine/emu_platform.hpp"
#include "emu/machine/machine.hpp"
#include "emu/runner/run_workspace.hpp"
#include "emu/runner/scenario_runner.hpp"
#include "emu/scenario/parser.hpp"
#include "mm/base/panic.hpp"

namespace {

namespace emu = pagelab::emu;
using emu::Outcome;

pagelab::scenario::Scenario parse(const std::string& text) {
  pagelab::scenario::ParseResult parsed = pagelab::scenario::parse_scenario(text, "t.scenario");
  if (!parsed.ok()) ADD_FAILURE() << parsed.error().to_string();
  return std::move(parsed).scenario();
}

// CPU 1's write (line 11) races CPU 0's; both after a barrier.
const char* const kTwoWriters = R"(machine cpus=2 ram=16M
space a
map a 0x10000000 16K rw
cpu 0
  use a
  barrier b
  write 0x10000000 1
end
cpu 1
  use a
  barrier b
  write 0x10001000 2
  read 0x10001000 expect 2
end
check frames leaked == 0
)";

void core_assertion() { mm::panic("assertion failed: frames <= committed_", 0x2a, "/x/src/mm/phys/fake.hpp", 7); }

// A sink that panics on `section`'s statement `keyword` (on `cpu` for Cpu).
emu::OutcomeSink panic_at(Outcome::Section section, const char* keyword, std::uint32_t cpu = 0) {
  return [=](const Outcome& o) {
    if (o.section == section && o.keyword == keyword && (section != Outcome::Section::Cpu || o.cpu == cpu)) core_assertion();
  };
}

std::string first_line(const std::string& report) { return report.substr(0, report.find('\n')); }

TEST(CorePanic, FailsTheRunAtItsStatementAndTheWorkspaceGoesOn) {
  const auto s = parse(kTwoWriters);
  emu::RunWorkspace workspace;
  emu::RunOptions options;
  options.trace = false;
  options.workspace = &workspace;
  options.seed = 3;
  options.outcomes = panic_at(Outcome::Section::Cpu, "write", 1);
  const emu::RunResult failed = emu::run_scenario(s, options);
  ASSERT_EQ(failed.exit_code, 1) << failed.report;
  EXPECT_EQ(first_line(failed.report),
            "FAIL: t.scenario:12:3: panic: assertion failed: frames <= committed_ (0x2a) at src/mm/phys/fake.hpp:7");
  EXPECT_NE(failed.report.find("seed 3"), std::string::npos) << failed.report;
  EXPECT_EQ(emu::run_scenario(s, options).report, failed.report) << "the same seed, the same report";

  // The abandoned machine is restarted for the next run, which holds.
  options.outcomes = nullptr;
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    options.seed = seed;
    const emu::RunResult r = emu::run_scenario(s, options);
    EXPECT_EQ(r.exit_code, 0) << r.report;
  }
}

TEST(CorePanic, InTheSetUpFailsTheRun) {
  const auto s = parse(kTwoWriters);
  emu::RunOptions options;
  options.trace = false;
  options.seed = 1;
  options.outcomes = panic_at(Outcome::Section::Setup, "map");
  const emu::RunResult r = emu::run_scenario(s, options);
  ASSERT_EQ(r.exit_code, 1) << r.report;
  EXPECT_NE(first_line(r.report).find("panic: assertion failed: frames <= committed_"), std::string::npos) << r.report;
}

TEST(CorePanic, ExploreCountsPanickingSeedsAndFinishes) {
  const auto s = parse(kTwoWriters);
  emu::ExploreOptions options;
  options.seeds = emu::SeedRange{1, 40};
  options.jobs = 2;
  emu::ExploreHooks hooks;
  hooks.prepare = [](emu::RunOptions& run) {
    if (*run.seed % 4 == 0) run.outcomes = panic_at(Outcome::Section::Cpu, "write", 0);
  };
  const emu::ExploreResult result = emu::explore(s, options, hooks);
  EXPECT_EQ(result.run, 40u);
  EXPECT_EQ(result.failed, 10u);
  ASSERT_EQ(result.groups.size(), 1u);
  EXPECT_NE(result.groups[0].key.find("panic: assertion failed"), std::string::npos) << result.groups[0].key;
  EXPECT_FALSE(result.bad_input);
}

// A core assertion during the run's teardown, in the core's destroy() of a
// space (Machine::end_run): the run fails with the panic, and the
// workspace's machine serves the next runs. (Until fc94810 a host mutex was
// held across destroy(), the panic's longjmp left it locked, and the next
// run's teardown waited on it for ever: mutants 12 and 16 were hangs.)
TEST(CorePanic, InTheTeardownFailsTheRunAndTheWorkspaceGoesOn) {
  const auto s = parse(kTwoWriters);
  emu::RunWorkspace workspace;
  emu::RunOptions options;
  options.trace = false;
  options.workspace = &workspace;
  options.seed = 1;
  // After CPU 1's read, CPU 1's page claims no mapping: unmapping it at the
  // teardown takes its mapcount below zero, which the core asserts against.
  options.outcomes = [](const Outcome& o) {
    if (o.section != Outcome::Section::Cpu || o.keyword != "read") return;
    emu::Machine* machine = emu::cpu_context.machine;
    const auto t = machine->space("a")->translate(mm::VirtAddr(0x10001000));
    ASSERT_TRUE(t.ok());
    machine->vm().memory().frames()[mm::Pfn::containing(t.value().physical)].mapcount.store(0);
  };
  const emu::RunResult failed = emu::run_scenario(s, options);
  ASSERT_EQ(failed.exit_code, 1) << failed.report;
  EXPECT_NE(first_line(failed.report).find("panic: assertion failed: sharers >= 1"), std::string::npos) << failed.report;

  options.outcomes = nullptr;
  for (std::uint64_t seed = 1; seed <= 5; ++seed) {
    options.seed = seed;
    const emu::RunResult r = emu::run_scenario(s, options);
    EXPECT_EQ(r.exit_code, 0) << r.report;
  }
}

}  // namespace
