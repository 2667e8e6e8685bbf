#include "emu/cli/fuzz_command.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <filesystem>

#include "emu/cli/interrupt_scope.hpp"
#include "emu/cli/results_json.hpp"
#include "emu/fuzz/campaign.hpp"
#include "emu/fuzz/generator.hpp"
#include "emu/scenario/ast.hpp"
#include "emu/scenario/printer.hpp"

namespace pagelab::emu {

namespace {

int usage_error(const std::string& message) {
  std::fprintf(stderr, "pagelab: %s\n", message.c_str());
  return 2;
}

bool parse_count(const std::string& text, std::uint64_t& out) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return !text.empty() && ec == std::errc() && end == text.data() + text.size();
}

}  // namespace

bool parse_duration(const std::string& text, long long& milliseconds) {
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end == text.data()) return false;
  const std::string unit(end, text.data() + text.size());
  std::uint64_t scale = 0;
  if (unit.empty() || unit == "s") scale = 1000;
  if (unit == "ms") scale = 1;
  if (unit == "m" || unit == "min") scale = 60'000;
  if (unit == "h") scale = 3'600'000;
  if (scale == 0 || value > (std::uint64_t{1} << 40) / scale) return false;
  milliseconds = static_cast<long long>(value * scale);
  return true;
}

void add_fuzz_options(CLI::App& fuzz, FuzzArgs& a) {
  fuzz.add_option("--seed", a.seed, "the campaign's seed: case I is generated from (S, I) (default 1)");
  fuzz.add_option("--cases", a.cases, "generate N cases (default 1000 without --time)");
  fuzz.add_option("--time", a.time, "run for DURATION (90s, 5m, 1h)");
  fuzz.add_option("--seeds-per-case", a.seeds_per_case, "scheduler seeds each case runs under (default 10)");
  fuzz.add_option("--jobs", a.jobs, "worker threads (default 1)");
  fuzz.add_option("--shard", a.shard, "run only shard I of N: the cases with index % N == I");
  fuzz.add_option("--shootdown", a.shootdown, "the shootdown policy every case runs under");
  fuzz.add_flag("--allow-unsafe", a.allow_unsafe, "accept the unsafe-* shootdown policies");
  fuzz.add_option("--inject", a.inject, "inject a fault into every run (repeatable; as for run)")->take_all();
  fuzz.add_option("--out", a.out_dir, "write each failure's shrunk case and schedule record into DIR");
  fuzz.add_option("--json", a.json_path, "write the results as JSON to FILE");
  fuzz.add_option("--shrink-time", a.shrink_time, "time to shrink each failure (default 60s)");
  fuzz.add_option("--max-failures", a.max_failures, "stop handing out cases after K distinct failures (default: never)");
  fuzz.add_option("--print-case", a.print_case, "print the scenario of case I and exit");
  fuzz.add_option("--case", a.only_case, "run (and shrink) case I alone: a failure found again, shrunk longer");
  fuzz.add_flag("--quiet", a.quiet, "no progress on stderr");
}

