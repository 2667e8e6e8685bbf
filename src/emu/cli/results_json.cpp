#include "emu/cli/results_json.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#ifndef PAGELAB_VERSION
#define PAGELAB_VERSION "0.1.0"
#endif

namespace pagelab::emu {

namespace {

nlohmann::ordered_json envelope(const char* tool) {
  return nlohmann::ordered_json{{"schema", "pagelab-results"}, {"version", kResultsVersion}, {"tool", tool}, {"pagelab", PAGELAB_VERSION}};
}

nlohmann::ordered_json injected(const InjectionSpec& inject) { return inject.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(inject.text()); }

nlohmann::ordered_json policy(const std::optional<mm::ShootdownPolicy>& shootdown) {
  return shootdown ? nlohmann::ordered_json(mm::shootdown_policy_name(*shootdown)) : nlohmann::ordered_json(nullptr);
}

}  // namespace

nlohmann::ordered_json explore_results_json(const ExploreCommand& command, const ExploreResult& result) {
  const ExploreOptions& o = command.options;
  nlohmann::ordered_json j = envelope("explore");
  j["options"] = {{"scenario", command.scenario_path},
                  {"seeds", {o.seeds.first, o.seeds.last}},
                  {"shard", {o.shard.index, o.shard.count}},
                  {"strategy", o.strategy.name()},
                  {"shootdown", policy(o.shootdown)},
                  {"inject", injected(o.inject)},
                  {"jobs", o.jobs},
                  {"max_failures", o.max_failures}};
  j["summary"] = {{"runs", result.run},
                  {"planned", result.planned},
                  {"failing_runs", result.failed},
                  {"seconds", result.seconds},
                  {"stopped_early", result.stopped_early},
                  {"interrupted", false}};
  nlohmann::ordered_json failures = nlohmann::ordered_json::array();
  for (const FailureGroup& g : result.groups) {
    std::string reproduce = fmt::format("{} run {} --seed {} --strategy {}", shell_quote(command.program),
                                        shell_quote(command.scenario_path), g.first_seed, o.strategy.name());
    if (o.shootdown) reproduce += fmt::format(" --shootdown {}", mm::shootdown_policy_name(*o.shootdown));
    if (o.allow_unsafe) reproduce += " --allow-unsafe";
    if (!o.inject.empty()) reproduce += " --inject " + o.inject.text();
    failures.push_back({{"signature", g.key},
                        {"message", g.example},
                        {"count", g.seeds},
                        {"seed", g.first_seed},
                        {"strategy", o.strategy.name()},
                        {"scenario", command.scenario_path},
                        {"reproduce", reproduce}});
  }
  j["failures"] = failures;
  return j;
}

nlohmann::ordered_json fuzz_results_json(const fuzz::CampaignOptions& o, const fuzz::CampaignResult& result) {
  nlohmann::ordered_json j = envelope("fuzz");
  j["options"] = {{"seed", o.seed},
                  {"cases", o.cases ? nlohmann::ordered_json(*o.cases) : nlohmann::ordered_json(nullptr)},
                  {"time_s", o.time ? nlohmann::ordered_json(static_cast<double>(o.time->count()) / 1000) : nlohmann::ordered_json(nullptr)},
                  {"seeds_per_case", o.seeds_per_case},
                  {"shard", {o.shard.index, o.shard.count}},
                  {"shootdown", policy(o.shootdown)},
                  {"inject", injected(o.inject)},
                  {"jobs", o.jobs},
                  {"out", o.out_dir}};
  std::uint64_t failing = 0;
  for (const fuzz::Failure& f : result.failures) failing += f.count;
  j["summary"] = {{"runs", result.runs},
                  {"cases", result.cases},
                  {"failing_runs", failing},
                  {"seconds", result.seconds},
                  {"interrupted", result.interrupted}};
  nlohmann::ordered_json failures = nlohmann::ordered_json::array();
  for (const fuzz::Failure& f : result.failures) {
    failures.push_back({{"signature", f.signature},
                        {"invariant", f.invariant},
                        {"message", f.first_line},
                        {"count", f.count},
                        {"seed", f.run_seed_shrunk},
                        {"strategy", f.strategy},
                        {"scenario", f.file},
                        {"record", f.record},
                        {"reproduce", f.reproduce},
                        {"case", f.case_index},
                        {"case_seed", f.case_seed},
                        {"swarm", f.features},
                        {"found_after_s", f.found_after},
                        {"lines_before", f.lines_before},
                        {"lines_after", f.lines_after},
                        {"shrink_s", f.shrink_seconds}});
  }
  j["failures"] = failures;
  return j;
}

bool write_json_file(const std::string& path, const nlohmann::ordered_json& json, std::string& error) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) {
    error = path + ": " + std::strerror(errno);
    return false;
  }
  const std::string text = json.dump(2) + "\n";
  const bool written = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  const int saved = errno;
  const bool closed = std::fclose(f) == 0;
  if (!written || !closed) {
    error = path + ": " + std::strerror(written ? errno : saved);
    return false;
  }
  return true;
}

}  // namespace pagelab::emu
