#include "emu/fuzz/shrinker.hpp"

#include <algorithm>
#include <set>

#include "emu/fuzz/generator.hpp"
#include "emu/scenario/parser.hpp"
#include "emu/scenario/printer.hpp"

namespace pagelab::fuzz {

namespace {

using namespace pagelab::scenario;
using Clock = std::chrono::steady_clock;

std::uint64_t body_lines(const std::vector<Statement>& body) {
  std::uint64_t n = 0;
  for (const Statement& s : body) {
    const auto* r = s.as<RepeatStmt>();
    n += r != nullptr ? 2 + body_lines(r->body) : 1;
  }
  return n;
}

// print -> parse: the candidate as the language has it, or nothing if it is not valid.
std::optional<Scenario> reparse(const Scenario& candidate) {
  ParseResult parsed = parse_scenario(print_scenario(candidate), "shrink.scenario");
  if (!parsed.ok()) return std::nullopt;
  return std::move(parsed).scenario();
}

class Shrinker {
 public:
  Shrinker(const StillFails& still_fails, const ShrinkOptions& options, const Witness& witness)
      : still_fails_(still_fails), options_(options), witness_(witness), deadline_(Clock::now() + options.budget) {}

  ShrinkResult run(const std::vector<std::uint64_t>& choices) {
    const Clock::time_point start = Clock::now();
    ShrinkResult result;
    best_choices_ = choices;
    best_ = generated(choices);
    best_lines_ = scenario_lines(best_);
    result.lines_before = best_lines_;
    shrink_choices();
    shrink_parts();
    result.scenario = best_;
    result.witness = witness_;
    result.lines_after = best_lines_;
    result.candidates = candidates_;
    result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    return result;
  }

 private:
  bool out_of_time() const { return Clock::now() >= deadline_; }

  Scenario generated(const std::vector<std::uint64_t>& choices) const {
    ChoiceStream replay = ChoiceStream::replaying(choices);
    GeneratorOptions options;
    options.allocations_may_fail = options_.allocations_may_fail;
    return reparse(generate_case(replay, options).scenario).value_or(Scenario{});
  }

  // Does `candidate` fail, and is it smaller? Adopts it if so.
  bool try_adopt(Scenario candidate, const std::vector<std::uint64_t>* choices = nullptr) {
    const std::uint64_t lines = scenario_lines(candidate);
    const bool smaller = lines < best_lines_ ||
                         (choices != nullptr && lines == best_lines_ && choices->size() < best_choices_.size());
    if (!smaller || candidate.programs.empty()) return false;
    ++candidates_;
    std::optional<Witness> witness = still_fails_(candidate, witness_);
    if (!witness) return false;
    witness_ = std::move(*witness);
    best_ = std::move(candidate);
    best_lines_ = lines;
    if (choices != nullptr) best_choices_ = *choices;
    return true;
  }

  bool try_choices(std::vector<std::uint64_t> choices) {
    ChoiceStream replay = ChoiceStream::replaying(choices);
    GeneratorOptions options;
    options.allocations_may_fail = options_.allocations_may_fail;
    std::optional<Scenario> candidate = reparse(generate_case(replay, options).scenario);
    if (!candidate) return false;
    const std::vector<std::uint64_t> used = replay.used();
    return try_adopt(std::move(*candidate), &used);
  }

  // Pass 1: the choice sequence.
  void shrink_choices() {
    for (bool progress = true; progress && !out_of_time();) {
      progress = false;
      for (std::size_t width : {16u, 8u, 4u, 2u, 1u}) {
        for (std::size_t i = 0; i + width <= best_choices_.size() && !out_of_time();) {
          std::vector<std::uint64_t> candidate = best_choices_;
          candidate.erase(candidate.begin() + static_cast<std::ptrdiff_t>(i),
                          candidate.begin() + static_cast<std::ptrdiff_t>(i + width));
          if (try_choices(std::move(candidate))) {
            progress = true;
          } else {
            i += width > 1 ? width / 2 : 1;
          }
        }
      }
      for (std::size_t i = 0; i < best_choices_.size() && !out_of_time(); ++i) {
        for (const std::uint64_t lower : {std::uint64_t{0}, best_choices_[i] / 2, best_choices_[i] - 1}) {
          if (best_choices_[i] == 0 || lower >= best_choices_[i]) continue;
          std::vector<std::uint64_t> candidate = best_choices_;
          candidate[i] = lower;
          if (try_choices(std::move(candidate))) {
            progress = true;
            break;
          }
        }
      }
    }
  }

  // Pass 2: the case's parts. Each round tries every edit once, adopting
  // each that keeps the failure; rounds repeat until one adopts nothing.
  void shrink_parts() {
    for (bool progress = true; progress && !out_of_time();) {
      progress = false;
      for (std::size_t p = best_.programs.size(); p-- > 0 && !out_of_time();) {
        Scenario c = best_;
        c.programs.erase(c.programs.begin() + static_cast<std::ptrdiff_t>(p));
        progress |= adopt_valid(std::move(c));
      }
      progress |= shrink_body(BodyPath{});
      for (std::size_t p = 0; p < best_.programs.size(); ++p) {
        progress |= shrink_body(BodyPath{static_cast<std::ptrdiff_t>(p), {}});
      }
      for (std::size_t i = best_.checks.size(); i-- > 0 && !out_of_time();) {
        Scenario c = best_;
        c.checks.erase(c.checks.begin() + static_cast<std::ptrdiff_t>(i));
        progress |= adopt_valid(std::move(c));
      }
      progress |= shrink_machine();
    }
  }

