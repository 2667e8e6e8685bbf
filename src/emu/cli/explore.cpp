#include "emu/cli/explore.hpp"

#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>

#include "emu/cli/interrupt_scope.hpp"
#include "emu/cli/results_json.hpp"
#include "emu/cli/schedule_file.hpp"
#include "emu/machine/emu_platform.hpp"
#include "emu/runner/run_workspace.hpp"
#include "emu/runner/scenario_runner.hpp"

namespace pagelab::emu {

namespace {

// Decimal, or hex with 0x; the whole text; no sign, no overflow.
bool parse_seed_number(std::string_view text, std::uint64_t& out) {
  int base = 10;
  if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
    text.remove_prefix(2);
    base = 16;
  }
  if (text.empty()) return false;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out, base);
  return ec == std::errc() && end == text.data() + text.size();
}

bool is_word_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_'; }

// The first line of a report, without its line break.
std::string_view first_line(std::string_view report) {
  const std::size_t newline = report.find('\n');
  return newline == std::string_view::npos ? report : report.substr(0, newline);
}

// What the SIGABRT handler of explore_command reports: the seed each
// worker runs (plus one; 0 when idle) and the reproduce command around it.
// Process-wide because a signal handler can reach nothing else; only
// explore_command, one at a time, installs the handler and fills them.
constexpr unsigned kMaxJobs = 1024;
std::atomic<std::uint64_t> g_in_flight[kMaxJobs];
std::atomic<unsigned> g_jobs{0};
std::string g_reproduce_before;  // "pagelab run S"
std::string g_reproduce_after;   // " --strategy random ..."

void write_text(const char* text, std::size_t length) {
  while (length > 0) {
    const ssize_t n = ::write(STDERR_FILENO, text, length);
    if (n <= 0) return;
    text += n;
    length -= static_cast<std::size_t>(n);
  }
}
void write_text(const std::string& text) { write_text(text.data(), text.size()); }
void write_text(const char* text) { write_text(text, std::strlen(text)); }

// Async-signal-safe: atomics, write(2), and strings built before the sweep.
void on_abort(int) {
  for (unsigned i = 0; i < g_jobs.load() && i < kMaxJobs; ++i) {
    const std::uint64_t plus_one = g_in_flight[i].load();
    if (plus_one == 0) continue;
    char digits[24];
    const auto [end, ec] = std::to_chars(digits, digits + sizeof digits, plus_one - 1);
    if (ec != std::errc()) continue;
    write_text("pagelab explore: the process aborted while seed ");
    write_text(digits, static_cast<std::size_t>(end - digits));
    write_text(" was running; reproduce it with: ");
    write_text(g_reproduce_before);
    write_text(" --seed ");
    write_text(digits, static_cast<std::size_t>(end - digits));
    write_text(g_reproduce_after);
    write_text("\n");
  }
  // Returning lets abort() go on and end the process as it would have.
}

}  // namespace

std::optional<SeedRange> SeedRange::parse(std::string_view text, std::string& error) {
  const std::size_t dots = text.find("..");
  SeedRange range;
  const bool ok = dots == std::string_view::npos
                      ? parse_seed_number(text, range.first) && (range.last = range.first, true)
                      : parse_seed_number(text.substr(0, dots), range.first) && parse_seed_number(text.substr(dots + 2), range.last);
  if (!ok) {
    error = fmt::format("--seeds takes A..B (two numbers, A <= B) or one seed N, not '{}'", text);
    return std::nullopt;
  }
  if (range.first > range.last) {
    error = fmt::format("--seeds {}: the range is empty (the first seed, {}, is above the last, {})", text, range.first, range.last);
    return std::nullopt;
  }
  if (range.last - range.first == ~std::uint64_t{0}) {
    error = fmt::format("--seeds {}: 2^64 seeds are too many", text);
    return std::nullopt;
  }
  return range;
}

