// Per-CPU data, reached through the GS base: %gs:0 points at the CPU's own
// CpuLocal, so current_cpu_index() is one load.
#pragma once

#include "mm/base/atomic.hpp"
#include "mm/base/types.hpp"
#include "mm/platform/platform.hpp"

namespace kernel {

struct CpuLocal {
  CpuLocal* self;          // %gs:0
  mm::u32 index;           // %gs:8, dense 0..cpu_count-1, the mm::CpuId
  mm::u32 apic_id;
  mm::Atomic<mm::u32> online{0};
  mm::Atomic<mm::u64> test_ipis{0};  // IPIs of kVectorTestIpi received
  void* user_run = nullptr;           // the ring-3 program this CPU runs (user/user_mode.hpp), or null
  // synchronize_all_cpus (smp/cpu_barrier.hpp): requests posted to this CPU, and answered.
  mm::Atomic<mm::u64> barriers_requested{0};
  mm::Atomic<mm::u64> barriers_done{0};
};

inline CpuLocal cpu_locals[mm::kMaxCpus];

// Points this CPU's GS base at cpu_locals[index].
void cpu_local_init(mm::u32 index, mm::u32 apic_id);

inline mm::u32 current_cpu_index() {
  mm::u32 index;
  asm volatile("movl %%gs:8, %0" : "=r"(index));
  return index;
}

inline CpuLocal& this_cpu() {
  CpuLocal* self;
  asm volatile("movq %%gs:0, %0" : "=r"(self));
  return *self;
}

}  // namespace kernel
