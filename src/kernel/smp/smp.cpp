#include "smp/smp.hpp"

#include "smp/cpu_barrier.hpp"

#include "arch/gdt.hpp"
#include "arch/interrupts.hpp"
#include "arch/lapic.hpp"
#include "arch/tsc.hpp"
#include "arch/x86.hpp"
#include "boot/physical.hpp"
#include "console/kprintf.hpp"
#include "smp/cpu_local.hpp"
#include "user/user_mode.hpp"

extern "C" const char ap_trampoline_start[], ap_trampoline_end[], ap_trampoline_params[];

namespace kernel {

namespace {

constexpr mm::u64 kTrampolinePhys = 0x8000;
constexpr mm::u64 kApStackSize = 16384;
constexpr mm::u64 kApStartTimeoutUs = 500'000;

struct TrampolineParams {
  mm::u32 cr3;
  mm::u32 efer;
  mm::u64 stack;
  mm::u64 entry;
  mm::u32 cpu;
  mm::u32 reserved;
};

struct alignas(16) ApStack {
  mm::u8 bytes[kApStackSize];
};
ApStack ap_stacks[mm::kMaxCpus];

mm::Atomic<mm::u32> online_cpus{1};

// Work posted to one CPU: its idle loop runs it and clears `work`.
struct Mailbox {
  mm::Atomic<mm::u64> work{0};
  mm::Atomic<mm::u64> argument{0};
  mm::Atomic<mm::u64> completed{0};
};
Mailbox mailboxes[mm::kMaxCpus];

void on_call_ipi(InterruptFrame&) { lapic_eoi(); }  // waking the idle loop is all it does

[[noreturn]] void idle_loop(mm::u32 cpu) {
  Mailbox& box = mailboxes[cpu];
  for (;;) {
    x86::disable_interrupts();
    const mm::u64 work = box.work.load(mm::MemoryOrder::Acquire);
    if (work == 0) {
      asm volatile("sti; hlt" ::: "memory");  // STI's shadow: no wake-up is lost
      continue;
    }
    x86::enable_interrupts();
    reinterpret_cast<CpuWork>(work)(reinterpret_cast<void*>(box.argument.load(mm::MemoryOrder::Relaxed)));
    box.work.store(0, mm::MemoryOrder::Relaxed);
    box.completed.fetch_add(1, mm::MemoryOrder::Release);
  }
}

extern "C" [[noreturn]] void ap_main(mm::u32 cpu) {
  cpu_local_init(cpu, smp_apic_id(cpu));
  gdt_init_cpu(cpu);
  idt_load();
  lapic_init_cpu();
  vm_cpu_online();  // before it reports in: from then on it may run a space (kmain made the VM first)
  this_cpu().online.store(1, mm::MemoryOrder::Release);
  idle_loop(cpu);
}

}  // namespace

mm::u32 smp_cpu_count() { return online_cpus.load(mm::MemoryOrder::Acquire); }

mm::u32 smp_apic_id(mm::u32 cpu) { return cpu_locals[cpu].apic_id; }

mm::u32 smp_boot_aps(const CpuTopology& topology) {
  set_interrupt_handler(kVectorCall, on_call_ipi);
  cpu_barrier_init();
  const mm::u64 size = static_cast<mm::u64>(ap_trampoline_end - ap_trampoline_start);
  __builtin_memcpy(phys_to_virt<char>(kTrampolinePhys), ap_trampoline_start, size);
  auto* params = phys_to_virt<TrampolineParams>(kTrampolinePhys + (ap_trampoline_params - ap_trampoline_start));
  params->cr3 = static_cast<mm::u32>(x86::read_cr3());
  params->efer = static_cast<mm::u32>(x86::rdmsr(x86::kMsrEfer) & ((1 << 8) | (1 << 11)));
  params->entry = reinterpret_cast<mm::u64>(&ap_main);

  const mm::u32 bsp_apic = lapic_id();
  kprintf("smp: CPU 0 (APIC %u) is the boot CPU\n", bsp_apic);
  // INIT every AP, wait the 10 ms the MP specification asks for once, then
  // start them one by one with SIPIs, so each gets its own stack and index.
  for (mm::u32 i = 0; i < topology.count; ++i) {
    if (topology.apic_ids[i] != bsp_apic) {
      lapic_send_init(topology.apic_ids[i]);
    }
  }
  delay_microseconds(10'000);
  for (mm::u32 i = 0; i < topology.count; ++i) {
    const mm::u32 apic = topology.apic_ids[i];
    if (apic == bsp_apic) {
      continue;
    }
    const mm::u32 cpu = online_cpus.load(mm::MemoryOrder::Relaxed);
    cpu_locals[cpu].apic_id = apic;
    params->cpu = cpu;
    params->stack = reinterpret_cast<mm::u64>(ap_stacks[cpu].bytes + kApStackSize);
    const mm::u64 start = boot_microseconds();
    bool up = false;
    for (int sipi = 0; sipi < 2 && !up; ++sipi) {
      lapic_send_startup(apic, static_cast<mm::u8>(kTrampolinePhys >> 12));
      const mm::u64 deadline = boot_microseconds() + (sipi == 0 ? 1'000 : kApStartTimeoutUs);
      while (!(up = cpu_locals[cpu].online.load(mm::MemoryOrder::Acquire)) && boot_microseconds() < deadline) {
        x86::pause();
      }
    }
    if (!up) {
      kprintf("smp: CPU %u (APIC %u) did not start\n", cpu, apic);
      continue;
    }
    online_cpus.store(cpu + 1, mm::MemoryOrder::Release);
    kprintf("smp: CPU %u (APIC %u) online after %lu us\n", cpu, apic, boot_microseconds() - start);
  }
  return online_cpus.load(mm::MemoryOrder::Relaxed);
}

void run_on_all_cpus(CpuWork work, void* argument) {
  const mm::u32 count = smp_cpu_count();
  const mm::u32 self = current_cpu_index();
  mm::u64 expected[mm::kMaxCpus];
  for (mm::u32 cpu = 0; cpu < count; ++cpu) {
    if (cpu == self) continue;
    Mailbox& box = mailboxes[cpu];
    expected[cpu] = box.completed.load(mm::MemoryOrder::Acquire) + 1;
    box.argument.store(reinterpret_cast<mm::u64>(argument), mm::MemoryOrder::Relaxed);
    box.work.store(reinterpret_cast<mm::u64>(work), mm::MemoryOrder::Release);
    lapic_send_ipi(smp_apic_id(cpu), kVectorCall);
  }
  work(argument);
  for (mm::u32 cpu = 0; cpu < count; ++cpu) {
    if (cpu == self) continue;
    while (mailboxes[cpu].completed.load(mm::MemoryOrder::Acquire) < expected[cpu]) {
      x86::pause();
    }
  }
}

}  // namespace kernel
