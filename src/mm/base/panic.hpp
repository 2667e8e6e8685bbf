// Broken invariants. A panic is for a bug in the core or its platform, never
// for bad input (bad input returns a Status).
//
// mm::panic is the one part of the platform seam resolved at link time rather
// than through the Platform concept (platform/platform.hpp): an invariant can
// break in code that holds no platform object (the allocators, the memory-map
// parser), and each binary has exactly one way to die. The kernel prints to
// the serial console and exits QEMU with a failure status; the hosted world
// prints to stderr and aborts (so a GoogleTest death test can observe it).
#pragma once

#include "mm/base/types.hpp"

namespace mm {

// Reports `what` (with an optional value, such as the offending frame number)
// and the source location, then never returns.
[[noreturn]] void panic(const char* what, u64 value, const char* file, int line);

}  // namespace mm

#define MM_PANIC(what, value) ::mm::panic((what), static_cast<::mm::u64>(value), __FILE__, __LINE__)

#define MM_ASSERT(cond)                                                        \
  do {                                                                         \
    if (!(cond)) [[unlikely]] {                                                \
      ::mm::panic("assertion failed: " #cond, 0, __FILE__, __LINE__);          \
    }                                                                          \
  } while (0)
