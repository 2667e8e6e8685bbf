// The COM1 serial port (16550 UART at 0x3F8): the kernel's console.
#pragma once

namespace kernel {

void serial_init();
void serial_write(const char* text, unsigned long length);

}  // namespace kernel
