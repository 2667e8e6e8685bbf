// The legacy 8259 PICs. The BIOS leaves them delivering IRQ 0-7 on vectors
// 8-15, where they would masquerade as exceptions (the timer as a double
// fault). The kernel uses the local APIC only, so it moves them to vectors
// 0x20-0x2F and masks every line.
#pragma once

namespace kernel {

void pic_disable();

}  // namespace kernel
