#include "emu/runner/run_workspace.hpp"

#include <algorithm>
#include <chrono>

#include "mm/base/panic.hpp"

namespace pagelab::emu {

namespace {

std::uint64_t nanoseconds_since(std::chrono::steady_clock::time_point start) {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start).count());
}

}  // namespace

RunWorkspace::RunWorkspace() {
  std::string error;
  trace_ = Trace::open(TraceFormat::Text, "", TraceFilter{}, /*enabled=*/false, error);
  if (!trace_) MM_PANIC("RunWorkspace: a trace that is off could not be made", 0);
}

RunWorkspace::~RunWorkspace() = default;

Trace& RunWorkspace::quiet_trace() {
  trace_->restart();
  return *trace_;
}

Machine* RunWorkspace::machine_for(const MachineConfig& config, Trace& trace, std::string& error,
                                   Machine::Failure* failure) {
  if (config.ram.kind != RamSpec::Kind::Anonymous) MM_PANIC("RunWorkspace: a named RAM is each run's own", 0);
  ++stats_.runs;
  const auto start = std::chrono::steady_clock::now();
  if (machine_ && machine_->can_restart(config)) {
    const bool ready = machine_->restart(config, trace, error);
    stats_.restart_ns += nanoseconds_since(start);
    ++stats_.restarts;
    if (!ready) {
      // As create() would have failed: no machine is kept half-built.
      if (failure != nullptr) *failure = Machine::Failure::Machine;
      machine_.reset();
      return nullptr;
    }
    return machine_.get();
  }
  // Another shape: this machine's RAM is kept for a later one of its size.
  if (machine_) {
    if (kept_rams_.size() == kKeptRams) kept_rams_.erase(kept_rams_.begin());  // the least recently kept
    kept_rams_.push_back(machine_->take_clean_ram());
    machine_.reset();
  }
  std::unique_ptr<Ram> ram;
  const auto fits = std::find_if(kept_rams_.begin(), kept_rams_.end(),
                                 [&](const std::unique_ptr<Ram>& r) { return r->bytes() == config.ram_bytes; });
  if (fits != kept_rams_.end()) {
    ram = std::move(*fits);
    kept_rams_.erase(fits);
    ++stats_.kept_rams;
  }
  machine_ = Machine::create(config, trace, error, failure, std::move(ram));
  stats_.build_ns += nanoseconds_since(start);
  ++stats_.builds;
  return machine_.get();
}

void RunWorkspace::run_ended() {
  if (machine_) machine_->set_trace(*trace_);
}

}  // namespace pagelab::emu
