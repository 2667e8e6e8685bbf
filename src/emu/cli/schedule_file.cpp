#include "emu/cli/schedule_file.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <map>
#include <sstream>

#include "emu/io/line_reader.hpp"
#include "emu/io/output_file.hpp"
#include "emu/machine/fault_injection.hpp"
#include "emu/scenario/ast.hpp"

namespace pagelab::emu {

namespace {

constexpr std::string_view kMagic = "pagelab-schedule";
constexpr std::uint32_t kVersion = 1;
constexpr TextLimits kRecordLimits{kMaxRecordLineBytes, kMaxRecordBytes, "a schedule record"};

// Decimal digits only, the whole of `text`, no overflow.
bool parse_decimal(std::string_view text, std::uint64_t& out) {
  if (text.empty() || text.size() > 20) return false;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out, 10);
  return ec == std::errc() && end == text.data() + text.size();
}

bool parse_hex64(std::string_view text, std::uint64_t& out) {
  if (text.size() != 16) return false;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out, 16);
  return ec == std::errc() && end == text.data() + text.size();
}

// An error quotes the record's bytes, and a terminal shows the error: a
// control byte (a carriage return, an escape sequence) is written \xNN.
std::string printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if ((byte < 0x20 && c != '\t') || byte == 0x7f) {
      out += fmt::format("\\x{:02x}", byte);
    } else {
      out += c;
    }
  }
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// One record being read: the header keys seen so far, then the entries.
class Reader {
 public:
  Reader(const std::string& file, std::string& error) : file_(file), error_(error) {}

  // Reads the record line by line as the stream gives it (so a bad first
  // line stops the reading at once), within kRecordLimits.
  std::optional<ScheduleRecord> read(std::istream& in) {
    LineReader lines(in, file_, kRecordLimits);
    std::string_view raw;
    while (lines.next(raw)) {
      if (!line(static_cast<std::uint32_t>(lines.line_number()), raw)) return std::nullopt;
    }
    if (lines.error()) {
      error_ = lines.error()->message("pagelab");
      return std::nullopt;
    }
    // Where a missing part would have been: the line after the last one.
    const auto after = static_cast<std::uint32_t>(lines.line_number() + 1);
    if (state_ == State::Magic) return fail(after, "empty file: not a pagelab schedule record");
    if (state_ != State::Done) {
      return fail(after, state_ == State::Header ? "the header ends without a `schedule` line (the file is truncated?)"
                                                 : "the schedule ends without an `end` line (the file is truncated?)");
    }
    return std::move(record_);
  }

 private:
  enum class State : std::uint8_t { Magic, Header, Entries, Done };

  std::nullopt_t fail(std::uint32_t line, const std::string& message) {
    error_ = fmt::format("{}:{}: error: {}", file_, line, printable(message));
    return std::nullopt;
  }

  bool line(std::uint32_t number, std::string_view raw) {
    const std::string_view text = trim(raw);
    if (text.empty() || text.front() == '#') return true;
    switch (state_) {
      case State::Magic: return magic(number, text);
      case State::Header: return header(number, text);
      case State::Entries: return entries(number, text);
      case State::Done:
        fail(number, fmt::format("'{}' after `end`", text));
        return false;
    }
    return false;
  }

  bool magic(std::uint32_t number, std::string_view text) {
    const std::string expected = fmt::format("{} {}", kMagic, kVersion);
    if (text == expected) {
      state_ = State::Header;
      return true;
    }
    if (text.substr(0, kMagic.size() + 1) == std::string(kMagic) + " ") {
      fail(number, fmt::format("unsupported version '{}' (this pagelab reads version {})", text.substr(kMagic.size() + 1), kVersion));
    } else {
      fail(number, fmt::format("not a pagelab schedule record: the first line must be '{}'", expected));
    }
    return false;
  }

