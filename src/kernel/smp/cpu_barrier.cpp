#include "smp/cpu_barrier.hpp"

#include "arch/interrupts.hpp"
#include "arch/lapic.hpp"
#include "arch/x86.hpp"
#include "mm/platform/platform.hpp"
#include "smp/cpu_local.hpp"
#include "smp/smp.hpp"

namespace kernel {

namespace {

void on_barrier_ipi(InterruptFrame&) {
  answer_cpu_barrier();
  lapic_eoi();
}

}  // namespace

void cpu_barrier_init() { set_interrupt_handler(kVectorBarrier, on_barrier_ipi); }

void answer_cpu_barrier() {
  CpuLocal& me = this_cpu();
  const mm::u64 requested = me.barriers_requested.load(mm::MemoryOrder::Acquire);
  if (me.barriers_done.load(mm::MemoryOrder::Relaxed) == requested) return;
  __atomic_thread_fence(__ATOMIC_SEQ_CST);  // MFENCE: this CPU's stores drain, later loads see the requester's
  me.barriers_done.store(requested, mm::MemoryOrder::Release);
}

void synchronize_all_cpus() {
  const mm::u32 self = current_cpu_index();
  const mm::u32 count = smp_cpu_count();
  mm::u64 ticket[mm::kMaxCpus];
  mm::CpuSet posted;  // waited for below: a CPU coming online meanwhile was not asked
  for (mm::u32 cpu = 0; cpu < count; ++cpu) {
    if (cpu == self || cpu_locals[cpu].online.load(mm::MemoryOrder::Acquire) == 0) continue;
    // A locked add: the caller's own stores are visible before the request.
    ticket[cpu] = cpu_locals[cpu].barriers_requested.fetch_add(1, mm::MemoryOrder::SeqCst) + 1;
    lapic_send_ipi(smp_apic_id(cpu), kVectorBarrier);
    posted = posted.with(cpu);
  }
  posted.for_each([&](mm::CpuId cpu) {
    while (cpu_locals[cpu].barriers_done.load(mm::MemoryOrder::Acquire) < ticket[cpu]) {
      answer_cpu_barrier();
      x86::pause();
    }
  });
}

}  // namespace kernel