  bool adopt_valid(const Scenario& candidate) {
    std::optional<Scenario> valid = reparse(candidate);
    return valid && try_adopt(std::move(*valid));
  }

  // Where a body is: the set-up (program < 0) or a CPU program, then the
  // indices of the repeat blocks down to it.
  struct BodyPath {
    std::ptrdiff_t program = -1;
    std::vector<std::size_t> repeats;
  };
  static std::vector<Statement>& body_at(Scenario& s, const BodyPath& path) {
    std::vector<Statement>* body = path.program < 0 ? &s.setup : &s.programs[static_cast<std::size_t>(path.program)].body;
    for (const std::size_t i : path.repeats) body = &std::get<RepeatStmt>((*body)[i].op).body;
    return *body;
  }

  // Statements of one body, from the last: drop each; unwrap or shorten
  // each repeat; recurse into it.
  bool shrink_body(const BodyPath& path) {
    bool progress = false;
    for (std::size_t i = body_at(best_, path).size(); i-- > 0 && !out_of_time();) {
      if (i >= body_at(best_, path).size()) continue;
      {
        Scenario c = best_;
        std::vector<Statement>& body = body_at(c, path);
        body.erase(body.begin() + static_cast<std::ptrdiff_t>(i));
        if (adopt_valid(c)) {
          progress = true;
          continue;
        }
      }
      if (!body_at(best_, path)[i].is<RepeatStmt>()) continue;
      {
        Scenario c = best_;  // unwrap: the body once, in place of the block
        std::vector<Statement>& body = body_at(c, path);
        std::vector<Statement> inner = std::get<RepeatStmt>(body[i].op).body;
        body.erase(body.begin() + static_cast<std::ptrdiff_t>(i));
        body.insert(body.begin() + static_cast<std::ptrdiff_t>(i), inner.begin(), inner.end());
        if (adopt_valid(c)) {
          progress = true;
          continue;
        }
      }
      for (const std::uint64_t count : {std::uint64_t{1}, std::uint64_t{2}}) {
        Scenario c = best_;
        RepeatStmt& r = std::get<RepeatStmt>(body_at(c, path)[i].op);
        if (r.count <= count) break;
        r.count = count;
        // Same lines: adopted when it still fails (a shorter run, an easier read).
        std::optional<Scenario> valid = reparse(c);
        if (!valid) continue;
        ++candidates_;
        if (std::optional<Witness> witness = still_fails_(*valid, witness_)) {
          witness_ = std::move(*witness);
          best_ = std::move(*valid);
          break;
        }
      }
      BodyPath inner = path;
      inner.repeats.push_back(i);
      progress |= shrink_body(inner);
    }
    return progress;
  }

  // Fewer CPUs, less RAM, no options, the default TLB, no PCIDs or
  // paging-structure caches. Same line count: adopted when still failing.
  bool shrink_machine() {
    bool progress = false;
    const auto attempt = [&](auto edit) {
      Scenario c = best_;
      if (!edit(c)) return;
      std::optional<Scenario> valid = reparse(c);
      if (!valid) return;
      ++candidates_;
      if (std::optional<Witness> witness = still_fails_(*valid, witness_)) {
        witness_ = std::move(*witness);
        best_lines_ = scenario_lines(*valid);
        best_ = std::move(*valid);
        progress = true;
      }
    };
    attempt([](Scenario& s) {
      std::uint32_t needed = 1;
      for (const CpuProgram& p : s.programs) needed = std::max(needed, p.cpu + 1);
      if (needed >= s.machine.cpus) return false;
      s.machine.cpus = needed;
      return true;
    });
    attempt([](Scenario& s) {
      if (s.options.given.empty()) return false;
      s.options = Options{};
      return true;
    });
    attempt([](Scenario& s) {
      if (s.machine.tlb_preset == "skylake") return false;
      s.machine.tlb_preset = "skylake";
      return true;
    });
    attempt([](Scenario& s) { return std::exchange(s.machine.pcid, false); });
    attempt([](Scenario& s) { return std::exchange(s.machine.psc, false); });
    return progress;
  }

  const StillFails& still_fails_;
  const ShrinkOptions& options_;
  Witness witness_;
  const Clock::time_point deadline_;
  Scenario best_;
  std::uint64_t best_lines_ = 0;
  std::vector<std::uint64_t> best_choices_;
  std::uint64_t candidates_ = 0;
};

}  // namespace

std::uint64_t scenario_lines(const Scenario& s) {
  std::uint64_t n = 1 + s.options.given.size() + (s.seed ? 1 : 0) + body_lines(s.setup) + s.checks.size();
  for (const CpuProgram& p : s.programs) n += 2 + body_lines(p.body);
  return n;
}

ShrinkResult shrink(const std::vector<std::uint64_t>& choices, const Witness& witness, const StillFails& still_fails,
                    const ShrinkOptions& options) {
  return Shrinker(still_fails, options, witness).run(choices);
}

}  // namespace pagelab::fuzz
