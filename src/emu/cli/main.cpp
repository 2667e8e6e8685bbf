// pagelab: the command line of the emulator.
//   pagelab run SCENARIO [--seed N] [--trace text|jsonl|chrome|none] [--trace-out FILE]
//                        [--cpu LIST] [--events LIST] [--addr LO-HI] [--ram SPEC]
//                        [--parallel] [--strategy random|pct:D] [--allow-unsafe] [--keep-spaces]
//   pagelab inspect --ram SPEC [--space NAME] [--address VA] [--format text|dot]
//   pagelab trace FILE [--tlb tiny|skylake|zen2] [--json]
// Exit status: 0 when the scenario held, 1 when it did not, 2 for bad input.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "emu/cli/inspect.hpp"
#include "emu/cli/lackey_replay.hpp"
#include "emu/runner/scenario_runner.hpp"
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

int run_command(const std::string& path, const emu::RunOptions& base, const std::string& trace_name,
                const std::string& cpus, const std::string& events, const std::string& addr, const std::string& ram,
                const std::string& strategy) {
  emu::RunOptions options = base;
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
  if (!cpus.empty()) {
    std::set<std::uint32_t> set;
    if (!parse_cpu_list(cpus, set)) return fail_usage("--cpu takes a list such as 0,2 not '" + cpus + "'");
    options.filter.cpus = set;
  }
  if (!events.empty()) {
    std::set<emu::EventKind> kinds;
    std::stringstream in(events);
    std::string item;
    while (std::getline(in, item, ',')) {
      const auto kind = emu::event_kind_from_name(item);
      if (!kind) return fail_usage("--events: unknown event '" + item + "' (see docs/TRACE.md)");
      kinds.insert(*kind);
    }
    options.filter.kinds = kinds;
  }
  if (!addr.empty()) {
    const auto dash = addr.find('-');
    std::uint64_t lo = 0, hi = 0;
    if (dash == std::string::npos || !parse_number(addr.substr(0, dash), lo) || !parse_number(addr.substr(dash + 1), hi) || lo > hi) {
      return fail_usage("--addr takes LO-HI such as 0x400000-0x7fffff, not '" + addr + "'");
    }
    options.filter.address_range = std::make_pair(lo, hi);
  }
  std::string error;
  if (!ram.empty()) {
    const auto spec = emu::RamSpec::parse(ram, error);
    if (!spec) return fail_usage(error);
    options.ram = *spec;
  }
  if (!strategy.empty()) {
    const auto s = emu::Strategy::parse(strategy, error);
    if (!s) return fail_usage(error);
    options.strategy = *s;
  }

  std::ifstream in(path);
  if (!in) return fail_usage("cannot read scenario '" + path + "'");
  std::stringstream text;
  text << in.rdbuf();
  const scenario::ParseResult parsed = scenario::parse_scenario(text.str(), path);
  if (!parsed.ok()) {
    std::fprintf(stderr, "%s\n", parsed.error().to_string().c_str());
    return 2;
  }
  const emu::RunResult result = emu::run_scenario(parsed.scenario(), options);
  std::fflush(stdout);
  std::fputs(result.report.c_str(), result.exit_code == 0 ? stderr : stderr);
  return result.exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"pagelab: an x86-64 memory-management laboratory (the emulator)", "pagelab"};
  app.set_version_flag("--version", std::string("pagelab ") + PAGELAB_VERSION);
  app.require_subcommand(1);

  emu::RunOptions options;
  std::string path, trace_name = "text", cpus, events, addr, ram, strategy;
  std::uint64_t seed = 0;
  bool parallel = false;
  CLI::App* run = app.add_subcommand("run", "run a scenario and print its trace");
  run->add_option("scenario", path, "the scenario file (docs/SCENARIOS.md)")->required();
  run->add_option("--seed", seed, "the scheduler's seed (overrides the scenario's `seed`)");
  run->add_option("--trace", trace_name, "text, jsonl, chrome or none (default text)");
  run->add_option("--trace-out", options.trace_out, "write the trace to FILE instead of standard output");
  run->add_option("--cpu", cpus, "trace only these CPUs, e.g. 0,2");
  run->add_option("--events", events, "trace only these events, e.g. access,fault,tlb.miss");
  run->add_option("--addr", addr, "trace only events at addresses LO-HI");
  run->add_option("--ram", ram, "anon (default), shm:NAME or file:PATH");
  run->add_option("--strategy", strategy, "random (default) or pct:D");
  run->add_flag("--parallel", parallel, "let the CPUs run freely (not deterministic)");
  run->add_flag("--allow-unsafe", options.allow_unsafe, "accept the unsafe-* shootdown policies");
  run->add_flag("--keep-spaces", options.keep_spaces,
                "leave the address spaces in RAM at the end, for `pagelab inspect` (skips the leak check)");

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

  for (CLI::App* sub : {run, inspect, trace}) sub->set_version_flag("--version", std::string("pagelab ") + PAGELAB_VERSION);

  // CLI11_PARSE would exit with CLI11's own codes (106 for a missing
  // option); every usage error is a 2 here, --help and --version a 0.
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (inspect->parsed()) return emu::inspect_command(inspect_ram, inspect_space, inspect_address, inspect_format);
  if (trace->parsed()) return emu::trace_command(trace_file, trace_tlb, trace_json);
  if (run->parsed()) {
    if (run->count("--seed") > 0) options.seed = seed;
    options.deterministic = !parallel;
    return run_command(path, options, trace_name, cpus, events, addr, ram, strategy);
  }
  return 2;
}
