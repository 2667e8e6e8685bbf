// Recorded schedules: the file `pagelab run SCENARIO --record FILE` (and
// `pagelab explore --record FILE`, for the first failing seed) writes, and
// `pagelab replay FILE` reads. It holds the choices the deterministic
// scheduler made, one per step (RunResult::schedule), and every input that
// decides the run besides them: the scenario's path and a hash of its text,
// the seed, the strategy, --shootdown, --inject, --allow-unsafe and --keep-spaces. Replaying it
// through RunOptions::replay gives the same run, trace byte for byte.
//
// The format (docs/EMULATOR.md, "Recorded schedules"), line by line:
//
//   pagelab-schedule 1                  the format and its version: always first
//   scenario examples/demo.scenario     the rest of the line, verbatim
//   scenario-fnv1a64 7c3e...            optional: FNV-1a 64 of the scenario's bytes, 16 hex digits
//   seed 7
//   strategy random                     or pct:D
//   allow-unsafe no                     yes or no
//   keep-spaces no                      yes or no
//   judge yes                           optional: the run's --judge (absent: no)
//   shootdown unsafe-no-flush           optional: run's --shootdown (absent: the scenario's own)
//   inject ipi-delay:2,evict:0.1        optional: run's --inject, comma-separated (absent: none)
//   cpus 2                              every choice is below this
//   steps 1234                          how many choices follow (at most kMaxRecordSteps)
//   schedule
//   0*12 1*3 0 1*40 ...                 CPU or CPU*COUNT (COUNT >= 1), any number a line
//   end
//
// Blank lines and lines that start with `#` are ignored everywhere. Each
// header key appears exactly once (scenario-fnv1a64, shootdown and inject at most once), in any
// order, before `schedule`; an unknown key is an error (a record from a newer
// pagelab fails loudly rather than replaying something else). A file without
// its `end` line is truncated; one whose entries do not add up to `steps` is
// corrupt. Errors read `FILE:LINE: error: MESSAGE` (a file that cannot be
// opened: `pagelab: cannot read FILE: REASON`). A line holds at most
// kMaxRecordLineBytes and no NUL byte (`FILE:LINE:COL: error: ...`), a
// record at most kMaxRecordBytes: the reader stops there, so /dev/zero or
// an endless stream is an error at once, not a hang.
//
// Whether the schedule fits the scenario is not this file's business: the
// scheduler finds out when the replay asks for a CPU that cannot run, or
// runs out of choices (the run then fails with exit status 1).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "emu/sched/scheduler.hpp"

namespace pagelab::emu {

// A scenario path of PATH_MAX bytes fits a line; the writer keeps schedule
// lines to about 100 bytes.
inline constexpr std::size_t kMaxRecordLineBytes = 8192;
// About 32 million choices at the worst (a CPU switch at every step), more
// at the usual runs of one CPU: beyond any scenario's run. The writer
// refuses a record this reader would not read.
inline constexpr std::size_t kMaxRecordBytes = std::size_t{64} << 20;
// The choices a record holds, at most: 256 MiB as the replay's input, a run
// of half a minute at the emulator's 2 million steps a second. Runs of one
// CPU are written CPU*COUNT, so the bytes do not bound the choices: before
// this bound (2^30 then), a record of 150 bytes (`steps 1073741824`,
// `0*1073741824`) made replay allocate 20 GB. The writer refuses a longer
// record.
inline constexpr std::uint64_t kMaxRecordSteps = std::uint64_t{1} << 26;

struct ScheduleRecord {
  std::string scenario;                       // the path as `run` was given it
  std::optional<std::uint64_t> scenario_hash;  // scenario_text_hash() of its text
  std::uint64_t seed = 1;
  Strategy strategy;
  bool allow_unsafe = false;
  bool keep_spaces = false;
  bool judge = false;  // --judge: the run was judged by the reference model
  // A shootdown policy given on the command line instead of the scenario's
  // `option shootdown=` (a name of scenario::kShootdownPolicies).
  std::optional<std::string> shootdown;
  // The run's --inject, the specs comma-separated: as InjectionSpec::text()
  // wrote them for a record of a run, as the file holds them (checked with
  // add_injection) for a record read.
  std::optional<std::string> inject;
  std::uint32_t cpus = 1;
  std::vector<std::uint32_t> schedule;
  // Set by the reader: the line of the `scenario` key, for errors about it.
  std::uint32_t scenario_line = 0;
};

// FNV-1a, 64 bits, over the scenario file's bytes: cheap, stable, and enough
// to notice that a scenario changed after its schedule was recorded.
std::uint64_t scenario_text_hash(std::string_view text);

// The record as text (the format above). The scenario path must not hold a
// newline (write_schedule_record refuses one).
std::string format_schedule_record(const ScheduleRecord& record);

// Writes the record to `path` (replacing it; its directory must exist).
// False, with a message ("PATH: REASON" for a failed open, write or close),
// when the path cannot be written, the scenario path holds a newline, or the
// record would hold more than kMaxRecordSteps choices or be larger than
// kMaxRecordBytes.
bool write_schedule_record(const std::string& path, const ScheduleRecord& record, std::string& error);

// Parses a record; `file` names it in errors. nullopt, with the first error
// as `FILE:LINE: error: MESSAGE`, for anything the format does not allow.
std::optional<ScheduleRecord> parse_schedule_record(std::string_view text, const std::string& file, std::string& error);

// Reads and parses the file at `path`.
std::optional<ScheduleRecord> read_schedule_record(const std::string& path, std::string& error);

}  // namespace pagelab::emu
