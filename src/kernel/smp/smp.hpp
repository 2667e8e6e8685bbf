// Bringing up the application processors, and running work on them.
#pragma once

#include "arch/acpi.hpp"
#include "mm/base/types.hpp"

namespace kernel {

// CPUs online (the boot CPU counts), dense indices 0..count-1.
mm::u32 smp_cpu_count();
mm::u32 smp_apic_id(mm::u32 cpu);

// Starts every processor of the topology besides the boot CPU, one at a
// time (INIT, SIPI, SIPI), and waits for each to report in. Returns how many
// came up; prints one line per CPU.
mm::u32 smp_boot_aps(const CpuTopology& topology);

using CpuWork = void (*)(void* argument);
// Runs work(argument) on every online CPU, the caller's included, at once,
// and returns when all have finished.
void run_on_all_cpus(CpuWork work, void* argument);

}  // namespace kernel
