// pagelab: the command line of the emulator.
//   pagelab run SCENARIO [--seed N] [--trace text|jsonl|chrome|none] [--trace-out FILE]
//                        [--cpu LIST] [--events LIST] [--addr LO-HI] [--ram SPEC]
//                        [--parallel] [--strategy random|pct:D] [--shootdown POLICY] [--allow-unsafe]
//                        [--keep-spaces] [--judge] [--record FILE] [--outcomes FILE] [--inject SPEC]...
//   pagelab replay FILE [--trace ...] [--trace-out FILE] [--cpu LIST] [--events LIST] [--addr LO-HI] [--ram SPEC]
//   pagelab explore SCENARIO --seeds A..B [--strategy random|pct:D] [--shootdown POLICY] [--jobs N] [--shard I/N]
//                            [--allow-unsafe] [--max-failures K] [--record FILE] [--json FILE] [--quiet] [--verbose]
//                            [--inject SPEC]...
//   pagelab inspect --ram SPEC [--space NAME] [--address VA] [--format text|dot]
//   pagelab trace FILE [--tlb tiny|skylake|zen2] [--json]
//   pagelab fuzz [--seed S] [--cases N | --time D] [--seeds-per-case K] [--jobs N] [--shard I/N]
//                [--shootdown POLICY] [--allow-unsafe] [--inject SPEC]... [--out DIR] [--json FILE]
// Exit status: 0 when the scenario held, 1 when it did not, 2 for bad input
// (an output that cannot be opened included), 3 when an output lost bytes
// (a full disk), 128+N for explore stopped by signal N (docs/EMULATOR.md).
// A reader that closes the pipe on standard output (`| head`) ends that
// output quietly: the command finishes its work and exits as it would have.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "emu/cli/explore.hpp"
#include "emu/cli/fuzz_command.hpp"
#include "emu/cli/inspect.hpp"
#include "emu/cli/lackey_replay.hpp"
#include "emu/cli/schedule_file.hpp"
#include "emu/io/output_file.hpp"
#include "emu/io/text_input.hpp"
#include "emu/runner/scenario_runner.hpp"
#include "emu/scenario/lexer.hpp"
#include "emu/scenario/parser.hpp"

#ifndef PAGELAB_VERSION
#define PAGELAB_VERSION "0.1.0"
#endif

namespace {

using namespace pagelab;

// "0,2,3" -> {0,2,3}; false on anything else.
bool parse_cpu_list(const std::string& text, std::set<std::uint32_t>& out) {
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (item.empty() || item.find_first_not_of("0123456789") != std::string::npos || item.size() > 2) return false;
    out.insert(static_cast<std::uint32_t>(std::stoul(item)));
  }
  return !out.empty();
}

bool parse_number(const std::string& text, std::uint64_t& out) {
  try {
    std::size_t used = 0;
    out = std::stoull(text, &used, 0);
    return used == text.size();
  } catch (...) {
    return false;
  }
}

int fail_usage(const std::string& message) {
  std::fprintf(stderr, "pagelab: %s\n", message.c_str());
  return 2;
}

// The options that choose what a run's trace shows and where it and the RAM
// go: `run` and `replay` share them. None of them changes the run itself.
struct OutputFlags {
  std::string trace_name = "text";
  std::string cpus, events, addr, ram;

  void add_to(CLI::App* app, emu::RunOptions& options) {
    app->add_option("--trace", trace_name, "text, jsonl, chrome or none (default text)");
    app->add_option("--trace-out", options.trace_out, "write the trace to FILE instead of standard output");
    app->add_option("--cpu", cpus, "trace only these CPUs, e.g. 0,2");
    app->add_option("--events", events, "trace only these events, e.g. access,fault,tlb.miss");
    app->add_option("--addr", addr, "trace only events at addresses LO-HI");
    app->add_option("--ram", ram, "anon (default), shm:NAME or file:PATH");
  }
};

