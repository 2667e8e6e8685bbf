// What the input fuzzers found (docs/FUZZING.md, "Input fuzzers"), kept
// found: every input under test/data/fuzz-regressions/TARGET/, and every
// seed the fuzzers start from, goes through the fuzzer's own property
// function (fuzz/input_properties.hpp), so the normal suite catches a
// regression without Clang; and the bounds the fixes set, with their exact
// messages. A new finding is a file dropped into that folder (named for what
// it shows), plus a case below when it needs a message of its own.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "emu/cli/lackey_replay.hpp"
#include "emu/cli/schedule_file.hpp"
#include "emu/hw/tlb_geometry.hpp"
#include "emu/machine/emu_platform.hpp"
#include "emu/machine/fault_injection.hpp"
#include "emu/runner/scenario_runner.hpp"
#include "emu/scenario/lexer.hpp"
#include "emu/scenario/parser.hpp"
#include "emu/scenario/printer.hpp"
#include "input_properties.hpp"

namespace pagelab {
namespace {

namespace fs = std::filesystem;
using fuzz_inputs::lackey_properties;
using fuzz_inputs::scenario_properties;
using fuzz_inputs::schedule_properties;

const fs::path kSource = PAGELAB_SOURCE_DIR;

std::string read_bytes(const fs::path& path) {
  std::string bytes(static_cast<std::size_t>(fs::file_size(path)), '\0');
  std::ifstream in(path, std::ios::binary);
  in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  EXPECT_TRUE(in.good()) << path;
  return bytes;
}

// The regular files of `dir` whose names end in `suffix` (any when empty).
std::vector<fs::path> files_in(const fs::path& dir, const std::string& suffix = "") {
  std::vector<fs::path> out;
  if (!fs::is_directory(dir)) return out;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_regular_file() && name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      out.push_back(entry.path());
    }
  }
  return out;
}

template <typename Property>
std::size_t expect_properties_hold(const std::vector<fs::path>& files, Property property) {
  for (const fs::path& file : files) {
    const std::optional<std::string> report = property(read_bytes(file));
    EXPECT_FALSE(report.has_value()) << file << ":\n" << report.value_or("");
  }
  return files.size();
}

