// LineReader: the lines of a text stream, one at a time, each bounded.
//
// The bytes are read in large blocks and the lines cut out of them (cheaper
// than std::getline by far, for a lackey trace of millions of lines): the
// same lines getline gives, the last one included when no '\n' ends it.
// Every line is checked as text_input.hpp says (a NUL byte, a line past
// max_line_bytes, whole or still being read), so the buffer never holds
// more than a block and one line, whatever the stream is; max_file_bytes,
// when set, bounds the whole input. The first problem ends the reading.
#pragma once

#include <cstdint>
#include <istream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "emu/io/text_input.hpp"

namespace pagelab::emu {

class LineReader {
 public:
  // `file` names the input in errors.
  LineReader(std::istream& in, std::string file, const TextLimits& limits);

  // The next line, without its '\n' (valid until the next call). False at
  // the end of the input, or at a problem: then error() says which.
  bool next(std::string_view& line);

  // The number of the line next() returned last (1-based).
  std::uint64_t line_number() const { return line_number_; }
  const std::optional<InputError>& error() const { return error_; }

 private:
  bool fill();
  bool fail_line(std::uint64_t line, const LineProblem& problem);

  std::istream& in_;
  std::string file_;
  TextLimits limits_;
  std::vector<char> buffer_;
  std::size_t begin_ = 0;  // the unread bytes are buffer_[begin_, end_)
  std::size_t end_ = 0;
  std::uint64_t total_ = 0;  // bytes read so far
  bool at_end_ = false;
  std::uint64_t line_number_ = 0;
  std::optional<InputError> error_;
};

}  // namespace pagelab::emu
