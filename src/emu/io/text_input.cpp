#include "emu/io/text_input.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace pagelab::emu {

std::optional<LineProblem> check_text_line(std::string_view line, std::size_t max_line_bytes) {
  // Only the bytes up to the limit matter: past it, the line is too long
  // whatever they are.
  const std::size_t scanned = line.size() < max_line_bytes ? line.size() : max_line_bytes;
  if (const void* nul = std::memchr(line.data(), '\0', scanned)) {
    const auto at = static_cast<std::size_t>(static_cast<const char*>(nul) - line.data());
    return LineProblem{at + 1, "binary data (a NUL byte), not text"};
  }
  if (line.size() > max_line_bytes) return LineProblem{max_line_bytes + 1, fmt::format("line longer than {} bytes", max_line_bytes)};
  return std::nullopt;
}

std::string InputError::message(std::string_view program) const {
  return kind == Kind::Unreadable ? fmt::format("{}: {}", program, text) : text;
}

InputError unreadable(const std::string& file, int error_number) {
  return InputError{InputError::Kind::Unreadable, fmt::format("cannot read {}: {}", file, std::strerror(error_number))};
}

InputError content_error(const std::string& file, std::uint64_t line, const LineProblem& problem) {
  return InputError{InputError::Kind::Content, fmt::format("{}:{}:{}: error: {}", file, line, problem.column, problem.message)};
}

InputError too_large(const std::string& file, const TextLimits& limits) {
  const std::size_t bound = limits.max_file_bytes;
  const std::string size = bound % (std::size_t{1} << 20) == 0 ? fmt::format("{} MiB", bound >> 20) : fmt::format("{} bytes", bound);
  return InputError{InputError::Kind::Content,
                    fmt::format("{}: error: larger than {} bytes ({} is at most {})", file, bound, limits.what, size)};
}

std::optional<InputError> open_text_input(const std::string& path, std::ifstream& in) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return unreadable(path, EISDIR);
  errno = 0;
  in.open(path, std::ios::binary);
  if (!in) return unreadable(path, errno != 0 ? errno : ENOENT);
  return std::nullopt;
}

TextFile read_text_file(const std::string& path, const TextLimits& limits) {
  TextFile file;
  std::ifstream in;
  if (std::optional<InputError> error = open_text_input(path, in)) {
    file.error = std::move(error);
    return file;
  }
  // One byte more than the limit tells a file at the limit from a larger one.
  constexpr std::size_t kBlock = std::size_t{1} << 16;
  std::string& text = file.text;
  while (text.size() <= limits.max_file_bytes) {
    const std::size_t want = std::min(kBlock, limits.max_file_bytes + 1 - text.size());
    const std::size_t had = text.size();
    text.resize(had + want);
    errno = 0;
    in.read(text.data() + had, static_cast<std::streamsize>(want));
    text.resize(had + static_cast<std::size_t>(in.gcount()));
    if (in.bad()) {
      file.error = unreadable(path, errno != 0 ? errno : EIO);
      return file;
    }
    if (!in) break;  // the end of the file
  }
  // The first bad line wins over the size: /dev/zero is binary data at 1:1.
  std::uint64_t line = 1;
  for (std::size_t at = 0; at < text.size(); ++line) {
    const std::size_t newline = text.find('\n', at);
    const std::size_t stop = newline == std::string::npos ? text.size() : newline;
    if (std::optional<LineProblem> problem = check_text_line(std::string_view(text).substr(at, stop - at), limits.max_line_bytes)) {
      file.error = content_error(path, line, *problem);
      return file;
    }
    at = stop + 1;
  }
  if (text.size() > limits.max_file_bytes) {
    file.error = too_large(path, limits);
  }
  return file;
}

}  // namespace pagelab::emu