int fuzz_command(const std::string& program, const FuzzArgs& a) {
  fuzz::CampaignOptions o;
  std::uint64_t number = 0;
  if (!parse_count(a.seed, o.seed)) return usage_error("--seed takes a number, not '" + a.seed + "'");
  if (!a.print_case.empty()) {
    if (!parse_count(a.print_case, number)) return usage_error("--print-case takes a case number, not '" + a.print_case + "'");
    fuzz::ChoiceStream choices = fuzz::ChoiceStream::recording(fuzz::case_seed(o.seed, number));
    const fuzz::GeneratedCase c = fuzz::generate_case(choices);
    const std::string text = scenario::print_scenario(
        c.scenario, {fmt::format("case {} of `pagelab fuzz --seed {}` (swarm: {})", number, o.seed, c.features)});
    std::fwrite(text.data(), 1, text.size(), stdout);
    return std::fflush(stdout) == 0 ? 0 : 1;
  }
  if (!a.only_case.empty()) {
    if (!parse_count(a.only_case, number)) return usage_error("--case takes a case number, not '" + a.only_case + "'");
    o.only_case = number;
  }
  if (!a.cases.empty()) {
    if (!parse_count(a.cases, number) || number == 0) return usage_error("--cases takes a count of at least 1, not '" + a.cases + "'");
    o.cases = number;
  }
  long long ms = 0;
  if (!a.time.empty()) {
    if (!parse_duration(a.time, ms) || ms == 0) return usage_error("--time takes a duration (90s, 5m, 1h), not '" + a.time + "'");
    o.time = std::chrono::milliseconds(ms);
  }
  if (o.cases && o.time) return usage_error("--cases and --time: give one of them");
  if (!parse_duration(a.shrink_time, ms)) return usage_error("--shrink-time takes a duration (30s, 2m), not '" + a.shrink_time + "'");
  o.shrink_budget = std::chrono::milliseconds(ms);
  if (!a.max_failures.empty() && !parse_count(a.max_failures, o.max_failures)) {
    return usage_error("--max-failures takes a count, not '" + a.max_failures + "'");
  }
  if (!parse_count(a.seeds_per_case, o.seeds_per_case) || o.seeds_per_case == 0) {
    return usage_error("--seeds-per-case takes a count of at least 1, not '" + a.seeds_per_case + "'");
  }
  if (a.jobs == 0 || a.jobs > 1024) return usage_error("--jobs takes 1 to 1024, not " + std::to_string(a.jobs));
  o.jobs = a.jobs;
  std::string error;
  if (!a.shard.empty()) {
    const std::optional<Shard> shard = Shard::parse(a.shard, error);
    if (!shard) return usage_error(error);
    o.shard = *shard;
  }
  if (!a.shootdown.empty()) {
    const scenario::ShootdownPolicyName* found = nullptr;
    for (const auto& p : scenario::kShootdownPolicies) {
      if (p.name == a.shootdown) found = &p;
    }
    if (found == nullptr) return usage_error("--shootdown: unknown policy '" + a.shootdown + "'");
    if (found->unsafe && !a.allow_unsafe) {
      return usage_error("--shootdown " + a.shootdown + " reproduces a bug on purpose: pass --allow-unsafe to run it");
    }
    o.shootdown = found->policy;
  }
  o.allow_unsafe = a.allow_unsafe;
  for (const std::string& argument : a.inject) {
    if (!add_injection(argument, o.inject, error)) return usage_error(error);
  }
  if (!a.out_dir.empty()) {
    std::error_code ec;
    if (!std::filesystem::is_directory(a.out_dir, ec)) {
      const std::filesystem::path parent = std::filesystem::path(a.out_dir).parent_path();
      if (!parent.empty() && !std::filesystem::is_directory(parent, ec)) {
        return usage_error("--out " + a.out_dir + ": the directory " + parent.string() + " does not exist");
      }
      if (!std::filesystem::create_directory(a.out_dir, ec)) return usage_error("--out " + a.out_dir + ": " + ec.message());
    }
    o.out_dir = a.out_dir;
  }

  const InterruptScope interrupt("pagelab fuzz: stopping: the cases under way finish, then the summary\n");
  fuzz::CampaignHooks hooks;
  hooks.program = program;
  hooks.stop = &interrupt.signal();
  const bool terminal = isatty(STDERR_FILENO) != 0;
  if (!a.quiet) {
    hooks.interval = std::chrono::milliseconds(terminal ? 500 : 5000);
    hooks.progress = [&](const fuzz::CampaignProgress& p) {
      const double secs = p.seconds > 0 ? p.seconds : 1e-9;
      std::string left;
      if (o.time) left = fmt::format(", {:.0f} s left", std::max(0.0, static_cast<double>(o.time->count()) / 1000 - p.seconds));
      std::fprintf(stderr, "%sfuzz: %llu cases (%.0f/s), %llu runs (%.0f/s), %llu failures%s%s", terminal ? "\r" : "",
                   static_cast<unsigned long long>(p.cases), static_cast<double>(p.cases) / secs,
                   static_cast<unsigned long long>(p.runs), static_cast<double>(p.runs) / secs,
                   static_cast<unsigned long long>(p.failures), left.c_str(), terminal ? "   " : "\n");
    };
  }
  const fuzz::CampaignResult result = fuzz::run_campaign(o, hooks);
  if (!a.quiet && terminal) std::fputc('\n', stderr);
  if (result.bad_input) {
    std::fprintf(stderr, "%s", result.bad_input->c_str());
    return 2;
  }

  std::printf("fuzz: seed %llu, %llu cases, %llu runs in %.1f s (%.0f cases/s, %.0f runs/s)%s\n",
              static_cast<unsigned long long>(o.seed), static_cast<unsigned long long>(result.cases),
              static_cast<unsigned long long>(result.runs), result.seconds,
              static_cast<double>(result.cases) / std::max(result.seconds, 1e-9),
              static_cast<double>(result.runs) / std::max(result.seconds, 1e-9), result.interrupted ? " (interrupted)" : "");
  for (const fuzz::Failure& f : result.failures) {
    std::printf("FAIL [%s] %s\n", f.invariant.c_str(), f.signature.c_str());
    std::printf("  %llu failing runs; first: case %llu (swarm: %s) after %.1f s; shrunk from %llu to %llu lines in %.1f s\n",
                static_cast<unsigned long long>(f.count), static_cast<unsigned long long>(f.case_index), f.features.c_str(),
                f.found_after, static_cast<unsigned long long>(f.lines_before), static_cast<unsigned long long>(f.lines_after),
                f.shrink_seconds);
    if (!f.file.empty()) std::printf("  case: %s\n", f.file.c_str());
    std::printf("  reproduce: %s\n", f.reproduce.c_str());
  }
  if (result.failures.empty()) std::printf("PASS: no failure\n");
  if (std::fflush(stdout) != 0) {
    std::fprintf(stderr, "pagelab: standard output: %s\n", std::strerror(errno));
    return 1;
  }
  if (!a.json_path.empty() && !write_json_file(a.json_path, fuzz_results_json(o, result), error)) {
    std::fprintf(stderr, "pagelab: --json %s\n", error.c_str());
    return 2;
  }
  if (result.interrupted) return 128 + interrupt.signal().load();
  return result.failures.empty() ? 0 : 1;
}

}  // namespace pagelab::emu