std::vector<fs::path> operator+(std::vector<fs::path> a, const std::vector<fs::path>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

const fs::path kRegressions = kSource / "test/data/fuzz-regressions";

TEST(InputFuzzRegressions, ScenarioFindingsAndSeedsKeepTheirProperties) {
  const std::size_t n = expect_properties_hold(
      files_in(kRegressions / "scenario") + files_in(kSource / "examples", ".scenario") +
          files_in(kSource / "examples/races", ".scenario") + files_in(kSource / "test/boot/scenarios", ".scenario") +
          files_in(kSource / "test/data", ".scenario"),
      scenario_properties);
  EXPECT_GE(n, 30u);
}

TEST(InputFuzzRegressions, LackeyFindingsAndSeedsKeepTheirProperties) {
  const std::size_t n = expect_properties_hold(
      files_in(kRegressions / "lackey") + files_in(kSource / "fuzz/seeds/lackey") + std::vector{kSource / "test/data/demo.trace"},
      lackey_properties);
  EXPECT_GE(n, 5u);
}

TEST(InputFuzzRegressions, ScheduleFindingsAndSeedsKeepTheirProperties) {
  const std::size_t n =
      expect_properties_hold(files_in(kRegressions / "schedule") + files_in(kSource / "fuzz/seeds/schedule"), schedule_properties);
  EXPECT_GE(n, 4u);
}

// ---- scenario ----------------------------------------------------------------

std::string nested_repeats(std::size_t depth, int count = 2) {
  std::string text = "machine cpus=1 ram=16M\nspace a\nmap a 0x400000 4K rw\ncpu 0\nuse a\n";
  for (std::size_t i = 0; i < depth; ++i) text += "repeat " + std::to_string(count) + "\n";
  text += "write 0x400000 1\n";
  for (std::size_t i = 0; i < depth; ++i) text += "end\n";
  return text + "end\n";
}

// 700 nested repeats (9 KB) parsed, and crashed the run: the runner recurses
// once a level on a CPU's 256 KiB fiber stack. The parser bounds the nesting.
TEST(InputFuzzRegressions, RepeatsNestAtMost64Deep) {
  const std::string deepest = nested_repeats(scenario::kMaxRepeatNesting);
  const scenario::ParseResult ok = scenario::parse_scenario(deepest, "deep.scenario");
  ASSERT_TRUE(ok.ok()) << ok.error().to_string();
  EXPECT_EQ(scenario::print_scenario(scenario::parse_scenario(scenario::print_scenario(ok.scenario()), "p").scenario()),
            scenario::print_scenario(ok.scenario()));
  EXPECT_FALSE(scenario_properties(deepest).has_value());
  // The deepest runs, on its CPU's fiber stack (under the sanitizers too).
  const scenario::ParseResult once = scenario::parse_scenario(nested_repeats(scenario::kMaxRepeatNesting, 1), "deep.scenario");
  ASSERT_TRUE(once.ok()) << once.error().to_string();
  emu::RunOptions options;
  options.trace = false;
  const emu::RunResult run = emu::run_scenario(once.scenario(), options);
  emu::cpu_context = emu::CpuContext{};  // the run's machine is gone
  EXPECT_EQ(run.exit_code, 0) << run.report;
  for (const std::size_t depth : {std::size_t{65}, std::size_t{700}, std::size_t{100000}}) {
    const scenario::ParseResult deep = scenario::parse_scenario(nested_repeats(depth), "deep.scenario");
    ASSERT_FALSE(deep.ok()) << depth;
    // The 65th `repeat`, on line 5 + 65.
    EXPECT_EQ(deep.error().to_string(), "deep.scenario:70:1: error: repeats nest at most 64 deep (this one is 65 deep)");
  }
}

// Parses `text` and says how long it took.
double parse_seconds(const std::string& text, bool& ok) {
  const auto start = std::chrono::steady_clock::now();
  ok = scenario::parse_scenario(text, "big.scenario").ok();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// A scenario of 4 MiB (the bound) with 307,000 spaces took 3.5 minutes to
// parse: every name was looked up in a list. Linear now: well under a second
// in a Release build, a few under the sanitizers; the bound leaves room.
TEST(InputFuzzRegressions, FourMiBOfSpacesParsesInLinearTime) {
  std::string text = "machine cpus=1 ram=16M\n";
  for (std::size_t i = 0; text.size() < scenario::kMaxScenarioBytes - 64; ++i) text += "space s" + std::to_string(i) + "\n";
  text += "cpu 0\nuse s0\nend\n";
  bool ok = false;
  EXPECT_LT(parse_seconds(text, ok), 30.0);
  EXPECT_TRUE(ok);
}

// The same for barriers: each name's uses were gathered by a scan of all.
TEST(InputFuzzRegressions, FourMiBOfBarriersParsesInLinearTime) {
  std::string block;
  for (std::size_t i = 0; block.size() < scenario::kMaxScenarioBytes / 2 - 64; ++i) block += "barrier b" + std::to_string(i) + "\n";
  const std::string text = "machine cpus=2 ram=16M\ncpu 0\n" + block + "end\ncpu 1\n" + block + "end\n";
  bool ok = false;
  EXPECT_LT(parse_seconds(text, ok), 30.0);
  EXPECT_TRUE(ok);
}

// ---- lackey ------------------------------------------------------------------

std::optional<emu::LackeyStats> replay(const std::string& text, std::string& error) {
  std::istringstream in(text);
  return emu::replay_lackey(in, "t.lackey", hw::tlb_geometry_named("tiny").geometry, error);
}

// ` L 0,999999999` asked for 244,141 translations: a 4 KiB trace of such
// lines took 5 s (Release) and timed the fuzzer out. Lackey's sizes are at
// most 512; the reader takes up to a page.
TEST(InputFuzzRegressions, LackeyAccessesAreAtMostAPage) {
  std::string error;
  EXPECT_FALSE(replay(" L 0,999999999\n", error).has_value());
  EXPECT_EQ(error, "t.lackey:1: error: the size is larger than 4096 bytes (lackey's are at most 512)");
  EXPECT_FALSE(replay("I  0400,4\n S 1000,4097\n", error).has_value());
  EXPECT_EQ(error, "t.lackey:2: error: the size is larger than 4096 bytes (lackey's are at most 512)");
  EXPECT_FALSE(replay(" L 0,00000000000000000004097\n", error).has_value());  // zeros do not hide it
  const std::optional<emu::LackeyStats> page = replay(" L ffe,4096\n L 1000,4096\n L 0,0004096\n", error);
  ASSERT_TRUE(page.has_value()) << error;
  EXPECT_EQ(page->translations, 2u + 1u + 1u);  // the first crosses into 0x1000
  EXPECT_EQ(page->page_crossings, 1u);
}

// ---- schedule records --------------------------------------------------------

// An unknown key of carriage returns and other control bytes was quoted as
// it was: an error that rewrites the terminal's line. Quoted as \xNN now.
TEST(InputFuzzRegressions, RecordErrorsQuoteControlBytesPrintably) {
  std::string error;
  EXPECT_FALSE(emu::parse_schedule_record("pagelab-schedule 1\nsee\rd\x1b[2J 1\n", "r", error).has_value());
  EXPECT_EQ(error, "r:2: error: unknown key 'see\\x0dd\\x1b[2J' (expected scenario, scenario-fnv1a64, seed, strategy, "
                   "allow-unsafe, keep-spaces, judge, shootdown, inject, cpus, steps or schedule)");
  EXPECT_FALSE(emu::parse_schedule_record("pagelab-schedule 1\nstrategy pct:\x07\n", "r", error).has_value());
  EXPECT_EQ(error.find('\x07'), std::string::npos) << error;
}

// pagelab-fuzz-schedule: a record with `inject spec-fill:0.000018446744...`
// parsed, and re-formatted to `spec-fill:1.8446744073709547e-05`, which the
// reader refused: it kept InjectionSpec::text() of the spec, and text()
// writes a probability below 1e-4 in exponent form, which add_injection does
// not read. The reader keeps the text it checked now.
TEST(InputFuzzRegressions, RecordKeepsItsInjectAsWritten) {
  std::string error;
  const std::string text = "pagelab-schedule 1\nscenario s\nseed 1\nstrategy random\nallow-unsafe no\nkeep-spaces no\n"
                           "inject spec-fill:0.00001,alloc-fail@3\ncpus 1\nsteps 0\nschedule\nend\n";
  const std::optional<emu::ScheduleRecord> record = emu::parse_schedule_record(text, "r", error);
  ASSERT_TRUE(record.has_value()) << error;
  EXPECT_EQ(record->inject, "spec-fill:0.00001,alloc-fail@3");
  EXPECT_NE(emu::format_schedule_record(*record).find("\ninject spec-fill:0.00001,alloc-fail@3\n"), std::string::npos);
  EXPECT_FALSE(schedule_properties(text).has_value());
}

// The same bug on the writer's side: `pagelab run --inject spec-fill:0.00001
// --record R` wrote `inject spec-fill:1e-05`, which `pagelab replay R`
// refused, and every reproduce command printed with such an --inject failed.
// A probability may now carry an exponent, so what text() writes reads back.
TEST(InputFuzzRegressions, InjectionSpecTextParsesBack) {
  for (const char* argument : {"spec-fill:0.00001", "evict:0.0000184467440737095", "spec-fill:0.25,evict:1",
                               "spec-fill:5e-324", "evict:1E+0"}) {
    emu::InjectionSpec spec;
    std::string error;
    ASSERT_TRUE(emu::add_injection(argument, spec, error)) << error;
    emu::InjectionSpec again;
    EXPECT_TRUE(emu::add_injection(spec.text(), again, error)) << error;
    EXPECT_EQ(again.text(), spec.text());
  }
}

std::string record_with_steps(const std::string& steps, const std::string& entries) {
  return "pagelab-schedule 1\nscenario s.scenario\nseed 1\nstrategy random\nallow-unsafe no\nkeep-spaces no\ncpus 2\n"
         "steps " + steps + "\nschedule\n" + entries + "\nend\n";
}

// A record of 150 bytes (`steps 1073741824`, `0*1073741824`) made replay
// allocate 20 GB: runs of one CPU are written CPU*COUNT, so bytes do not
// bound choices. At most kMaxRecordSteps now, which the writer keeps to too.
TEST(InputFuzzRegressions, RecordsHoldAtMostKMaxRecordStepsChoices) {
  static_assert(emu::kMaxRecordSteps == std::uint64_t{1} << 26);
  std::string error;
  EXPECT_FALSE(emu::parse_schedule_record(record_with_steps("1073741824", "0*1073741824"), "r", error).has_value());
  EXPECT_EQ(error, "r:8: error: bad steps '1073741824': expected a number up to 67108864");
  EXPECT_FALSE(emu::parse_schedule_record(record_with_steps("67108865", "0*67108865"), "r", error).has_value());
  EXPECT_EQ(error, "r:8: error: bad steps '67108865': expected a number up to 67108864");
  // A count past steps stops at its entry, before anything is allocated for it.
  EXPECT_FALSE(emu::parse_schedule_record(record_with_steps("3", "1 0*18446744073709551615"), "r", error).has_value());
  EXPECT_EQ(error, "r:10: error: the schedule holds more choices than steps 3 (the file is corrupt?)");
  const std::optional<emu::ScheduleRecord> small = emu::parse_schedule_record(record_with_steps("5", "1 0*3 1"), "r", error);
  ASSERT_TRUE(small.has_value()) << error;
  EXPECT_EQ(small->schedule, (std::vector<std::uint32_t>{1, 0, 0, 0, 1}));
}

}  // namespace
}  // namespace pagelab