// Applies the output flags to `options`: 0, or 2 after a message for a bad one.
int apply_output_flags(const OutputFlags& flags, emu::RunOptions& options) {
  const std::string& trace_name = flags.trace_name;
  if (trace_name == "none") {
    options.trace = false;
  } else if (trace_name == "text" || trace_name.empty()) {
    options.format = emu::TraceFormat::Text;
  } else if (trace_name == "jsonl") {
    options.format = emu::TraceFormat::Jsonl;
  } else if (trace_name == "chrome") {
    options.format = emu::TraceFormat::Chrome;
  } else {
    return fail_usage("--trace takes text, jsonl, chrome or none, not '" + trace_name + "'");
  }
  if (!flags.cpus.empty()) {
    std::set<std::uint32_t> set;
    if (!parse_cpu_list(flags.cpus, set)) return fail_usage("--cpu takes a list such as 0,2 not '" + flags.cpus + "'");
    options.filter.cpus = set;
  }
  if (!flags.events.empty()) {
    std::set<emu::EventKind> kinds;
    std::stringstream in(flags.events);
    std::string item;
    while (std::getline(in, item, ',')) {
      const auto kind = emu::event_kind_from_name(item);
      if (!kind) return fail_usage("--events: unknown event '" + item + "' (see docs/TRACE.md)");
      kinds.insert(*kind);
    }
    options.filter.kinds = kinds;
  }
  if (!flags.addr.empty()) {
    const std::string& addr = flags.addr;
    const auto dash = addr.find('-');
    std::uint64_t lo = 0, hi = 0;
    if (dash == std::string::npos || !parse_number(addr.substr(0, dash), lo) || !parse_number(addr.substr(dash + 1), hi) || lo > hi) {
      return fail_usage("--addr takes LO-HI such as 0x400000-0x7fffff, not '" + addr + "'");
    }
    options.filter.address_range = std::make_pair(lo, hi);
  }
  if (!flags.ram.empty()) {
    std::string error;
    const auto spec = emu::RamSpec::parse(flags.ram, error);
    if (!spec) return fail_usage(error);
    options.ram = *spec;
  }
  return 0;
}

constexpr emu::TextLimits kScenarioLimits{scenario::kMaxScenarioLineBytes, scenario::kMaxScenarioBytes, "a scenario"};

// Reads a scenario file into `text`, within kScenarioLimits. False after a
// message (the caller exits 2).
bool read_scenario_text(const std::string& path, std::string& text) {
  emu::TextFile file = emu::read_text_file(path, kScenarioLimits);
  if (!file.ok()) {
    std::fprintf(stderr, "%s\n", file.error->message("pagelab").c_str());
    return false;
  }
  text = std::move(file.text);
  return true;
}

// --cpu names CPUs the scenario has: 0, or 2 after a message.
int check_trace_cpus(const emu::RunOptions& options, const scenario::Scenario& scenario, const std::string& given) {
  if (!options.filter.cpus || options.filter.cpus->empty()) return 0;
  const std::uint32_t highest = *options.filter.cpus->rbegin();
  const std::uint32_t cpus = scenario.machine.cpus;
  if (highest < cpus) return 0;
  return fail_usage(fmt::format("--cpu {}: CPU {} does not exist: {} has {}", given, highest, scenario.file,
                                cpus == 1 ? std::string("1 CPU, cpu 0") : fmt::format("{} CPUs, 0 to {}", cpus, cpus - 1)));
}

// An output written only after the run (a schedule record): its directory
// must exist now, so a bad path costs no run. 0, or 2 after a message.
int check_output(const std::string& path) {
  if (path.empty()) return 0;
  if (const std::optional<std::string> problem = emu::check_output_path(path)) return fail_usage(*problem);
  return 0;
}

// Parses it; the first error, as FILE:LINE:COL: error:, goes to stderr.
std::optional<scenario::Scenario> parse_or_report(const std::string& text, const std::string& path) {
  scenario::ParseResult parsed = scenario::parse_scenario(text, path);
  if (!parsed.ok()) {
    std::fprintf(stderr, "%s\n", parsed.error().to_string().c_str());
    return std::nullopt;
  }
  return std::move(parsed).scenario();
}

