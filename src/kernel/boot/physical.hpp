// The kernel's address layout and the conversions between physical and
// virtual addresses.
//
//   0xFFFF800000000000  direct map of all physical memory (PML4 256..319, 32 TiB)
//   0xFFFFFFFF80000000  the kernel image (physical 0.. + this offset)
#pragma once

#include "mm/base/types.hpp"

namespace kernel {

inline constexpr mm::u64 kDirectMapBase = 0xFFFF800000000000;
inline constexpr mm::u64 kDirectMapSize = mm::u64{32} << 40;  // 64 PML4 slots of 512 GiB
inline constexpr mm::u64 kKernelBase = 0xFFFFFFFF80000000;

template <typename T>
T* phys_to_virt(mm::u64 physical) {
  return reinterpret_cast<T*>(kDirectMapBase + physical);
}

// For addresses in the direct map or the kernel image.
inline mm::u64 virt_to_phys(const void* pointer) {
  const auto v = reinterpret_cast<mm::u64>(pointer);
  return v >= kKernelBase ? v - kKernelBase : v - kDirectMapBase;
}

}  // namespace kernel
