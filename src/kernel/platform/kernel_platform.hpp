// KernelPlatform: mm::Platform on real hardware. Each call is the
// instruction itself: INVLPG, INVPCID or a CR3 reload, a CR3 write, a
// LAPIC IPI, PAUSE; locks disable interrupts.
#pragma once

#include "arch/interrupts.hpp"
#include "arch/lapic.hpp"
#include "arch/x86.hpp"
#include "boot/physical.hpp"
#include "console/kprintf.hpp"
#include "mm/platform/platform.hpp"
#include "platform/spinlock.hpp"
#include "smp/cpu_barrier.hpp"
#include "smp/cpu_local.hpp"
#include "smp/smp.hpp"

namespace kernel {

class KernelPlatform {
 public:
  using SpinLock = kernel::SpinLock;

  std::byte* direct_map(mm::PhysAddr address) const {
    return reinterpret_cast<std::byte*>(kDirectMapBase + address.value());
  }
  mm::CpuId current_cpu() const { return current_cpu_index(); }
  mm::u32 cpu_count() const { return smp_cpu_count(); }

  void invalidate_page(mm::VirtAddr page) { x86::invlpg(page.value()); }
  void flush_pcid(mm::Pcid) {
    // Without PCIDs enabled (CR4.PCIDE = 0) a CR3 reload drops every
    // non-global translation, which covers the one PCID there is.
    x86::write_cr3(x86::read_cr3());
  }
  void flush_all() {
    const mm::u64 cr4 = x86::read_cr4();
    x86::write_cr4(cr4 ^ (1 << 7));  // toggling CR4.PGE flushes global entries too
    x86::write_cr4(cr4);
  }
  void load_address_space(mm::PhysAddr root, mm::Pcid pcid, mm::CrFlush flush) {
    const mm::u64 no_flush = flush == mm::CrFlush::No ? mm::u64{1} << 63 : 0;
    x86::write_cr3(root.value() | pcid.value | no_flush);
  }

  mm::u64 pte_load(const mm::u64* entry) { return __atomic_load_n(entry, __ATOMIC_ACQUIRE); }
  void pte_store(mm::u64* entry, mm::u64 value) { __atomic_store_n(entry, value, __ATOMIC_RELEASE); }
  bool pte_compare_exchange(mm::u64* entry, mm::u64& expected, mm::u64 desired) {
    return __atomic_compare_exchange_n(entry, &expected, desired, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
  }

  // One fixed IPI of kVectorShootdown per target (its handler, installed by
  // vm_init, is TlbCoherence::handle_ipi and the EOI). Every target called
  // TlbCoherence::cpu_online after its APIC ID was known, so the targets
  // are taken as they are, not filtered by smp_cpu_count(), which counts an
  // AP only once bring-up has moved on from it.
  void send_ipi(mm::CpuSet targets) {
    targets.for_each([](mm::CpuId cpu) { lapic_send_ipi(smp_apic_id(cpu), kVectorShootdown); });
  }
  // Also answers a synchronize_cpus() sent to this CPU: a waiter may have
  // interrupts off (an initiator holding its space's lock).
  void relax() {
    answer_cpu_barrier();
    x86::pause();
  }
  // Not preemptible, and no interrupt handler reaches the data these
  // sections guard (the per-CPU frame caches): nothing to do.
  void enter_cpu_section(mm::LockClass, const mm::LockSite&) {}
  void leave_cpu_section() {}
  void synchronize_cpus() { synchronize_all_cpus(); }
  void log(mm::LogLevel level, const char* text) {
    kprintf("%s%s\n", level >= mm::LogLevel::Warn ? "warning: " : "", text);
  }
};

static_assert(mm::Platform<KernelPlatform>);

}  // namespace kernel
