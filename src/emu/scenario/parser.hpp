// parse_scenario(): scenario text to a Scenario (ast.hpp), or the first error
// in it as `FILE:LINE:COL: error: MESSAGE` (docs/SCENARIOS.md lists every
// kind). The caller (`pagelab run`, `explore`) prints the error and exits
// with status 2; nothing runs.
//
// Hosted code: it allocates freely, but no exception escapes it (an
// allocation failure inside it ends the process, as it would anywhere in the
// emulator).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "emu/scenario/ast.hpp"
#include "mm/base/panic.hpp"

namespace pagelab::scenario {

struct ParseError {
  std::string file;
  u32 line = 0;    // 1-based
  u32 column = 0;  // 1-based, in bytes
  std::string message;

  // "FILE:LINE:COL: error: MESSAGE"
  std::string to_string() const;
};

class ParseResult {
 public:
  ParseResult(Scenario scenario) : value_(std::move(scenario)) {}  // NOLINT: implicit by design
  ParseResult(ParseError error) : value_(std::move(error)) {}      // NOLINT: implicit by design

  bool ok() const { return std::holds_alternative<Scenario>(value_); }
  // Only when ok(); otherwise a panic (never an exception).
  const Scenario& scenario() const& {
    const Scenario* scenario = std::get_if<Scenario>(&value_);
    MM_ASSERT(scenario != nullptr);
    return *scenario;
  }
  Scenario&& scenario() && {
    Scenario* scenario = std::get_if<Scenario>(&value_);
    MM_ASSERT(scenario != nullptr);
    return std::move(*scenario);
  }
  // Only when !ok(); otherwise a panic.
  const ParseError& error() const {
    const ParseError* error = std::get_if<ParseError>(&value_);
    MM_ASSERT(error != nullptr);
    return *error;
  }

 private:
  std::variant<Scenario, ParseError> value_;
};

using Result = ParseResult;

// Parses a whole scenario file. `file_name` is used only in messages and
// copied into Scenario::file.
ParseResult parse_scenario(std::string_view text, std::string file_name);

}  // namespace pagelab::scenario
