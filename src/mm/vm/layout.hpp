// The address-space layout (PatchworkOS's): user space from 4 MiB to the
// top of the lower half; the higher half belongs to the kernel and is shared
// by every address space. The first 4 MiB stay unmapped so that null and
// small-offset pointers fault.
#pragma once

#include "mm/base/types.hpp"

namespace mm {

inline constexpr u64 kUserSpaceStart = u64{4} << 20;
inline constexpr u64 kUserSpaceEnd = u64{1} << 47;  // one past the last lower-half address

constexpr bool in_user_space(VirtAddr va, u64 bytes) {
  return va.value() >= kUserSpaceStart && va.value() < kUserSpaceEnd && bytes <= kUserSpaceEnd - va.value();
}

}  // namespace mm
