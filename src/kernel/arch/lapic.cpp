#include "arch/lapic.hpp"

#include "arch/interrupts.hpp"
#include "arch/x86.hpp"
#include "boot/physical.hpp"

namespace kernel {

namespace {

constexpr mm::u32 kRegId = 0x20;
constexpr mm::u32 kRegTpr = 0x80;
constexpr mm::u32 kRegEoi = 0xB0;
constexpr mm::u32 kRegSvr = 0xF0;
constexpr mm::u32 kRegEsr = 0x280;
constexpr mm::u32 kRegIcrLow = 0x300;
constexpr mm::u32 kRegIcrHigh = 0x310;
constexpr mm::u32 kIcrPending = 1 << 12;
constexpr mm::u32 kIcrAssert = 1 << 14;
constexpr mm::u32 kIcrInit = 5 << 8;
constexpr mm::u32 kIcrStartup = 6 << 8;

// The physical address of the xAPIC registers, read from IA32_APIC_BASE by
// lapic_init_cpu (the same on every CPU QEMU makes). Kept, because every
// RDMSR is a VM exit under KVM, and a shootdown sends an IPI per target.
mm::u64 apic_base = 0;

volatile mm::u32* reg(mm::u32 offset) { return phys_to_virt<volatile mm::u32>(apic_base + offset); }

// The ICR is two registers: an interrupt between the two writes that sends
// an IPI of its own would leave this one with the wrong destination, so the
// sequence runs with interrupts off. Delivery status (bit 12) is waited on
// before the write, as the SDM asks (the previous command has been
// accepted), and after it, so a caller never races its own IPI's delivery.
void send(mm::u32 apic_id, mm::u32 command) {
  const mm::u64 flags = x86::save_flags_and_disable();
  while (*reg(kRegIcrLow) & kIcrPending) {
    x86::pause();
  }
  *reg(kRegIcrHigh) = apic_id << 24;
  *reg(kRegIcrLow) = command;
  while (*reg(kRegIcrLow) & kIcrPending) {
    x86::pause();
  }
  x86::restore_flags(flags);
}

}  // namespace

void lapic_init_cpu() {
  const mm::u64 msr = x86::rdmsr(x86::kMsrApicBase);
  x86::wrmsr(x86::kMsrApicBase, msr | (1 << 11));  // global enable (x2APIC mode, bit 10, stays off)
  apic_base = msr & 0xFFFFFF000;
  *reg(kRegSvr) = 0x100 | kVectorSpurious;                                   // software enable
  *reg(kRegTpr) = 0;
  *reg(kRegEsr) = 0;
}

mm::u32 lapic_id() { return *reg(kRegId) >> 24; }

void lapic_eoi() { *reg(kRegEoi) = 0; }

void lapic_send_ipi(mm::u32 apic_id, mm::u8 vector) { send(apic_id, kIcrAssert | vector); }

void lapic_send_init(mm::u32 apic_id) { send(apic_id, kIcrAssert | kIcrInit); }

void lapic_send_startup(mm::u32 apic_id, mm::u8 page) { send(apic_id, kIcrAssert | kIcrStartup | page); }

}  // namespace kernel
