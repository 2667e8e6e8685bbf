// `pagelab fuzz`: the command line of a fuzzing campaign (emu/fuzz/campaign.hpp).
//
//   pagelab fuzz [--seed S] [--cases N | --time DURATION] [--seeds-per-case K] [--jobs N] [--shard I/N]
//                [--shootdown POLICY [--allow-unsafe]] [--inject SPEC]... [--out DIR] [--json FILE]
//                [--shrink-time DURATION] [--max-failures K] [--quiet]
//   pagelab fuzz [--seed S] --print-case I       the scenario of case I, on stdout
//   pagelab fuzz [--seed S] --case I [...]       run (and shrink) case I alone
//
// Progress goes to stderr (cases/s, runs/s, failures so far, time left with
// --time); the summary to stdout: each failure once, by signature, with the
// file its shrunk case was written to and the command that reproduces it.
// --json writes the same results in the versioned schema `explore --json`
// shares (results_json.hpp). SIGINT or SIGTERM stops handing out cases; the
// cases under way finish, the summary and the JSON are written, and the exit
// status is 128 + the signal's number (130, 143).
//
// Exit status: 0 when nothing failed, 1 when something did, 2 for bad
// arguments, 128+N when stopped by signal N.
#pragma once

#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace pagelab::emu {

struct FuzzArgs {
  std::string seed = "1";
  std::string cases, time, shrink_time = "60s", shard, shootdown, out_dir, json_path, print_case, max_failures, only_case;
  std::string seeds_per_case = "10";
  unsigned jobs = 1;
  bool allow_unsafe = false;
  bool quiet = false;
  std::vector<std::string> inject;
};

// Adds the options of `pagelab fuzz` to its subcommand.
void add_fuzz_options(CLI::App& fuzz, FuzzArgs& args);

// Runs the command; returns the exit status.
int fuzz_command(const std::string& program, const FuzzArgs& args);

// "90", "90s", "5m", "2h", "1500ms": milliseconds. False for anything else.
bool parse_duration(const std::string& text, long long& milliseconds);

}  // namespace pagelab::emu
