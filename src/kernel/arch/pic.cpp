#include "arch/pic.hpp"

#include "arch/x86.hpp"

namespace kernel {

void pic_disable() {
  constexpr mm::u16 kMasterCommand = 0x20, kMasterData = 0x21, kSlaveCommand = 0xA0, kSlaveData = 0xA1;
  x86::outb(kMasterCommand, 0x11);  // ICW1: initialise, ICW4 follows
  x86::outb(kSlaveCommand, 0x11);
  x86::outb(kMasterData, 0x20);     // ICW2: vector base
  x86::outb(kSlaveData, 0x28);
  x86::outb(kMasterData, 0x04);     // ICW3: slave on IRQ 2
  x86::outb(kSlaveData, 0x02);
  x86::outb(kMasterData, 0x01);     // ICW4: 8086 mode
  x86::outb(kSlaveData, 0x01);
  x86::outb(kMasterData, 0xFF);     // mask everything
  x86::outb(kSlaveData, 0xFF);
}

}  // namespace kernel
