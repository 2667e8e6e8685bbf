// Text input that may be anything. A scenario, a schedule record or a lackey
// trace is named on the command line, so it may be /dev/zero, a binary, a
// FIFO that never ends or a file of one endless line. Every reader of such
// input goes through the bounds here, and says what is wrong with the file's
// name and, where one applies, its line and column:
//
//   FILE:LINE:COL: error: line longer than 4096 bytes
//   FILE:LINE:COL: error: binary data (a NUL byte), not text
//   FILE: error: larger than 4194304 bytes (a scenario is at most 4 MiB)
//   cannot read FILE: No such file or directory      (the caller prefixes its name)
//
// Each format chooses its own limits (scenario/lexer.hpp, cli/schedule_file.hpp,
// cli/lackey_replay.hpp); docs/EMULATOR.md lists them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>

namespace pagelab::emu {

struct TextLimits {
  std::size_t max_line_bytes = 4096;  // a line's bytes, its '\n' not counted
  std::size_t max_file_bytes = 0;     // the whole input; 0 for a stream, which only its lines bound
  std::string_view what = "file";     // for the too-large message: "a scenario is at most ..."
};

// What is wrong with one line: the 1-based column it starts at, and why.
struct LineProblem {
  std::uint64_t column = 0;
  std::string message;
};

// Checks the bytes of one line (without its '\n'), or the start of a line
// still being read: the earlier of a NUL byte and the byte past the limit.
std::optional<LineProblem> check_text_line(std::string_view line, std::size_t max_line_bytes);

// Why an input could not be had.
struct InputError {
  enum class Kind : std::uint8_t {
    Unreadable,  // it could not be opened or read: `text` is "cannot read FILE: REASON"
    Content,     // it is not what it should be: `text` is "FILE[:LINE[:COL]]: error: MESSAGE"
  };
  Kind kind = Kind::Content;
  std::string text;

  // The line to print: `program` ("pagelab") before an Unreadable one.
  std::string message(std::string_view program) const;
};

// "cannot read FILE: REASON" for an errno value.
InputError unreadable(const std::string& file, int error_number);
// "FILE:LINE:COL: error: MESSAGE".
InputError content_error(const std::string& file, std::uint64_t line, const LineProblem& problem);
// "FILE: error: larger than N bytes (WHAT is at most 4 MiB)".
InputError too_large(const std::string& file, const TextLimits& limits);

// Opens `path` for reading; a directory is refused (EISDIR), as reading one
// would give nothing and look like an empty file.
std::optional<InputError> open_text_input(const std::string& path, std::ifstream& in);

// The whole file, byte for byte, within `limits` (max_file_bytes must be
// set): at most that many bytes are read, whatever the file holds.
struct TextFile {
  std::string text;
  std::optional<InputError> error;
  bool ok() const { return !error; }
};
TextFile read_text_file(const std::string& path, const TextLimits& limits);

}  // namespace pagelab::emu
