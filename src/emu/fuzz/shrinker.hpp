// Shrinking a failing case to the smallest one that still fails the same
// way (same signature), in two passes:
//
//  1. the choice sequence (Hypothesis's way): delete runs of choices,
//     zero them, lower single choices; generate again from each candidate
//     sequence. The generator turns any sequence into a valid case, so every
//     candidate is one, and the case shrinks along the generator's grain
//     (fewer CPUs, fewer statements, a smaller arena, simpler kinds);
//  2. the case's parts, on the scenario itself: drop a CPU's program, a
//     statement (at any depth), a set-up line, a check; unwrap a repeat or
//     lower its count; fewer CPUs, less RAM, no options, the default TLB,
//     PCIDs and paging-structure caches off. A candidate that no longer
//     parses (a space used but no longer created, a barrier left with one
//     CPU) is skipped.
//
// A candidate "still fails" when some run of it fails with the signature
// being shrunk: first the last failing run's schedule, followed as a hint
// where it still fits the smaller case (Scheduler::Options::replay_hint),
// then a fixed budget of seeds, each with the strategy the fuzzer would give
// it (the campaign's StillFails decides). The size compared is the number
// of statement lines.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "emu/scenario/ast.hpp"

namespace pagelab::fuzz {

// A run that shows the failure: its seed, and the schedule it took.
struct Witness {
  std::uint64_t seed = 0;
  std::vector<std::uint32_t> schedule;
};

// Whether `scenario` still fails with the signature being shrunk, and a run
// that shows it. `last` is the last witness, to try first.
using StillFails = std::function<std::optional<Witness>(const scenario::Scenario& scenario, const Witness& last)>;

struct ShrinkOptions {
  std::chrono::milliseconds budget{60'000};  // wall-clock time for both passes
  bool allocations_may_fail = false;         // GeneratorOptions, for pass 1
};

struct ShrinkResult {
  scenario::Scenario scenario;  // the smallest failing case found
  Witness witness;              // a run that fails it
  std::uint64_t lines_before = 0;
  std::uint64_t lines_after = 0;
  std::uint64_t candidates = 0;  // tried
  double seconds = 0;
};

// Shrinks the case generated from `choices` (which `witness` fails).
ShrinkResult shrink(const std::vector<std::uint64_t>& choices, const Witness& witness, const StillFails& still_fails,
                    const ShrinkOptions& options);

// Lines of the scenario's text that are statements, settings or checks (the size a shrink minimizes).
std::uint64_t scenario_lines(const scenario::Scenario& scenario);

}  // namespace pagelab::fuzz
