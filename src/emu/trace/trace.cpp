#include "emu/trace/trace.hpp"

#include <spdlog/details/null_mutex.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include <array>

#include "mm/base/panic.hpp"
#include "mm/base/status.hpp"
#include "mm/platform/platform.hpp"
#include "mm/phys/frame.hpp"

namespace pagelab::emu {

namespace {

// spdlog's own sinks fall short here: the file sink creates a missing
// directory and reports a failed write by printing "LOG ERROR" and going
// on; the stdout sink flushes every line and checks nothing. This one hands
// the lines to an OutputFile, which keeps the first failure for finish().
// Unlocked: Trace's mutex serializes every call.
class OutputSink final : public spdlog::sinks::base_sink<spdlog::details::null_mutex> {
 public:
  explicit OutputSink(OutputFile& output) : output_(output) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& message) override {
    spdlog::memory_buf_t line;
    formatter_->format(message, line);
    output_.write(std::string_view(line.data(), line.size()));
  }
  void flush_() override {}  // Trace::finish closes the output

 private:
  OutputFile& output_;
};

constexpr std::array<std::string_view, kEventKindCount> kNames = {
    "access",   "tlb.hit",  "tlb.miss", "walk",    "fault",       "fault.resolved", "segv",
    "frame.alloc", "frame.free", "map",  "unmap",   "protect",     "fork",           "cr3",
    "invlpg",   "invpcid",  "flush.all", "ipi.send", "ipi.recv",  "note",           "inject",
};

struct Field {
  std::string_view key;
  std::string value;
  bool quoted;  // a JSON string (addresses are hex strings: JSON numbers stop at 2^53)
};

std::string hex(std::uint64_t v) { return fmt::format("{:#x}", v); }

std::string error_bits(std::uint64_t code) {
  std::string bits;
  const auto add = [&](bool on, std::string_view name) {
    if (!on) return;
    if (!bits.empty()) bits += '|';
    bits += name;
  };
  add(code & 1, "P");
  add(code & 2, "W");
  add(code & 4, "U");
  add(code & 8, "RSVD");
  add(code & 16, "I");
  return bits.empty() ? "0" : bits;
}

std::string status_name(std::uint64_t status) { return mm::errno_name(static_cast<mm::Status>(status)); }

std::string cpu_set(std::uint64_t bits) {
  std::string list;
  for (int cpu = 0; cpu < 64; ++cpu) {
    if (!((bits >> cpu) & 1)) continue;
    list += list.empty() ? fmt::format("{}", cpu) : fmt::format(",{}", cpu);
  }
  return fmt::format("{{{}}}", list);
}

// An `inject` event's fields, by what was injected (EventKind::Inject).
std::vector<Field> inject_fields(const Event& e) {
  std::vector<Field> fields{{"what", std::string(e.text), true}};
  if (e.text == "alloc-fail") {
    fields.push_back({"n", std::to_string(e.a), false});
    fields.push_back({"frames", std::to_string(e.b), false});
    fields.push_back({"owner", mm::frame_owner_name(static_cast<mm::FrameOwner>(e.c)), true});
  } else if (e.text == "ipi-delay") {
    fields.push_back({"boundaries", std::to_string(e.a), false});
  } else if (e.text == "spec-fill") {
    fields.push_back({"va", hex(e.a), true});
  } else if (e.text == "evict") {
    fields.push_back({"va", hex(e.a), true});
    fields.push_back({"level", fmt::format("L{}", e.b), true});
    fields.push_back({"pcid", std::to_string(e.c), false});
  }
  return fields;
}

std::vector<Field> fields_of(const Event& e) {
  constexpr std::string_view kAccess[] = {"read", "write", "exec"};
  switch (e.kind) {
    case EventKind::Access:
      return {{"va", hex(e.a), true}, {"access", std::string(kAccess[e.b % 3]), true},
              {"mode", e.c ? "user" : "kernel", true}, {"value", hex(e.d), true}};
    case EventKind::TlbHit:
      return {{"va", hex(e.a), true}, {"level", fmt::format("L{}", e.b), true}, {"pa", hex(e.c), true},
              {"pcid", std::to_string(e.d), false}};
    case EventKind::TlbMiss:
      return {{"va", hex(e.a), true}, {"pcid", std::to_string(e.d), false}};
    case EventKind::Walk:
      return {{"va", hex(e.a), true}, {"level", std::to_string(e.b), false}, {"entry_at", hex(e.c), true},
              {"entry", hex(e.d), true}};
    case EventKind::Fault:
    case EventKind::Segv:
      return {{"va", hex(e.a), true}, {"error", hex(e.b), true}, {"bits", error_bits(e.b), true}};
    case EventKind::FaultResolved:
      return {{"va", hex(e.a), true}, {"answer", std::string(e.text), true}};
    case EventKind::FrameAlloc:
      return {{"pa", hex(e.a), true}, {"frames", std::to_string(e.b), false}, {"owner", std::string(e.text), true}};
    case EventKind::FrameFree:
      return {{"pa", hex(e.a), true}, {"frames", std::to_string(e.b), false}};
    case EventKind::Map:
    case EventKind::Unmap:
    case EventKind::Protect:
      return {{"space", std::string(e.text), true}, {"addr", hex(e.a), true}, {"len", hex(e.b), true},
              {"status", status_name(e.c), true}};
    case EventKind::Fork:
      return {{"spaces", std::string(e.text), true}, {"status", status_name(e.c), true}};
    case EventKind::Cr3Load:
      return {{"root", hex(e.a), true}, {"pcid", std::to_string(e.b), false}, {"noflush", e.c ? "true" : "false", false}};
    case EventKind::Invlpg:
      return {{"va", hex(e.a), true}};
    case EventKind::Invpcid:
      return {{"type", std::to_string(e.b), false}, {"pcid", std::to_string(e.c), false}, {"va", hex(e.a), true}};
    case EventKind::FlushAll:
      return {};
    case EventKind::IpiSend:
      return {{"targets", cpu_set(e.a), true}};
    case EventKind::IpiReceive:
      return {{"from", std::to_string(e.a), false}};
    case EventKind::Note:
      return {{"text", std::string(e.text), true}};
    case EventKind::Inject:
      return inject_fields(e);
  }
  return {};
}

std::string json_escape(std::string_view s) {
  std::string out;
  for (const char ch : s) {
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (static_cast<unsigned char>(ch) < 0x20) {
      out += fmt::format("\\u{:04x}", static_cast<int>(ch));
    } else {
      out += ch;
    }
  }
  return out;
}

std::string json_fields(const std::vector<Field>& fields) {
  std::string out;
  for (const Field& f : fields) {
    out += fmt::format(",\"{}\":", f.key);
    out += f.quoted ? fmt::format("\"{}\"", json_escape(f.value)) : f.value;
  }
  return out;
}

bool has_address(EventKind kind) {
  switch (kind) {
    case EventKind::Access:
    case EventKind::TlbHit:
    case EventKind::TlbMiss:
    case EventKind::Walk:
    case EventKind::Fault:
    case EventKind::FaultResolved:
    case EventKind::Segv:
    case EventKind::Map:
    case EventKind::Unmap:
    case EventKind::Protect:
    case EventKind::Invlpg:
    case EventKind::Invpcid:
      return true;
    default:
      return false;
  }
}

}  // namespace

