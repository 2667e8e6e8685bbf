#include "smp/cpu_local.hpp"

#include "arch/x86.hpp"

namespace kernel {

void cpu_local_init(mm::u32 index, mm::u32 apic_id) {
  CpuLocal& local = cpu_locals[index];
  local.self = &local;
  local.index = index;
  local.apic_id = apic_id;
  x86::wrmsr(x86::kMsrGsBase, reinterpret_cast<mm::u64>(&local));
}

}  // namespace kernel
