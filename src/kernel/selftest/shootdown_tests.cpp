// The TLB shootdown protocol on real CPUs (issue 5/5): the application
// processors run ring-3 loops over one page of a shared address space while
// the boot CPU unmaps the page and takes its frame straight back, or
// write-protects it, and then writes a pattern there through the direct map.
// No AP may see the pattern through the old address, and no AP's access may
// complete after unmap() or protect() returned: every loop must end in a
// page fault.
//
// Each round, in order:
//   1. The BSP maps two pages: kData (the page under test, holding a value
//      of the round's own) and kControl (word 0 the stop flag, then a
//      progress word per CPU, 64 bytes apart), both with frames of their own.
//   2. run_on_all_cpus: every AP runs the test program's read or write loop
//      on kData (user/test_program.S, ops 4 and 5), storing its iteration
//      count to its progress word. The BSP waits until every AP is at least
//      `min_progress` iterations in, so each AP's TLB holds the translation
//      and the only thing between it and a stale access is the shootdown.
//      (That is what makes the negative control deterministic: without
//      the remote invalidation the stale entry is still there, every time.)
//   3. The BSP unmaps kData and allocates frames until it gets the freed
//      frame back (the per-CPU cache is LIFO: the first try), then fills it
//      with kPattern; or it write-protects kData and stores kPattern to the
//      frame's first word. Then it sets the stop flag.
//   4. An AP that sees the stop flag makes one more access to kData, which
//      must fault: its TLB was invalidated before the BSP's operation
//      returned, and the stop flag was set after that.
// Checks: every AP ended with an unresolved fault on kData of the expected
// kind, no reader's last value was the pattern, and the frame still holds
// the pattern (no write landed after the operation returned).
//
// With three CPUs or more, the last AP is a faulter instead: it runs the
// test program on kHole, never mapped, over and over, so it is in the space
// (a shootdown target) and, often, in the core's fault path spinning for the
// space's lock just when the boot CPU holds it and waits for its
// acknowledgement. That is the deadlock platform/spinlock.hpp's wait with
// interrupts on, and the #PF handler's turning them on, exist to prevent: it
// hangs the boot within a few rounds without them.
//
// The boot option shootdown=unsafe-local-only (only the initiator
// invalidates) makes the first round fail with a VIOLATION line; a boot test
// expects exactly that (test/CMakeLists.txt).
#include <new>

#include "arch/tsc.hpp"
#include "arch/x86.hpp"
#include "selftest/selftest.hpp"
#include "smp/cpu_local.hpp"
#include "smp/smp.hpp"
#include "user/user_mode.hpp"

