#include "arch/tsc.hpp"

#include "arch/x86.hpp"
#include "boot/physical.hpp"

extern "C" mm::u64 boot_tsc;  // written by entry.S, at its physical address

namespace kernel {

namespace {

constexpr mm::u64 kPitHz = 1193182;
constexpr mm::u16 kPitTicks = 11932;  // 10 ms
mm::u64 tsc_frequency = 1'000'000'000;  // until calibrated: assume 1 GHz

mm::u64 entry_tsc() { return *phys_to_virt<const mm::u64>(reinterpret_cast<mm::u64>(&boot_tsc)); }

}  // namespace

void tsc_calibrate() {
  mm::u8 gate = x86::inb(0x61);
  x86::outb(0x61, static_cast<mm::u8>((gate & ~0x02) | 0x01));  // speaker off, gate on
  x86::outb(0x43, 0xB0);                                       // channel 2, lo/hi byte, mode 0
  x86::outb(0x42, kPitTicks & 0xFF);
  x86::outb(0x42, kPitTicks >> 8);
  gate = x86::inb(0x61) & ~0x01;
  x86::outb(0x61, gate);  // a rising edge on the gate starts the count
  x86::outb(0x61, gate | 0x01);
  const mm::u64 start = x86::rdtsc();
  while ((x86::inb(0x61) & 0x20) == 0) {  // OUT2 goes high at terminal count
  }
  const mm::u64 elapsed = x86::rdtsc() - start;
  tsc_frequency = elapsed * kPitHz / kPitTicks;
}

mm::u64 tsc_hz() { return tsc_frequency; }

mm::u64 boot_microseconds_at(mm::u64 tsc) { return (tsc - entry_tsc()) * 1'000'000 / tsc_frequency; }

mm::u64 boot_microseconds() { return boot_microseconds_at(x86::rdtsc()); }

void delay_microseconds(mm::u64 us) {
  const mm::u64 end = x86::rdtsc() + us * tsc_frequency / 1'000'000;
  while (x86::rdtsc() < end) {
    x86::pause();
  }
}

}  // namespace kernel
