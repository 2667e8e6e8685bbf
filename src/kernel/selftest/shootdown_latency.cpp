// What one TLB shootdown costs on this machine's CPUs, with real IPIs (issue
// 3/10): the figure people compare with Linux, beside the emulator's
// BM_Shootdown, where threads poll each other.
//
// For each target count k = 1 .. N-1, APs 1..k load a space that maps one
// page and wait in a loop with interrupts on, as an idle CPU would; the
// other APs stay out of it. The boot CPU, which runs the space too, then
// shoots that page down kRounds times through the core
// (TlbCoherence::shootdown, what an unmap of one page adds to its page-table
// work) and reads the TSC before and after each call: the time from before
// the first IPI is posted to the last acknowledgement, plus the boot CPU's
// own INVLPG, which overlaps the IPIs' flight. The medians go to the boot
// summary (print_shootdown_latency).
//
// The check: under `batched` each call sends exactly k IPIs (the space's
// active CPUs but the caller), under `broadcast` N-1; the unsafe policies
// are measured, not checked.
#include <new>

#include "arch/tsc.hpp"
#include "arch/x86.hpp"
#include "selftest/shootdown_latency.hpp"
#include "selftest/selftest.hpp"
#include "smp/cpu_local.hpp"
#include "smp/smp.hpp"
#include "user/user_mode.hpp"

