// From the Multiboot memory map to a running PhysicalMemory: ingest the map,
// extend the direct map over all RAM, carve the frame table out of RAM,
// seed the chosen allocator and put PhysicalMemory in front of it.
#pragma once

#include "arch/direct_map.hpp"
#include "boot/multiboot.hpp"
#include "boot/options.hpp"
#include "mm/phys/frame_allocator.hpp"
#include "mm/phys/physical_memory.hpp"
#include "platform/kernel_platform.hpp"

namespace kernel {

using KernelPmm = mm::PhysicalMemory<KernelPlatform>;

struct KernelMemory {
  mm::MemoryMap map;
  DirectMapReport direct_map;
  mm::FrameTable* table = nullptr;
  mm::FrameAllocator* allocator = nullptr;
  KernelPmm* pmm = nullptr;
  mm::FrameCount table_frames = 0;
};

inline KernelPlatform kernel_platform;
inline KernelMemory kernel_memory;

// Prints the map and the totals. On bad input prints why and returns false.
bool memory_init(const MultibootInfo& info, const BootOptions& options, KernelMemory& memory);

}  // namespace kernel
