// mm::panic for hosted programs (host_panic.cpp) and the hook through which
// the emulator takes a core panic raised during a run (machine/core_panic.cpp).
#pragma once

#include "mm/base/types.hpp"

namespace pagelab::emu {

// Called by mm::panic before it reports and aborts; returns only when it
// does not take the panic.
using PanicHook = void (*)(const char* what, mm::u64 value, const char* file, int line);
void set_panic_hook(PanicHook hook);

}  // namespace pagelab::emu
