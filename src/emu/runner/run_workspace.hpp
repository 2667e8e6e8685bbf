// RunWorkspace: what one worker (an explore or fuzz thread) keeps from run to
// run, so that a run costs the run and not the building of a machine: one
// machine, restarted for every run (Machine::restart: the RAM mapping, the
// frame records, the TLB arrays, the oracle's tables and the fiber stacks
// stay; what the run changed is put back; for a machine of another shape the
// RAM and the CPUs are exchanged for kept ones that fit, when the machine has
// them), and a trace that is off, for the runs that write none. Once warm, a
// run makes no host mmap or munmap and takes no host page fault for its
// machine.
//
// A run on a workspace gives the same result, report, trace and schedule,
// byte for byte, as the same run on a machine of its own
// (test/unit/run_workspace_test.cpp checks it over the examples, the race
// scenarios and generated cases, after passing, failing and injected runs).
//
// Not thread-safe: one workspace per worker thread, used by one run at a
// time (RunOptions::workspace).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "emu/machine/machine.hpp"
#include "emu/trace/trace.hpp"

namespace pagelab::emu {

class RunWorkspace {
 public:
  struct Stats {
    std::uint64_t runs = 0;        // machines handed out by machine_for()
    std::uint64_t builds = 0;      // ... built (the first run, or after a machine that could not be restarted)
    std::uint64_t restarts = 0;    // ... restarted
    std::uint64_t reshapes = 0;    // ... of which into another shape (MachineShape)
    std::uint64_t restart_ns = 0;  // host time in Machine::restart(), all restarts together
    std::uint64_t build_ns = 0;    // host time building machines
  };

  RunWorkspace();
  ~RunWorkspace();
  RunWorkspace(const RunWorkspace&) = delete;
  RunWorkspace& operator=(const RunWorkspace&) = delete;

  // The kept trace (off), restarted: for a run that writes no trace.
  Trace& quiet_trace();

  // A machine ready for a run of `config` (on an anonymous RAM) that emits
  // to `trace`: the kept one restarted, or a new one. Null, with `error` and
  // `failure` as Machine::create gives them, when the configuration cannot
  // be built. Valid until the next call or the workspace's end; call
  // run_ended() when the run is over.
  Machine* machine_for(const MachineConfig& config, Trace& trace, std::string& error, Machine::Failure* failure);
  // The run is over: the machine is pointed back at the kept trace (the
  // run's own trace, if it had one, may go now).
  void run_ended();

  const Stats& stats() const { return stats_; }

 private:
  std::unique_ptr<Trace> trace_;  // declared first: the machine points at it until its end
  std::unique_ptr<Machine> machine_;
  Stats stats_;
};

}  // namespace pagelab::emu
