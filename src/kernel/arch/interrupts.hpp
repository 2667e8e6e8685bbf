// The IDT, interrupt dispatch and exception reporting.
#pragma once

#include "mm/base/types.hpp"

namespace kernel {

// What interrupt_common saves, in memory order.
struct InterruptFrame {
  mm::u64 r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
  mm::u64 vector, error_code;
  mm::u64 rip, cs, rflags, rsp, ss;
};

inline constexpr mm::u8 kVectorPageFault = 14;
inline constexpr mm::u8 kVectorShootdown = 240;  // TLB shootdown (issue 5/5)
inline constexpr mm::u8 kVectorTestIpi = 241;    // the self-tests' IPI
inline constexpr mm::u8 kVectorCall = 242;       // run a function on another CPU
inline constexpr mm::u8 kVectorBarrier = 243;    // a full barrier on another CPU (smp/cpu_barrier.hpp)
inline constexpr mm::u8 kVectorSpurious = 255;

using InterruptHandler = void (*)(InterruptFrame& frame);

// Builds the IDT (once, on the boot CPU).
void idt_init();
// Loads the IDT on the calling CPU.
void idt_load();
// Routes `vector` to `handler`. An exception without a handler is fatal:
// it is printed (vector, error code, RIP, CR2) and QEMU exits with a failure.
void set_interrupt_handler(mm::u8 vector, InterruptHandler handler);
// Prints the exception and fails the boot.
[[noreturn]] void fatal_exception(const InterruptFrame& frame);

}  // namespace kernel
