// What a freestanding C++ program must provide itself: the memory primitives
// the compiler may call, the pure-virtual trap, and mm::panic.
#include "arch/x86.hpp"
#include "console/kprintf.hpp"
#include "mm/base/panic.hpp"
#include "platform/qemu_exit.hpp"

extern "C" {

void* memset(void* dest, int value, unsigned long n) {
  auto* d = static_cast<unsigned char*>(dest);
  asm volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(value) : "memory");
  return dest;
}

void* memcpy(void* dest, const void* src, unsigned long n) {
  auto* d = static_cast<unsigned char*>(dest);
  const auto* s = static_cast<const unsigned char*>(src);
  asm volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
  return dest;
}

void* memmove(void* dest, const void* src, unsigned long n) {
  auto* d = static_cast<unsigned char*>(dest);
  const auto* s = static_cast<const unsigned char*>(src);
  if (d <= s || d >= s + n) {
    return memcpy(dest, src, n);
  }
  for (unsigned long i = n; i-- > 0;) d[i] = s[i];
  return dest;
}

int memcmp(const void* a, const void* b, unsigned long n) {
  const auto* x = static_cast<const unsigned char*>(a);
  const auto* y = static_cast<const unsigned char*>(b);
  for (unsigned long i = 0; i < n; ++i) {
    if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
  }
  return 0;
}

void __cxa_pure_virtual() { MM_PANIC("pure virtual function called", 0); }

}  // extern "C"

namespace kernel {

void qemu_exit(ExitCode code) {
  x86::outb(0xf4, static_cast<mm::u8>(code));
  // Without the exit device (a real machine, or QEMU run by hand): stop here.
  for (;;) {
    x86::disable_interrupts();
    x86::halt();
  }
}

}  // namespace kernel

namespace mm {

void panic(const char* what, u64 value, const char* file, int line) {
  kernel::x86::disable_interrupts();
  kernel::kprintf("\nPANIC: %s (0x%lx) at %s:%d\n", what, value, file, line);
  kernel::qemu_exit(kernel::ExitCode::Panic);
}

}  // namespace mm