std::string_view event_kind_name(EventKind kind) { return kNames[static_cast<int>(kind)]; }

std::optional<EventKind> event_kind_from_name(std::string_view name) {
  for (int i = 0; i < kEventKindCount; ++i) {
    if (kNames[i] == name) return static_cast<EventKind>(i);
  }
  return std::nullopt;
}

bool TraceFilter::accepts(const Event& e) const {
  if (cpus && !cpus->count(e.cpu)) return false;
  if (kinds && !kinds->count(e.kind)) return false;
  if (address_range) {
    if (!has_address(e.kind)) return false;
    if (e.a < address_range->first || e.a > address_range->second) return false;
  }
  return true;
}

std::string Trace::format_text(const Event& e) {
  std::string line = fmt::format("{:>8}  cpu{:<2} {:<14}", e.step, e.cpu, event_kind_name(e.kind));
  for (const Field& f : fields_of(e)) {
    line += fmt::format(" {}={}", f.key, f.value);
  }
  return line;
}

std::string Trace::format_json(const Event& e) {
  return fmt::format("{{\"step\":{},\"cpu\":{},\"event\":\"{}\"{}}}", e.step, e.cpu, event_kind_name(e.kind),
                     json_fields(fields_of(e)));
}

std::string Trace::format_chrome(const Event& e) {
  // An instant event on the CPU's track; the step is the timestamp.
  return fmt::format("{{\"name\":\"{}\",\"cat\":\"pagelab\",\"ph\":\"i\",\"s\":\"t\",\"ts\":{},\"pid\":1,\"tid\":{},"
                     "\"args\":{{\"step\":{}{}}}}}",
                     event_kind_name(e.kind), e.step, e.cpu, e.step, json_fields(fields_of(e)));
}

