// RunWorkspace (src/emu/runner/run_workspace.hpp) and what it rests on: a run
// on a restarted machine gives the same exit status, report, schedule, step
// count, allocation count and trace, byte for byte, as the same (scenario,
// seed, options) on a machine of its own. Checked over the bundled examples,
// the race scenarios under the unsafe policies their headers name (oracle
// violations: exit 1), runs with --inject (alloc-fail included), and
// generated cases (`pagelab fuzz --print-case N`), in one mixed sequence on
// one workspace, so that every kind of run follows every other kind and
// machines change shape (their RAM and CPUs exchanged) as well as keep it. Also:
// the device window a run wrote reads as zeros in the next, and a TLB after
// reset() behaves as a new one.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "emu/fuzz/campaign.hpp"
#include "emu/fuzz/generator.hpp"
#include "emu/hw/tlb.hpp"
#include "emu/machine/emu_platform.hpp"
#include "emu/runner/run_workspace.hpp"
#include "emu/runner/scenario_runner.hpp"
#include "emu/scenario/parser.hpp"
#include "emu/scenario/printer.hpp"

namespace {

namespace emu = pagelab::emu;
namespace fuzz = pagelab::fuzz;
namespace hw = pagelab::hw;
namespace sc = pagelab::scenario;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A scenario and the options one run of it takes (seed, workspace and trace aside).
struct Case {
  std::string name;
  sc::Scenario scenario;
  emu::RunOptions options;
};

sc::Scenario parse(const std::string& text, const std::string& name) {
  sc::ParseResult parsed = sc::parse_scenario(text, name);
  EXPECT_TRUE(parsed.ok()) << name << ": " << (parsed.ok() ? "" : parsed.error().to_string());
  return parsed.ok() ? std::move(parsed).scenario() : sc::Scenario{};
}

// "# explore: --shootdown P --strategy S --inject SPEC" in a race's header.
emu::RunOptions explore_options(const std::string& text) {
  emu::RunOptions options;
  const std::size_t at = text.find("# explore:");
  if (at == std::string::npos) return options;
  std::istringstream words(text.substr(at + 10, text.find('\n', at) - at - 10));
  std::string word, value, error;
  while (words >> word >> value) {
    if (word == "--strategy") {
      options.strategy = *emu::Strategy::parse(value, error);
    } else if (word == "--inject") {
      EXPECT_TRUE(emu::add_injection(value, options.inject, error)) << error;
    } else if (word == "--shootdown") {
      for (int p = 0; p <= static_cast<int>(mm::ShootdownPolicy::UnsafeFlushAfterUnlock); ++p) {
        if (value == mm::shootdown_policy_name(static_cast<mm::ShootdownPolicy>(p))) {
          options.shootdown = static_cast<mm::ShootdownPolicy>(p);
        }
      }
      options.allow_unsafe = true;
    }
  }
  return options;
}

std::vector<std::string> scenario_files(const std::string& directory) {
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(std::string(PAGELAB_SOURCE_DIR) + "/" + directory)) {
    if (entry.path().extension() == ".scenario") files.push_back(entry.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

emu::InjectionSpec injection(const std::string& text) {
  emu::InjectionSpec spec;
  std::string error;
  EXPECT_TRUE(emu::add_injection(text, spec, error)) << error;
  return spec;
}

// Every kind of run: examples as they are and with injections, races under
// the correct policy and under their unsafe one, generated cases under the
// correct policy, an unsafe one and with injections.
std::vector<Case> all_cases() {
  std::vector<Case> cases;
  for (const std::string& dir : {std::string("examples"), std::string("examples/races")}) {
    for (const std::string& path : scenario_files(dir)) {
      const std::string text = read_file(path);
      const std::string name = std::filesystem::path(path).filename().string();
      cases.push_back(Case{name, parse(text, name), {}});
      if (dir == "examples/races") {
        cases.push_back(Case{name + " (explore options)", parse(text, name), explore_options(text)});
      } else {
        Case injected{name + " (injected)", parse(text, name), {}};
        injected.options.inject = injection("spec-fill:0.3,evict:0.2,ipi-delay:2");
        cases.push_back(std::move(injected));
        Case failing{name + " (alloc-fail)", parse(text, name), {}};
        failing.options.inject = injection("alloc-fail@3,alloc-fail@9");
        cases.push_back(std::move(failing));
        // Small TLBs with other replacement policies: evictions all the
        // time, so the replacement state a restarted TLB starts from shows.
        for (const char* tlb : {"tiny:random:5", "tiny:fifo"}) {
          Case small{name + " (tlb=" + tlb + ")", parse(text, name), {}};
          small.scenario.machine.tlb_preset = tlb;
          small.options.inject = injection("evict:0.1");
          cases.push_back(std::move(small));
        }
      }
    }
  }
  for (std::uint64_t index = 0; index < 12; ++index) {
    fuzz::ChoiceStream choices = fuzz::ChoiceStream::recording(fuzz::case_seed(1, index));
    const std::string text = sc::print_scenario(fuzz::generate_case(choices).scenario);
    const std::string name = "case-" + std::to_string(index) + ".scenario";
    Case c{name, parse(text, name), {}};
    if (index % 3 == 1) {
      c.options.shootdown = index % 2 == 0 ? mm::ShootdownPolicy::UnsafeFreeBeforeAck : mm::ShootdownPolicy::UnsafeLocalOnly;
      c.options.allow_unsafe = true;
    } else if (index % 3 == 2) {
      c.options.inject = injection("spec-fill:0.2,evict:0.3");
    }
    cases.push_back(std::move(c));
  }
  return cases;
}

struct Outcome {
  int exit_code = 0;
  std::string report;
  std::vector<std::uint32_t> schedule;
  std::uint64_t steps = 0;
  std::uint64_t allocations = 0;
  std::string trace;  // when the run wrote one
};

// One run, its trace (with `trace_path`) in a file read back.
Outcome run(const Case& c, std::uint64_t seed, emu::RunWorkspace* workspace, const std::string& trace_path) {
  emu::RunOptions options = c.options;
  options.seed = seed;
  if (seed % 2 == 0 && options.strategy.kind == emu::Strategy::Kind::Random) options.strategy = emu::Strategy{emu::Strategy::Kind::Pct, 3};
  options.trace = !trace_path.empty();
  options.trace_out = trace_path;
  options.workspace = workspace;
  emu::RunResult r = emu::run_scenario(c.scenario, options);
  emu::cpu_context = emu::CpuContext{};
  Outcome out{r.exit_code, std::move(r.report), std::move(r.schedule), r.steps, r.allocations, {}};
  if (!trace_path.empty()) out.trace = read_file(trace_path);
  return out;
}

void expect_same(const Outcome& fresh, const Outcome& reused, const std::string& what) {
  EXPECT_EQ(fresh.exit_code, reused.exit_code) << what;
  EXPECT_EQ(fresh.report, reused.report) << what;
  EXPECT_EQ(fresh.steps, reused.steps) << what;
  EXPECT_EQ(fresh.allocations, reused.allocations) << what;
  EXPECT_TRUE(fresh.schedule == reused.schedule) << what << ": the schedules differ";
  EXPECT_TRUE(fresh.trace == reused.trace) << what << ": the traces differ (" << fresh.trace.size() << " and "
                                           << reused.trace.size() << " bytes)";
}

class TempDir {
 public:
  TempDir() {
    char pattern[] = "/tmp/pagelab-workspace-test-XXXXXX";
    path_ = ::mkdtemp(pattern);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// The sequence: the cases grouped by the shape of their machine (so that
// most runs restart the machine of a run of another kind: a failure, an
// injection, another scenario), the groups and the cases in each in a
// shuffled order, each case under three seeds in a row, as explore runs
// them; between groups the machine changes shape (its RAM and CPUs
// exchanged, often for kept ones).
void compare_sequence(bool with_trace) {
  std::vector<Case> cases = all_cases();
  ASSERT_GT(cases.size(), 40u);
  std::mt19937_64 shuffle(7);
  std::shuffle(cases.begin(), cases.end(), shuffle);
  const auto shape = [](const Case& c) {
    return std::to_string(c.scenario.machine.cpus) + "/" + std::to_string(c.scenario.machine.ram_bytes) + "/" +
           c.scenario.machine.tlb_preset;
  };
  std::map<std::string, std::size_t> group_of;  // shape -> the group's place (first sighting)
  for (const Case& c : cases) group_of.try_emplace(shape(c), group_of.size());
  std::stable_sort(cases.begin(), cases.end(),
                   [&](const Case& a, const Case& b) { return group_of.at(shape(a)) < group_of.at(shape(b)); });
  std::vector<std::pair<std::size_t, std::uint64_t>> order;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    for (std::uint64_t seed = 1; seed <= 3; ++seed) order.emplace_back(i, seed);
  }

  TempDir dir;
  emu::RunWorkspace workspace;
  std::map<int, int> exits;
  int injected = 0;
  for (const auto& [index, seed] : order) {
    const Case& c = cases[index];
    const std::string what = c.name + " seed " + std::to_string(seed);
    const Outcome fresh = run(c, seed, nullptr, with_trace ? dir.file("fresh.trace") : "");
    const Outcome reused = run(c, seed, &workspace, with_trace ? dir.file("reused.trace") : "");
    expect_same(fresh, reused, what);
    ++exits[fresh.exit_code];
    injected += c.options.inject.empty() ? 0 : 1;
    if (::testing::Test::HasFailure()) return;  // one difference says enough
  }
  // The sequence covered what it is for.
  EXPECT_GT(exits[0], 50) << "passing runs";
  EXPECT_GT(exits[1], 20) << "failing runs (oracle violations, failed allocations)";
  EXPECT_GT(injected, 30);
  const emu::RunWorkspace::Stats& stats = workspace.stats();
  EXPECT_EQ(stats.runs, order.size());
  EXPECT_EQ(stats.builds, 1u);
  EXPECT_EQ(stats.restarts, stats.runs - 1);
  EXPECT_GT(stats.reshapes, 10u);
}

TEST(RunWorkspace, ReusedMachinesGiveTheSameReportsSchedulesAndTraces) { compare_sequence(/*with_trace=*/true); }

// The failure reports of runs without a trace come from the workspace's own
// (kept) trace's tails.
TEST(RunWorkspace, ReusedMachinesGiveTheSameReportsWithTheTraceOff) { compare_sequence(/*with_trace=*/false); }

// The device window (phys=) is the one part of RAM the core never hands out:
// what a run wrote there must not be there for the next, whether the
// machine keeps its shape or not.
TEST(RunWorkspace, TheDeviceWindowIsZeroForTheNextRun) {
  const sc::Scenario writes = parse(
      "machine cpus=1 ram=16M\nspace s\nmap s 0x40000000 2M rw phys=0xC00000\ncpu 0\n  use s\n"
      "  write 0x40000008 0x1234\n  write 0x401ff000 0x5678\nend\n",
      "writes.scenario");
  const sc::Scenario reads = parse(
      "machine cpus=1 ram=16M\nspace s\nmap s 0x40000000 2M rw phys=0xC00000\ncpu 0\n  use s\n"
      "  read 0x40000008 expect 0\n  read 0x401ff000 expect 0\nend\n",
      "reads.scenario");
  const sc::Scenario reads_on_two = parse(
      "machine cpus=2 ram=16M\nspace s\nmap s 0x40000000 2M rw phys=0xC00000\ncpu 0\n  use s\n"
      "  read 0x40000008 expect 0\n  read 0x401ff000 expect 0\nend\n",
      "reads_on_two.scenario");
  const sc::Scenario writes_8m = parse(
      "machine cpus=1 ram=8M\nspace s\nmap s 0x40000000 4K rw phys=0x600000\ncpu 0\n  use s\n"
      "  write 0x40000010 0x9abc\nend\n",
      "writes_8m.scenario");
  const sc::Scenario reads_8m = parse(
      "machine cpus=1 ram=8M\nspace s\nmap s 0x40000000 4K rw phys=0x600000\ncpu 0\n  use s\n"
      "  read 0x40000010 expect 0\nend\n",
      "reads_8m.scenario");
  emu::RunWorkspace workspace;
  emu::RunOptions options;
  options.trace = false;
  options.workspace = &workspace;
  for (const sc::Scenario* s : {&writes, &reads, &writes, &reads_on_two, &writes, &reads, &writes, &writes_8m, &reads,
                                &reads_8m}) {
    const emu::RunResult r = emu::run_scenario(*s, options);
    EXPECT_EQ(r.exit_code, 0) << s->file << ": " << r.report;
  }
  // To two CPUs and back on the same RAM; to 8 MiB, back to the kept 16 MiB
  // RAM, and to the kept 8 MiB one.
  EXPECT_EQ(workspace.stats().reshapes, 5u);
}

// A named RAM (for inspect) gets a machine of its own: the workspace is not
// asked. (--keep-spaces is bypassed by the same test in run_scenario; its
// machine is left standing on purpose, which a unit test would leak.)
TEST(RunWorkspace, ANamedRamBypassesTheWorkspace) {
  const sc::Scenario s = parse("machine cpus=1 ram=8M\nspace s\nmap s 0x10000000 4K rw\ncpu 0\n  use s\n  write 0x10000000 1\nend\n",
                               "named.scenario");
  TempDir dir;
  emu::RunWorkspace workspace;
  emu::RunOptions options;
  options.trace = false;
  options.workspace = &workspace;
  std::string error;
  options.ram = *emu::RamSpec::parse("file:" + dir.file("ram"), error);
  EXPECT_EQ(emu::run_scenario(s, options).exit_code, 0);
  EXPECT_EQ(workspace.stats().runs, 0u);
  EXPECT_TRUE(std::filesystem::exists(dir.file("ram")));
  emu::cpu_context = emu::CpuContext{};
}

// hw::Tlb::reset(): after any history, the same operations give the same
// answers, counters, entries and evictions as on a new TLB, under each
// replacement policy and preset.
TEST(TlbReset, ARestartedTlbBehavesAsANewOne) {
  for (const char* preset : {"tiny", "skylake", "zen2", "tiny:fifo", "skylake:fifo", "skylake:random:42", "zen2:random:7"}) {
    const hw::NamedTlbGeometry named = hw::tlb_geometry_named(preset);
    ASSERT_TRUE(named.ok()) << preset;
    hw::Tlb used(named.geometry);
    std::mt19937_64 random(1);
    // A workout: fills of every size, global or not, under a few PCIDs;
    // lookups; invalidations of every kind; random evictions.
    const auto workout = [&](hw::Tlb& tlb, std::mt19937_64& r, std::vector<std::string>* log) {
      for (int step = 0; step < 3000; ++step) {
        const std::uint64_t va = (r() % 64) << (r() % 3 == 0 ? 21 : 12);
        const hw::Pcid pcid = static_cast<hw::Pcid>(r() % 3);
        const hw::AccessKind kind = r() % 4 == 0 ? hw::AccessKind::Fetch : hw::AccessKind::Read;
        switch (r() % 8) {
          case 0:
          case 1:
          case 2: {
            const hw::PageSize size = r() % 5 == 0 ? hw::PageSize::Size2M : hw::PageSize::Size4K;
            hw::TlbEntry e{.page = va & ~(hw::bytes_of(size) - 1), .frame = (r() % 4096) << 21, .size = size, .pcid = pcid,
                           .global = r() % 7 == 0, .rights = {.writable = true, .user = true, .no_execute = false},
                           .dirty = r() % 2 == 0};
            tlb.insert(e, kind);
            break;
          }
          case 3:
          case 4: {
            const hw::TlbLookup hit = tlb.lookup(va, pcid, kind);
            if (log) log->push_back(std::to_string(static_cast<int>(hit.level)) + ":" + std::to_string(hit.entry.frame));
            break;
          }
          case 5:
            tlb.invalidate_page(va, pcid);
            break;
          case 6:
            if (r() % 16 == 0) tlb.mov_to_cr3(pcid, r() % 2 == 0);
            else tlb.evict_random(r());
            break;
          default:
            if (r() % 32 == 0) tlb.flush_all();
            break;
        }
      }
      if (log) {
        const hw::TlbCounters& c = tlb.counters();
        log->push_back("counters " + std::to_string(c.l1_hits) + " " + std::to_string(c.l2_hits) + " " +
                       std::to_string(c.misses) + " " + std::to_string(c.evictions) + " " + std::to_string(c.fills) +
                       " version " + std::to_string(tlb.version()) + " valid " + std::to_string(tlb.valid_entries()));
        tlb.for_each([&](const hw::TlbEntry& e, hw::TlbLevel level) {
          log->push_back(std::to_string(e.page) + "/" + std::to_string(e.frame) + "/" + std::to_string(e.pcid) + "/" +
                         std::to_string(static_cast<int>(level)));
        });
      }
    };
    workout(used, random, nullptr);
    used.reset();
    hw::Tlb fresh(named.geometry);
    std::vector<std::string> on_used, on_fresh;
    std::mt19937_64 a(2), b(2);
    workout(used, a, &on_used);
    workout(fresh, b, &on_fresh);
    EXPECT_TRUE(on_used == on_fresh) << preset;
  }
}

}  // namespace
