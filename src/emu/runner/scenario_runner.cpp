#include "emu/runner/scenario_runner.hpp"

#include <fmt/format.h>

#include <map>
#include <mutex>
#include <thread>

#include "emu/machine/machine.hpp"
#include "emu/model/judge.hpp"
#include "emu/runner/run_workspace.hpp"

namespace pagelab::emu {

namespace {

using scenario::Expectation;
using scenario::OutcomeKind;
using scenario::Statement;

struct Failure {
  scenario::SourceLocation where;
  std::string message;
  std::uint32_t cpu = 0;
  std::uint64_t step = 0;
};

// A barrier of the scenario: every CPU that names it must arrive before any leaves.
struct Barrier {
  std::uint32_t participants = 0;
  std::uint32_t arrived = 0;
  std::uint64_t generation = 0;
};

void count_barriers(const std::vector<Statement>& body, std::map<std::string, std::uint32_t>& named) {
  for (const Statement& s : body) {
    if (const auto* b = s.as<scenario::BarrierStmt>()) named[b->name] = 1;
    if (const auto* r = s.as<scenario::RepeatStmt>()) count_barriers(r->body, named);
  }
}

std::string status_text(mm::Status status) { return mm::errno_name(status); }

class Run {
 public:
  Run(const scenario::Scenario& scenario, Machine& machine)
      : scenario_(scenario), machine_(machine), audit_(machine, !machine.config().inject.alloc_fail.empty()) {
    for (const auto& program : scenario.programs) {
      std::map<std::string, std::uint32_t> named;
      count_barriers(program.body, named);
      for (const auto& [name, one] : named) barriers_[name].participants += one;
    }
  }

  // Where statement outcomes go (RunOptions::outcomes); in_setup labels them.
  OutcomeSink outcomes;
  bool in_setup = false;

  // Runs statements on the calling thread's CPU. False after a failure.
  bool execute(const std::vector<Statement>& body) {
    for (const Statement& s : body) {
      if (failed()) return false;
      current_[cpu_context.cpu] = &s.where;
      machine_.take_interrupts();  // between two instructions
      // --inject alloc-fail: a statement that fails must leave nothing half-done.
      const bool audited = audit_.enabled() && (in_setup || scenario_.machine.cpus == 1);
      if (audited) audit_.before(s);
      statement_failed_[cpu_context.cpu] = false;
      const bool held = execute(s);
      if (audited) {
        if (const std::optional<std::string> problem = audit_.after(s, statement_failed_[cpu_context.cpu] != 0)) {
          fail(s.where, *problem, {}, /*add=*/true);  // after the statement's own failure, if any
          return false;
        }
      }
      if (const std::optional<Violation> v = machine_.violation()) {
        // The CPU whose step broke an invariant reports it, at its statement.
        if (v->cpu == cpu_context.cpu) fail(s.where, v->headline(), v->step);
        return false;
      }
      if (!held) return false;
    }
    return true;
  }

  // The first failure stops the run; later ones are dropped, unless `add`
  // (they are then appended to its message).
  void fail(const scenario::SourceLocation& where, std::string message, std::optional<std::uint64_t> step = {},
            bool add = false, std::optional<std::uint32_t> cpu = {}) {
    std::lock_guard<std::mutex> guard(mutex_);
    if (failure_ && add) failure_->message += "; and " + message;
    if (failure_) return;
    failure_ = Failure{where, std::move(message), cpu.value_or(cpu_context.cpu), step.value_or(machine_.scheduler().steps())};
    machine_.scheduler().stop();
  }
  // A failure found after the run (the reference model's judge), on `cpu`'s behalf.
  void fail_on(std::uint32_t cpu, const scenario::SourceLocation& where, std::string message) {
    std::lock_guard<std::mutex> guard(mutex_);
    if (!failure_) failure_ = Failure{where, std::move(message), cpu, machine_.scheduler().steps()};
  }

