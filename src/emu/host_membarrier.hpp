// Every other thread of this process passes a full memory barrier:
// membarrier(2) with MEMBARRIER_CMD_PRIVATE_EXPEDITED (Linux 4.14), which
// interrupts each CPU running one of them. What the hosted platforms'
// synchronize_cpus() is (mm/platform/platform.hpp).
#pragma once

namespace pagelab {

// Registers this process on first use. A host without the command (a
// kernel before 4.14, a sandbox that filters the call) ends the process with
// a message that names it: the per-CPU frame caches depend on it.
void host_membarrier();

}  // namespace pagelab
