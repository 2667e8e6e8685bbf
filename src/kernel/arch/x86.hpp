// Thin wrappers over the x86-64 instructions the kernel uses.
#pragma once

#include "mm/base/types.hpp"

namespace kernel::x86 {

using mm::u16;
using mm::u32;
using mm::u64;
using mm::u8;

inline void outb(u16 port, u8 value) { asm volatile("outb %0, %1" : : "a"(value), "Nd"(port)); }
inline u8 inb(u16 port) {
  u8 value;
  asm volatile("inb %1, %0" : "=a"(value) : "Nd"(port));
  return value;
}

inline u64 rdmsr(u32 msr) {
  u32 lo, hi;
  asm volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
  return (u64{hi} << 32) | lo;
}
inline void wrmsr(u32 msr, u64 value) {
  asm volatile("wrmsr" : : "c"(msr), "a"(static_cast<u32>(value)), "d"(static_cast<u32>(value >> 32)));
}

inline u64 rdtsc() {
  u32 lo, hi;
  asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
  return (u64{hi} << 32) | lo;
}

struct CpuidResult {
  u32 eax, ebx, ecx, edx;
};
inline CpuidResult cpuid(u32 leaf, u32 subleaf = 0) {
  CpuidResult r;
  asm volatile("cpuid" : "=a"(r.eax), "=b"(r.ebx), "=c"(r.ecx), "=d"(r.edx) : "a"(leaf), "c"(subleaf));
  return r;
}

inline u64 read_cr2() {
  u64 v;
  asm volatile("mov %%cr2, %0" : "=r"(v));
  return v;
}
inline u64 read_cr3() {
  u64 v;
  asm volatile("mov %%cr3, %0" : "=r"(v));
  return v;
}
inline void write_cr3(u64 v) { asm volatile("mov %0, %%cr3" : : "r"(v) : "memory"); }
inline u64 read_cr4() {
  u64 v;
  asm volatile("mov %%cr4, %0" : "=r"(v));
  return v;
}
inline void write_cr4(u64 v) { asm volatile("mov %0, %%cr4" : : "r"(v) : "memory"); }

inline void invlpg(u64 address) { asm volatile("invlpg (%0)" : : "r"(address) : "memory"); }
inline void pause() { asm volatile("pause"); }
inline void halt() { asm volatile("hlt"); }
inline void disable_interrupts() { asm volatile("cli" : : : "memory"); }
inline void enable_interrupts() { asm volatile("sti" : : : "memory"); }

inline u64 save_flags_and_disable() {
  u64 flags;
  asm volatile("pushfq; popq %0; cli" : "=r"(flags) : : "memory");
  return flags;
}
inline void restore_flags(u64 flags) { asm volatile("pushq %0; popfq" : : "r"(flags) : "memory", "cc"); }

inline constexpr u32 kMsrEfer = 0xC0000080;
inline constexpr u32 kMsrGsBase = 0xC0000101;
inline constexpr u32 kMsrApicBase = 0x1B;

}  // namespace kernel::x86
