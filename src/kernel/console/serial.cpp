#include "console/serial.hpp"

#include "arch/x86.hpp"

namespace kernel {

namespace {
constexpr mm::u16 kCom1 = 0x3F8;
}

void serial_init() {
  x86::outb(kCom1 + 1, 0x00);  // no interrupts
  x86::outb(kCom1 + 3, 0x80);  // DLAB on
  x86::outb(kCom1 + 0, 0x01);  // 115200 baud
  x86::outb(kCom1 + 1, 0x00);
  x86::outb(kCom1 + 3, 0x03);  // 8N1, DLAB off
  x86::outb(kCom1 + 2, 0xC7);  // FIFO on, cleared
  x86::outb(kCom1 + 4, 0x03);  // DTR, RTS
}

// Once the line status register says the transmitter FIFO is empty, 16
// bytes fit without asking again. Under virtualization every port access is
// a VM exit, so this halves the cost of console output.
void serial_write(const char* text, unsigned long length) {
  constexpr unsigned long kFifoBytes = 16;
  for (unsigned long i = 0; i < length;) {
    while ((x86::inb(kCom1 + 5) & 0x20) == 0) {  // transmit FIFO empty
      x86::pause();
    }
    for (unsigned long n = 0; n < kFifoBytes && i < length; ++n, ++i) {
      x86::outb(kCom1, static_cast<mm::u8>(text[i]));
    }
  }
}

}  // namespace kernel
