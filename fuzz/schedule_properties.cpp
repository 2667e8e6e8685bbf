// The schedule-record reader's properties (input_properties.hpp).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "emu/cli/schedule_file.hpp"
#include "fuzz_check.hpp"
#include "input_properties.hpp"

namespace pagelab::fuzz_inputs {

namespace {

constexpr std::string_view kFile = "fuzz.schedule";

// Every field the reader fills but scenario_line (where the key was) and
// the choices themselves (compared as vectors).
std::string describe(const emu::ScheduleRecord& r) {
  std::string out = "scenario [" + r.scenario + "]\n";
  out += "hash " + (r.scenario_hash ? std::to_string(*r.scenario_hash) : std::string("-")) + "\n";
  out += "seed " + std::to_string(r.seed) + "\n";
  out += "strategy " + std::to_string(static_cast<int>(r.strategy.kind)) + " " + std::to_string(r.strategy.depth) + "\n";
  out += std::string("allow-unsafe ") + (r.allow_unsafe ? "yes" : "no") + "\n";
  out += std::string("keep-spaces ") + (r.keep_spaces ? "yes" : "no") + "\n";
  out += "shootdown " + (r.shootdown ? "[" + *r.shootdown + "]" : std::string("-")) + "\n";
  out += "inject " + (r.inject ? "[" + *r.inject + "]" : std::string("-")) + "\n";
  out += "cpus " + std::to_string(r.cpus) + "\n";
  return out + "steps " + std::to_string(r.schedule.size()) + "\n";
}

}  // namespace

std::optional<std::string> schedule_properties(std::string_view text) {
  std::string error;
  const std::optional<emu::ScheduleRecord> record = emu::parse_schedule_record(text, std::string(kFile), error);
  // A missing `schedule` or `end` is reported on the line after the last.
  if (!record) return line_error_form(error, kFile, line_count(text) + 1);
  if (!error.empty()) return failure("a record that parses left an error", error);
  if (record->cpus < 1 || record->cpus > 64) return failure("cpus out of range", describe(*record));
  if (record->schedule.size() > emu::kMaxRecordSteps) return failure("more choices than kMaxRecordSteps", describe(*record));
  for (const std::uint32_t cpu : record->schedule) {
    if (cpu >= record->cpus) return failure("a choice at or above cpus", describe(*record));
  }

  const std::string formatted = emu::format_schedule_record(*record);
  std::string again_error;
  const std::optional<emu::ScheduleRecord> again = emu::parse_schedule_record(formatted, "formatted.schedule", again_error);
  if (!again) return failure("the re-formatted record does not parse", again_error + "\n--- formatted:\n" + formatted);
  const std::string before = describe(*record);
  const std::string after = describe(*again);
  if (before != after) {
    return failure("the re-formatted record parses to another record",
                   "--- parsed:\n" + before + "--- formatted and parsed again:\n" + after + "--- formatted:\n" + formatted);
  }
  if (record->schedule != again->schedule) return failure("the re-formatted record has other choices", formatted);
  if (emu::format_schedule_record(*again) != formatted) return failure("formatting is not stable", formatted);
  return std::nullopt;
}

}  // namespace pagelab::fuzz_inputs
