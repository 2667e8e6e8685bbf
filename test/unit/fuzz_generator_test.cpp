// The workload generator of `pagelab fuzz` (src/emu/fuzz/generator.hpp) and
// the scenario printer (src/emu/scenario/printer.hpp): every case parses,
// the printer round-trips, a case is a function of its choices, any choice
// sequence gives a valid case, the swarm reaches every statement of the
// language, and generated cases hold under the correct protocol.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "emu/fuzz/generator.hpp"
#include "emu/runner/scenario_runner.hpp"
#include "emu/scenario/parser.hpp"
#include "emu/scenario/printer.hpp"

namespace {

namespace fuzz = pagelab::fuzz;
namespace sc = pagelab::scenario;

sc::Scenario parse_or_fail(const std::string& text, const std::string& what) {
  sc::ParseResult parsed = sc::parse_scenario(text, what);
  EXPECT_TRUE(parsed.ok()) << (parsed.ok() ? "" : parsed.error().to_string()) << "\n" << text;
  return parsed.ok() ? std::move(parsed).scenario() : sc::Scenario{};
}

std::string generated_text(std::uint64_t seed, std::vector<std::uint64_t>* choices = nullptr) {
  fuzz::ChoiceStream stream = fuzz::ChoiceStream::recording(seed);
  const fuzz::GeneratedCase c = fuzz::generate_case(stream);
  if (choices != nullptr) *choices = stream.used();
  return sc::print_scenario(c.scenario);
}

void collect(const std::vector<sc::Statement>& body, std::set<std::string>& words) {
  for (const sc::Statement& s : body) {
    words.insert(std::string(sc::keyword_of(s)));
    if (const auto* m = s.as<sc::MapStmt>()) {
      static const char* kKinds[] = {"anon", "shared", "stack", "phys"};
      words.insert(std::string("map:") + kKinds[static_cast<int>(m->word)]);
      if (m->populate) words.insert("map:populate");
      if (m->word == sc::MapKindWord::Phys && m->length >= (2u << 20)) words.insert("map:phys-2M");
    }
    if (const auto* r = s.as<sc::RepeatStmt>()) collect(r->body, words);
  }
}

TEST(FuzzGenerator, EveryCaseParsesAndThePrinterRoundTrips) {
  for (std::uint64_t seed = 1; seed <= 400; ++seed) {
    const std::string text = generated_text(seed);
    const sc::Scenario parsed = parse_or_fail(text, "case-" + std::to_string(seed));
    ASSERT_EQ(sc::print_scenario(parsed), text) << "seed " << seed;
  }
}

TEST(FuzzGenerator, TheBundledScenariosRoundTripThroughThePrinter) {
  for (const char* file : {"examples/demo.scenario", "examples/large_pages.scenario", "examples/stack_guard.scenario",
                           "examples/races/concurrent_unmaps.scenario", "examples/races/fork_copies_pinned_page.scenario"}) {
    std::string path = std::string(PAGELAB_SOURCE_DIR) + "/" + file;
    FILE* f = std::fopen(path.c_str(), "rb");
    ASSERT_NE(f, nullptr) << path;
    std::string text;
    char buffer[4096];
    for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, f)) > 0;) text.append(buffer, n);
    std::fclose(f);
    const sc::Scenario original = parse_or_fail(text, file);
    const std::string printed = sc::print_scenario(original);
    const sc::Scenario again = parse_or_fail(printed, file);
    EXPECT_EQ(sc::print_scenario(again), printed) << file;
    EXPECT_EQ(again.setup.size(), original.setup.size()) << file;
    EXPECT_EQ(again.programs.size(), original.programs.size()) << file;
    EXPECT_EQ(again.checks.size(), original.checks.size()) << file;
  }
}

TEST(FuzzGenerator, ACaseIsAFunctionOfItsChoices) {
  for (std::uint64_t seed = 1; seed <= 50; ++seed) {
    std::vector<std::uint64_t> choices;
    const std::string text = generated_text(seed, &choices);
    EXPECT_EQ(generated_text(seed), text);
    fuzz::ChoiceStream replay = fuzz::ChoiceStream::replaying(choices);
    EXPECT_EQ(sc::print_scenario(fuzz::generate_case(replay).scenario), text) << "seed " << seed;
  }
}

