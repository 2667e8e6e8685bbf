// OutputFile: a file the emulator writes (a trace, a schedule record, the
// outcomes), where a failed write is an error, not a silent loss.
//
// Opening never creates a missing directory: a mistyped path is bad input
// (`pagelab: PATH: No such file or directory`, exit 2), found before any
// work is done. Every write is checked, and so are the flush and the close,
// where a full disk shows itself (/dev/full accepts a buffered write and
// fails its flush with ENOSPC). The first failure is kept and later writes
// are dropped, so a writer checks once, at close(): `pagelab: PATH: REASON`,
// exit 3 (docs/EMULATOR.md, "Exit status").
//
// Not thread-safe: a writer shared by threads holds its own lock.
#pragma once

#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace pagelab::emu {

class OutputFile {
 public:
  // Creates or truncates `path`. nullptr, with "PATH: REASON" in `error`,
  // when it cannot be opened.
  static std::unique_ptr<OutputFile> open(const std::string& path, std::string& error);
  // Standard output, named "standard output" in errors. Not closed: close()
  // flushes it.
  static std::unique_ptr<OutputFile> standard_output();

  ~OutputFile();  // closes without telling: call close() to know
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  void write(std::string_view bytes);
  // Flushes and closes: true when every byte written reached the file.
  [[nodiscard]] bool close();

  bool failed() const { return error_number_ != 0; }
  int error_number() const { return error_number_; }
  // "PATH: REASON" for the first failure.
  std::string error() const;
  const std::string& path() const { return path_; }
  bool is_standard_output() const { return !owned_; }

 private:
  OutputFile(std::FILE* file, std::string path, bool owned) : file_(file), path_(std::move(path)), owned_(owned) {}
  void note_failure();

  std::FILE* file_;
  std::string path_;
  bool owned_;
  int error_number_ = 0;
};

// Whether `path` names a file that can be created or replaced: its
// directory exists. For an output written only at the end (explore's
// --record), so a bad path is found before the work. nullopt when it can,
// else "PATH: REASON".
std::optional<std::string> check_output_path(const std::string& path);

// The end of a command's standard output: flushes it. nullopt when all went
// out, or when the reader had closed the pipe (EPIPE: `pagelab ... | head`
// ends quietly); else "standard output: REASON". SIGPIPE must be ignored
// (the command line does) for a closed pipe to get this far.
std::optional<std::string> finish_standard_output();

}  // namespace pagelab::emu
