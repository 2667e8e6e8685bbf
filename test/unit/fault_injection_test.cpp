// Fault injection (src/emu/machine/fault_injection.hpp, `pagelab run
// --inject`): the PhysicalMemory hook, the --inject specs, and whole runs --
// every allocation of a run made to fail in turn must end cleanly; the
// randomized injections keep a run a function of its seed, never trip the
// oracle under the correct shootdown protocol, and do find a missing one.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "emu/hw/tlb.hpp"
#include "emu/machine/emu_platform.hpp"
#include "emu/machine/fault_injection.hpp"
#include "emu/runner/scenario_runner.hpp"
#include "emu/scenario/parser.hpp"
#include "support/vm_world.hpp"

namespace {

namespace emu = pagelab::emu;
namespace hw = pagelab::hw;
using mm::Status;

// The repository, from this file's path (test/unit/ is two levels down).
std::string source_path(const std::string& relative) {
  return (std::filesystem::path(__FILE__).parent_path().parent_path().parent_path() / relative).string();
}

pagelab::scenario::Scenario load(const std::string& relative) {
  std::ifstream in(source_path(relative));
  std::stringstream text;
  text << in.rdbuf();
  pagelab::scenario::ParseResult parsed = pagelab::scenario::parse_scenario(text.str(), relative);
  if (!parsed.ok()) ADD_FAILURE() << parsed.error().to_string();
  return std::move(parsed).scenario();
}

emu::InjectionSpec spec_of(const std::string& text) {
  emu::InjectionSpec spec;
  std::string error;
  EXPECT_TRUE(emu::add_injection(text, spec, error)) << error;
  return spec;
}

struct RunSettings {
  std::uint64_t seed = 1;
  std::optional<mm::ShootdownPolicy> policy;
  std::string trace_out;  // empty: no trace
  bool deterministic = true;

