// The kernel's C++ entry, called from boot/entry.S on the boot CPU in long
// mode, with the Multiboot magic and the physical address of its information.
#include "arch/gdt.hpp"
#include "arch/interrupts.hpp"
#include "arch/x86.hpp"
#include "console/kprintf.hpp"
#include "console/serial.hpp"
#include "platform/qemu_exit.hpp"
#include "smp/cpu_local.hpp"

extern "C" [[noreturn]] void kmain(mm::u32 multiboot_magic, mm::u32 multiboot_info) {
  using namespace kernel;
  cpu_local_init(0, 0);
  serial_init();
  gdt_init_cpu(0);
  idt_init();
  idt_load();
  kprintf("pagelab kernel: multiboot magic 0x%x, info at 0x%x\n", multiboot_magic, multiboot_info);
  qemu_exit(ExitCode::Pass);
}
