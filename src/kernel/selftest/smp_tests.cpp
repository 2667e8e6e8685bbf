// Self-tests of the SMP machinery the shootdown protocol will ride on.
#include "arch/interrupts.hpp"
#include "arch/lapic.hpp"
#include "arch/tsc.hpp"
#include "arch/x86.hpp"
#include "selftest/selftest.hpp"
#include "smp/cpu_local.hpp"
#include "smp/smp.hpp"

namespace kernel {

namespace {

void on_test_ipi(InterruptFrame&) {
  this_cpu().test_ipis.fetch_add(1, mm::MemoryOrder::Release);
  lapic_eoi();
}

// Sends the test IPI to every other CPU and waits for every acknowledgement.
bool ipi_reaches_every_cpu() {
  set_interrupt_handler(kVectorTestIpi, on_test_ipi);
  const mm::u32 count = smp_cpu_count();
  for (int round = 0; round < 100; ++round) {
    mm::u64 before[mm::kMaxCpus];
    for (mm::u32 cpu = 1; cpu < count; ++cpu) {
      before[cpu] = cpu_locals[cpu].test_ipis.load(mm::MemoryOrder::Acquire);
      lapic_send_ipi(smp_apic_id(cpu), kVectorTestIpi);
    }
    const mm::u64 deadline = boot_microseconds() + 1'000'000;
    for (mm::u32 cpu = 1; cpu < count; ++cpu) {
      while (cpu_locals[cpu].test_ipis.load(mm::MemoryOrder::Acquire) == before[cpu]) {
        if (boot_microseconds() > deadline) {
          kprintf("    CPU %u did not acknowledge IPI round %d\n", cpu, round);
          return false;
        }
        x86::pause();
      }
    }
  }
  return true;
}

mm::Atomic<mm::u64> ran_on{0};

void mark_cpu(void*) { ran_on.fetch_add(mm::u64{1} << current_cpu_index(), mm::MemoryOrder::AcqRel); }

// run_on_all_cpus reaches each CPU exactly once, and each knows its index.
bool work_runs_on_every_cpu_once() {
  ran_on.store(0);
  run_on_all_cpus(mark_cpu, nullptr);
  const mm::u32 count = smp_cpu_count();
  KCHECK(ran_on.load() == (count >= 64 ? ~mm::u64{0} : (mm::u64{1} << count) - 1));
  return true;
}

}  // namespace

const SelfTestCase kSmpSelfTests[] = {
    {"smp: work runs on every CPU once", work_runs_on_every_cpu_once},
    {"smp: IPI to every CPU, 100 rounds", ipi_reaches_every_cpu},
};
const mm::usize kSmpSelfTestCount = sizeof(kSmpSelfTests) / sizeof(kSmpSelfTests[0]);

}  // namespace kernel