  bool header(std::uint32_t number, std::string_view text) {
    if (text == "schedule") return begin_entries(number);
    const std::size_t space = text.find_first_of(" \t");
    const std::string key(text.substr(0, space));
    const std::string_view value = space == std::string_view::npos ? std::string_view{} : trim(text.substr(space));
    static const char* const kKeys[] = {"scenario", "scenario-fnv1a64", "seed",  "strategy", "allow-unsafe",
                                        "keep-spaces", "judge", "shootdown", "inject", "cpus", "steps"};
    bool known = false;
    for (const char* k : kKeys) known = known || key == k;
    if (!known) {
      fail(number, fmt::format("unknown key '{}' (expected scenario, scenario-fnv1a64, seed, strategy, allow-unsafe, "
                               "keep-spaces, judge, shootdown, inject, cpus, steps or schedule)", key));
      return false;
    }
    if (seen_.count(key) != 0) {
      fail(number, fmt::format("'{}' given twice (first on line {})", key, seen_[key]));
      return false;
    }
    seen_[key] = number;
    if (value.empty()) {
      fail(number, fmt::format("'{}' needs a value", key));
      return false;
    }
    std::uint64_t n = 0;
    if (key == "scenario") {
      record_.scenario = std::string(value);
      record_.scenario_line = number;
    } else if (key == "scenario-fnv1a64") {
      if (!parse_hex64(value, n)) return bad_value(number, key, value, "16 hex digits");
      record_.scenario_hash = n;
    } else if (key == "seed") {
      if (!parse_decimal(value, n)) return bad_value(number, key, value, "a decimal number");
      record_.seed = n;
    } else if (key == "strategy") {
      std::string why;
      const auto strategy = Strategy::parse(std::string(value), why);
      if (!strategy) {
        fail(number, why);
        return false;
      }
      record_.strategy = *strategy;
    } else if (key == "allow-unsafe" || key == "keep-spaces" || key == "judge") {
      if (value != "yes" && value != "no") return bad_value(number, key, value, "yes or no");
      (key == "allow-unsafe" ? record_.allow_unsafe : key == "judge" ? record_.judge : record_.keep_spaces) = value == "yes";
    } else if (key == "shootdown") {
      bool known_policy = false;
      for (const auto& entry : scenario::kShootdownPolicies) known_policy = known_policy || entry.name == value;
      if (!known_policy) return bad_value(number, key, value, "a shootdown policy (docs/SCENARIOS.md)");
      record_.shootdown = std::string(value);
    } else if (key == "inject") {
      InjectionSpec spec;
      std::string why;
      if (!add_injection(value, spec, why)) return bad_value(number, key, value, "fault injections (docs/EMULATOR.md): " + why);
      // Kept as written, once add_injection took it: replay hands it to
      // add_injection again, and the record re-formats to what it read.
      // (Rewritten through InjectionSpec::text(), a spec-fill:0.00001 came
      // back as spec-fill:1e-05, which add_injection refuses.)
      record_.inject = std::string(value);
    } else if (key == "cpus") {
      if (!parse_decimal(value, n) || n == 0 || n > 64) return bad_value(number, key, value, "a number from 1 to 64");
      record_.cpus = static_cast<std::uint32_t>(n);
    } else if (key == "steps") {
      if (!parse_decimal(value, n) || n > kMaxRecordSteps) {
        return bad_value(number, key, value, fmt::format("a number up to {}", kMaxRecordSteps));
      }
      steps_ = n;
    }
    return true;
  }

  bool bad_value(std::uint32_t number, const std::string& key, std::string_view value, const std::string& wanted) {
    fail(number, fmt::format("bad {} '{}': expected {}", key, value, wanted));
    return false;
  }

  bool begin_entries(std::uint32_t number) {
    for (const char* required : {"scenario", "seed", "strategy", "allow-unsafe", "keep-spaces", "cpus", "steps"}) {
      if (seen_.count(required) == 0) {
        fail(number, fmt::format("the header has no '{}' line", required));
        return false;
      }
    }
    // Reserve what a plausible record holds; a corrupt count must not allocate gigabytes up front.
    record_.schedule.reserve(std::min<std::uint64_t>(steps_, std::uint64_t{1} << 22));
    state_ = State::Entries;
    return true;
  }

  bool entries(std::uint32_t number, std::string_view text) {
    if (text == "end") {
      if (record_.schedule.size() != steps_) {
        fail(number, fmt::format("the schedule holds {} choices, the header says steps {} (the file is corrupt?)",
                                 record_.schedule.size(), steps_));
        return false;
      }
      state_ = State::Done;
      return true;
    }
    std::size_t at = 0;
    while (at < text.size()) {
      const std::size_t start = text.find_first_not_of(" \t", at);
      if (start == std::string_view::npos) break;
      const std::size_t stop = std::min(text.find_first_of(" \t", start), text.size());
      const std::string_view token = text.substr(start, stop - start);
      at = stop;
      const std::size_t star = token.find('*');
      std::uint64_t cpu = 0, count = 1;
      if (!parse_decimal(token.substr(0, star), cpu) ||
          (star != std::string_view::npos && (!parse_decimal(token.substr(star + 1), count) || count == 0))) {
        fail(number, fmt::format("bad schedule entry '{}': expected CPU or CPU*COUNT", token));
        return false;
      }
      if (cpu >= record_.cpus) {
        fail(number, fmt::format("schedule entry '{}': CPU {} but the record has cpus {}", token, cpu, record_.cpus));
        return false;
      }
      if (count > steps_ - record_.schedule.size()) {
        fail(number, fmt::format("the schedule holds more choices than steps {} (the file is corrupt?)", steps_));
        return false;
      }
      record_.schedule.insert(record_.schedule.end(), count, static_cast<std::uint32_t>(cpu));
    }
    return true;
  }