std::optional<Shard> Shard::parse(std::string_view text, std::string& error) {
  const std::size_t slash = text.find('/');
  Shard shard;
  if (slash == std::string_view::npos || !parse_seed_number(text.substr(0, slash), shard.index) ||
      !parse_seed_number(text.substr(slash + 1), shard.count)) {
    error = fmt::format("--shard takes I/N (shard I of N, counted from 0), not '{}'", text);
    return std::nullopt;
  }
  if (shard.count == 0) {
    error = fmt::format("--shard {}: N must be at least 1", text);
    return std::nullopt;
  }
  if (shard.index >= shard.count) {
    error = fmt::format("--shard {}: I must be below N (shards are numbered 0 to {})", text, shard.count - 1);
    return std::nullopt;
  }
  return shard;
}

std::uint64_t Shard::size(const SeedRange& range) const {
  const std::uint64_t span = range.last - range.first;  // seeds - 1; below 2^64 - 1 (parse refuses more)
  return index > span ? 0 : (span - index) / count + 1;
}

std::string failure_group_key(std::string_view report, std::string_view scenario_file) {
  std::string_view line = first_line(report);
  std::string key;
  // Keep "FAIL: FILE:LINE:COL" as it is: the place is what tells failures apart.
  const std::string prefix = fmt::format("FAIL: {}", scenario_file);
  if (line.substr(0, prefix.size()) == prefix) {
    std::size_t at = prefix.size();
    for (int part = 0; part < 2 && at < line.size() && line[at] == ':'; ++part) {
      std::size_t digits = at + 1;
      while (digits < line.size() && std::isdigit(static_cast<unsigned char>(line[digits])) != 0) ++digits;
      if (digits == at + 1) break;
      at = digits;
    }
    key.assign(line.substr(0, at));
    line.remove_prefix(at);
  }
  for (std::size_t i = 0; i < line.size();) {
    const bool starts_number = std::isdigit(static_cast<unsigned char>(line[i])) != 0 && (i == 0 || !is_word_char(line[i - 1]));
    if (!starts_number) {
      key += line[i++];
      continue;
    }
    std::size_t j = i + 1;
    if (line[i] == '0' && j < line.size() && (line[j] == 'x' || line[j] == 'X')) ++j;
    while (j < line.size() && std::isxdigit(static_cast<unsigned char>(line[j])) != 0) ++j;
    if (j < line.size() && is_word_char(line[j])) {  // "2nd", "0x1g": a word, not a number
      while (j < line.size() && is_word_char(line[j])) ++j;
      key.append(line.substr(i, j - i));
    } else {
      key += '#';
    }
    i = j;
  }
  return key;
}

