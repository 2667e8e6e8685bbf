#include "emu/runner/run_workspace.hpp"

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
  if (machine_) {
    const bool reshaped = !(MachineShape::of(machine_->config()) == MachineShape::of(config));
    const bool ready = machine_->restart(config, trace, error, failure);
    stats_.restart_ns += nanoseconds_since(start);
    ++stats_.restarts;
    stats_.reshapes += reshaped ? 1 : 0;
    if (ready) return machine_.get();
    // As create() would have failed (or the host has no memory for a RAM):
    // no machine is kept that did not start.
    machine_.reset();
    return nullptr;
  }
  machine_ = Machine::create(config, trace, error, failure);
  stats_.build_ns += nanoseconds_since(start);
  ++stats_.builds;
  return machine_.get();
}

void RunWorkspace::run_ended() {
  if (machine_) machine_->set_trace(*trace_);
}

}  // namespace pagelab::emu