  static RunSettings seeded(std::uint64_t seed, std::string trace_out = {}) {
    RunSettings settings;
    settings.seed = seed;
    settings.trace_out = std::move(trace_out);
    return settings;
  }
  RunSettings& with(mm::ShootdownPolicy p) {
    policy = p;
    return *this;
  }
  RunSettings& parallel() {
    deterministic = false;
    return *this;
  }
};

emu::RunResult run(const pagelab::scenario::Scenario& s, const emu::InjectionSpec& inject, const RunSettings& settings = {}) {
  emu::RunOptions options;
  options.seed = settings.seed;
  options.inject = inject;
  options.shootdown = settings.policy;
  options.allow_unsafe = settings.policy && mm::is_unsafe(*settings.policy);
  options.trace = !settings.trace_out.empty();
  options.format = emu::TraceFormat::Jsonl;
  options.trace_out = settings.trace_out;
  options.deterministic = settings.deterministic;
  emu::RunResult result = emu::run_scenario(s, options);
  emu::cpu_context = emu::CpuContext{};  // the run's machine is gone
  return result;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// ---------------------------------------------------------------------------
// The PhysicalMemory hook.

struct FailEvery {
  std::uint64_t calls = 0;
  std::uint64_t fail_at = 0;  // the call that fails (1-based); 0: none
  static bool should_fail(void* context, mm::FrameCount, mm::FrameOwner) {
    auto* self = static_cast<FailEvery*>(context);
    return ++self->calls == self->fail_at;
  }
};

TEST(FaultInjectionHook, FailsTheCallItNamesAndChangesNothing) {
  FailEvery hook;
  pagelab::test::VmWorld world(256, {.poison_freed = true, .fail_hook = {&FailEvery::should_fail, &hook}});
  const mm::FrameCount free_before = world.free_frames();
  const mm::u64 calls_before = hook.calls;  // the zero frame was call 1
  hook.fail_at = calls_before + 2;
  const mm::Result<mm::PhysAddr> first = world.pmm().allocate_frame(mm::FrameOwner::Anonymous);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(world.pmm().allocate_frame(mm::FrameOwner::Anonymous).status(), Status::OutOfMemory);
  EXPECT_EQ(world.free_frames(), free_before - 1);  // only the first one is out
  hook.fail_at = hook.calls + 1;
  EXPECT_EQ(world.pmm().allocate_run(mm::FrameRequest{.count = 4, .owner = mm::FrameOwner::Kernel}).status(), Status::OutOfMemory);
  hook.fail_at = hook.calls + 1;
  mm::PhysAddr batch[4];
  EXPECT_EQ(world.pmm().allocate_batch(mm::Span<mm::PhysAddr>(batch, 4), mm::FrameOwner::Kernel), 0u);
  EXPECT_EQ(world.free_frames(), free_before - 1);
  // A committed allocation draws on a promise: never asked, never failed.
  ASSERT_EQ(world.pmm().commit(1), Status::Ok);
  const mm::u64 calls = hook.calls;
  hook.fail_at = calls + 1;
  const mm::Result<mm::PhysAddr> promised = world.pmm().allocate_frame(mm::FrameOwner::Anonymous, mm::AllocFlags::Committed);
  ASSERT_TRUE(promised.ok());
  EXPECT_EQ(hook.calls, calls);
  ASSERT_EQ(world.pmm().free_frame(promised.value()), Status::Ok);
  ASSERT_EQ(world.pmm().free_frame(first.value()), Status::Ok);
  EXPECT_EQ(world.free_frames(), free_before);
}

// A device region's 2 MiB page split by an unmap of 4 KiB in its middle:
// the split needs a page table; when there is none, the unmap returns
// ENOMEM and the large page is still there (it used to hit an assertion).
TEST(FaultInjectionHook, UnmapThatCannotSplitALargePageChangesNothing) {
  FailEvery hook;
  pagelab::test::VmWorld world(8192, {.poison_freed = true, .fail_hook = {&FailEvery::should_fail, &hook}});
  auto space = world.new_space();
  constexpr mm::u64 kVa = 0x40000000, M2 = 2 << 20;
  ASSERT_EQ(space->map(mm::MapRequest{.address = mm::VirtAddr(kVa), .length = 2 * M2, .prot = mm::Prot::ReadWrite,
                                      .kind = mm::RegionKind::Physical, .physical = mm::PhysAddr(0x2000000), .populate = true}),
            Status::Ok);
  ASSERT_EQ(world.walk(*space, kVa).page_bytes, M2);
  const mm::FrameCount free_before = world.free_frames();
  const mm::AddressSpaceStats stats_before = space->stats();
  hook.fail_at = hook.calls + 1;
  EXPECT_EQ(space->unmap(mm::VirtAddr(kVa + 0x1000), 0x1000), Status::OutOfMemory);
  EXPECT_EQ(world.walk(*space, kVa + 0x1000).page_bytes, M2);  // still mapped, still large
  EXPECT_EQ(space->stats().regions, stats_before.regions);
  EXPECT_EQ(world.free_frames(), free_before);
  // With memory, the same unmap splits the page and removes only its 4 KiB.
  EXPECT_EQ(space->unmap(mm::VirtAddr(kVa + 0x1000), 0x1000), Status::Ok);
  EXPECT_FALSE(world.walk(*space, kVa + 0x1000).present);
  EXPECT_EQ(world.walk(*space, kVa + 0x2000).page_bytes, 4096u);
  EXPECT_EQ(world.walk(*space, kVa + M2).page_bytes, M2);
  space->destroy();
}

// ---------------------------------------------------------------------------
// --inject specs.

TEST(FaultInjectionSpec, ParsesEveryKindAndPrintsItBack) {
  const emu::InjectionSpec spec = spec_of("evict:0.25,alloc-fail@7");
  emu::InjectionSpec more = spec;
  std::string error;
  ASSERT_TRUE(emu::add_injection("alloc-fail@3", more, error)) << error;
  ASSERT_TRUE(emu::add_injection("ipi-delay:4", more, error)) << error;
  ASSERT_TRUE(emu::add_injection("spec-fill:1", more, error)) << error;
  ASSERT_TRUE(emu::add_injection("alloc-fail@7", more, error)) << error;  // the same N again: once
  EXPECT_EQ(more.text(), "alloc-fail@3,alloc-fail@7,ipi-delay:4,spec-fill:1,evict:0.25");
  EXPECT_EQ(spec_of(more.text()).text(), more.text());
  EXPECT_TRUE(emu::InjectionSpec{}.empty());
  EXPECT_EQ(spec_of("spec-fill:.5").spec_fill, 0.5);
  EXPECT_EQ(spec_of("evict:0").evict, 0.0);
  EXPECT_EQ(spec_of("evict:1e-3").evict, 0.001);
  EXPECT_EQ(spec_of("ipi-delay:0").ipi_delay, 0u);
}

TEST(FaultInjectionSpec, RejectsBadSpecsNamingTheArgument) {
  const std::map<std::string, std::string> bad = {
      {"alloc-fail@0", "N >= 1"},
      {"alloc-fail@x", "N >= 1"},
      {"alloc-fail@", "N >= 1"},
      {"alloc-fail@-1", "N >= 1"},
      {"spec-fill:1.5", "from 0 to 1"},
      {"spec-fill:-0.1", "from 0 to 1"},
      {"evict:nan", "from 0 to 1"},
      {"evict:1e", "from 0 to 1"},
      {"evict:1e-", "from 0 to 1"},
      {"evict:e-3", "from 0 to 1"},
      {"evict:1e3", "from 0 to 1"},
      {"evict:1e-3x", "from 0 to 1"},
      {"evict:.", "from 0 to 1"},
      {"ipi-delay:10001", "from 0 to 10000"},
      {"ipi-delay:k", "from 0 to 10000"},
      {"foo", "unknown injection"},
      {"", "expected alloc-fail@N"},
      {"evict:0.1,evict:0.2", "given twice"},
      {"alloc-fail@1,", "unknown injection"},
  };
  for (const auto& [argument, why] : bad) {
    emu::InjectionSpec spec = spec_of("alloc-fail@2");
    std::string error;
    EXPECT_FALSE(emu::add_injection(argument, spec, error)) << argument;
    EXPECT_NE(error.find("--inject '" + argument + "'"), std::string::npos) << error;
    EXPECT_NE(error.find(why), std::string::npos) << error;
    EXPECT_EQ(spec.text(), "alloc-fail@2") << "a bad argument changes nothing";
  }
  emu::InjectionSpec spec = spec_of("ipi-delay:1");
  std::string error;
  EXPECT_FALSE(emu::add_injection("ipi-delay:2", spec, error));
  EXPECT_NE(error.find("ipi-delay is given twice"), std::string::npos) << error;
}

// The evict injection reports the entry Tlb::evict_random removes by
// counting valid entries in for_each's order: the two must agree.
TEST(FaultInjectionTlb, EvictRandomTakesTheEntryForEachCountsTo) {
  hw::Tlb tlb(hw::tlb_geometry_named("skylake").geometry);
  for (mm::u64 i = 0; i < 40; ++i) {
    hw::TlbEntry entry;
    entry.page = 0x10000000 + i * 0x1000;
    entry.frame = 0x200000 + i * 0x1000;
    entry.pcid = static_cast<hw::Pcid>(i % 3);
    tlb.insert(entry, i % 4 == 0 ? hw::AccessKind::Fetch : hw::AccessKind::Read);
  }
  for (mm::u64 random : {0ull, 1ull, 17ull, 12345678901ull, 0xFFFFFFFFFFFFFFFFull}) {
    const mm::u64 valid = tlb.valid_entries();
    ASSERT_GT(valid, 0u);
    mm::u64 pick = random % valid;
    std::optional<std::pair<hw::TlbEntry, hw::TlbLevel>> victim;
    std::map<std::pair<mm::u64, int>, int> before;
    tlb.for_each([&](const hw::TlbEntry& e, hw::TlbLevel level) {
      if (pick-- == 0) victim = {e, level};
      ++before[{e.page | e.pcid, static_cast<int>(level)}];
    });
    ASSERT_TRUE(victim);
    ASSERT_TRUE(tlb.evict_random(random));
    std::map<std::pair<mm::u64, int>, int> after;
    tlb.for_each([&](const hw::TlbEntry& e, hw::TlbLevel level) { ++after[{e.page | e.pcid, static_cast<int>(level)}]; });
    const std::pair<mm::u64, int> key{victim->first.page | victim->first.pcid, static_cast<int>(victim->second)};
    EXPECT_EQ(after[key], before[key] - 1) << "random " << random;
    EXPECT_EQ(tlb.valid_entries(), valid - 1);
  }
}

// ---------------------------------------------------------------------------
// alloc-fail@N for every N a run has.

// The run under way, for the SIGABRT handler: an mm::panic aborts the whole
// test binary, and the report must say which seed and N did it.
char g_current_run[256] = "";

void name_aborted_run(int) {
  const char prefix[] = "\nfault_injection_test: aborted during ";
  (void)!write(2, prefix, sizeof prefix - 1);
  (void)!write(2, g_current_run, strnlen(g_current_run, sizeof g_current_run));
  (void)!write(2, "\n", 1);
}

// Every scenario of examples/races, so a new race joins the sweep by being there.
std::vector<std::string> race_examples() {
  std::vector<std::string> out;
  for (const auto& entry : std::filesystem::directory_iterator(source_path("examples/races"))) {
    if (entry.path().extension() == ".scenario") out.push_back("examples/races/" + entry.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Seeds each race example is swept over (PAGELAB_INJECT_SEEDS, default 50).
std::uint64_t race_seeds() {
  const char* text = std::getenv("PAGELAB_INJECT_SEEDS");
  const std::uint64_t n = text != nullptr ? std::strtoull(text, nullptr, 10) : 0;
  return n != 0 ? n : 50;
}

class AllocFailSweep : public ::testing::TestWithParam<std::string> {};

std::string scenario_name(const ::testing::TestParamInfo<std::string>& param) {
  std::string name = std::filesystem::path(param.param).stem().string();
  for (char& c : name) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return name;
}

// For each seed: a clean run counts the allocations; then each one in turn
// fails. A failing run may break the scenario's expectations (an ENOMEM, a
// segv, a check that the failed write leaves unmet), and nothing else: no
// panic, no oracle violation, no leak, no half-done operation, no commitment
// or region object left, no deadlock.
TEST_P(AllocFailSweep, EveryAllocationFailingEndsCleanly) {
  const pagelab::scenario::Scenario s = load(GetParam());
  const bool race = GetParam().rfind("examples/races/", 0) == 0;
  const std::uint64_t seeds = race ? race_seeds() : s.machine.cpus > 1 ? 4 : 1;
  struct sigaction action {};
  action.sa_handler = name_aborted_run;
  action.sa_flags = SA_RESETHAND;
  sigaction(SIGABRT, &action, nullptr);
  std::uint64_t failed = 0;
  for (std::uint64_t seed = 1; seed <= seeds; ++seed) {
    snprintf(g_current_run, sizeof g_current_run, "%s, seed %llu, clean", GetParam().c_str(),
             static_cast<unsigned long long>(seed));
    const emu::RunResult clean = run(s, {}, RunSettings::seeded(seed));
    ASSERT_EQ(clean.exit_code, 0) << clean.report;
    ASSERT_GT(clean.allocations, 0u);
    for (std::uint64_t n = 1; n <= clean.allocations; ++n) {
      snprintf(g_current_run, sizeof g_current_run, "%s, seed %llu, alloc-fail@%llu", GetParam().c_str(),
               static_cast<unsigned long long>(seed), static_cast<unsigned long long>(n));
      const emu::RunResult r = run(s, spec_of(fmt::format("alloc-fail@{}", n)), RunSettings::seeded(seed));
      SCOPED_TRACE(fmt::format("seed {}, alloc-fail@{} of {}:\n{}", seed, n, clean.allocations, r.report));
      if (r.exit_code == 0) continue;  // the core found another way (a commitment, a 4 KiB page)
      ++failed;
      ASSERT_EQ(r.exit_code, 1);
      if (!race) {
        const std::string first = r.report.substr(0, r.report.find('\n'));
        EXPECT_TRUE(first.find("returned ENOMEM") != std::string::npos ||
                    first.find("segmentation fault") != std::string::npos)
            << "the failure names ENOMEM or a segv";
      }
      for (const char* never : {"oracle", "leaked", "half-done", "committed", "region objects", "deadlock"}) {
        ASSERT_EQ(r.report.find(never), std::string::npos) << never;
      }
    }
    // One past the last allocation: nothing fails.
    EXPECT_EQ(run(s, spec_of(fmt::format("alloc-fail@{}", clean.allocations + 1)), RunSettings::seeded(seed)).exit_code, 0);
  }
  signal(SIGABRT, SIG_DFL);
  EXPECT_GT(failed, 0u);
}

INSTANTIATE_TEST_SUITE_P(Scenarios, AllocFailSweep,
                         ::testing::Values("examples/cow_fork.scenario", "examples/demand_zero.scenario",
                                           "examples/large_pages.scenario", "examples/demo.scenario",
                                           "examples/stack_guard.scenario", "examples/pcid_switch.scenario",
                                           "examples/two_cpus_shared_space.scenario",
                                           "examples/tiny_tlb_evictions.scenario", "examples/unmap_then_access.scenario",
                                           "examples/write_readonly.scenario", "test/data/inject_fork_unmap.scenario",
                                           "test/data/inject_large_page_unmap.scenario",
                                           "test/data/inject_pin_teardown.scenario"),
                         scenario_name);

// Every race example, over PAGELAB_INJECT_SEEDS seeds (issue 1/10: at least 50).
INSTANTIATE_TEST_SUITE_P(Races, AllocFailSweep, ::testing::ValuesIn(race_examples()), scenario_name);

// ---------------------------------------------------------------------------
// Determinism and the trace.

TEST(FaultInjectionRun, SameSeedSameInjectionsSameTrace) {
  const std::string dir = ::testing::TempDir();
  for (const char* path : {"examples/races/concurrent_unmaps.scenario", "examples/races/table_freed_under_psc.scenario"}) {
    const pagelab::scenario::Scenario s = load(path);
    const emu::InjectionSpec inject = spec_of("spec-fill:0.4,evict:0.3,ipi-delay:3,alloc-fail@40");
    const emu::RunResult a = run(s, inject, RunSettings::seeded(7, dir + "/inject_a.jsonl"));
    const emu::RunResult b = run(s, inject, RunSettings::seeded(7, dir + "/inject_b.jsonl"));
    EXPECT_EQ(a.report, b.report);
    EXPECT_EQ(a.schedule, b.schedule);
    const std::string trace = read_file(dir + "/inject_a.jsonl");
    EXPECT_EQ(trace, read_file(dir + "/inject_b.jsonl")) << path;
    for (const char* what : {"spec-fill", "evict", "ipi-delay"}) {
      if (std::string_view(what) == "ipi-delay" && std::string_view(path).find("psc") != std::string_view::npos) continue;  // no IPI there
      EXPECT_NE(trace.find(fmt::format("\"event\":\"inject\",\"what\":\"{}\"", what)), std::string::npos) << path << ": " << what;
    }
    // Another seed, another run.
    run(s, inject, RunSettings::seeded(8, dir + "/inject_c.jsonl"));
    EXPECT_NE(trace, read_file(dir + "/inject_c.jsonl"));
  }
}

TEST(FaultInjectionRun, NothingToInjectChangesNothing) {
  const std::string dir = ::testing::TempDir();
  const pagelab::scenario::Scenario s = load("examples/races/concurrent_unmaps.scenario");
  run(s, {}, RunSettings::seeded(3, dir + "/plain.jsonl"));
  run(s, spec_of("spec-fill:0,evict:0,ipi-delay:0"), RunSettings::seeded(3, dir + "/zero.jsonl"));
  EXPECT_EQ(read_file(dir + "/plain.jsonl"), read_file(dir + "/zero.jsonl"));
}

TEST(FaultInjectionRun, AllocFailShowsInTheTrace) {
  const std::string out = ::testing::TempDir() + "/alloc_fail.jsonl";
  const emu::RunResult r = run(load("examples/demand_zero.scenario"), spec_of("alloc-fail@3"), RunSettings::seeded(1, out));
  EXPECT_EQ(r.exit_code, 1) << r.report;
  EXPECT_NE(read_file(out).find("\"event\":\"inject\",\"what\":\"alloc-fail\",\"n\":3,\"frames\":1,\"owner\":\"page-table\""),
            std::string::npos)
      << read_file(out);
}

TEST(FaultInjectionRun, ParallelRunsTakeInjectionsToo) {
  const pagelab::scenario::Scenario s = load("examples/races/missing_remote_shootdown.scenario");
  for (std::uint64_t seed = 1; seed <= 5; ++seed) {
    const emu::RunResult r = run(s, spec_of("spec-fill:0.5,evict:0.5,ipi-delay:5"), RunSettings::seeded(seed).parallel());
    EXPECT_EQ(r.exit_code, 0) << r.report;
  }
}

// ---------------------------------------------------------------------------
// Injection under the shootdown protocol: never a false alarm under the
// correct policy, and a bug that no plain run shows found under a broken one.

class RaceSweep : public ::testing::TestWithParam<std::string> {};

TEST_P(RaceSweep, InjectionsNeverBreakTheCorrectProtocol) {
  const pagelab::scenario::Scenario s = load("examples/races/" + GetParam() + ".scenario");
  // Speculative fills and evictions at every other boundary, interrupts
  // held back: 250 seeds, and 50 more with a long IPI delay.
  for (std::uint64_t seed = 1; seed <= 300; ++seed) {
    const emu::InjectionSpec inject = spec_of(seed <= 250 ? "spec-fill:0.5,evict:0.3,ipi-delay:2" : "spec-fill:0.2,ipi-delay:40");
    const emu::RunResult r = run(s, inject, RunSettings::seeded(seed));
    ASSERT_EQ(r.exit_code, 0) << "seed " << seed << ", --inject " << inject.text() << ":\n" << r.report;
  }
}

INSTANTIATE_TEST_SUITE_P(Races, RaceSweep,
                         ::testing::Values("concurrent_unmaps", "fork_while_writing", "missing_remote_shootdown",
                                           "pcid_reuse_after_switch", "protect_splits_huge_page",
                                           "protect_while_flush_pending", "table_freed_under_psc",
                                           "unmap_splits_huge_page"));

TEST(FaultInjectionRun, SpeculativeFillsFindAMissingShootdownNoAccessShows) {
  const pagelab::scenario::Scenario s = load("test/data/inject_untouched_page.scenario");
  int plain_failures = 0, injected_failures = 0;
  for (std::uint64_t seed = 1; seed <= 30; ++seed) {
    const RunSettings unsafe = RunSettings::seeded(seed).with(mm::ShootdownPolicy::UnsafeLocalOnly);
    plain_failures += run(s, {}, unsafe).exit_code != 0 ? 1 : 0;
    const emu::RunResult injected = run(s, spec_of("spec-fill:0.5"), unsafe);
    if (injected.exit_code != 0) {
      ++injected_failures;
      // The unmap's reference is dropped with CPU 1 still holding the
      // translation: O5, before the free would trip O1.
      EXPECT_NE(injected.report.find("oracle: O5 violated"), std::string::npos) << injected.report;
    }
    const emu::RunResult correct = run(s, spec_of("spec-fill:0.5"), RunSettings::seeded(seed));
    EXPECT_EQ(correct.exit_code, 0) << correct.report;
  }
  EXPECT_EQ(plain_failures, 0) << "without injection the bug stays hidden here";
  EXPECT_GT(injected_failures, 15) << "with speculative fills it shows on most seeds";
}

}  // namespace
