#include "emu/host_membarrier.hpp"

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace pagelab {

namespace {

long membarrier(int command) { return syscall(SYS_membarrier, command, 0, 0); }

[[noreturn]] void unavailable(const char* what) {
  std::fprintf(stderr,
               "pagelab: membarrier(2) %s failed: %s; the per-CPU frame caches need "
               "MEMBARRIER_CMD_PRIVATE_EXPEDITED (Linux 4.14 or later, not filtered by a sandbox)\n",
               what, std::strerror(errno));
  std::abort();
}

// Registration once per process (a function-local static: thread-safe).
bool registered() {
  static const bool done = [] {
    if (membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) != 0) unavailable("REGISTER_PRIVATE_EXPEDITED");
    return true;
  }();
  return done;
}

}  // namespace

void host_membarrier() {
  if (registered() && membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0) unavailable("PRIVATE_EXPEDITED");
}

}  // namespace pagelab