  // The calling CPU left the run through Machine::run_guarded (the lock
  // checker abandoned it: a deadlock). The report is the checker's, at the
  // statement its CPU was running (else at `fallback`).
  void escaped(const scenario::SourceLocation& fallback) {
    const std::optional<Violation> v = machine_.violation();
    if (!v) {
      fail(fallback, "the run was abandoned");
      return;
    }
    const scenario::SourceLocation* where = v->cpu < mm::kMaxCpus ? current_[v->cpu] : nullptr;
    fail(where != nullptr ? *where : fallback, v->headline(), v->step, false, v->cpu);
  }
  bool failed() {
    std::lock_guard<std::mutex> guard(mutex_);
    return failure_.has_value();
  }
  std::optional<Failure> failure() {
    std::lock_guard<std::mutex> guard(mutex_);
    return failure_;
  }

 private:
  bool execute(const Statement& s) {
    if (const auto* r = s.as<scenario::RepeatStmt>()) {
      for (std::uint64_t i = 0; i < r->count; ++i) {
        if (!execute(r->body)) return false;
      }
      return true;
    }
    if (const auto* b = s.as<scenario::BarrierStmt>()) return barrier(*b);
    model::History* history = machine_.history();
    if (const auto* u = s.as<scenario::UseStmt>()) {
      if (history) history->begin_op(cpu_context.cpu, s);
      const mm::Status status = machine_.use_space(u->space);
      if (history) history->end_op(cpu_context.cpu, static_cast<std::uint8_t>(status));
      return expect_status(s, status);
    }
    if (const auto* m = s.as<scenario::ModeStmt>()) {
      machine_.set_mode(m->mode);
      return true;
    }
    if (history && (s.is<scenario::ReadStmt>() || s.is<scenario::WriteStmt>() || s.is<scenario::ExecStmt>())) {
      history->statement(cpu_context.cpu, s);
    }
    if (const auto* r = s.as<scenario::ReadStmt>()) return expect_access(s, machine_.access(r->address, hw::AccessKind::Read), r->address);
    if (const auto* w = s.as<scenario::WriteStmt>()) {
      return expect_access(s, machine_.access(w->address, hw::AccessKind::Write, w->value), w->address);
    }
    if (const auto* x = s.as<scenario::ExecStmt>()) return expect_access(s, machine_.access(x->address, hw::AccessKind::Fetch), x->address);
    if (history) history->begin_op(cpu_context.cpu, s);
    const mm::Status status = space_operation(s);
    if (history) history->end_op(cpu_context.cpu, static_cast<std::uint8_t>(status));
    return expect_status(s, status);
  }

  mm::Status space_operation(const Statement& s) {
    if (const auto* sp = s.as<scenario::SpaceStmt>()) return machine_.create_space(sp->name);
    if (const auto* f = s.as<scenario::ForkStmt>()) {
      const mm::Status status = machine_.fork_space(f->parent, f->child);
      machine_.operation_returned("fork", f->parent);
      return status;
    }
    if (const auto* m = s.as<scenario::MapStmt>()) {
      EmuSpace* space = machine_.space(m->space);
      if (space == nullptr) return mm::Status::NotFound;
      const mm::Status status = space->map(mm::MapRequest{.address = m->address, .length = m->length, .prot = m->prot,
                                                          .kind = m->kind, .fork = m->fork, .physical = m->physical,
                                                          .populate = m->populate});
      machine_.emit(EventKind::Map, m->address.value(), m->length, static_cast<std::uint64_t>(status), 0, m->space);
      machine_.operation_returned("map", m->space);
      return status;
    }
    if (const auto* u = s.as<scenario::UnmapStmt>()) {
      EmuSpace* space = machine_.space(u->space);
      if (space == nullptr) return mm::Status::NotFound;
      const mm::Status status = space->unmap(u->address, u->length);
      machine_.emit(EventKind::Unmap, u->address.value(), u->length, static_cast<std::uint64_t>(status), 0, u->space);
      machine_.operation_returned("unmap", u->space);
      return status;
    }
    if (const auto* p = s.as<scenario::ProtectStmt>()) {
      EmuSpace* space = machine_.space(p->space);
      if (space == nullptr) return mm::Status::NotFound;
      const mm::Status status = space->protect(p->address, p->length, p->prot);
      machine_.emit(EventKind::Protect, p->address.value(), p->length, static_cast<std::uint64_t>(status), 0, p->space);
      machine_.operation_returned("protect", p->space);
      return status;
    }
    if (const auto* p = s.as<scenario::PinStmt>()) {
      EmuSpace* space = machine_.space(p->space);
      return space == nullptr ? mm::Status::NotFound : space->pin(p->address, p->length);
    }
    if (const auto* p = s.as<scenario::UnpinStmt>()) {
      EmuSpace* space = machine_.space(p->space);
      return space == nullptr ? mm::Status::NotFound : space->unpin(p->address, p->length);
    }
    if (const auto* p = s.as<scenario::PokeStmt>()) {
      EmuSpace* space = machine_.space(p->space);
      return space == nullptr ? mm::Status::NotFound : space->write_u64(p->address, p->value);
    }
    return mm::Status::Ok;
  }

