#include "scenario/scenario_runner.hpp"

#include <new>

#include "arch/tsc.hpp"
#include "arch/x86.hpp"
#include "console/kprintf.hpp"
#include "mm/base/atomic.hpp"
#include "scenario/compiled_scenario.hpp"
#include "scenario/real_access.hpp"
#include "smp/cpu_local.hpp"
#include "smp/smp.hpp"
#include "user/user_mode.hpp"

namespace kernel::scenario {

namespace {

// ---------------------------------------------------------------------------
// Outcomes, recorded per CPU during the run and printed after it.

enum class Result : mm::u8 { Ok, Segv, Error, NoSpace };

struct Record {
  const Op* op;
  mm::u64 value;   // a read's value
  mm::u32 count;   // identical consecutive outcomes of one statement (a repeat) share a record
  Result result;
  mm::Status status;
  bool failed;     // the expectation did not hold
};

constexpr mm::u32 kMaxRecords = 512;
constexpr mm::u32 kSetupSlot = mm::kMaxCpus;  // the set-up's records

struct CpuState {
  KernelSpace* loaded = nullptr;
  mm::AccessMode mode = mm::AccessMode::User;
  mm::u64 faults = 0;
  mm::u32 record_count = 0;
  bool overflow = false;
  Record records[kMaxRecords];
};

CpuState cpu_states[mm::kMaxCpus + 1];

// ---------------------------------------------------------------------------
// The scenario's address spaces, by the compiler's index.

struct SpaceSlot {
  alignas(KernelSpace) mm::u8 storage[sizeof(KernelSpace)];
  bool live = false;
  KernelSpace& space() { return *reinterpret_cast<KernelSpace*>(storage); }
};

SpaceSlot spaces[kMaxSpaces];

KernelSpace* live_space(mm::u8 index) { return index < kMaxSpaces && spaces[index].live ? &spaces[index].space() : nullptr; }

mm::Status create_space(mm::u8 index) {
  if (index >= kMaxSpaces) return mm::Status::InvalidArgument;
  if (spaces[index].live) return mm::Status::AlreadyExists;
  KernelSpace* space = new (spaces[index].storage) KernelSpace(kernel_vm());
  const mm::Status status = space->init();
  if (status != mm::Status::Ok) {
    space->~KernelSpace();
    return status;
  }
  spaces[index].live = true;
  return mm::Status::Ok;
}

void destroy_space(mm::u8 index) {
  KernelSpace& space = spaces[index].space();
  space.destroy();
  space.~KernelSpace();
  spaces[index].live = false;
}

// Loads `space` on this CPU. Through the core (TlbCoherence::switch_to),
// never a bare CR3 write: the core invalidates a changed page on the CPU
// that changes it only when it knows that CPU runs the space, and sends
// shootdowns only to the CPUs it knows run it. (Written behind its back,
// `protect` on the same CPU left the old writable translation in the TLB:
// test/boot/scenarios/fork_pin_protect.scenario, line 29.)
mm::Status switch_to(KernelSpace& space) { return space.activate(); }
// Back to the kernel's own tables (the core's idle root), leaving the space.
void switch_to_kernel() { kernel_vm().coherence().switch_to_kernel(); }

// ---------------------------------------------------------------------------
// Barriers: every CPU that names one waits until all of them are there.

struct BarrierState {
  mm::Atomic<mm::u32> arrived{0};
  mm::Atomic<mm::u32> generation{0};
};

BarrierState barriers[kMaxBarriers];

void wait_at_barrier(BarrierState& b, mm::u32 participants) {
  // The generation is read before arriving: it cannot move on until this
  // CPU has arrived, so a change means this round is complete.
  const mm::u32 generation = b.generation.load(mm::MemoryOrder::Acquire);
  if (b.arrived.fetch_add(1, mm::MemoryOrder::AcqRel) + 1 == participants) {
    b.arrived.store(0, mm::MemoryOrder::Relaxed);
    b.generation.fetch_add(1, mm::MemoryOrder::Release);
    return;
  }
  while (b.generation.load(mm::MemoryOrder::Acquire) == generation) x86::pause();
}

// ---------------------------------------------------------------------------
// One scenario's run.

struct Run {
  const CompiledScenario* s = nullptr;
  mm::PhysAddr window;        // the device window's run; 0 when none
  mm::FrameCount window_frames = 0;
};

const char* keyword(OpCode code) {
  static constexpr const char* kKeywords[] = {"space", "map",  "unmap", "protect", "fork",   "pin", "unpin",
                                              "poke",  "use",  "mode",  "read",    "write",  "exec",
                                              "barrier", "repeat", "end"};
  const auto index = static_cast<mm::u32>(code);
  return index < sizeof(kKeywords) / sizeof(kKeywords[0]) ? kKeywords[index] : "?";
}

void record(CpuState& st, const Op& op, Result result, mm::Status status, mm::u64 value, bool failed) {
  if (st.record_count > 0) {
    Record& last = st.records[st.record_count - 1];
    if (last.op == &op && last.result == result && last.status == status && last.value == value && last.failed == failed) {
      ++last.count;
      return;
    }
  }
  if (st.record_count == kMaxRecords) {
    st.overflow = true;
    return;
  }
  st.records[st.record_count++] = Record{&op, value, 1, result, status, failed};
}

void record_status(CpuState& st, const Op& op, mm::Status status) {
  const bool holds = op.expect == ExpectKind::Any || (op.expect == ExpectKind::Ok && status == mm::Status::Ok) ||
                     (op.expect == ExpectKind::Error && status == static_cast<mm::Status>(op.error));
  record(st, op, status == mm::Status::Ok ? Result::Ok : Result::Error, status, 0, !holds);
}

void record_access(CpuState& st, const Op& op, Result result, mm::u64 value) {
  const bool segv = result != Result::Ok;
  bool failed = result == Result::NoSpace;
  failed = failed || (op.expect == ExpectKind::Segv && !segv);
  failed = failed || ((op.expect == ExpectKind::Ok || op.expect == ExpectKind::Value) && segv);
  failed = failed || (op.expect == ExpectKind::Value && !segv && value != op.value);
  failed = failed || (op.code == OpCode::Read && !segv && value == mm::kPoisonPattern);  // data crossed owners
  record(st, op, result, mm::Status::Ok, value, failed);
}

mm::MapRequest map_request(const Run& run, const Op& op) {
  mm::MapRequest request{.address = mm::VirtAddr(op.address), .length = op.length, .prot = static_cast<mm::Prot>(op.prot),
                         .populate = (op.flags & kPopulate) != 0};
  switch (static_cast<MapKind>(op.other)) {
    case MapKind::Anon: break;
    case MapKind::Shared: request.fork = mm::ForkPolicy::Shared; break;
    case MapKind::Stack: request.kind = mm::RegionKind::Stack; break;
    case MapKind::Phys:
      request.kind = mm::RegionKind::Physical;
      request.physical = run.window + run.s->device_window_misalignment + op.value;
      break;
  }
  return request;
}

mm::Status fork_space(mm::u8 parent_index, mm::u8 child_index) {
  KernelSpace* parent = live_space(parent_index);
  if (parent == nullptr) return mm::Status::NotFound;
  MM_TRY(create_space(child_index));
  const mm::Status status = parent->fork(spaces[child_index].space());
  if (status != mm::Status::Ok) destroy_space(child_index);
  return status;
}

// A memory-management statement, on the calling CPU.
mm::Status space_operation(const Run& run, const Op& op) {
  if (op.code == OpCode::Space) return create_space(op.space);
  if (op.code == OpCode::Fork) return fork_space(op.other, op.space);
  KernelSpace* space = live_space(op.space);
  if (space == nullptr) return mm::Status::NotFound;
  switch (op.code) {
    case OpCode::Map: return space->map(map_request(run, op));
    case OpCode::Unmap: return space->unmap(mm::VirtAddr(op.address), op.length);
    case OpCode::Protect: return space->protect(mm::VirtAddr(op.address), op.length, static_cast<mm::Prot>(op.prot));
    case OpCode::Pin: return space->pin(mm::VirtAddr(op.address), op.length);
    case OpCode::Unpin: return space->unpin(mm::VirtAddr(op.address), op.length);
    case OpCode::Poke: return space->write_u64(mm::VirtAddr(op.address), op.value);
    case OpCode::Use: return switch_to(*space);
    default: return mm::Status::InvalidArgument;
  }
}

void access(CpuState& st, const Op& op) {
  if (st.loaded == nullptr) {
    record_access(st, op, Result::NoSpace, 0);
    return;
  }
  const AccessKind kind = op.code == OpCode::Read ? AccessKind::Read : op.code == OpCode::Write ? AccessKind::Write
                                                                                                : AccessKind::Exec;
  const AccessResult r = real_access(*st.loaded, kind, st.mode, op.address, op.value);
  st.faults += r.faults;
  record_access(st, op, r.segv ? Result::Segv : Result::Ok, r.value);
}

// Runs a program (or the set-up) on the calling CPU.
void execute(const Run& run, CpuState& st, const Op* ops, mm::u32 count) {
  struct Loop {
    mm::u32 begin;
    mm::u64 left;
  } loops[kMaxRepeatDepth];
  mm::u32 depth = 0;
  for (mm::u32 i = 0; i < count; ++i) {
    const Op& op = ops[i];
    switch (op.code) {
      case OpCode::Repeat:
        loops[depth++] = Loop{i, op.length};
        break;
      case OpCode::EndRepeat:
        if (--loops[depth - 1].left > 0) {
          i = loops[depth - 1].begin;
        } else {
          --depth;
        }
        break;
      case OpCode::Mode:
        st.mode = op.other == 1 ? mm::AccessMode::Kernel : mm::AccessMode::User;
        break;
      case OpCode::Barrier:
        wait_at_barrier(barriers[op.other], run.s->barrier_participants[op.other]);
        break;
      case OpCode::Read:
      case OpCode::Write:
      case OpCode::Exec:
        access(st, op);
        break;
      default: {
        const mm::Status status = space_operation(run, op);
        if (op.code == OpCode::Use && status == mm::Status::Ok) st.loaded = live_space(op.space);
        record_status(st, op, status);
        break;
      }
    }
  }
}

void run_program(void* argument) {
  const Run& run = *static_cast<const Run*>(argument);
  const mm::u32 cpu = current_cpu_index();
  for (mm::u32 i = 0; i < run.s->program_count; ++i) {
    const CpuProgram& program = run.s->programs[i];
    if (program.cpu == cpu) execute(run, cpu_states[cpu], program.ops, program.count);
  }
  if (cpu_states[cpu].loaded != nullptr) switch_to_kernel();
}

// ---------------------------------------------------------------------------
// Printing.

void print_result(const Record& r) {
  switch (r.result) {
    case Result::Ok:
      if (r.op->code == OpCode::Read) {
        kprintf("0x%lx", r.value);
      } else {
        kprintf("ok");
      }
      break;
    case Result::Segv: kprintf("segv"); break;
    case Result::Error: kprintf("%s", mm::errno_name(r.status)); break;
    case Result::NoSpace: kprintf("nospace"); break;
  }
}

const char* expected_text(const Op& op, char* buffer) {
  switch (op.expect) {
    case ExpectKind::Ok: return "ok";
    case ExpectKind::Segv: return "segv";
    case ExpectKind::Any: return "any";
    case ExpectKind::Error: return mm::errno_name(static_cast<mm::Status>(op.error));
    case ExpectKind::Value: {
      // 0x and up to 16 hex digits
      static constexpr char kHex[] = "0123456789abcdef";
      char digits[17];
      int n = 0;
      mm::u64 v = op.value;
      do {
        digits[n++] = kHex[v & 15];
        v >>= 4;
      } while (v != 0);
      char* out = buffer;
      *out++ = '0';
      *out++ = 'x';
      while (n > 0) *out++ = digits[--n];
      *out = 0;
      return buffer;
    }
  }
  return "?";
}

void print_records(const CompiledScenario& s, mm::u32 slot) {
  const CpuState& st = cpu_states[slot];
  for (mm::u32 i = 0; i < st.record_count; ++i) {
    const Record& r = st.records[i];
    for (mm::u32 n = 0; n < r.count; ++n) {
      // One kprintf per piece is fine: the run is over, only this CPU prints.
      if (slot == kSetupSlot) {
        kprintf("scenario %s: setup line %u: %s -> ", s.name, r.op->line, keyword(r.op->code));
      } else {
        kprintf("scenario %s: cpu %u line %u: %s -> ", s.name, slot, r.op->line, keyword(r.op->code));
      }
      print_result(r);
      char buffer[24];
      kprintf("%s%s%s%s\n", r.op->expect == ExpectKind::Any ? " [any]" : "", r.failed ? " (FAIL: expected " : "",
              r.failed ? expected_text(*r.op, buffer) : "", r.failed ? ")" : "");
    }
  }
  if (st.overflow && slot == kSetupSlot) {
    kprintf("scenario %s: setup: FAIL: more than %u distinct outcomes; the rest were not recorded\n", s.name, kMaxRecords);
  } else if (st.overflow) {
    kprintf("scenario %s: cpu %u: FAIL: more than %u distinct outcomes; the rest were not recorded\n", s.name, slot,
            kMaxRecords);
  }
}

bool compare(mm::u64 actual, const Op& op) {
  switch (static_cast<Compare>(op.other)) {
    case Compare::Equal: return actual == op.length;
    case Compare::AtLeast: return actual >= op.length;
    case Compare::AtMost: return actual <= op.length;
  }
  return false;
}

const char* compare_symbol(const Op& op) {
  switch (static_cast<Compare>(op.other)) {
    case Compare::Equal: return "==";
    case Compare::AtLeast: return ">=";
    case Compare::AtMost: return "<=";
  }
  return "?";
}

// The protection of the region holding `address`, if one does (guards do not count).
bool region_prot(KernelSpace& space, mm::u64 address, mm::Prot& prot) {
  bool found = false;
  space.for_each_region([&](const mm::Region& r) {
    if (r.contains(mm::VirtAddr(address)) && r.kind != mm::RegionKind::Guard) {
      prot = r.prot;
      found = true;
    }
  });
  return found;
}

// Every check but frames leaked (which needs the spaces gone). False when
// one failed. `shootdowns`: how many the core counted during the run.
bool run_checks(const CompiledScenario& s, mm::u64 shootdowns) {
  bool all = true;
  for (mm::u32 i = 0; i < s.check_count; ++i) {
    const Op& check = s.checks[i];
    KernelSpace* space = live_space(check.space);
    switch (check.code) {
      case OpCode::CheckValue: {
        const mm::Result<mm::u64> got = space ? space->read_u64(mm::VirtAddr(check.address))
                                              : mm::Result<mm::u64>(mm::Status::NotFound);
        if (!got.ok()) {
          kprintf("scenario %s: check line %u: value -> FAIL (reading 0x%lx gave %s)\n", s.name, check.line, check.address,
                  mm::errno_name(got.status()));
          all = false;
        } else if (got.value() != check.value) {
          kprintf("scenario %s: check line %u: value -> FAIL (0x%lx, expected 0x%lx)\n", s.name, check.line, got.value(),
                  check.value);
          all = false;
        } else {
          kprintf("scenario %s: check line %u: value -> ok\n", s.name, check.line);
        }
        break;
      }
      case OpCode::CheckMapped: {
        mm::Prot prot = mm::Prot::None;
        const bool mapped = space != nullptr && region_prot(*space, check.address, prot);
        const auto want = static_cast<mm::Prot>(check.prot);
        if (!mapped) {
          kprintf("scenario %s: check line %u: mapped -> FAIL (nothing is mapped there)\n", s.name, check.line);
          all = false;
        } else if (prot != want) {
          kprintf("scenario %s: check line %u: mapped -> FAIL (mapped %s, expected %s)\n", s.name, check.line,
                  mm::prot_name(prot), mm::prot_name(want));
          all = false;
        } else {
          kprintf("scenario %s: check line %u: mapped -> ok\n", s.name, check.line);
        }
        break;
      }
      case OpCode::CheckUnmapped: {
        mm::Prot prot = mm::Prot::None;
        if (space != nullptr && region_prot(*space, check.address, prot)) {
          kprintf("scenario %s: check line %u: unmapped -> FAIL (it is mapped)\n", s.name, check.line);
          all = false;
        } else {
          kprintf("scenario %s: check line %u: unmapped -> ok\n", s.name, check.line);
        }
        break;
      }
      case OpCode::CheckFaults: {
        const mm::u64 faults = check.space < mm::kMaxCpus ? cpu_states[check.space].faults : 0;
        if (!compare(faults, check)) {
          kprintf("scenario %s: check line %u: faults -> FAIL (%lu faults, expected %s %lu)\n", s.name, check.line, faults,
                  compare_symbol(check), check.length);
          all = false;
        } else {
          kprintf("scenario %s: check line %u: faults -> ok\n", s.name, check.line);
        }
        break;
      }
      case OpCode::CheckShootdowns:
        // Not comparable: how many rounds involve another CPU depends on
        // which CPUs run the space at the moment it changes.
        kprintf("scenario %s: check line %u: shootdowns -> skipped (%lu here; the count depends on the interleaving)\n",
                s.name, check.line, shootdowns);
        break;
      default:
        break;  // frames leaked: after the spaces are gone
    }
  }
  return all;
}

mm::FrameCount free_frames() {
  kernel_memory.pmm->drain_all_caches();
  return kernel_memory.pmm->stats().free;
}

// The device window of a scenario with phys= mappings: a zeroed run. False
// (with the reason) when the boot's allocator has none to give.
bool allocate_window(Run& run, const char*& why, mm::Status& status) {
  const CompiledScenario& s = *run.s;
  if (s.device_window_bytes == 0) return true;
  mm::FrameCount frames = 1;
  while (frames * mm::kPageSize < s.device_window_bytes + s.device_window_misalignment) frames *= 2;
  const mm::Result<mm::PhysAddr> at = kernel_memory.pmm->allocate_run(
      mm::FrameRequest{.count = frames, .alignment = 512, .owner = mm::FrameOwner::Kernel}, mm::AllocFlags::Zero);
  if (!at.ok()) {
    why = "no contiguous run for the device window of its phys= mappings";
    status = at.status();
    return false;
  }
  run.window = at.value();
  run.window_frames = frames;
  return true;
}

enum class Verdict : mm::u8 { Pass, Fail, Skip };

// One scenario, start to verdict.
Verdict run_one(const CompiledScenario& s) {
  Run run;
  run.s = &s;
  const char* why = nullptr;
  mm::Status status = mm::Status::Ok;
  if (!allocate_window(run, why, status)) {
    kprintf("scenario %s: SKIPPED (%s: %s; the boot's allocator is %s)\n", s.name, why, mm::errno_name(status),
            kernel_memory.allocator->name());
    return Verdict::Skip;
  }
  kprintf("scenario %s: begin (%s, %u CPU%s)\n", s.name, s.file, s.cpus, s.cpus == 1 ? "" : "s");
  for (mm::u32 i = 0; i < s.note_count; ++i) kprintf("scenario %s: note: %s\n", s.name, s.notes[i]);
  const mm::u64 start = boot_microseconds();

  for (CpuState& st : cpu_states) {
    st.loaded = nullptr;
    st.mode = mm::AccessMode::User;
    st.faults = 0;
    st.record_count = 0;
    st.overflow = false;
  }
  for (BarrierState& b : barriers) {
    b.arrived.store(0, mm::MemoryOrder::Relaxed);
    b.generation.store(0, mm::MemoryOrder::Relaxed);
  }
  const mm::FrameCount free_before = free_frames();
  const mm::u64 shootdowns_before = kernel_vm().coherence().stats().shootdowns;

  execute(run, cpu_states[kSetupSlot], s.setup, s.setup_count);
  run_on_all_cpus(run_program, &run);

  bool passed = true;
  print_records(s, kSetupSlot);
  for (mm::u32 cpu = 0; cpu < s.cpus; ++cpu) print_records(s, cpu);
  for (const CpuState& st : cpu_states) {
    for (mm::u32 i = 0; i < st.record_count; ++i) passed = passed && !st.records[i].failed;
    passed = passed && !st.overflow;
  }
  passed = run_checks(s, kernel_vm().coherence().stats().shootdowns - shootdowns_before) && passed;

  for (mm::u8 i = 0; i < kMaxSpaces; ++i) {
    if (spaces[i].live) destroy_space(i);
  }
  const mm::FrameCount free_after = free_frames();
  const mm::u64 leaked = free_before > free_after ? free_before - free_after : 0;
  for (mm::u32 i = 0; i < s.check_count; ++i) {
    const Op& check = s.checks[i];
    if (check.code != OpCode::CheckFramesLeaked) continue;
    if (compare(leaked, check)) {
      kprintf("scenario %s: check line %u: frames -> ok\n", s.name, check.line);
    } else {
      kprintf("scenario %s: check line %u: frames -> FAIL (%lu frames leaked, expected %s %lu)\n", s.name, check.line,
              leaked, compare_symbol(check), check.length);
      passed = false;
    }
  }
  const mm::u64 committed = kernel_memory.pmm->stats().committed;
  const mm::u64 regions = kernel_vm().live_regions();
  if (leaked != 0 || committed != 0 || regions != 0) {
    kprintf("scenario %s: FAIL: after every space was destroyed: %lu frames leaked, %lu committed, %lu regions live\n",
            s.name, leaked, committed, regions);
    passed = false;
  }
  if (run.window_frames != 0) {
    const mm::Status freed = kernel_memory.pmm->free_run(run.window, run.window_frames);
    if (freed != mm::Status::Ok) {
      kprintf("scenario %s: FAIL: freeing the device window: %s\n", s.name, mm::errno_name(freed));
      passed = false;
    }
  }
  kprintf("scenario %s: %s (%lu us)\n", s.name, passed ? "PASS" : "FAIL", boot_microseconds() - start);
  return passed ? Verdict::Pass : Verdict::Fail;
}

bool name_is(const char* name, const char* word, mm::usize length) {
  mm::usize i = 0;
  for (; i < length; ++i) {
    if (name[i] != word[i]) return false;
  }
  return name[i] == 0;
}

// Is scenario `name` selected? "all", or one of the comma-separated names.
bool selected(const char* name, const char* selection, mm::usize length) {
  if (name_is("all", selection, length)) return true;
  for (mm::usize at = 0; at < length;) {
    mm::usize end = at;
    while (end < length && selection[end] != ',') ++end;
    if (name_is(name, selection + at, end - at)) return true;
    at = end + 1;
  }
  return false;
}

// Every comma-separated name must be a scenario (or "all").
bool selection_known(const char* selection, mm::usize length) {
  bool ok = true;
  for (mm::usize at = 0; at < length;) {
    mm::usize end = at;
    while (end < length && selection[end] != ',') ++end;
    bool known = name_is("all", selection + at, end - at);
    for (mm::usize i = 0; i < kCompiledScenarioCount && !known; ++i) {
      known = name_is(kCompiledScenarios[i].name, selection + at, end - at);
    }
    if (!known) {
      kprintf("scenario: no scenario is named '%.*s'; the kernel has:", static_cast<int>(end - at), selection + at);
      for (mm::usize i = 0; i < kCompiledScenarioCount; ++i) kprintf(" %s", kCompiledScenarios[i].name);
      kprintf("\n");
      ok = false;
    }
    at = end + 1;
  }
  return ok;
}

}  // namespace

bool run_scenarios(const char* selection, mm::usize length) {
  if (!selection_known(selection, length)) return false;
  if (!real_access_begin()) return false;
  mm::u32 passed = 0, failed = 0, skipped = 0;
  for (mm::usize i = 0; i < kCompiledScenarioCount; ++i) {
    const CompiledScenario& s = kCompiledScenarios[i];
    if (!selected(s.name, selection, length)) continue;
    if (s.skip != nullptr) {
      kprintf("scenario %s: SKIPPED (%s)\n", s.name, s.skip);
      ++skipped;
    } else if (s.cpus > smp_cpu_count()) {
      kprintf("scenario %s: SKIPPED (it needs %u CPUs; %u are online: boot with -smp %u)\n", s.name, s.cpus,
              smp_cpu_count(), s.cpus);
      ++skipped;
    } else {
      const Verdict verdict = run_one(s);
      ++(verdict == Verdict::Pass ? passed : verdict == Verdict::Fail ? failed : skipped);
    }
  }
  real_access_end();
  kprintf("scenarios: %u passed, %u failed, %u skipped\n", passed, failed, skipped);
  return failed == 0;
}

}  // namespace kernel::scenario