namespace kernel {

namespace {

constexpr mm::u64 kPage = 0x30000000;
// Shootdowns per target count: kRounds, or as many past kMinRounds as fit in
// kBudgetUs (under TCG with more vCPUs than host cores one can take
// milliseconds: a target's vCPU thread waits for a host core).
constexpr int kRounds = 32;
constexpr int kMinRounds = 5;
constexpr mm::u64 kBudgetUs = 30'000;
constexpr mm::u64 kJoinTimeoutUs = 5'000'000;

struct Trial {
  KernelSpace* space = nullptr;
  mm::u32 targets = 0;               // APs 1..targets join
  mm::Atomic<mm::u32> joined{0};     // APs running the space
  mm::Atomic<mm::u32> stop{0};       // set by the boot CPU when it is done
  bool timed_out = false;
  int rounds = 0;
  mm::u64 cycles[kRounds] = {};
};

alignas(KernelSpace) mm::u8 space_storage[sizeof(KernelSpace)];
Trial trial;
ShootdownLatency latency;

void sort(mm::u64* values, int count) {
  for (int i = 1; i < count; ++i) {
    const mm::u64 v = values[i];
    int j = i;
    for (; j > 0 && values[j - 1] > v; --j) values[j] = values[j - 1];
    values[j] = v;
  }
}

// The boot CPU: waits for the targets, then times kRounds shootdowns.
void shoot(Trial& t) {
  const mm::u64 deadline = boot_microseconds() + kJoinTimeoutUs;
  while (t.joined.load(mm::MemoryOrder::Acquire) < t.targets) {
    if (boot_microseconds() > deadline) {
      t.timed_out = true;
      return;
    }
    x86::pause();
  }
  auto& coherence = kernel_vm().coherence();
  const mm::u64 page = kPage;
  const mm::u64 budget_end = boot_microseconds() + kBudgetUs;
  t.rounds = 0;
  while (t.rounds < kRounds && (t.rounds < kMinRounds || boot_microseconds() < budget_end)) {
    const mm::u64 start = x86::rdtsc();
    coherence.shootdown(&t.space->tlb_context(), &page, 1, false, false);
    t.cycles[t.rounds++] = x86::rdtsc() - start;
  }
}

void run_trial_part(void* argument) {
  Trial& t = *static_cast<Trial*>(argument);
  const mm::u32 cpu = current_cpu_index();
  if (cpu == 0) {
    shoot(t);
    t.stop.store(1, mm::MemoryOrder::Release);
    return;
  }
  if (cpu > t.targets) return;
  if (t.space->activate() != mm::Status::Ok) return;
  t.joined.fetch_add(1, mm::MemoryOrder::AcqRel);
  // Interrupts are on (the idle loop runs work with them on): each
  // shootdown's IPI lands here.
  while (t.stop.load(mm::MemoryOrder::Acquire) == 0) x86::pause();
  kernel_vm().coherence().switch_to_kernel();
}

mm::u64 expected_ipis(mm::u32 targets, mm::u32 cpus) {
  switch (kernel_vm().coherence().policy()) {
    case mm::ShootdownPolicy::Batched: return targets;
    case mm::ShootdownPolicy::Broadcast: return cpus - 1;
    default: return ~mm::u64{0};  // not checked
  }
}

bool shootdown_latency_per_target_count() {
  const mm::u32 cpus = smp_cpu_count();
  latency = ShootdownLatency{};
  latency.tsc_mhz = tsc_hz() / 1'000'000;
  if (cpus < 2) {
    kprintf("    one CPU: no other TLB to shoot down\n");
    return true;
  }
  auto* space = new (space_storage) KernelSpace(kernel_vm());
  bool ok = space->init() == mm::Status::Ok &&
            space->map(mm::MapRequest{.address = mm::VirtAddr(kPage), .length = mm::kPageSize, .populate = true}) ==
                mm::Status::Ok &&
            space->activate() == mm::Status::Ok;
  for (mm::u32 targets = 1; ok && targets < cpus && targets <= ShootdownLatency::kMaxTargets; ++targets) {
    Trial& t = trial;
    t.space = space;
    t.targets = targets;
    t.joined.store(0);
    t.stop.store(0);
    t.timed_out = false;
    const mm::u64 ipis_before = kernel_vm().coherence().stats().ipis;
    run_on_all_cpus(run_trial_part, &t);
    const mm::u64 ipis = kernel_vm().coherence().stats().ipis - ipis_before;
    if (t.timed_out) {
      kprintf("    %u target(s): the APs did not load the space within %lu ms\n", targets, kJoinTimeoutUs / 1000);
      ok = false;
      break;
    }
    const mm::u64 expected = expected_ipis(targets, cpus);
    if (expected != ~mm::u64{0} && ipis != expected * static_cast<mm::u64>(t.rounds)) {
      kprintf("    %u target(s): %lu IPIs for %d shootdowns, expected %lu each\n", targets, ipis, t.rounds, expected);
      ok = false;
    }
    sort(t.cycles, t.rounds);
    latency.median_cycles[targets] = t.cycles[t.rounds / 2];
    latency.min_cycles[targets] = t.cycles[0];
    latency.rounds[targets] = static_cast<mm::u32>(t.rounds);
    latency.measured = targets;
    kprintf("    %u target(s): median %lu cycles, min %lu (%d shootdowns, %lu IPIs)\n", targets,
            latency.median_cycles[targets], latency.min_cycles[targets], t.rounds, ipis);
  }
  kernel_vm().coherence().switch_to_kernel();
  space->destroy();
  space->~KernelSpace();
  return ok;
}

// Nanoseconds of `cycles` at the calibrated TSC rate.
mm::u64 nanoseconds(mm::u64 cycles, mm::u64 mhz) { return mhz == 0 ? 0 : cycles * 1000 / mhz; }

}  // namespace

const ShootdownLatency& shootdown_latency() { return latency; }

void print_shootdown_latency() {
  if (latency.measured == 0) return;
  kprintf("boot: shootdown of one page, median (TSC, %s):", mm::shootdown_policy_name(kernel_vm().coherence().policy()));
  for (mm::u32 k = 1; k <= latency.measured; ++k) {
    kprintf(" %u target%s %lu ns (of %u)", k, k == 1 ? "" : "s", nanoseconds(latency.median_cycles[k], latency.tsc_mhz),
            latency.rounds[k]);
    if (k < latency.measured) kprintf(",");
  }
  kprintf("\n");
}

const SelfTestCase kShootdownLatencySelfTests[] = {
    {"shootdown: latency to 1..N-1 targets", shootdown_latency_per_target_count},
};
const mm::usize kShootdownLatencySelfTestCount = sizeof(kShootdownLatencySelfTests) / sizeof(kShootdownLatencySelfTests[0]);

}  // namespace kernel