// `--shootdown POLICY` (what examples/races/*.scenario name in their
// `# explore:` line): the policy, into `out`. 0, or 2 after a message for an
// unknown policy or an unsafe one without --allow-unsafe.
int parse_shootdown(const std::string& name, bool allow_unsafe, std::optional<mm::ShootdownPolicy>& out) {
  std::string names;
  for (const auto& entry : scenario::kShootdownPolicies) {
    if (entry.name == name) {
      if (entry.unsafe && !allow_unsafe) {
        return fail_usage("--shootdown " + name + " reproduces a bug on purpose: pass --allow-unsafe to run it");
      }
      out = entry.policy;
      return 0;
    }
    names += (names.empty() ? "" : ", ") + std::string(entry.name);
  }
  return fail_usage("--shootdown: unknown policy '" + name + "' (expected one of " + names + ")");
}

int parse_strategy(const std::string& text, emu::Strategy& out) {
  if (text.empty()) return 0;
  std::string error;
  const auto s = emu::Strategy::parse(text, error);
  if (!s) return fail_usage(error);
  out = *s;
  return 0;
}

// Runs, prints the report, and (with `record`) writes the schedule record:
// a record that cannot be written completely makes the status 3.
int run_and_report(const scenario::Scenario& scenario, const emu::RunOptions& options, const std::string& record_path,
                   std::uint64_t scenario_hash) {
  const emu::RunResult result = emu::run_scenario(scenario, options);
  std::fflush(stdout);
  std::fputs(result.report.c_str(), stderr);
  if (!record_path.empty() && result.exit_code != emu::kExitBadInput) {
    emu::ScheduleRecord record;
    record.scenario = scenario.file;
    record.scenario_hash = scenario_hash;
    record.seed = result.seed;
    record.strategy = options.strategy;
    record.allow_unsafe = options.allow_unsafe;
    record.keep_spaces = options.keep_spaces;
    record.judge = options.judge;
    if (options.shootdown) record.shootdown = std::string(mm::shootdown_policy_name(*options.shootdown));
    if (!options.inject.empty()) record.inject = options.inject.text();
    record.cpus = scenario.machine.cpus;
    record.schedule = result.schedule;
    std::string error;
    if (!emu::write_schedule_record(record_path, record, error)) {
      fail_usage(error);
      return emu::kExitOutputFailed;
    }
  }
  return result.exit_code;
}

int run_command(const std::string& path, const emu::RunOptions& base, const OutputFlags& flags, const std::string& strategy,
                const std::string& shootdown, const std::string& record_path) {
  emu::RunOptions options = base;
  if (const int status = apply_output_flags(flags, options)) return status;
  if (const int status = parse_strategy(strategy, options.strategy)) return status;
  if (!record_path.empty() && !options.deterministic) {
    return fail_usage("--record needs the deterministic scheduler: a --parallel run has no schedule to record");
  }
  if (const int status = check_output(record_path)) return status;
  std::string text;
  if (!read_scenario_text(path, text)) return 2;
  if (!shootdown.empty()) {
    if (const int status = parse_shootdown(shootdown, options.allow_unsafe, options.shootdown)) return status;
  }
  const std::optional<scenario::Scenario> parsed = parse_or_report(text, path);
  if (!parsed) return 2;
  if (const int status = check_trace_cpus(options, *parsed, flags.cpus)) return status;
  return run_and_report(*parsed, options, record_path, emu::scenario_text_hash(text));
}

