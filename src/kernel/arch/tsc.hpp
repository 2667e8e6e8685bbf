// Time from the TSC, calibrated against the PIT (channel 2, 10 ms one-shot).
// The boot clock's zero is the first instruction of boot/entry.S.
#pragma once

#include "mm/base/types.hpp"

namespace kernel {

// Measures the TSC frequency. Call once, early, with interrupts off.
void tsc_calibrate();
mm::u64 tsc_hz();
// Microseconds since the kernel's first instruction.
mm::u64 boot_microseconds();
mm::u64 boot_microseconds_at(mm::u64 tsc);
// Busy-waits, relaxing the CPU.
void delay_microseconds(mm::u64 us);

}  // namespace kernel
