// Per-CPU GDT and TSS. The TSS gives double faults and NMIs their own stack
// (IST1, IST2), so a kernel stack overflow reports itself instead of
// triple-faulting.
#pragma once

#include "mm/base/types.hpp"

namespace kernel {

inline constexpr mm::u16 kKernelCode = 0x08;
inline constexpr mm::u16 kKernelData = 0x10;
inline constexpr mm::u16 kUserData = 0x18 | 3;
inline constexpr mm::u16 kUserCode = 0x20 | 3;
inline constexpr mm::u16 kTssSelector = 0x28;

inline constexpr int kIstDoubleFault = 1;
inline constexpr int kIstNmi = 2;

// Loads this CPU's GDT and TSS and reloads the segment registers.
void gdt_init_cpu(mm::u32 cpu);

}  // namespace kernel