  const std::string& file_;
  std::string& error_;
  State state_ = State::Magic;
  ScheduleRecord record_;
  std::map<std::string, std::uint32_t> seen_;
  std::uint64_t steps_ = 0;
};

}  // namespace

std::uint64_t scenario_text_hash(std::string_view text) {
  std::uint64_t hash = 0xcbf29ce484222325ull;
  for (const char c : text) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 0x100000001b3ull;
  }
  return hash;
}

std::string format_schedule_record(const ScheduleRecord& record) {
  std::string out;
  out.reserve(256 + record.schedule.size() / 2);
  out += fmt::format("{} {}\n", kMagic, kVersion);
  out += "# Replay with: pagelab replay THIS_FILE (docs/EMULATOR.md, \"Recorded schedules\")\n";
  out += fmt::format("scenario {}\n", record.scenario);
  if (record.scenario_hash) out += fmt::format("scenario-fnv1a64 {:016x}\n", *record.scenario_hash);
  out += fmt::format("seed {}\n", record.seed);
  out += fmt::format("strategy {}\n", record.strategy.name());
  out += fmt::format("allow-unsafe {}\n", record.allow_unsafe ? "yes" : "no");
  out += fmt::format("keep-spaces {}\n", record.keep_spaces ? "yes" : "no");
  if (record.judge) out += "judge yes\n";
  if (record.shootdown) out += fmt::format("shootdown {}\n", *record.shootdown);
  if (record.inject) out += fmt::format("inject {}\n", *record.inject);
  out += fmt::format("cpus {}\n", record.cpus);
  out += fmt::format("steps {}\n", record.schedule.size());
  out += "schedule\n";
  // Runs of one CPU as CPU*COUNT, lines of at most about 100 characters.
  std::size_t line_length = 0;
  for (std::size_t i = 0; i < record.schedule.size();) {
    std::size_t j = i + 1;
    while (j < record.schedule.size() && record.schedule[j] == record.schedule[i]) ++j;
    const std::string token = j - i == 1 ? fmt::format("{}", record.schedule[i]) : fmt::format("{}*{}", record.schedule[i], j - i);
    if (line_length > 0 && line_length + 1 + token.size() > 100) {
      out += '\n';
      line_length = 0;
    }
    if (line_length > 0) {
      out += ' ';
      ++line_length;
    }
    out += token;
    line_length += token.size();
    i = j;
  }
  if (line_length > 0) out += '\n';
  out += "end\n";
  return out;
}

bool write_schedule_record(const std::string& path, const ScheduleRecord& record, std::string& error) {
  if (record.scenario.find_first_of("\r\n") != std::string::npos) {
    error = "the scenario's path holds a line break: it cannot be recorded";
    return false;
  }
  if (record.schedule.size() > kMaxRecordSteps) {
    error = fmt::format("{}: the record of {} choices would hold more than replay reads ({})", path,
                        record.schedule.size(), kMaxRecordSteps);
    return false;
  }
  const std::string text = format_schedule_record(record);
  if (text.size() > kMaxRecordBytes) {
    error = fmt::format("{}: the record of {} choices would be {} bytes, more than replay reads ({} MiB)", path,
                        record.schedule.size(), text.size(), kMaxRecordBytes >> 20);
    return false;
  }
  std::unique_ptr<OutputFile> out = OutputFile::open(path, error);
  if (!out) return false;
  out->write(text);
  if (!out->close()) {
    error = out->error();
    return false;
  }
  return true;
}

std::optional<ScheduleRecord> parse_schedule_record(std::string_view text, const std::string& file, std::string& error) {
  std::istringstream in{std::string(text)};
  return Reader(file, error).read(in);
}

std::optional<ScheduleRecord> read_schedule_record(const std::string& path, std::string& error) {
  std::ifstream in;
  if (const std::optional<InputError> failure = open_text_input(path, in)) {
    error = failure->message("pagelab");
    return std::nullopt;
  }
  return Reader(path, error).read(in);
}

}  // namespace pagelab::emu
