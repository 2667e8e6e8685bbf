// Trace: formats events as readable text, JSON lines, or Chrome trace-event
// JSON (one track per CPU; Perfetto and chrome://tracing open it), filters
// them (--cpu, --events, --addr), and writes them through spdlog to standard
// output or a file (an OutputFile: a failed write is kept and reported by
// finish(), and the trace stops formatting events nobody can read). Every
// CPU's last events are also kept, unfiltered, for failure reports.
// Formatting is deterministic: the same run gives the same bytes.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "emu/io/output_file.hpp"
#include "emu/trace/event.hpp"

namespace spdlog {
class logger;
}

namespace pagelab::emu {

enum class TraceFormat : std::uint8_t { Text, Jsonl, Chrome };

struct TraceFilter {
  std::optional<std::set<std::uint32_t>> cpus;
  std::optional<std::set<EventKind>> kinds;
  std::optional<std::pair<std::uint64_t, std::uint64_t>> address_range;  // [lo, hi] on events with an address

  bool accepts(const Event& event) const;
};

class Trace {
 public:
  // A trace to standard output (path empty) or to a file, which must be
  // creatable (its directory is never created): else nullptr with "PATH:
  // REASON" in `error`. `enabled` false keeps only the per-CPU tails (no
  // output at all).
  static std::unique_ptr<Trace> open(TraceFormat format, const std::string& path, TraceFilter filter, bool enabled,
                                     std::string& error);
  ~Trace();

  void emit(const Event& event);
  // Ends the output (closes Chrome's JSON array), flushes and closes it.
  // False when some of it could not be written: output_error() says why.
  bool finish();
  // "PATH: REASON" (or "standard output: REASON") for a write that failed.
  std::optional<std::string> output_error() const;
  // Whether the output is standard output (whose errors the command line
  // reports once, at its end, with its other output's).
  bool to_standard_output() const { return output_ && output_->is_standard_output(); }

  // A trace that is off (enabled false), as open() made it: every CPU's tail
  // emptied (their storage kept) and not finished. For a trace kept from run
  // to run (RunWorkspace); a trace that writes is opened for each run.
  void restart();

  // The last `count` events of a CPU as text lines, oldest first.
  std::vector<std::string> tail(std::uint32_t cpu, std::size_t count) const;

  static std::string format_text(const Event& event);
  static std::string format_json(const Event& event);
  static std::string format_chrome(const Event& event);

 private:
  Trace(TraceFormat format, std::unique_ptr<OutputFile> output, TraceFilter filter, bool enabled);

  TraceFormat format_;
  std::unique_ptr<OutputFile> output_;  // null when disabled
  std::shared_ptr<spdlog::logger> logger_;
  TraceFilter filter_;
  bool enabled_;
  bool first_chrome_event_ = true;
  std::size_t named_tracks_ = 0;  // CPUs whose Chrome track has its name
  std::size_t cpus_seen_ = 0;     // 1 + the highest CPU that emitted an event
  bool finished_ = false;
  mutable std::mutex mutex_;  // guards the output: parallel mode emits from several threads
  // Each CPU's last events, kept raw (formatted only when a report asks:
  // most runs, and every explore seed that passes, never do).
  static constexpr std::size_t kTailLength = 16;
  struct TailEntry {
    Event event;       // its text view is not kept ...
    std::string text;  // ... this copy is
  };
  struct Tail {
    std::array<TailEntry, kTailLength> ring;
    std::size_t next = 0;
    std::size_t count = 0;
  };
  std::vector<Tail> tails_;
};

}  // namespace pagelab::emu
