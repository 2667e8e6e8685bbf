// Just enough ACPI to enumerate processors: find the RSDP, walk the RSDT or
// XSDT to the MADT, and collect the APIC IDs of enabled processors.
#pragma once

#include "mm/base/types.hpp"
#include "mm/platform/platform.hpp"

namespace kernel {

struct CpuTopology {
  mm::u32 count = 0;
  mm::u32 apic_ids[mm::kMaxCpus];
  mm::u32 ignored = 0;  // enabled processors beyond kMaxCpus
};

// False when no valid RSDP or MADT was found.
bool acpi_find_cpus(CpuTopology& topology);

}  // namespace kernel