// `pagelab replay FILE`: the recorded run again, choice for choice.
int replay_command(const std::string& file, const emu::RunOptions& base, const OutputFlags& flags) {
  emu::RunOptions options = base;
  if (const int status = apply_output_flags(flags, options)) return status;
  std::string error;
  const std::optional<emu::ScheduleRecord> record = emu::read_schedule_record(file, error);
  if (!record) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return 2;
  }
  // The scenario's path as recorded: from here, or else beside the record
  // (a record and its scenario copied to another machine together).
  std::string path = record->scenario;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec) && std::filesystem::path(path).is_relative()) {
    const std::string beside = (std::filesystem::path(file).parent_path() / path).string();
    if (std::filesystem::is_regular_file(beside, ec)) path = beside;
  }
  if (!std::filesystem::is_regular_file(path, ec)) {
    std::fprintf(stderr, "%s:%u: error: cannot read the recorded scenario '%s'\n", file.c_str(), record->scenario_line,
                 record->scenario.c_str());
    return 2;
  }
  std::string text;
  if (!read_scenario_text(path, text)) return 2;
  const std::uint64_t hash = emu::scenario_text_hash(text);
  if (record->scenario_hash && *record->scenario_hash != hash) {
    std::fprintf(stderr, "pagelab: warning: %s changed since %s was recorded; the schedule may not fit it\n", path.c_str(),
                 file.c_str());
  }
  const std::optional<scenario::Scenario> parsed = parse_or_report(text, path);
  if (!parsed) return 2;
  if (const int status = check_trace_cpus(options, *parsed, flags.cpus)) return status;
  if (record->shootdown) {
    if (const int status = parse_shootdown(*record->shootdown, record->allow_unsafe, options.shootdown)) return status;
  }
  options.seed = record->seed;
  options.strategy = record->strategy;
  options.allow_unsafe = record->allow_unsafe;
  options.keep_spaces = record->keep_spaces;
  options.judge = record->judge;
  options.inject = {};
  if (record->inject && !emu::add_injection(*record->inject, options.inject, error)) return fail_usage(error);
  options.deterministic = true;
  options.replay = record->schedule;
  const emu::RunResult result = emu::run_scenario(*parsed, options);
  std::fflush(stdout);
  std::fputs(result.report.c_str(), stderr);
  // The scheduler notices a recording that asks for a CPU that cannot run or
  // runs out (the run fails); one the run did not use up is caught here.
  if (result.exit_code == 0 && result.schedule.size() != record->schedule.size()) {
    std::fprintf(stderr, "FAIL: %s: the run took %zu scheduling steps, the recording has %zu: it does not fit this scenario\n",
                 file.c_str(), result.schedule.size(), record->schedule.size());
    return 1;
  }
  return result.exit_code;
}

