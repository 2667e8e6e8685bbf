// mm::panic for hosted programs (tests, benchmarks, the emulator, the
// scenario compiler): the hook first (the emulator's: a core panic during a
// run fails the run, machine/core_panic.cpp), else report on stderr and
// abort, so a debugger stops here and a death test sees it.
#include "emu/host_panic.hpp"

#include <atomic>
#include <cstdio>
#include <cstdlib>

#include "mm/base/panic.hpp"

namespace pagelab::emu {
namespace {
std::atomic<PanicHook> hook{nullptr};
}  // namespace

void set_panic_hook(PanicHook h) { hook.store(h, std::memory_order_release); }

}  // namespace pagelab::emu

namespace mm {

void panic(const char* what, u64 value, const char* file, int line) {
  if (const pagelab::emu::PanicHook h = pagelab::emu::hook.load(std::memory_order_acquire)) h(what, value, file, line);
  // The trace up to here (buffered on standard output or in its file) is
  // what explains the panic: out with it before the abort.
  std::fflush(nullptr);
  std::fprintf(stderr, "pagelab: panic: %s (0x%llx) at %s:%d\n", what,
               static_cast<unsigned long long>(value), file, line);
  std::fflush(stderr);
  std::abort();
}

}  // namespace mm
