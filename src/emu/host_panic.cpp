// mm::panic for hosted programs (tests, benchmarks, the emulator): report on
// stderr and abort, so a debugger stops here and a death test sees it.
#include <cstdio>
#include <cstdlib>

#include "mm/base/panic.hpp"

namespace mm {

void panic(const char* what, u64 value, const char* file, int line) {
  // The trace up to here (buffered on standard output or in its file) is
  // what explains the panic: out with it before the abort.
  std::fflush(nullptr);
  std::fprintf(stderr, "pagelab: panic: %s (0x%llx) at %s:%d\n", what,
               static_cast<unsigned long long>(value), file, line);
  std::fflush(stderr);
  std::abort();
}

}  // namespace mm