int explore_command(const std::string& program, const std::string& path, emu::ExploreOptions options, const std::string& seeds,
                    const std::string& strategy, const std::string& shootdown, const std::string& shard, bool shard_given,
                    unsigned jobs, bool quiet, bool verbose, const std::string& record_path, const std::string& json_path) {
  std::string error;
  const auto range = emu::SeedRange::parse(seeds, error);
  if (!range) return fail_usage(error);
  options.seeds = *range;
  if (shard_given) {
    const auto s = emu::Shard::parse(shard, error);
    if (!s) return fail_usage(error);
    options.shard = *s;
  }
  if (const int status = parse_strategy(strategy, options.strategy)) return status;
  if (jobs == 0 || jobs > 1024) return fail_usage("--jobs takes 1 to 1024, not " + std::to_string(jobs));
  options.jobs = jobs;
  if (const int status = check_output(record_path)) return status;
  if (const int status = check_output(json_path)) return status;
  std::string text;
  if (!read_scenario_text(path, text)) return 2;
  if (!shootdown.empty()) {
    if (const int status = parse_shootdown(shootdown, options.allow_unsafe, options.shootdown)) return status;
  }
  const std::optional<scenario::Scenario> parsed = parse_or_report(text, path);
  if (!parsed) return 2;
  emu::ExploreCommand command;
  command.program = program;
  command.scenario_path = path;
  command.scenario_hash = emu::scenario_text_hash(text);
  command.options = options;
  command.quiet = quiet;
  command.verbose = verbose;
  command.record_path = record_path;
  command.json_path = json_path;
  return emu::explore_command(*parsed, command);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"pagelab: an x86-64 memory-management laboratory (the emulator)", "pagelab"};
  app.set_version_flag("--version", std::string("pagelab ") + PAGELAB_VERSION);
  app.require_subcommand(1);

  emu::RunOptions options;
  OutputFlags output;
  std::string path, strategy, shootdown, record_path;
  std::uint64_t seed = 0;
  bool parallel = false;
  CLI::App* run = app.add_subcommand("run", "run a scenario and print its trace");
  run->add_option("scenario", path, "the scenario file (docs/SCENARIOS.md)")->required();
  run->add_option("--seed", seed, "the scheduler's seed (overrides the scenario's `seed`)");
  output.add_to(run, options);
  run->add_option("--strategy", strategy, "random (default) or pct:D");
  run->add_flag("--parallel", parallel, "let the CPUs run freely (not deterministic)");
  run->add_option("--shootdown", shootdown, "the shootdown policy, instead of the scenario's `option shootdown=`");
  run->add_flag("--allow-unsafe", options.allow_unsafe, "accept the unsafe-* shootdown policies");
  run->add_flag("--judge", options.judge, "judge the run against the reference model (docs/FUZZING.md)");
  run->add_flag("--keep-spaces", options.keep_spaces,
                "leave the address spaces in RAM at the end, for `pagelab inspect` (skips the leak check)");
  run->add_option("--record", record_path, "write the schedule and options of this run to FILE, for `pagelab replay`");
  std::vector<std::string> inject_args;
  run->add_option("--inject", inject_args,
                  "inject a fault (repeatable): alloc-fail@N, ipi-delay:K, spec-fill:P, evict:P (docs/EMULATOR.md)")
      ->take_all()
      ->expected(1)
      ->allow_extra_args(false);
  std::string outcomes_path;
  run->add_option("--outcomes", outcomes_path,
                  "write each statement's and check's outcome to FILE, one line each (the kernel cross-check's format)");

  emu::RunOptions replay_options;
  OutputFlags replay_output;
  std::string replay_file;
  CLI::App* replay = app.add_subcommand("replay", "re-run a schedule recorded by run --record or explore --record");
  replay->add_option("file", replay_file, "the schedule record (docs/EMULATOR.md, \"Recorded schedules\")")->required();
  replay_output.add_to(replay, replay_options);

  emu::ExploreOptions explore_options;
  std::string explore_path, explore_seeds, explore_strategy, explore_shootdown, explore_shard, explore_record;
  unsigned explore_jobs = std::max(1u, std::thread::hardware_concurrency());
  bool explore_quiet = false, explore_verbose = false;
  CLI::App* explore = app.add_subcommand("explore", "run a scenario under every seed of a range and summarize the failures");
  explore->add_option("scenario", explore_path, "the scenario file (docs/SCENARIOS.md)")->required();
  explore->add_option("--seeds", explore_seeds, "the seeds, A..B inclusive (or one seed N)")->required();
  explore->add_option("--strategy", explore_strategy, "random (default) or pct:D");
  explore->add_option("--shootdown", explore_shootdown, "the shootdown policy, instead of the scenario's `option shootdown=`");
  std::vector<std::string> explore_inject;
  explore->add_option("--inject", explore_inject, "inject a fault into every seed's run (repeatable; as for run)")
      ->take_all()
      ->expected(1)
      ->allow_extra_args(false);
  explore->add_option("--jobs", explore_jobs, "worker threads (default: the number of host CPUs)");
  explore->add_option("--shard", explore_shard, "run only shard I of N: the seeds with (seed - A) % N == I");
  explore->add_flag("--allow-unsafe", explore_options.allow_unsafe, "accept the unsafe-* shootdown policies");
  explore->add_flag("--judge", explore_options.judge, "judge every seed against the reference model (docs/FUZZING.md)");
  explore->add_option("--max-failures", explore_options.max_failures, "stop handing out seeds after K failing ones (default: never)");
  explore->add_option("--record", explore_record, "write the first failing seed's schedule record to FILE");
  std::string explore_json;
  explore->add_option("--json", explore_json, "write the results as JSON to FILE (the schema fuzz --json shares)");
  explore->add_flag("--quiet", explore_quiet, "no progress on stderr");
  explore->add_flag("--verbose", explore_verbose, "a line per seed on stdout, in completion order");

  std::string inspect_ram, inspect_space, inspect_address, inspect_format = "text";
  CLI::App* inspect = app.add_subcommand("inspect", "walk the page tables in a named RAM (left by run --ram)");
  inspect->add_option("--ram", inspect_ram, "shm:NAME or file:PATH")->required();
  inspect->add_option("--space", inspect_space, "only this address space (default: every one)");
  inspect->add_option("--address", inspect_address, "show this address's translation, level by level");
  inspect->add_option("--format", inspect_format, "text (default) or dot (Graphviz)");

  std::string trace_file, trace_tlb = "skylake";
  bool trace_json = false;
  CLI::App* trace = app.add_subcommand("trace", "replay a valgrind lackey trace through one CPU's TLB and MMU");
  trace->add_option("file", trace_file, "the trace (valgrind --tool=lackey --trace-mem=yes)")->required();
  trace->add_option("--tlb", trace_tlb, "the TLB preset: tiny, skylake (default) or zen2");
  trace->add_flag("--json", trace_json, "print the counts as JSON");

  emu::FuzzArgs fuzz_args;
  CLI::App* fuzz = app.add_subcommand("fuzz", "generate scenarios, run them, and shrink what fails (docs/FUZZING.md)");
  emu::add_fuzz_options(*fuzz, fuzz_args);

  for (CLI::App* sub : {run, replay, explore, inspect, trace, fuzz}) sub->set_version_flag("--version", std::string("pagelab ") + PAGELAB_VERSION);

  // CLI11_PARSE would exit with CLI11's own codes (106 for a missing
  // option); every usage error is a 2 here, --help and --version a 0.
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  // A reader that closed the pipe on standard output must not kill the
  // process (SIGPIPE's default) before it writes its record or its files:
  // the write fails with EPIPE instead, and finish() keeps quiet about it.
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  sigaction(SIGPIPE, &ignore, nullptr);
  // Every command's standard output is checked once, at the end: a full
  // disk makes the status 3, a closed pipe changes nothing.
  const auto finish = [](int status) {
    if (const std::optional<std::string> problem = emu::finish_standard_output()) {
      std::fprintf(stderr, "pagelab: %s\n", problem->c_str());
      if (status == emu::kExitHeld || status == emu::kExitFailed) return emu::kExitOutputFailed;
    }
    return status;
  };
  if (inspect->parsed()) return finish(emu::inspect_command(inspect_ram, inspect_space, inspect_address, inspect_format));
  if (trace->parsed()) return finish(emu::trace_command(trace_file, trace_tlb, trace_json));
  if (run->parsed()) {
    if (run->count("--seed") > 0) options.seed = seed;
    options.deterministic = !parallel;
    for (const std::string& argument : inject_args) {
      std::string error;
      if (!emu::add_injection(argument, options.inject, error)) return fail_usage(error);
    }
    std::unique_ptr<emu::OutputFile> outcomes;
    std::mutex outcomes_mutex;  // --parallel CPUs report from their threads
    if (!outcomes_path.empty()) {
      std::string error;
      outcomes = emu::OutputFile::open(outcomes_path, error);
      if (!outcomes) return fail_usage(error);
      options.outcomes = [&](const emu::Outcome& outcome) {
        const std::lock_guard<std::mutex> guard(outcomes_mutex);
        outcomes->write(emu::format_outcome(outcome) + '\n');
      };
    }
    int status = run_command(path, options, output, strategy, shootdown, record_path);
    if (outcomes && !outcomes->close()) {
      fail_usage(outcomes->error());
      if (status != emu::kExitBadInput) status = emu::kExitOutputFailed;
    }
    return finish(status);
  }
  if (replay->parsed()) return finish(replay_command(replay_file, replay_options, replay_output));
  if (fuzz->parsed()) return finish(emu::fuzz_command(argv[0], fuzz_args));
  if (explore->parsed()) {
    for (const std::string& argument : explore_inject) {
      std::string error;
      if (!emu::add_injection(argument, explore_options.inject, error)) return fail_usage(error);
    }
    return finish(explore_command(argv[0], explore_path, explore_options, explore_seeds, explore_strategy, explore_shootdown,
                                  explore_shard, explore->count("--shard") > 0, explore_jobs, explore_quiet, explore_verbose,
                                  explore_record, explore_json));
  }
  return 2;
}
