#include "arch/interrupts.hpp"

#include "arch/gdt.hpp"
#include "arch/x86.hpp"
#include "console/kprintf.hpp"
#include "platform/qemu_exit.hpp"
#include "smp/cpu_local.hpp"

extern "C" const mm::u64 interrupt_stub_table[];

namespace kernel {

namespace {

struct [[gnu::packed]] IdtEntry {
  mm::u16 offset_low;
  mm::u16 selector;
  mm::u8 ist;
  mm::u8 type_attributes;
  mm::u16 offset_mid;
  mm::u32 offset_high;
  mm::u32 reserved;
};

struct [[gnu::packed]] IdtPointer {
  mm::u16 limit;
  mm::u64 base;
};

alignas(16) IdtEntry idt[256];
InterruptHandler handlers[256];

const char* const kExceptionNames[32] = {
    "#DE divide error", "#DB debug", "NMI", "#BP breakpoint", "#OF overflow", "#BR bound range",
    "#UD invalid opcode", "#NM device not available", "#DF double fault", "coprocessor overrun",
    "#TS invalid TSS", "#NP segment not present", "#SS stack fault", "#GP general protection",
    "#PF page fault", "reserved 15", "#MF x87 error", "#AC alignment check", "#MC machine check",
    "#XM SIMD error", "#VE virtualization", "#CP control protection", "reserved 22", "reserved 23",
    "reserved 24", "reserved 25", "reserved 26", "reserved 27", "#HV hypervisor injection",
    "#VC VMM communication", "#SX security", "reserved 31"};

}  // namespace

void fatal_exception(const InterruptFrame& f) {
  x86::disable_interrupts();
  const char* name = f.vector < 32 ? kExceptionNames[f.vector] : "unexpected interrupt";
  kprintf("\nFATAL: CPU %u: exception %lu (%s), error code 0x%lx\n", current_cpu_index(), f.vector, name,
          f.error_code);
  kprintf("  RIP 0x%016lx  CS 0x%lx  RFLAGS 0x%lx  RSP 0x%016lx\n", f.rip, f.cs, f.rflags, f.rsp);
  kprintf("  CR2 0x%016lx  CR3 0x%016lx\n", x86::read_cr2(), x86::read_cr3());
  kprintf("  RAX %016lx RBX %016lx RCX %016lx RDX %016lx\n", f.rax, f.rbx, f.rcx, f.rdx);
  kprintf("  RSI %016lx RDI %016lx RBP %016lx\n", f.rsi, f.rdi, f.rbp);
  qemu_exit(ExitCode::Panic);
}

extern "C" void interrupt_dispatch(InterruptFrame* frame) {
  const InterruptHandler handler = handlers[frame->vector & 0xFF];
  if (handler == nullptr) {
    if (frame->vector == kVectorSpurious) {
      return;  // spurious LAPIC interrupts need no EOI
    }
    fatal_exception(*frame);
  }
  handler(*frame);
}

void idt_init() {
  for (const mm::u64* entry = interrupt_stub_table; entry[0] != ~mm::u64{0}; entry += 2) {
    const mm::u64 vector = entry[0];
    const mm::u64 stub = entry[1];
    IdtEntry& e = idt[vector];
    e.offset_low = static_cast<mm::u16>(stub);
    e.selector = kKernelCode;
    e.ist = vector == 8 ? kIstDoubleFault : vector == 2 ? kIstNmi : 0;
    e.type_attributes = 0x8E;  // present, DPL 0, 64-bit interrupt gate
    e.offset_mid = static_cast<mm::u16>(stub >> 16);
    e.offset_high = static_cast<mm::u32>(stub >> 32);
    e.reserved = 0;
  }
}

void idt_load() {
  const IdtPointer pointer{sizeof(idt) - 1, reinterpret_cast<mm::u64>(idt)};
  asm volatile("lidt %0" : : "m"(pointer));
}

void set_interrupt_handler(mm::u8 vector, InterruptHandler handler) { handlers[vector] = handler; }

}  // namespace kernel
