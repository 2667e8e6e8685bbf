// Leaving QEMU through its isa-debug-exit device (-device
// isa-debug-exit,iobase=0xf4,iosize=4): QEMU exits with status (v << 1) | 1.
// scripts/boot.sh turns 33 (pass) into 0 and anything else into failure.
#pragma once

#include "mm/base/types.hpp"

namespace kernel {

enum class ExitCode : mm::u8 {
  Pass = 0x10,       // QEMU status 33
  Fail = 0x11,       // QEMU status 35: a self-test failed, or bad input
  Panic = 0x12,      // QEMU status 37: a panic or an unexpected exception
};

[[noreturn]] void qemu_exit(ExitCode code);

}  // namespace kernel
