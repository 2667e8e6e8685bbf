// Helpers of the property functions (input_properties.hpp): a report, and
// the parts of an error message they check.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pagelab::fuzz_inputs {

// "PROPERTY FAILED: WHAT", then the details on the lines after.
inline std::optional<std::string> failure(std::string_view what, std::string_view detail = {}) {
  std::string report = "PROPERTY FAILED: ";
  report += what;
  if (!detail.empty()) {
    report += '\n';
    report += detail;
  }
  return report;
}

// A decimal number >= 1 then ':' at the front of `rest`: the number in
// `out`, `rest` moved past the colon. False for anything else.
inline bool take_number_field(std::string_view& rest, std::uint64_t& out) {
  std::size_t digits = 0;
  out = 0;
  while (digits < rest.size() && digits < 19 && rest[digits] >= '0' && rest[digits] <= '9') {
    out = out * 10 + static_cast<std::uint64_t>(rest[digits] - '0');
    ++digits;
  }
  if (digits == 0 || out == 0 || rest.size() <= digits || rest[digits] != ':') return false;
  rest.remove_prefix(digits + 1);
  return true;
}

// The lines of `text` as an editor counts them: '\n' ends a line, and what
// follows the last one is a line too (so "" has one).
inline std::uint64_t line_count(std::string_view text) {
  std::uint64_t lines = 1;
  for (const char c : text) lines += c == '\n' ? 1 : 0;
  return lines;
}

// The bytes of line `number` (from 1) of `text`, without its '\n'.
inline std::string_view line_of(std::string_view text, std::uint64_t number) {
  std::size_t start = 0;
  for (std::uint64_t n = 1; n < number; ++n) {
    const std::size_t newline = text.find('\n', start);
    if (newline == std::string_view::npos) return {};
    start = newline + 1;
  }
  const std::size_t stop = text.find('\n', start);
  return text.substr(start, stop == std::string_view::npos ? std::string_view::npos : stop - start);
}

// An error is one line a terminal shows as it is: no control byte but tab
// (bytes from 0x80 are left alone: a path may be UTF-8).
inline std::optional<std::string> printable_line(const std::string& error) {
  for (const char c : error) {
    const auto byte = static_cast<unsigned char>(c);
    if ((byte < 0x20 && c != '\t') || byte == 0x7f) {
      return failure("the error holds a control byte " + std::to_string(byte) + ", not one line of printable text", error);
    }
  }
  return std::nullopt;
}

// What is wrong with `error` as `FILE:LINE[:COL]: error: MESSAGE` of one
// line, LINE at most `max_line`; nullopt when nothing is.
inline std::optional<std::string> line_error_form(const std::string& error, std::string_view file, std::uint64_t max_line) {
  std::string_view rest = error;
  if (rest.substr(0, file.size() + 1) != std::string(file) + ":") return failure("the error does not start with FILE:", error);
  rest.remove_prefix(file.size() + 1);
  std::uint64_t line = 0, column = 0;
  if (!take_number_field(rest, line)) return failure("the error has no LINE", error);
  if (line > max_line) return failure("the error's LINE is beyond the input", error);
  if (rest.substr(0, 1) != " " && !take_number_field(rest, column)) return failure("the error has a bad COL", error);
  if (rest.substr(0, 8) != " error: " || rest.size() == 8) {
    return failure("the error is not FILE:LINE[:COL]: error: MESSAGE", error);
  }
  return printable_line(error);
}

}  // namespace pagelab::fuzz_inputs
