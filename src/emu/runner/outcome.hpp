// The outcome of one executed statement or one evaluated check, as a line of
// text that the kernel prints too (src/kernel/scenario/scenario_runner.hpp),
// so `pagelab run --outcomes FILE` and a kernel boot with `scenarios=` can be
// compared line by line (test/boot/scenario_crosscheck.sh):
//
//   setup line L: KEYWORD -> RESULT [any] (FAIL: why)
//   cpu C line L: KEYWORD -> RESULT [any] (FAIL: why)
//   check line L: KIND -> ok | FAIL (why)
//
// RESULT is ok, segv, nospace, an errno name (ENOENT), or for a read that
// completed the value read in hex (0x2a, 0x0). `[any]` marks a statement
// that expects any outcome. Whatever is in parentheses is for people, not
// for comparison. KIND is value, mapped, unmapped, frames, faults or
// shootdowns.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace pagelab::emu {

struct Outcome {
  enum class Section : std::uint8_t { Setup, Cpu, Check };
  Section section = Section::Cpu;
  std::uint32_t cpu = 0;  // Section::Cpu
  std::uint32_t line = 0;
  std::string_view keyword;  // the statement's keyword, or the check's kind
  std::string result;
  bool any = false;     // the statement expects any outcome
  std::string problem;  // why it failed; empty when it held
};

// Called once per statement outcome and per check, in the order they happen
// (CPUs interleave). May be called from several CPU threads at once.
using OutcomeSink = std::function<void(const Outcome&)>;

inline std::string format_outcome(const Outcome& o) {
  std::string line;
  switch (o.section) {
    case Outcome::Section::Setup: line = "setup"; break;
    case Outcome::Section::Cpu: line = "cpu " + std::to_string(o.cpu); break;
    case Outcome::Section::Check: line = "check"; break;
  }
  line += " line " + std::to_string(o.line) + ": " + std::string(o.keyword) + " -> " + o.result;
  if (o.any) line += " [any]";
  if (!o.problem.empty()) line += (o.section == Outcome::Section::Check ? " (" : " (FAIL: ") + o.problem + ")";
  return line;
}

}  // namespace pagelab::emu
