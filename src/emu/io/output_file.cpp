#include "emu/io/output_file.hpp"

#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

namespace pagelab::emu {

namespace {
// The first failure of standard output that an OutputFile saw (a trace
// written there): finish_standard_output() may find the stream's error flag
// set with the bytes, and so the reason, gone.
std::atomic<int> g_standard_output_errno{0};
}  // namespace

std::unique_ptr<OutputFile> OutputFile::open(const std::string& path, std::string& error) {
  errno = 0;
  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (file == nullptr) {
    error = fmt::format("{}: {}", path, std::strerror(errno != 0 ? errno : EIO));
    return nullptr;
  }
  return std::unique_ptr<OutputFile>(new OutputFile(file, path, true));
}

std::unique_ptr<OutputFile> OutputFile::standard_output() {
  return std::unique_ptr<OutputFile>(new OutputFile(stdout, "standard output", false));
}

OutputFile::~OutputFile() {
  if (file_ != nullptr && owned_) std::fclose(file_);
}

void OutputFile::note_failure() {
  if (error_number_ != 0) return;
  error_number_ = errno != 0 ? errno : EIO;
  if (!owned_) {
    int none = 0;
    g_standard_output_errno.compare_exchange_strong(none, error_number_);
  }
}

void OutputFile::write(std::string_view bytes) {
  if (file_ == nullptr || error_number_ != 0 || bytes.empty()) return;
  errno = 0;
  if (std::fwrite(bytes.data(), 1, bytes.size(), file_) != bytes.size()) note_failure();
}

bool OutputFile::close() {
  if (file_ == nullptr) return error_number_ == 0;
  errno = 0;
  if (std::fflush(file_) != 0 || std::ferror(file_) != 0) note_failure();
  if (owned_) {
    errno = 0;
    if (std::fclose(file_) != 0) note_failure();
  }
  file_ = nullptr;
  return error_number_ == 0;
}

std::string OutputFile::error() const { return fmt::format("{}: {}", path_, std::strerror(error_number_)); }

std::optional<std::string> check_output_path(const std::string& path) {
  const std::filesystem::path p(path);
  const std::filesystem::path directory = p.has_parent_path() ? p.parent_path() : std::filesystem::path(".");
  std::error_code ec;
  if (std::filesystem::is_directory(p, ec)) return fmt::format("{}: {}", path, std::strerror(EISDIR));
  const auto status = std::filesystem::status(directory, ec);
  if (ec || !std::filesystem::exists(status)) return fmt::format("{}: {}", path, std::strerror(ENOENT));
  if (!std::filesystem::is_directory(status)) return fmt::format("{}: {}", path, std::strerror(ENOTDIR));
  // An existing file is replaced in place (it must be writable); a new one
  // is created in the directory (which must be).
  const bool exists = std::filesystem::exists(p, ec);
  errno = 0;
  if (::access(exists ? p.c_str() : directory.c_str(), exists ? W_OK : W_OK | X_OK) != 0) {
    return fmt::format("{}: {}", path, std::strerror(errno != 0 ? errno : EACCES));
  }
  return std::nullopt;
}

std::optional<std::string> finish_standard_output() {
  errno = 0;
  const bool flushed = std::fflush(stdout) == 0;
  const int error_number = errno;
  if (flushed && std::ferror(stdout) == 0) return std::nullopt;
  // A failed flush says why, and so does an OutputFile that saw a failure.
  // A failure in an earlier printf (its bytes are gone) does not: on a pipe
  // or a socket it can only be the reader's leaving.
  int reason = !flushed && error_number != 0 ? error_number : g_standard_output_errno.load();
  if (reason == 0) {
    struct stat st {};
    if (::fstat(STDOUT_FILENO, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))) reason = EPIPE;
  }
  if (reason == EPIPE) return std::nullopt;
  return fmt::format("standard output: {}", std::strerror(reason != 0 ? reason : EIO));
}

}  // namespace pagelab::emu