  bool expect_status(const Statement& s, mm::Status status) {
    statement_failed_[cpu_context.cpu] = status != mm::Status::Ok;
    const Expectation& e = s.expect;
    const bool holds = e.kind == OutcomeKind::Any || (e.kind == OutcomeKind::Ok && status == mm::Status::Ok) ||
                       (e.kind == OutcomeKind::Error && status == e.error);
    report(s, status == mm::Status::Ok ? "ok" : status_text(status),
           holds ? "" : "expected " + (e.kind == OutcomeKind::Error ? status_text(e.error) : std::string("ok")));
    if (!holds) {
      const std::string wanted = e.kind == OutcomeKind::Error ? status_text(e.error) : "OK";
      fail(s.where, fmt::format("{} returned {}, expected {}", scenario::keyword_of(s), status_text(status), wanted));
    }
    return holds;
  }

  bool expect_access(const Statement& s, const AccessOutcome& outcome, mm::VirtAddr address) {
    const Expectation& e = s.expect;
    const bool segv = outcome.kind != AccessOutcome::Kind::Ok;
    statement_failed_[cpu_context.cpu] = segv;
    std::string problem;
    if (outcome.kind == AccessOutcome::Kind::NoSpace) {
      problem = "this CPU has no address space yet (`use` one first)";
    } else if (e.kind == OutcomeKind::Segv && !segv) {
      problem = "completed, expected segv";
    } else if ((e.kind == OutcomeKind::Ok || e.kind == OutcomeKind::Value) && segv) {
      problem = "was a segmentation fault, expected it to complete";
    } else if (e.kind == OutcomeKind::Value && outcome.value != e.value) {
      problem = fmt::format("got {:#x}, expected {:#x}", outcome.value, e.value);
    } else if (!segv && outcome.value == mm::kPoisonPattern && s.is<scenario::ReadStmt>()) {
      problem = "read the poison of a freed frame: data crossed owners";
    }
    report(s,
           outcome.kind == AccessOutcome::Kind::NoSpace ? "nospace"
           : segv                                       ? "segv"
           : s.is<scenario::ReadStmt>()                 ? fmt::format("{:#x}", outcome.value)
                                                        : "ok",
           problem);
    if (!problem.empty()) {
      fail(s.where, fmt::format("{} {:#x}: {}", scenario::keyword_of(s), address.value(), problem));
      return false;
    }
    return true;
  }

  void report(const Statement& s, std::string result, std::string problem) {
    if (!outcomes) return;
    outcomes(Outcome{in_setup ? Outcome::Section::Setup : Outcome::Section::Cpu, cpu_context.cpu, s.where.line,
                     scenario::keyword_of(s), std::move(result), s.expect.kind == OutcomeKind::Any, std::move(problem)});
  }

