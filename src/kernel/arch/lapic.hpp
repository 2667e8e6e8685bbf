// The local APIC in xAPIC mode (MMIO at the address in IA32_APIC_BASE,
// reached through the direct map, which maps it uncached).
#pragma once

#include "mm/base/types.hpp"

namespace kernel {

// Enables this CPU's local APIC with spurious vector kVectorSpurious.
void lapic_init_cpu();
mm::u32 lapic_id();
void lapic_eoi();
// A fixed-delivery interrupt of `vector` to the CPU with this APIC ID.
void lapic_send_ipi(mm::u32 apic_id, mm::u8 vector);
void lapic_send_init(mm::u32 apic_id);
void lapic_send_startup(mm::u32 apic_id, mm::u8 page);

}  // namespace kernel