ExploreResult explore(const scenario::Scenario& scenario, const ExploreOptions& options, const ExploreHooks& hooks) {
  ExploreResult result;
  result.planned = options.shard.size(options.seeds);
  const auto start = std::chrono::steady_clock::now();
  const auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };

  std::atomic<std::uint64_t> next{0};     // the next seed index to hand out
  std::atomic<std::uint64_t> done{0};
  std::atomic<std::uint64_t> failed{0};
  std::atomic<bool> stop{false};
  std::mutex mutex;                       // guards result's failure fields and `finished`
  std::condition_variable finished_cv;
  unsigned finished = 0;
  std::map<std::string, std::size_t> group_index;  // key -> index in result.groups

  const auto interrupted = [&] { return hooks.interrupt != nullptr && hooks.interrupt->load(std::memory_order_relaxed) != 0; };
  const auto worker = [&](unsigned index) {
    RunWorkspace workspace;  // this worker's machine, restarted for each seed
    for (;;) {
      if (stop.load(std::memory_order_acquire) || interrupted()) break;
      const std::uint64_t k = next.fetch_add(1, std::memory_order_relaxed);
      if (k >= result.planned) break;
      RunOptions run;
      run.seed = options.shard.seed(options.seeds, k);
      run.strategy = options.strategy;
      run.shootdown = options.shootdown;
      run.inject = options.inject;
      run.judge = options.judge;
      run.allow_unsafe = options.allow_unsafe;
      run.trace = false;
      if (hooks.prepare) hooks.prepare(run);
      run.workspace = &workspace;
      if (hooks.running) hooks.running(index, run.seed);
      RunResult outcome = run_scenario(scenario, run);
      if (hooks.running) hooks.running(index, std::nullopt);
      // No CPU of this thread runs between seeds.
      cpu_context = CpuContext{};
      if (outcome.exit_code == 0) {
        done.fetch_add(1, std::memory_order_relaxed);
        if (hooks.seed_done) {
          std::lock_guard<std::mutex> guard(mutex);
          hooks.seed_done(SeedOutcome{*run.seed, 0, {}});
        }
        continue;
      }
      std::lock_guard<std::mutex> guard(mutex);
      if (outcome.exit_code == 1 && hooks.seed_done) hooks.seed_done(SeedOutcome{*run.seed, 1, first_line(outcome.report)});
      if (outcome.exit_code != 1) {
        if (!result.bad_input) result.bad_input = outcome.report;
        stop.store(true, std::memory_order_release);
        break;
      }
      const std::uint64_t seed = *run.seed;
      const std::string key = failure_group_key(outcome.report, scenario.file);
      auto [it, inserted] = group_index.try_emplace(key, result.groups.size());
      if (inserted) result.groups.push_back(FailureGroup{key, std::string(first_line(outcome.report)), seed, 0});
      FailureGroup& group = result.groups[it->second];
      ++group.seeds;
      if (seed < group.first_seed) {
        group.first_seed = seed;
        group.example = std::string(first_line(outcome.report));
      }
      if (!result.first_failing_seed || seed < *result.first_failing_seed) {
        result.first_failing_seed = seed;
        result.first_report = std::move(outcome.report);
        result.first_schedule = std::move(outcome.schedule);
      }
      const std::uint64_t failures = failed.fetch_add(1, std::memory_order_relaxed) + 1;
      done.fetch_add(1, std::memory_order_relaxed);
      if (options.max_failures != 0 && failures >= options.max_failures) {
        result.stopped_early = true;
        stop.store(true, std::memory_order_release);
      }
    }
    std::lock_guard<std::mutex> guard(mutex);
    ++finished;
    finished_cv.notify_all();
  };

  const unsigned jobs = static_cast<unsigned>(std::clamp<std::uint64_t>(result.planned, 1, std::max(1u, options.jobs)));
  std::vector<std::thread> threads;
  threads.reserve(jobs);
  for (unsigned i = 0; i < jobs; ++i) threads.emplace_back(worker, i);
  {
    std::unique_lock<std::mutex> lock(mutex);
    while (finished < jobs) {
      if (finished_cv.wait_for(lock, hooks.interval, [&] { return finished == jobs; })) break;
      if (hooks.progress) {
        const ExploreProgress now{done.load(), result.planned, failed.load(), elapsed()};
        lock.unlock();  // the callback prints; the workers need the mutex meanwhile
        hooks.progress(now);
        lock.lock();
      }
    }
  }
  for (std::thread& t : threads) t.join();
  result.run = done.load();
  result.failed = failed.load();
  result.seconds = elapsed();
  if (interrupted()) result.interrupted_by = hooks.interrupt->load();
  // A stop for --max-failures may leave seeds unrun; then the run is "early"
  // only if some were left.
  if (result.run == result.planned) result.stopped_early = false;
  std::sort(result.groups.begin(), result.groups.end(),
            [](const FailureGroup& a, const FailureGroup& b) { return a.first_seed < b.first_seed; });
  return result;
}

std::string shell_quote(std::string_view word) {
  const bool plain = !word.empty() && std::all_of(word.begin(), word.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || std::string_view("_-./:=@%+,").find(c) != std::string_view::npos;
  });
  if (plain) return std::string(word);
  std::string out = "'";
  for (const char c : word) {
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  return out + "'";
}

