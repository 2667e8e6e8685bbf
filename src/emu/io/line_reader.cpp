#include "emu/io/line_reader.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace pagelab::emu {

namespace {
constexpr std::size_t kBlock = std::size_t{1} << 16;
}  // namespace

LineReader::LineReader(std::istream& in, std::string file, const TextLimits& limits)
    : in_(in), file_(std::move(file)), limits_(limits), buffer_(kBlock + limits.max_line_bytes + 1) {}

bool LineReader::fail_line(std::uint64_t line, const LineProblem& problem) {
  error_ = content_error(file_, line, problem);
  return false;
}

bool LineReader::next(std::string_view& line) {
  if (error_) return false;
  for (;;) {
    const char* const data = buffer_.data();
    if (const void* newline = std::memchr(data + begin_, '\n', end_ - begin_)) {
      const auto at = static_cast<std::size_t>(static_cast<const char*>(newline) - data);
      line = std::string_view(data + begin_, at - begin_);
      begin_ = at + 1;
      ++line_number_;
      if (std::optional<LineProblem> problem = check_text_line(line, limits_.max_line_bytes)) {
        return fail_line(line_number_, *problem);
      }
      return true;
    }
    // No whole line left: what there is starts the next one, and must
    // already be text of a bearable length.
    const std::string_view partial(data + begin_, end_ - begin_);
    if (std::optional<LineProblem> problem = check_text_line(partial, limits_.max_line_bytes)) {
      return fail_line(line_number_ + 1, *problem);
    }
    if (at_end_) {
      if (partial.empty()) return false;
      line = partial;
      begin_ = end_;
      ++line_number_;
      return true;
    }
    if (!fill()) return false;
  }
}

// Moves the partial line to the front and reads a block after it.
bool LineReader::fill() {
  if (begin_ != 0) {
    std::copy(buffer_.begin() + static_cast<std::ptrdiff_t>(begin_), buffer_.begin() + static_cast<std::ptrdiff_t>(end_),
              buffer_.begin());
    end_ -= begin_;
    begin_ = 0;
  }
  // The partial line is at most max_line_bytes (checked before each fill), so a block always fits.
  errno = 0;
  in_.read(buffer_.data() + end_, static_cast<std::streamsize>(buffer_.size() - end_));
  const auto got = static_cast<std::size_t>(in_.gcount());
  if (in_.bad()) {
    error_ = unreadable(file_, errno != 0 ? errno : EIO);
    return false;
  }
  end_ += got;
  total_ += got;
  if (got == 0 || !in_) at_end_ = true;
  if (limits_.max_file_bytes != 0 && total_ > limits_.max_file_bytes) {
    error_ = too_large(file_, limits_);
    return false;
  }
  return true;
}

}  // namespace pagelab::emu
