#include "emu/fuzz/campaign.hpp"

#include <fmt/format.h>

#include <cctype>
#include <cstdlib>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include "emu/cli/schedule_file.hpp"
#include "emu/fuzz/generator.hpp"
#include "emu/machine/emu_platform.hpp"
#include "emu/runner/run_workspace.hpp"
#include "emu/runner/scenario_runner.hpp"
#include "emu/scenario/parser.hpp"
#include "emu/scenario/printer.hpp"

namespace pagelab::fuzz {

namespace {

using Clock = std::chrono::steady_clock;

std::uint64_t mix(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

std::string first_line(const std::string& report) { return report.substr(0, report.find('\n')); }

// The calling worker's workspace (Campaign::work): every run of the worker,
// shrinking included, restarts its one machine.
thread_local emu::RunWorkspace* t_workspace = nullptr;

// What kind of judge the failure came from, for the report and the file name.
std::string invariant_of(const std::string& line) {
  const std::size_t oracle = line.find("oracle: ");
  if (oracle != std::string::npos) {
    const std::size_t start = oracle + 8;
    const std::size_t end = line.find(' ', start);
    return line.substr(start, end == std::string::npos ? std::string::npos : end - start);
  }
  if (line.find("poison") != std::string::npos) return "poison";
  if (line.find("leaked") != std::string::npos) return "leak";
  if (line.find("deadlock") != std::string::npos) return "deadlock";
  if (line.find("lock-order") != std::string::npos) return "lock-order";
  if (line.find("reference model") != std::string::npos) return "model";
  return "expectation";
}

std::string slug(const std::string& signature, const std::string& invariant) {
  std::string out = "fuzz-";
  for (const char c : invariant) out += std::isalnum(static_cast<unsigned char>(c)) != 0 ? static_cast<char>(std::tolower(c)) : '-';
  return out + fmt::format("-{:08x}", static_cast<std::uint32_t>(emu::scenario_text_hash(signature)));
}

struct RunOutcome {
  int exit_code = 0;
  std::string report;
  std::vector<std::uint32_t> schedule;
};

class Campaign {
 public:
  Campaign(const CampaignOptions& options, const CampaignHooks& hooks) : options_(options), hooks_(hooks) {}

  CampaignResult run() {
    start_ = Clock::now();
    const unsigned jobs = options_.jobs == 0 ? 1 : options_.jobs;
    std::vector<std::thread> workers;
    for (unsigned w = 0; w < jobs; ++w) workers.emplace_back([this] { work(); });
    while (!finished_.load()) {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait_for(lock, hooks_.interval, [&] { return finished_.load(); });
      if (hooks_.progress) {
        CampaignProgress p{cases_done_, runs_, static_cast<std::uint64_t>(result_.failures.size()), elapsed()};
        lock.unlock();
        hooks_.progress(p);
      }
    }
    for (std::thread& t : workers) t.join();
    result_.cases = cases_done_;
    result_.runs = runs_;
    result_.seconds = elapsed();
    result_.interrupted = hooks_.stop != nullptr && hooks_.stop->load() != 0;
    return std::move(result_);
  }

 private:
  double elapsed() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

  // The next case index of this shard, or nullopt when the campaign is over.
  std::optional<std::uint64_t> next_case() {
    std::lock_guard<std::mutex> guard(mutex_);
    const std::uint64_t limit = options_.cases.value_or(options_.time ? ~std::uint64_t{0} : 1000);
    const bool out_of_time = options_.time && Clock::now() - start_ >= *options_.time;
    const bool stopped = hooks_.stop != nullptr && hooks_.stop->load() != 0;
    const bool enough = options_.max_failures != 0 && result_.failures.size() >= options_.max_failures;
    if (handed_out_ >= limit || out_of_time || stopped || enough || result_.bad_input) return std::nullopt;
    if (options_.only_case) return handed_out_++ == 0 ? options_.only_case : std::nullopt;
    return options_.shard.index + (handed_out_++) * options_.shard.count;
  }

  void work() {
    emu::RunWorkspace workspace;  // this worker's machine, restarted for each run that fits it
    t_workspace = &workspace;
    while (const std::optional<std::uint64_t> index = next_case()) run_case(*index);
    t_workspace = nullptr;
    std::lock_guard<std::mutex> guard(mutex_);
    if (++workers_done_ == (options_.jobs == 0 ? 1 : options_.jobs)) {
      finished_.store(true);
      wake_.notify_all();
    }
  }

  GeneratorOptions generator_options() const {
    GeneratorOptions g;
    g.allocations_may_fail = !options_.inject.alloc_fail.empty();
    return g;
  }

  // One run. `hint`: a schedule to follow where it fits; `exact`: one to
  // replay step for step (a record's).
  RunOutcome run_one(const scenario::Scenario& s, std::uint64_t seed, const std::vector<std::uint32_t>* hint = nullptr,
                     const std::vector<std::uint32_t>* exact = nullptr) {
    emu::RunOptions run;
    run.seed = seed;
    if (hint != nullptr) run.schedule_hint = *hint;
    if (exact != nullptr) run.replay = *exact;
    run.strategy = run_strategy(seed);
    run.trace = false;
    run.shootdown = options_.shootdown;
    run.allow_unsafe = options_.allow_unsafe;
    run.inject = options_.inject;
    run.judge = judge_;
    run.workspace = t_workspace;
    emu::RunResult r = emu::run_scenario(s, run);
    emu::cpu_context = emu::CpuContext{};  // no CPU of this thread runs between runs
    {
      std::lock_guard<std::mutex> guard(mutex_);
      ++runs_;
    }
    return RunOutcome{r.exit_code, std::move(r.report), std::move(r.schedule)};
  }

  void run_case(std::uint64_t index) {
    const std::uint64_t seed = case_seed(options_.seed, index);
    ChoiceStream choices = ChoiceStream::recording(seed);
    const GeneratedCase generated = generate_case(choices, generator_options());
    const std::string name = fmt::format("case-{}.scenario", index);
    scenario::ParseResult parsed = scenario::parse_scenario(scenario::print_scenario(generated.scenario), name);
    if (!parsed.ok()) {
      std::lock_guard<std::mutex> guard(mutex_);
      result_.bad_input = "the generator wrote a case the parser refuses (a generator bug): " + parsed.error().to_string();
      return;
    }
    const scenario::Scenario s = std::move(parsed).scenario();
    for (std::uint64_t run_seed = 1; run_seed <= options_.seeds_per_case; ++run_seed) {
      const RunOutcome outcome = run_one(s, run_seed);
      if (outcome.exit_code == 0) continue;
      if (outcome.exit_code != 1) {
        std::lock_guard<std::mutex> guard(mutex_);
        if (!result_.bad_input) result_.bad_input = outcome.report;
        return;
      }
      const std::string signature = failure_signature(outcome.report);
      std::size_t slot = 0;
      {
        std::lock_guard<std::mutex> guard(mutex_);
        const auto [it, fresh] = by_signature_.try_emplace(signature, result_.failures.size());
        if (!fresh) {
          ++result_.failures[it->second].count;
          continue;
        }
        Failure f;
        f.signature = signature;
        f.first_line = first_line(outcome.report);
        f.invariant = invariant_of(f.first_line);
        f.count = 1;
        f.case_index = index;
        f.case_seed = seed;
        f.features = generated.features;
        f.run_seed = run_seed;
        f.found_after = elapsed();
        result_.failures.push_back(f);
        slot = it->second;
      }
      Failure shrunk = shrink_failure(choices.used(), fuzz::Witness{run_seed, outcome.schedule}, signature);
      std::lock_guard<std::mutex> guard(mutex_);
      Failure& f = result_.failures[slot];
      f.file = shrunk.file;
      f.record = shrunk.record;
      f.reproduce = shrunk.reproduce;
      f.run_seed_shrunk = shrunk.run_seed_shrunk;
      f.strategy = shrunk.strategy;
      f.lines_before = shrunk.lines_before;
      f.lines_after = shrunk.lines_after;
      f.shrink_seconds = shrunk.shrink_seconds;
    }
    std::lock_guard<std::mutex> guard(mutex_);
    ++cases_done_;
  }

  // Shrinks, then writes the case and its record (with --out).
  Failure shrink_failure(const std::vector<std::uint64_t>& choices, const Witness& found, const std::string& signature) {
    constexpr std::uint64_t kSeedsPerCandidate = 24;
    const auto fails = [&](const RunOutcome& outcome) {
      return outcome.exit_code == 1 && failure_signature(outcome.report) == signature;
    };
    const StillFails still_fails = [&](const scenario::Scenario& candidate, const Witness& last) -> std::optional<Witness> {
      RunOutcome outcome = run_one(candidate, last.seed, &last.schedule);
      if (fails(outcome)) return Witness{last.seed, std::move(outcome.schedule)};
      for (std::uint64_t seed = 1; seed <= kSeedsPerCandidate; ++seed) {
        outcome = run_one(candidate, seed);
        if (fails(outcome)) return Witness{seed, std::move(outcome.schedule)};
      }
      return std::nullopt;
    };
    ShrinkOptions shrink_options;
    shrink_options.budget = options_.shrink_budget;
    shrink_options.allocations_may_fail = generator_options().allocations_may_fail;
    const ShrinkResult shrunk = shrink(choices, found, still_fails, shrink_options);

    // A seed that fails the shrunk case on its own, without a schedule to
    // follow, makes the simplest reproduce command; the record always works.
    std::optional<std::uint64_t> plain_seed;
    for (std::uint64_t seed : {shrunk.witness.seed}) {
      if (fails(run_one(shrunk.scenario, seed))) plain_seed = seed;
    }
    for (std::uint64_t seed = 1; !plain_seed && seed <= 64; ++seed) {
      if (fails(run_one(shrunk.scenario, seed))) plain_seed = seed;
    }
    Failure out;
    out.run_seed_shrunk = plain_seed.value_or(shrunk.witness.seed);
    out.strategy = run_strategy(out.run_seed_shrunk).name();
    out.lines_before = shrunk.lines_before;
    out.lines_after = shrunk.lines_after;
    out.shrink_seconds = shrunk.seconds;
    std::string flags = fmt::format(" --seed {} --strategy {}", out.run_seed_shrunk, out.strategy);
    if (options_.shootdown) flags += fmt::format(" --shootdown {}", mm::shootdown_policy_name(*options_.shootdown));
    if (options_.allow_unsafe) flags += " --allow-unsafe";
    if (!options_.inject.empty()) flags += " --inject " + options_.inject.text();
    if (judge_) flags += " --judge";
    if (options_.out_dir.empty()) {
      out.reproduce = fmt::format("{} fuzz --seed {} --print-case N > case.scenario && {} run case.scenario{}", hooks_.program,
                                  options_.seed, hooks_.program, flags);
      return out;
    }
    write_case(shrunk, signature, plain_seed ? flags : std::string(), out);
    return out;
  }

  void write_case(const ShrinkResult& shrunk, const std::string& signature, const std::string& flags, Failure& out) {
    Failure first;
    {
      std::lock_guard<std::mutex> guard(mutex_);
      first = result_.failures[by_signature_.at(signature)];
    }
    const std::string base = (std::filesystem::path(options_.out_dir) / slug(signature, first.invariant)).string();
    out.file = base + ".scenario";
    out.record = base + ".schedule";
    // Without a plain seed (`flags` empty), only the record replays it.
    out.reproduce = flags.empty() ? fmt::format("{} replay {}", hooks_.program, emu::shell_quote(out.record))
                                  : fmt::format("{} run {}{}", hooks_.program, emu::shell_quote(out.file), flags);
    const std::vector<std::string> header = {
        "Found by pagelab fuzz: " + first.first_line,
        "invariant: " + first.invariant,
        "signature: " + signature,
        fmt::format("generated: case {} of `pagelab fuzz --seed {}` (case seed {:#x}; swarm: {})", first.case_index,
                    options_.seed, first.case_seed, first.features),
        fmt::format("found after {:.1f} s; shrunk from {} to {} lines in {:.1f} s ({} candidates)", first.found_after,
                    shrunk.lines_before, shrunk.lines_after, shrunk.seconds, shrunk.candidates),
        "reproduce: " + out.reproduce,
        fmt::format("replay:    {} replay {}", hooks_.program, emu::shell_quote(out.record)),
    };
    const std::string text = scenario::print_scenario(shrunk.scenario, header);
    std::error_code ec;
    std::filesystem::create_directories(options_.out_dir, ec);
    if (FILE* f = std::fopen(out.file.c_str(), "w")) {
      std::fwrite(text.data(), 1, text.size(), f);
      std::fclose(f);
    }
    // The record: the shrunk case's failing run, against the file as written.
    scenario::ParseResult parsed = scenario::parse_scenario(text, out.file);
    if (!parsed.ok()) return;
    const RunOutcome again = run_one(parsed.scenario(), shrunk.witness.seed, nullptr, &shrunk.witness.schedule);
    emu::ScheduleRecord record;
    record.scenario = out.file;
    record.scenario_hash = emu::scenario_text_hash(text);
    record.seed = shrunk.witness.seed;
    record.strategy = run_strategy(shrunk.witness.seed);
    record.allow_unsafe = options_.allow_unsafe;
    if (options_.shootdown) record.shootdown = std::string(mm::shootdown_policy_name(*options_.shootdown));
    if (!options_.inject.empty()) record.inject = options_.inject.text();
    record.judge = judge_;
    record.cpus = parsed.scenario().machine.cpus;
    record.schedule = again.schedule;
    std::string error;
    emu::write_schedule_record(out.record, record, error);
  }

  const CampaignOptions& options_;
  const CampaignHooks& hooks_;
  Clock::time_point start_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<bool> finished_{false};
  unsigned workers_done_ = 0;
  std::uint64_t handed_out_ = 0;
  std::uint64_t cases_done_ = 0;
  std::uint64_t runs_ = 0;
  CampaignResult result_;
  std::map<std::string, std::size_t> by_signature_;
  const bool judge_ = true;  // every run is judged by the reference model too (RunOptions::judge)
};

}  // namespace

std::uint64_t case_seed(std::uint64_t campaign_seed, std::uint64_t index) {
  return mix(mix(campaign_seed + 0x9E3779B97F4A7C15ull) ^ (index * 0xD1B54A32D192ED03ull));
}

emu::Strategy run_strategy(std::uint64_t seed) {
  emu::Strategy s;
  if (seed % 2 == 0) {
    s.kind = emu::Strategy::Kind::Pct;
    s.depth = 3;
  }
  return s;
}

std::string failure_signature(const std::string& report) {
  std::string line = first_line(report);
  // "FAIL: FILE:LINE:COL: message" or "FAIL: FILE: message": the message.
  if (line.rfind("FAIL: ", 0) == 0) {
    const std::size_t colon_space = line.find(": ", 6);
    line = colon_space == std::string::npos ? line.substr(6) : line.substr(colon_space + 2);
  }
  std::string key;
  for (std::size_t i = 0; i < line.size();) {
    const bool word_before = i > 0 && (std::isalnum(static_cast<unsigned char>(line[i - 1])) != 0 || line[i - 1] == '_');
    if (std::isdigit(static_cast<unsigned char>(line[i])) == 0 || word_before) {
      key += line[i++];
      continue;
    }
    std::size_t j = i + 1;
    if (line[i] == '0' && j < line.size() && (line[j] == 'x' || line[j] == 'X')) ++j;
    while (j < line.size() && std::isxdigit(static_cast<unsigned char>(line[j])) != 0) ++j;
    key += '#';
    i = j;
  }
  return key;
}

CampaignResult run_campaign(const CampaignOptions& options, const CampaignHooks& hooks) {
  return Campaign(options, hooks).run();
}

}  // namespace pagelab::fuzz