namespace kernel {

namespace {

constexpr mm::u64 kData = 0x20000000;
constexpr mm::u64 kControl = kData + mm::kPageSize;
constexpr mm::u64 kHole = kData + 16 * mm::kPageSize;  // never mapped: the faulter's address
constexpr mm::u64 kProgressStride = 64;  // one cache line per CPU's progress word
constexpr mm::u64 kFirstValue = 0x600DF00D00000000;
constexpr mm::u64 kPattern = 0xBADC0FFEE0DDF00D;
constexpr mm::u64 kLoopLimit = mm::u64{1} << 40;  // a safety net: the stop flag ends every loop
constexpr mm::u64 kStartTimeoutUs = 5'000'000;
// Rounds: at least kMinRounds (each kind several times), then more until
// kMaxRounds or the time budget is spent. Under TCG on a busy two-core host,
// spinning vCPUs make a round take anything from 5 to 100 ms.
constexpr int kMinRounds = 12;
constexpr int kMaxRounds = 60;
constexpr mm::u64 kBudgetUs = 2'000'000;
constexpr mm::u32 kMaxReuseTries = 64;
constexpr mm::u64 kPfPresent = 0x1, kPfWrite = 0x2, kPfUser = 0x4;

enum class RoundKind : mm::u8 { UnmapWhileReading, UnmapWhileWriting, ProtectWhileWriting };

const char* operation_name(RoundKind kind) { return kind == RoundKind::ProtectWhileWriting ? "protect" : "unmap"; }

struct Round {
  KernelSpace* space = nullptr;
  RoundKind kind = RoundKind::UnmapWhileReading;
  int number = 0;
  mm::u64 first_value = 0;
  mm::u64 min_progress = 1;
  mm::PhysAddr data_frame;
  mm::PhysAddr control_frame;
  // Written by the BSP's part.
  bool started = false;       // every AP got min_progress iterations in
  mm::Status operation = mm::Status::Ok;
  bool reused = false;        // the freed frame came back (unmap rounds)
  // Written by each AP's part.
  UserRunResult results[mm::kMaxCpus];
  mm::u32 faulter = 0;        // the faulting AP, or 0 for none
  mm::u64 faulter_runs = 0;   // its runs so far (atomic builtins)
  bool faulter_failed = false;  // a run ended other than in a segv on kHole (in faulter_result)
  UserRunResult faulter_result;
};

alignas(KernelSpace) mm::u8 space_storage[sizeof(KernelSpace)];
Round current_round;  // shared with the APs through run_on_all_cpus
mm::u64 faulter_segvs = 0;  // over every round of the test

volatile mm::u64* word_at(mm::PhysAddr frame, mm::u64 offset) {
  return reinterpret_cast<volatile mm::u64*>(kernel_platform.direct_map(frame) + offset);
}
mm::u64 load(mm::PhysAddr frame, mm::u64 offset) { return __atomic_load_n(word_at(frame, offset), __ATOMIC_ACQUIRE); }
void store(mm::PhysAddr frame, mm::u64 offset, mm::u64 value) {
  __atomic_store_n(word_at(frame, offset), value, __ATOMIC_RELEASE);
}

// After the operation returned: the freed frame back from the allocator,
// filled with the pattern. Frames that came out first are freed again.
bool reuse_freed_frame(Round& round) {
  mm::PhysAddr others[kMaxReuseTries];
  mm::u32 other_count = 0;
  bool found = false;
  while (!found && other_count < kMaxReuseTries) {
    const mm::Result<mm::PhysAddr> frame = kernel_memory.pmm->allocate_frame(mm::FrameOwner::Kernel);
    if (!frame.ok()) break;
    if (frame.value() == round.data_frame) {
      found = true;
    } else {
      others[other_count++] = frame.value();
    }
  }
  for (mm::u32 i = 0; i < other_count; ++i) (void)kernel_memory.pmm->free_frame(others[i]);
  if (found) {
    for (mm::u64 offset = 0; offset < mm::kPageSize; offset += 8) store(round.data_frame, offset, kPattern);
  }
  return found;
}

// The BSP's part of a round, while the APs loop.
void initiate(Round& round) {
  const mm::u32 count = smp_cpu_count();
  const mm::u64 deadline = boot_microseconds() + kStartTimeoutUs;
  round.started = true;
  for (mm::u32 cpu = 1; cpu < count && round.started; ++cpu) {
    while (cpu == round.faulter ? __atomic_load_n(&round.faulter_runs, __ATOMIC_ACQUIRE) == 0
                                : load(round.control_frame, cpu * kProgressStride) < round.min_progress) {
      if (boot_microseconds() > deadline) {
        round.started = false;
        break;
      }
      x86::pause();
    }
  }
  if (round.started) {
    if (round.kind == RoundKind::ProtectWhileWriting) {
      round.operation = round.space->protect(mm::VirtAddr(kData), mm::kPageSize, mm::Prot::Read);
      if (round.operation == mm::Status::Ok) store(round.data_frame, 0, kPattern);
    } else {
      round.operation = round.space->unmap(mm::VirtAddr(kData), mm::kPageSize);
      round.reused = round.operation == mm::Status::Ok && reuse_freed_frame(round);
    }
  }
  store(round.control_frame, 0, 1);  // stop: each AP's next access is its last
}

// The faulter's part: segvs on kHole until the stop flag.
void fault_repeatedly(Round& round) {
  while (load(round.control_frame, 0) == 0) {
    const UserRunResult r = run_user(*round.space, UserOp::Read, kHole, 0);
    if (r.exited || r.fault_address != kHole || r.error_code != kPfUser || r.fault != mm::FaultOutcome::Segv) {
      round.faulter_result = r;
      round.faulter_failed = true;
      return;
    }
    __atomic_fetch_add(&round.faulter_runs, 1, __ATOMIC_RELEASE);
  }
}

void run_round_part(void* argument) {
  Round& round = *static_cast<Round*>(argument);
  const mm::u32 cpu = current_cpu_index();
  if (cpu == 0) {
    initiate(round);
    return;
  }
  if (cpu == round.faulter) {
    fault_repeatedly(round);
    return;
  }
  const UserOp op = round.kind == RoundKind::UnmapWhileReading ? UserOp::ReadLoop : UserOp::WriteLoop;
  round.results[cpu] = run_user(*round.space, op, kData, kLoopLimit, kControl + cpu * kProgressStride);
}

// Checks one AP's loop after the round. Prints what went wrong.
bool check_ap(const Round& round, mm::u32 cpu) {
  const UserRunResult& r = round.results[cpu];
  const char* operation = operation_name(round.kind);
  const bool reading = round.kind == RoundKind::UnmapWhileReading;
  if (r.value == kPattern && reading) {
    kprintf("    VIOLATION round %d: CPU %u read the reused frame's pattern 0x%lx through 0x%lx after unmap returned\n",
            round.number, cpu, kPattern, kData);
    return false;
  }
  if (r.exited) {
    kprintf("    VIOLATION round %d: CPU %u completed a %s of 0x%lx after %s returned (its loop exited with 0x%lx)\n",
            round.number, cpu, reading ? "read" : "write", kData, operation, r.value);
    return false;
  }
  const mm::u64 expected_code = round.kind == RoundKind::UnmapWhileReading    ? kPfUser
                                : round.kind == RoundKind::UnmapWhileWriting ? (kPfUser | kPfWrite)
                                                                            : (kPfUser | kPfWrite | kPfPresent);
  if (r.fault_address != kData || r.error_code != expected_code || r.fault != mm::FaultOutcome::Segv) {
    kprintf("    round %d: CPU %u stopped on a fault at 0x%lx with error code 0x%lx (%s), not at 0x%lx with 0x%lx\n",
            round.number, cpu, r.fault_address, r.error_code, mm::fault_outcome_name(r.fault), kData, expected_code);
    return false;
  }
  return true;
}

bool run_round(KernelSpace& space, int number) {
  Round& round = current_round;
  round = Round{};
  round.space = &space;
  round.kind = static_cast<RoundKind>(number % 3);
  round.number = number;
  round.first_value = kFirstValue + static_cast<mm::u64>(number);
  // Vary how long the APs run first, so the IPIs land at different points of their loops.
  round.min_progress = 1 + static_cast<mm::u64>(number) * 37 % 400;
  round.faulter = smp_cpu_count() >= 3 ? smp_cpu_count() - 1 : 0;

  KCHECK(space.map(mm::MapRequest{.address = mm::VirtAddr(kData), .length = 2 * mm::kPageSize}) == mm::Status::Ok);
  KCHECK(space.write_u64(mm::VirtAddr(kData), round.first_value) == mm::Status::Ok);
  KCHECK(space.write_u64(mm::VirtAddr(kControl), 0) == mm::Status::Ok);
  const mm::Result<mm::Translation> data = space.translate(mm::VirtAddr(kData));
  const mm::Result<mm::Translation> control = space.translate(mm::VirtAddr(kControl));
  KCHECK(data.ok() && control.ok());
  round.data_frame = data.value().frame;
  round.control_frame = control.value().frame;

  run_on_all_cpus(run_round_part, &round);
  faulter_segvs += round.faulter_runs;

  bool ok = true;
  if (!round.started) {
    kprintf("    round %d: an AP did not get %lu iterations into its loop within %lu ms\n", number, round.min_progress,
            kStartTimeoutUs / 1000);
    ok = false;
  } else if (round.operation != mm::Status::Ok) {
    kprintf("    round %d: %s failed: %s\n", number, operation_name(round.kind), mm::errno_name(round.operation));
    ok = false;
  } else if (round.kind != RoundKind::ProtectWhileWriting && !round.reused) {
    kprintf("    round %d: the unmapped frame 0x%lx did not come back in %u allocations\n", number,
            round.data_frame.value(), kMaxReuseTries);
    ok = false;
  } else {
    for (mm::u32 cpu = 1; cpu < smp_cpu_count(); ++cpu) {
      if (cpu != round.faulter) ok = check_ap(round, cpu) && ok;
    }
    if (round.faulter_failed) {
      const UserRunResult& r = round.faulter_result;
      kprintf("    round %d: the faulter (CPU %u) %s at 0x%lx, error code 0x%lx (%s), not a segv at 0x%lx\n", number,
              round.faulter, r.exited ? "exited" : "faulted", r.fault_address, r.error_code,
              mm::fault_outcome_name(r.fault), kHole);
      ok = false;
    }
    const mm::u64 word = load(round.data_frame, 0);
    if (word != kPattern) {
      kprintf("    VIOLATION round %d: a write reached frame 0x%lx after %s returned (its first word is 0x%lx)\n",
              number, round.data_frame.value(), operation_name(round.kind), word);
      ok = false;
    }
  }
  if (round.reused) (void)kernel_memory.pmm->free_frame(round.data_frame);
  KCHECK(space.unmap(mm::VirtAddr(kData), 2 * mm::kPageSize) == mm::Status::Ok);
  return ok;
}

bool shootdown_keeps_reused_frames_unseen() {
  const mm::u32 cpus = smp_cpu_count();
  if (cpus < 2) {
    kprintf("    one CPU: no other TLB to shoot down\n");
    return true;
  }
  const mm::ShootdownStats before = kernel_vm().coherence().stats();
  kernel_memory.pmm->drain_all_caches();
  const mm::FrameCount free_before = kernel_memory.pmm->stats().free;
  auto* space = new (space_storage) KernelSpace(kernel_vm());
  bool ok = space->init() == mm::Status::Ok && prepare_test_process(*space) == mm::Status::Ok;
  const mm::u64 start = boot_microseconds();
  faulter_segvs = 0;
  int rounds = 0;
  while (ok && rounds < kMaxRounds && (rounds < kMinRounds || boot_microseconds() - start < kBudgetUs)) {
    ok = run_round(*space, rounds++);
  }
  space->destroy();
  space->~KernelSpace();
  kernel_memory.pmm->drain_all_caches();
  const mm::FrameCount free_after = kernel_memory.pmm->stats().free;

  const mm::ShootdownStats after = kernel_vm().coherence().stats();
  const mm::u64 shootdowns = after.shootdowns - before.shootdowns;
  const mm::u64 ipis = after.ipis - before.ipis;
  kprintf("    %d rounds on %u CPUs (policy %s): shootdowns %lu, IPIs %lu, pages invalidated %lu, full flushes %lu, "
          "local flushes %lu; faulter segvs %lu\n",
          rounds, cpus, mm::shootdown_policy_name(kernel_vm().coherence().policy()), shootdowns, ipis,
          after.pages_invalidated - before.pages_invalidated, after.full_flushes - before.full_flushes,
          after.local_flushes - before.local_flushes, faulter_segvs);
  KCHECK(ok);
  KCHECK(free_after == free_before);
  KCHECK(shootdowns >= static_cast<mm::u64>(rounds));  // at least the unmap or protect of every round
  KCHECK(ipis >= shootdowns);
  return true;
}

}  // namespace

const SelfTestCase kShootdownSelfTests[] = {
    {"shootdown: no stale access on any CPU", shootdown_keeps_reused_frames_unseen},
};
const mm::usize kShootdownSelfTestCount = sizeof(kShootdownSelfTests) / sizeof(kShootdownSelfTests[0]);

}  // namespace kernel
