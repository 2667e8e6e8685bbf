// The properties the input fuzzers check (docs/FUZZING.md, "Input fuzzers"),
// one function per reader of what pagelab is given on its command line.
// Each takes any bytes, runs the reader over them, and says what went wrong:
// nullopt when every property held, else a report (the property, then the
// details). The fuzz targets (fuzz/*_fuzzer.cpp) abort on a report, so
// libFuzzer keeps the input; the unit tests (test/unit/
// input_fuzz_regressions_test.cpp) run the same functions over every input
// a fuzzer ever found (test/data/fuzz-regressions/) and over the seeds, so
// the normal suite catches a regression without Clang.
//
// Besides the properties below, a reader must not crash, trip a sanitizer,
// take long or allocate much on any input: the fuzz targets' sanitizers and
// libFuzzer's -timeout and -rss_limit_mb see to that.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace pagelab::fuzz_inputs {

// The scenario parser (src/emu/scenario/), the input named "fuzz.scenario":
//  - an error reads `fuzz.scenario:LINE:COL: error: MESSAGE` on one line,
//    LINE and COL from 1, inside the input (COL at most one past the line's
//    last byte), MESSAGE not empty (docs/SCENARIOS.md, "Errors");
//  - a scenario that parses keeps the contract of ast.hpp (CPU numbers below
//    `cpus`, canonical and aligned addresses and lengths, at most one block
//    per CPU, repeat counts of at least 1 nested at most kMaxRepeatNesting
//    deep, no fork inside a repeat, phys= inside the device window, every
//    space known);
//  - the printer round-trips it (printer.hpp): print(s) parses, to the same
//    scenario field by field (source locations aside), and prints to the
//    same text again.
std::optional<std::string> scenario_properties(std::string_view bytes);

// The lackey trace reader (`pagelab trace`, src/emu/cli/lackey_replay.*),
// through the `tiny` TLB preset, the input named "fuzz.lackey":
//  - an error reads `fuzz.lackey:LINE: error: ...` (`LINE:COL:` for a NUL
//    byte or a line too long) on one line, LINE inside the input;
//  - the counts of a replay add up: records and accesses match the lines,
//    an access translates one page or two (it crosses), every translation
//    is an L1 hit, an L2 hit or a miss, every walk is a miss's, a fault's
//    retry or a dirty walk, every page faults once.
std::optional<std::string> lackey_properties(std::string_view bytes);

// The schedule-record reader (`pagelab replay`, src/emu/cli/schedule_file.*),
// the input named "fuzz.schedule":
//  - an error reads `fuzz.schedule:LINE: error: ...` (`LINE:COL:` for a NUL
//    byte or a line too long) on one line, LINE at most one past the last;
//  - a record that parses holds at most kMaxRecordSteps choices, each below
//    `cpus`, and re-formats (format_schedule_record) to text that parses to
//    the same record, every field, and formats to the same text again.
std::optional<std::string> schedule_properties(std::string_view bytes);

}  // namespace pagelab::fuzz_inputs