  bool barrier(const scenario::BarrierStmt& b) {
    std::uint64_t generation = 0;
    {
      std::lock_guard<std::mutex> guard(mutex_);
      Barrier& state = barriers_[b.name];
      generation = state.generation;
      if (++state.arrived == state.participants) {
        state.arrived = 0;
        ++state.generation;
        return true;
      }
    }
    for (;;) {
      {
        std::lock_guard<std::mutex> guard(mutex_);
        if (barriers_[b.name].generation != generation || failure_) return !failure_;
      }
      if (cpu_context.scheduled) {
        machine_.interruptible_wait();
        if (machine_.scheduler().deadlocked()) return false;
      } else {
        machine_.take_interrupts();
        std::this_thread::yield();
      }
    }
  }

  const scenario::Scenario& scenario_;
  Machine& machine_;
  std::mutex mutex_;
  std::map<std::string, Barrier> barriers_;
  std::optional<Failure> failure_;
  OperationAudit audit_;
  // By CPU: did the statement it just ran fail (an error, a segv)? (For the audit.)
  std::uint8_t statement_failed_[mm::kMaxCpus] = {};
  // By CPU: the statement it runs (the innermost, in a repeat), for a report
  // made where that CPU cannot say it itself (escaped()).
  const scenario::SourceLocation* current_[mm::kMaxCpus] = {};
};

AllocatorKind allocator_of(const scenario::Options& options) {
  if (!options.pmm) return AllocatorKind::Buddy;
  switch (*options.pmm) {
    case scenario::PmmKind::Buddy: return AllocatorKind::Buddy;
    case scenario::PmmKind::Stack: return AllocatorKind::Stack;
    case scenario::PmmKind::Bitmap: return AllocatorKind::Bitmap;
  }
  return AllocatorKind::Buddy;
}

std::string where(const scenario::Scenario& s, const scenario::SourceLocation& at) {
  return fmt::format("{}:{}:{}", s.file, at.line, at.column);
}

std::string report_failure(const scenario::Scenario& s, Machine& machine, const Failure& f, std::uint64_t seed) {
  std::string out = fmt::format("FAIL: {}: {}\n", where(s, f.where), f.message);
  out += fmt::format("  seed {}, cpu {}, step {}\n", seed, f.cpu, f.step);
  out += "  last events:\n";
  for (std::uint32_t cpu = 0; cpu < machine.cpu_count(); ++cpu) {
    for (const std::string& line : machine.trace().tail(cpu, 6)) out += "    " + line + "\n";
  }
  return out;
}

// Checks that need the spaces, then (after destroying them) the leak check.
// Tells `outcomes` (if set) how a check came out.
void report_check(const OutcomeSink& outcomes, const scenario::Check& check, const std::string& problem) {
  static constexpr std::string_view kKinds[] = {"value", "mapped", "unmapped", "frames", "faults", "shootdowns"};
  static_assert(std::size(kKinds) == std::variant_size_v<scenario::Check::What>);
  if (outcomes) {
    outcomes(Outcome{Outcome::Section::Check, 0, check.where.line, kKinds[check.what.index()], problem.empty() ? "ok" : "FAIL",
                     false, problem});
  }
}

std::optional<std::string> run_checks(const scenario::Scenario& s, Machine& machine, std::uint64_t free_at_start,
                                      std::size_t& held, bool keep_spaces, const OutcomeSink& outcomes) {
  for (const scenario::Check& check : s.checks) {
    std::string problem;
    if (const auto* v = check.as<scenario::CheckValue>()) {
      EmuSpace* space = machine.space(v->space);
      const mm::Result<mm::u64> got = space ? space->read_u64(v->address) : mm::Result<mm::u64>(mm::Status::NotFound);
      if (!got.ok()) problem = fmt::format("check value: reading {:#x} gave {}", v->address.value(), status_text(got.status()));
      else if (got.value() != v->value) problem = fmt::format("check value {:#x}: {:#x}, expected {:#x}", v->address.value(), got.value(), v->value);
    } else if (const auto* m = check.as<scenario::CheckMapped>()) {
      EmuSpace* space = machine.space(m->space);
      std::optional<mm::Prot> prot;
      if (space) {
        space->for_each_region([&](const mm::Region& r) {
          if (r.contains(m->address) && r.kind != mm::RegionKind::Guard) prot = r.prot;
        });
      }
      if (!prot) problem = fmt::format("check mapped {:#x}: nothing is mapped there", m->address.value());
      else if (*prot != m->prot) problem = fmt::format("check mapped {:#x}: mapped {}, expected {}", m->address.value(), mm::prot_name(*prot), mm::prot_name(m->prot));
    } else if (const auto* u = check.as<scenario::CheckUnmapped>()) {
      EmuSpace* space = machine.space(u->space);
      bool mapped = false;
      if (space) space->for_each_region([&](const mm::Region& r) { mapped = mapped || (r.contains(u->address) && r.kind != mm::RegionKind::Guard); });
      if (mapped) problem = fmt::format("check unmapped {:#x}: it is mapped", u->address.value());
    } else if (const auto* f = check.as<scenario::CheckFaults>()) {
      const std::uint64_t faults = machine.cpu(f->cpu).faults;
      if (!scenario::compare(faults, f->comparison, f->count)) {
        problem = fmt::format("check faults cpu {}: {} faults, expected {} {}", f->cpu, faults, scenario::comparison_symbol(f->comparison), f->count);
      }
    } else if (const auto* sd = check.as<scenario::CheckShootdowns>()) {
      const std::uint64_t shootdowns = machine.vm().coherence().stats().shootdowns;
      if (!scenario::compare(shootdowns, sd->comparison, sd->count)) {
        problem = fmt::format("check shootdowns: {}, expected {} {}", shootdowns, scenario::comparison_symbol(sd->comparison), sd->count);
      }
    } else {
      continue;  // frames leaked: after the spaces are gone
    }
    report_check(outcomes, check, problem);
    if (!problem.empty()) return fmt::format("FAIL: {}: {}\n", where(s, check.where), problem);
    ++held;
  }
  if (keep_spaces) return std::nullopt;
  machine.destroy_spaces();
  const std::uint64_t free_now = machine.free_frames();
  const std::uint64_t leaked = free_at_start > free_now ? free_at_start - free_now : 0;
  for (const scenario::Check& check : s.checks) {
    if (const auto* l = check.as<scenario::CheckFramesLeaked>()) {
      report_check(outcomes, check,
                   scenario::compare(leaked, l->comparison, l->count) ? "" : fmt::format("{} frames leaked", leaked));
      if (!scenario::compare(leaked, l->comparison, l->count)) {
        return fmt::format("FAIL: {}: check frames leaked: {} frames leaked, expected {} {}\n", where(s, check.where), leaked,
                           scenario::comparison_symbol(l->comparison), l->count);
      }
      ++held;
    }
  }
  if (leaked != 0) return fmt::format("FAIL: {}: {} frames leaked after every space was destroyed\n", s.file, leaked);
  return std::nullopt;
}

// Closes the trace. A trace file that could not be written completely makes
// the run's status 3 whatever the verdict (which the report still gives);
// standard output's errors are the command line's to report, once.
void finish_trace(Trace& trace, RunResult& result) {
  if (trace.finish() || trace.to_standard_output()) return;
  result.exit_code = kExitOutputFailed;
  result.report += fmt::format("pagelab: {}\n", trace.output_error().value_or("the trace could not be written"));
}

}  // namespace

RunResult run_scenario(const scenario::Scenario& s, const RunOptions& options) {
  RunResult result;
  result.seed = options.seed.value_or(s.seed.value_or(1));
  const mm::ShootdownPolicy policy = options.shootdown.value_or(s.options.shootdown.value_or(mm::ShootdownPolicy::Batched));
  if (mm::is_unsafe(policy) && !options.allow_unsafe) {
    const scenario::OptionSetting* option = s.options.find("shootdown");
    result.exit_code = 2;
    if (options.shootdown) {
      result.report = fmt::format("pagelab: --shootdown {} reproduces a bug on purpose: pass --allow-unsafe to run it\n",
                                  mm::shootdown_policy_name(policy));
    } else {
      result.report = fmt::format("{}: error: shootdown policy '{}' reproduces a bug on purpose: pass --allow-unsafe to run it\n",
                                  where(s, option ? option->value_where : s.machine.where), option ? option->value : "?");
    }
    return result;
  }

  std::string error;
  RunWorkspace* const workspace =
      options.ram.kind == RamSpec::Kind::Anonymous && !options.keep_spaces ? options.workspace : nullptr;
  std::unique_ptr<Trace> own_trace;
  Trace* trace = nullptr;
  if (workspace != nullptr && !options.trace) {
    trace = &workspace->quiet_trace();
  } else {
    own_trace = Trace::open(options.format, options.trace_out, options.filter, options.trace, error);
    if (!own_trace) {
      result.exit_code = 2;
      result.report = "pagelab: " + error + "\n";
      return result;
    }
    trace = own_trace.get();
  }
  MachineConfig config;
  config.cpus = s.machine.cpus;
  config.ram_bytes = s.machine.ram_bytes;
  config.tlb_preset = s.machine.tlb_preset;
  config.pcid = s.machine.pcid;
  config.psc = s.machine.psc;
  config.allocator = allocator_of(s.options);
  config.flush_threshold = s.options.flush_threshold.value_or(32);
  config.shootdown = policy;
  config.ram = options.ram;
  config.schedule.deterministic = options.deterministic;
  config.schedule.seed = result.seed;
  config.schedule.strategy = options.strategy;
  config.schedule.replay = options.replay;
  if (!options.replay && options.schedule_hint) {
    config.schedule.replay = options.schedule_hint;
    config.schedule.replay_hint = true;
  }
  config.inject = options.inject;
  Machine::Failure create_failure = Machine::Failure::Machine;
  std::unique_ptr<Machine> own_machine;  // (declared after the trace: torn down before it)
  Machine* machine = nullptr;
  if (workspace != nullptr) {
    machine = workspace->machine_for(config, *trace, error, &create_failure);
  } else {
    own_machine = Machine::create(config, *trace, error, &create_failure);
    machine = own_machine.get();
  }
  // However the run ends, the workspace's machine stops pointing at this
  // run's trace, which goes with it.
  struct RunEnd {
    RunWorkspace* workspace;
    ~RunEnd() {
      if (workspace != nullptr) workspace->run_ended();
    }
  } const run_end{workspace};
  if (machine == nullptr) {
    // The scenario's machine is the scenario's error; a RAM file that
    // cannot be made (`--ram file:PATH`) is the command line's.
    result.exit_code = 2;
    result.report = create_failure == Machine::Failure::HostRam
                        ? fmt::format("pagelab: {}\n", error)
                        : fmt::format("{}: error: {}\n", where(s, s.machine.tlb_where), error);
    return result;
  }
  const std::uint64_t free_at_start = machine->free_frames();
  model::History history;
  const bool judged = options.judge && options.deterministic && options.inject.alloc_fail.empty();
  if (judged) machine->set_history(&history);

  // Whatever way the run ends: the lock orders it saw, for the caller.
  struct OrdersOut {
    const RunOptions& options;
    Machine& machine;
    ~OrdersOut() {
      if (options.lock_orders != nullptr) options.lock_orders->merge(machine.locks().orders());
    }
  } orders_out{options, *machine};

  Run run(s, *machine);
  machine->emit(EventKind::Note, 0, 0, 0, 0, "set-up");
  run.outcomes = options.outcomes;
  run.in_setup = true;
  // Each part runs guarded: a deadlock the lock checker finds abandons the
  // run, and every CPU leaves its program (docs/EMULATOR.md, "The lock checker").
  if (!machine->run_guarded([&] { run.execute(s.setup); })) {
    run.escaped(s.machine.where);
    cpu_context = CpuContext{machine, 0, false};
  }
  run.in_setup = false;
  if (!run.failed()) {
    // Deterministic: each CPU a fiber on this thread; parallel: a thread.
    machine->scheduler().run_cpus(
        [&](std::uint32_t cpu) {
          cpu_context = CpuContext{machine, cpu, options.deterministic};
          machine->scheduler().enter(cpu);
          const bool finished = machine->run_guarded([&] {
            machine->cpu_online();
            if (const scenario::CpuProgram* program = s.program_for(cpu)) run.execute(program->body);
            machine->cpu_offline();
          });
          if (!finished) run.escaped(s.machine.where);
          machine->scheduler().exit(cpu);
        },
        cpu_context);
    cpu_context = CpuContext{machine, 0, false};
  }
  result.steps = machine->scheduler().steps();
  result.schedule = machine->scheduler().schedule();
  if (const std::optional<Violation> v = machine->violation(); v && !run.failed()) {
    run.fail(s.machine.where, v->headline(), v->step, false, v->cpu);
  }
  if (machine->scheduler().deadlocked() && !run.failed()) {
    run.fail(s.machine.where, "deadlock: every CPU was waiting (a barrier no one else reaches?)");
  }
  if (options.replay && machine->scheduler().replay_diverged() && !run.failed()) {
    run.fail(s.machine.where, "the recorded schedule does not fit this run (another scenario, or other options?)");
  }
  if (judged) {
    machine->set_history(nullptr);
    if (!run.failed()) {
      const model::JudgeResult verdict = model::judge_run(s, history, *machine);
      if (verdict.failure) {
        const scenario::SourceLocation at = verdict.failure->statement ? verdict.failure->statement->where : s.machine.where;
        run.fail_on(verdict.failure->cpu, at, verdict.failure->message);
      }
    }
  }
  result.allocations = machine->injector().allocations();
  // (An abandoned machine's spaces are left as the CPUs left them: no audit.)
  const bool audit_leaks = !options.inject.alloc_fail.empty() && !options.keep_spaces && !machine->abandoned();
  if (const std::optional<Failure> failure = run.failure()) {
    result.exit_code = 1;
    result.report = report_failure(s, *machine, *failure, result.seed);
    if (audit_leaks) {
      if (const std::optional<std::string> leaked = audit_after_run(*machine, free_at_start)) {
        result.report += fmt::format("FAIL: {}: {}\n", s.file, *leaked);
      }
    }
    finish_trace(*trace, result);
    return result;
  }
  std::size_t held = 0;
  std::optional<std::string> problem;
  const bool checked = machine->run_guarded(
      [&] { problem = run_checks(s, *machine, free_at_start, held, options.keep_spaces, options.outcomes); });
  // The checks destroy the spaces: the lock checker watches that too.
  if (const std::optional<Violation> v = machine->locks().violation(); v && (!checked || !problem)) {
    problem = fmt::format("FAIL: {}: {}\n", where(s, s.machine.where), v->headline());
  }
  if (problem) {
    result.exit_code = 1;
    result.report = *problem + fmt::format("  seed {}, {} steps\n", result.seed, result.steps);
    finish_trace(*trace, result);
    return result;
  }
  if (audit_leaks) {
    if (const std::optional<std::string> leaked = audit_after_run(*machine, free_at_start)) {
      result.exit_code = 1;
      result.report = fmt::format("FAIL: {}: {}\n  seed {}, {} steps\n", s.file, *leaked, result.seed, result.steps);
      finish_trace(*trace, result);
      return result;
    }
  }
  std::uint64_t faults = 0;
  for (std::uint32_t cpu = 0; cpu < machine->cpu_count(); ++cpu) faults += machine->cpu(cpu).faults;
  if (options.keep_spaces) {
    result.report = fmt::format("PASS: {}: {} checks held; spaces kept in RAM for inspect, leak check skipped (seed {}, {} steps, "
                                "{} page faults)\n", s.file, held, result.seed, result.steps, faults);
    finish_trace(*trace, result);
    // The machine is left standing on purpose: destroying it would free the
    // spaces' frames, and poison them, in the RAM object inspect will read.
    // (With keep_spaces the machine is always the run's own.)
    (void)own_machine.release();
    return result;
  }
  result.report = fmt::format("PASS: {}: {} checks held, no frame leaked (seed {}, {} steps, {} page faults)\n", s.file, held,
                              result.seed, result.steps, faults);
  finish_trace(*trace, result);
  return result;
}

}  // namespace pagelab::emu
