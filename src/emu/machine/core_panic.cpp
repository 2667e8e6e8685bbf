// The core's own assertion, failing on a simulated CPU of a run, fails that
// run (Machine::core_panicked): `explore` and `fuzz` report it with its seed,
// and shrink it, like any other failure. Every Machine installs the hook.
#include <cstring>

#include <fmt/format.h>

#include "emu/host_panic.hpp"
#include "emu/machine/machine.hpp"

namespace pagelab::emu {
namespace {

// The path from "src/mm/" on, or null for a file outside the core. Only the
// core's assertions are taken as a run's failure: the emulator's own (its
// scheduler, TLBs, fibers) may fire with a host mutex held, and a CPU leaving
// through a longjmp would keep it held.
const char* core_file(const char* file) {
  if (file == nullptr) return nullptr;
  if (std::strncmp(file, "src/mm/", 7) == 0) return file;
  const char* inside = std::strstr(file, "/src/mm/");
  return inside != nullptr ? inside + 1 : nullptr;
}

void take_core_panic(const char* what, mm::u64 value, const char* file, int line) {
  Machine* const machine = cpu_context.machine;
  const char* const core = core_file(file);
  if (core == nullptr || machine == nullptr || !machine->can_escape()) return;
  machine->core_panicked(fmt::format("{} (0x{:x}) at {}:{}", what, value, core, line));
}

}  // namespace

void install_core_panic_hook() { set_panic_hook(&take_core_panic); }
}  // namespace pagelab::emu