std::unique_ptr<Trace> Trace::open(TraceFormat format, const std::string& path, TraceFilter filter, bool enabled,
                                   std::string& error) {
  std::unique_ptr<OutputFile> output;
  if (enabled) {
    output = path.empty() ? OutputFile::standard_output() : OutputFile::open(path, error);
    if (!output) return nullptr;
  }
  return std::unique_ptr<Trace>(new Trace(format, std::move(output), std::move(filter), enabled));
}

Trace::Trace(TraceFormat format, std::unique_ptr<OutputFile> output, TraceFilter filter, bool enabled)
    : format_(format), output_(std::move(output)), filter_(std::move(filter)), enabled_(enabled), tails_(mm::kMaxCpus) {
  if (!enabled_) return;
  logger_ = std::make_shared<spdlog::logger>("pagelab.trace", std::make_shared<OutputSink>(*output_));
  logger_->set_pattern("%v");  // the line is the event; no time stamps (they would break determinism)
  logger_->set_level(spdlog::level::info);
  if (format_ == TraceFormat::Chrome) logger_->info("{}", "{\"displayTimeUnit\":\"ns\",\"traceEvents\":[");
}

Trace::~Trace() { (void)finish(); }

void Trace::emit(const Event& event) {
  // A CPU's tail is written only by that CPU (its thread or fiber; the set-up
  // and the final checks run while no CPU does), so it needs no lock: a
  // shootdown's initiator and its targets do not contend on a trace that is off.
  Tail& tail = tails_[event.cpu];
  TailEntry& entry = tail.ring[tail.next];
  entry.event = event;
  entry.event.text = {};
  entry.text.assign(event.text);
  tail.next = (tail.next + 1) % kTailLength;
  if (tail.count < kTailLength) ++tail.count;
  if (!enabled_) return;
  std::lock_guard<std::mutex> guard(mutex_);
  if (event.cpu + std::size_t{1} > cpus_seen_) cpus_seen_ = event.cpu + std::size_t{1};
  // Once a write failed (a full disk, a reader that closed the pipe), the
  // rest would be lost too: formatting it is wasted time.
  if (finished_ || output_->failed() || !filter_.accepts(event)) return;
  switch (format_) {
    case TraceFormat::Text:
      logger_->info("{}", format_text(event));
      break;
    case TraceFormat::Jsonl:
      logger_->info("{}", format_json(event));
      break;
    case TraceFormat::Chrome: {
      if (cpus_seen_ > named_tracks_) {
        // Name every CPU's track the first time one appears.
        for (; named_tracks_ < cpus_seen_; ++named_tracks_) {
          logger_->info("{}{{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":{},\"args\":{{\"name\":\"CPU {}\"}}}}",
                        first_chrome_event_ ? "" : ",", named_tracks_, named_tracks_);
          first_chrome_event_ = false;
        }
      }
      logger_->info("{}{}", first_chrome_event_ ? "" : ",", format_chrome(event));
      first_chrome_event_ = false;
      break;
    }
  }
}

bool Trace::finish() {
  std::lock_guard<std::mutex> guard(mutex_);
  if (finished_ || !enabled_) {
    finished_ = true;
    return !output_ || !output_->failed();
  }
  finished_ = true;
  if (format_ == TraceFormat::Chrome) logger_->info("{}", "]}");
  return output_->close();
}

std::optional<std::string> Trace::output_error() const {
  std::lock_guard<std::mutex> guard(mutex_);
  if (!output_ || !output_->failed()) return std::nullopt;
  return output_->error();
}

void Trace::restart() {
  if (enabled_) MM_PANIC("Trace::restart: only a trace that is off is kept from run to run", 0);
  for (Tail& tail : tails_) {
    tail.next = 0;
    tail.count = 0;
  }
  std::lock_guard<std::mutex> guard(mutex_);
  finished_ = false;
}

std::vector<std::string> Trace::tail(std::uint32_t cpu, std::size_t count) const {
  // Read once the CPUs have stopped (a report), so no lock either.
  if (cpu >= tails_.size()) return {};
  const Tail& t = tails_[cpu];
  const std::size_t n = count < t.count ? count : t.count;
  std::vector<std::string> lines;
  for (std::size_t i = 0; i < n; ++i) {
    const TailEntry& entry = t.ring[(t.next + kTailLength - n + i) % kTailLength];
    Event event = entry.event;
    event.text = entry.text;
    lines.push_back(format_text(event));
  }
  return lines;
}

}  // namespace pagelab::emu
