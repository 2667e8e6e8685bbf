// Compiled only by the freestanding check target (see CMakeLists.txt): every
// template of the core, instantiated over PlatformArchetype with the kernel's
// flags. Nothing here is linked into any program.
#include "mm/paging/page_tables.hpp"
#include "mm/phys/physical_memory.hpp"
#include "mm/platform/platform_archetype.hpp"
#include "mm/vm/address_space.hpp"

namespace mm {

template class PhysicalMemory<PlatformArchetype>;
template class CpuFrameCache<PlatformArchetype::SpinLock>;
template class TlbBatch<PlatformArchetype>;
template class TlbCoherence<PlatformArchetype>;
template class PageTables<PlatformArchetype>;
template class VmSystem<PlatformArchetype>;
template class AddressSpace<PlatformArchetype>;

}  // namespace mm
