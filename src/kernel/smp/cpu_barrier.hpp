// synchronize_cpus() of the platform seam (mm/platform/platform.hpp) on real
// CPUs: every other online CPU executes a full memory barrier, and the caller
// waits until each has. A request is a sequence number in the target's
// CpuLocal and an IPI (kVectorBarrier); the target answers from the IPI's
// handler or, with interrupts off, from a wait loop (KernelPlatform::relax,
// a SpinLock's spin), so that two CPUs may synchronize with each other, or
// with one spinning for a lock the other holds, without waiting for ever.
#pragma once

#include "mm/base/types.hpp"

namespace kernel {

// Installs the IPI handler. Once, on the boot CPU, before the APs start.
void cpu_barrier_init();

// Returns when every other online CPU has passed a full barrier since the call began.
void synchronize_all_cpus();

// Answers the requests posted to this CPU, if any: a full barrier, then the
// acknowledgement. Cheap when there is none (one load).
void answer_cpu_barrier();

}  // namespace kernel