TEST(FuzzGenerator, AnyChoiceSequenceGivesAValidCase) {
  std::uint64_t x = 12345;
  for (int i = 0; i < 300; ++i) {
    std::vector<std::uint64_t> choices(static_cast<std::size_t>(i % 97));
    for (std::uint64_t& c : choices) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      c = (i % 3 == 0) ? (x >> 60) : (x >> 33);  // small values, and arbitrary ones
    }
    fuzz::ChoiceStream replay = fuzz::ChoiceStream::replaying(choices);
    parse_or_fail(sc::print_scenario(fuzz::generate_case(replay).scenario), "sequence-" + std::to_string(i));
  }
  // The empty sequence is the simplest case.
  fuzz::ChoiceStream empty = fuzz::ChoiceStream::replaying({});
  const sc::Scenario simplest = parse_or_fail(sc::print_scenario(fuzz::generate_case(empty).scenario), "empty");
  EXPECT_EQ(simplest.machine.cpus, 2u);
}

// The generator grows with the language: every statement keyword, map kind,
// option and machine setting shows up in some case.
TEST(FuzzGenerator, TheSwarmReachesTheWholeLanguage) {
  std::set<std::string> words;
  for (std::uint64_t seed = 1; seed <= 600; ++seed) {
    fuzz::ChoiceStream stream = fuzz::ChoiceStream::recording(seed);
    const sc::Scenario s = fuzz::generate_case(stream).scenario;
    collect(s.setup, words);
    for (const sc::CpuProgram& p : s.programs) collect(p.body, words);
    for (const sc::OptionSetting& o : s.options.given) words.insert("option:" + o.name);
    words.insert("cpus:" + std::to_string(s.machine.cpus));
    words.insert("tlb:" + s.machine.tlb_preset);
    if (s.machine.pcid) words.insert("pcid");
    if (s.machine.psc) words.insert("psc");
  }
  std::vector<std::string> wanted = {"map:anon", "map:shared", "map:stack", "map:phys", "map:phys-2M", "map:populate",
                                     "option:pmm", "option:flush-threshold", "cpus:2", "cpus:8", "tlb:tiny",
                                     "tlb:skylake", "tlb:zen2", "pcid", "psc"};
  sc::Statement probe;
  for (std::size_t i = 0; i < std::variant_size_v<sc::Statement::Op>; ++i) {
    // Every alternative of the statement variant, by its keyword.
    static const std::string_view kAll[] = {"space", "map",  "unmap", "protect", "fork",  "pin",     "unpin", "poke",
                                            "use",   "mode", "read",  "write",   "exec",  "barrier", "repeat"};
    static_assert(std::size(kAll) == std::variant_size_v<sc::Statement::Op>, "a new statement: teach the generator");
    wanted.emplace_back(kAll[i]);
  }
  for (const std::string& w : wanted) EXPECT_TRUE(words.count(w)) << "no generated case has " << w;
}

// Under the correct protocol every generated case holds, whatever the interleaving.
TEST(FuzzGenerator, GeneratedCasesHoldUnderTheCorrectProtocol) {
  for (std::uint64_t seed = 1; seed <= 40; ++seed) {
    const std::string text = generated_text(seed);
    const sc::Scenario s = parse_or_fail(text, "case-" + std::to_string(seed));
    for (std::uint64_t run_seed = 1; run_seed <= 5; ++run_seed) {
      pagelab::emu::RunOptions options;
      options.seed = run_seed;
      options.trace = false;
      const pagelab::emu::RunResult r = pagelab::emu::run_scenario(s, options);
      ASSERT_EQ(r.exit_code, 0) << "case " << seed << ", run seed " << run_seed << ":\n" << r.report << "\n" << text;
    }
  }
}

}  // namespace