int explore_command(const scenario::Scenario& scenario, const ExploreCommand& command) {
  const ExploreOptions& options = command.options;
  const bool terminal = isatty(fileno(stderr)) != 0;
  const std::uint64_t planned = options.shard.size(options.seeds);
  std::string shard_text;
  if (options.shard.count > 1) shard_text = fmt::format(", shard {}/{}", options.shard.index, options.shard.count);
  std::string policy = options.shootdown ? fmt::format(", shootdown {}", mm::shootdown_policy_name(*options.shootdown)) : "";
  if (!options.inject.empty()) policy += ", inject " + options.inject.text();
  std::printf("explore: %s, seeds %llu..%llu%s (%llu to run), strategy %s%s, %u jobs\n", command.scenario_path.c_str(),
              static_cast<unsigned long long>(options.seeds.first), static_cast<unsigned long long>(options.seeds.last),
              shard_text.c_str(), static_cast<unsigned long long>(planned), options.strategy.name().c_str(), policy.c_str(),
              static_cast<unsigned>(std::clamp<std::uint64_t>(planned, 1, std::max(1u, options.jobs))));
  std::fflush(stdout);

  // The command that reproduces one seed: BEFORE --seed S AFTER.
  const std::string reproduce_before = fmt::format("{} run {}", shell_quote(command.program), shell_quote(command.scenario_path));
  std::string reproduce_after = " --strategy " + options.strategy.name();
  if (options.shootdown) reproduce_after += fmt::format(" --shootdown {}", mm::shootdown_policy_name(*options.shootdown));
  if (!options.inject.empty()) reproduce_after += " --inject " + options.inject.text();
  if (options.judge) reproduce_after += " --judge";
  if (options.allow_unsafe) reproduce_after += " --allow-unsafe";

  bool progress_shown = false;
  const auto progress = [&](const ExploreProgress& p) {
    const double rate = p.seconds > 0 ? static_cast<double>(p.done) / p.seconds : 0;
    const double left = rate > 0 ? static_cast<double>(p.planned - p.done) / rate : 0;
    const std::string line = fmt::format("explore: {}/{} seeds ({:.0f}%), {:.0f} seeds/s, {} failing, about {:.0f} s left",
                                         p.done, p.planned, p.planned ? 100.0 * static_cast<double>(p.done) / static_cast<double>(p.planned) : 100.0,
                                         rate, p.failed, left);
    if (terminal) std::fprintf(stderr, "\r%s\033[K", line.c_str());
    else std::fprintf(stderr, "%s\n", line.c_str());
    std::fflush(stderr);
    progress_shown = true;
  };
  ExploreHooks hooks;
  if (!command.quiet) hooks.progress = progress;
  hooks.interval = terminal ? std::chrono::milliseconds(200) : std::chrono::milliseconds(5000);
  if (command.verbose) {
    hooks.seed_done = [&](const SeedOutcome& outcome) {
      if (progress_shown && terminal) std::fprintf(stderr, "\r\033[K");  // the progress line comes back at the next tick
      if (outcome.exit_code == 0) std::printf("seed %llu: pass\n", static_cast<unsigned long long>(outcome.seed));
      else std::printf("seed %llu: %.*s\n", static_cast<unsigned long long>(outcome.seed), static_cast<int>(outcome.first_line.size()), outcome.first_line.data());
    };
  }
  // An mm::panic in a run aborts the process: say which seeds were running.
  g_reproduce_before = reproduce_before;
  g_reproduce_after = reproduce_after;
  for (auto& slot : g_in_flight) slot.store(0);
  g_jobs.store(std::min(options.jobs, kMaxJobs));
  hooks.running = [](unsigned worker, std::optional<std::uint64_t> seed) {
    if (worker < kMaxJobs) g_in_flight[worker].store(seed ? *seed + 1 : 0);
  };
  struct sigaction action {};
  struct sigaction previous {};
  action.sa_handler = on_abort;
  sigemptyset(&action.sa_mask);
  sigaction(SIGABRT, &action, &previous);
  ExploreResult result;
  {
    const InterruptScope interrupts(
        "\npagelab explore: interrupted: no more seeds are handed out; the running ones finish, then the summary "
        "(interrupt again to stop at once)\n");
    hooks.interrupt = &interrupts.signal();
    result = explore(scenario, options, hooks);
    hooks.interrupt = nullptr;
  }
  sigaction(SIGABRT, &previous, nullptr);
  g_jobs.store(0);
  if (progress_shown && terminal) std::fprintf(stderr, "\r\033[K");

  if (result.bad_input) {
    std::fputs(result.bad_input->c_str(), stderr);
    return 2;
  }
  if (!command.json_path.empty()) {
    nlohmann::ordered_json json = explore_results_json(command, result);
    json["summary"]["interrupted"] = result.interrupted_by != 0;
    std::string error;
    if (!write_json_file(command.json_path, json, error)) {
      std::fprintf(stderr, "pagelab: --json %s\n", error.c_str());
      return kExitOutputFailed;
    }
  }
  const double rate = result.seconds > 0 ? static_cast<double>(result.run) / result.seconds : 0;
  const int interrupted = result.interrupted_by;
  std::string why_stopped;
  if (result.stopped_early) why_stopped = fmt::format(" (stopped after --max-failures {})", options.max_failures);
  else if (interrupted != 0) why_stopped = fmt::format(" (interrupted by {})", interrupt_signal_name(interrupted));
  std::printf("seeds run: %llu of %llu%s\n", static_cast<unsigned long long>(result.run),
              static_cast<unsigned long long>(result.planned), why_stopped.c_str());
  std::printf("time: %.2f s, %.1f seeds/s\n", result.seconds, rate);
  std::printf("failing seeds: %llu\n", static_cast<unsigned long long>(result.failed));
  // Interrupted: the summary as far as it got, and 128+N as a signal's end.
  const int failed_status = interrupted != 0 ? 128 + interrupted : kExitFailed;
  if (!result.first_failing_seed) {
    if (interrupted != 0) {
      std::printf("INTERRUPTED: every seed run held\n");
      return failed_status;
    }
    std::printf("PASS: every seed held\n");
    return kExitHeld;
  }
  std::printf("distinct failures: %zu\n", result.groups.size());
  for (const FailureGroup& group : result.groups) {
    std::printf("  %llu seed%s, first seed %llu: %s\n", static_cast<unsigned long long>(group.seeds), group.seeds == 1 ? "" : "s",
                static_cast<unsigned long long>(group.first_seed), group.example.c_str());
  }
  const std::uint64_t seed = *result.first_failing_seed;
  const std::string reproduce = reproduce_before + fmt::format(" --seed {}", seed) + reproduce_after;
  std::printf("first failing seed: %llu\n", static_cast<unsigned long long>(seed));
  std::printf("its report:\n");
  std::string report = result.first_report;
  for (std::size_t at = 0; at < report.size();) {
    const std::size_t newline = std::min(report.find('\n', at), report.size());
    std::printf("  | %s\n", report.substr(at, newline - at).c_str());
    at = newline + 1;
  }
  std::printf("reproduce: %s\n", reproduce.c_str());
  if (!command.record_path.empty()) {
    ScheduleRecord record;
    record.scenario = command.scenario_path;
    record.scenario_hash = command.scenario_hash;
    record.seed = seed;
    record.strategy = options.strategy;
    record.allow_unsafe = options.allow_unsafe;
    if (options.shootdown) record.shootdown = std::string(mm::shootdown_policy_name(*options.shootdown));
    if (!options.inject.empty()) record.inject = options.inject.text();
    record.judge = options.judge;
    record.cpus = scenario.machine.cpus;
    record.schedule = result.first_schedule;
    std::string error;
    if (!write_schedule_record(command.record_path, record, error)) {
      std::fprintf(stderr, "pagelab: %s\n", error.c_str());
      return kExitOutputFailed;
    }
    std::printf("recorded: %s (replay it: %s replay %s)\n", command.record_path.c_str(), shell_quote(command.program).c_str(),
                shell_quote(command.record_path).c_str());
  } else {
    std::printf("record it: %s --trace none --record seed-%llu.schedule, then %s replay seed-%llu.schedule\n",
                reproduce.c_str(), static_cast<unsigned long long>(seed), shell_quote(command.program).c_str(),
                static_cast<unsigned long long>(seed));
  }
  return failed_status;
}

}  // namespace pagelab::emu
