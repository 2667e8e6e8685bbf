// The kernel's C++ entry, called from boot/entry.S on the boot CPU in long
// mode, with the Multiboot magic and the physical address of its information.
//
// Boot order: per-CPU data, console, GDT/IDT (so every fault is reported from
// here on), TSC calibration, command line, memory map and PhysicalMemory,
// local APIC, application processors, self-tests, exit.
#include "arch/acpi.hpp"
#include "arch/direct_map.hpp"
#include "arch/gdt.hpp"
#include "arch/interrupts.hpp"
#include "arch/lapic.hpp"
#include "arch/pic.hpp"
#include "arch/tsc.hpp"
#include "arch/x86.hpp"
#include "boot/memory_setup.hpp"
#include "boot/multiboot.hpp"
#include "boot/options.hpp"
#include "console/kprintf.hpp"
#include "console/serial.hpp"
#include "platform/qemu_exit.hpp"
#include "scenario/scenario_runner.hpp"
#include "selftest/selftest.hpp"
#include "selftest/shootdown_latency.hpp"
#include "smp/cpu_local.hpp"
#include "smp/smp.hpp"
#include "user/user_mode.hpp"

namespace kernel {
namespace {

[[noreturn]] void fail_boot(const char* why) {
  kprintf("boot: FAILED: %s\n", why);
  qemu_exit(ExitCode::Fail);
}

}  // namespace
}  // namespace kernel

extern "C" [[noreturn]] void kmain(mm::u32 multiboot_magic, mm::u32 multiboot_info) {
  using namespace kernel;
  const mm::u64 kmain_tsc = x86::rdtsc();
  cpu_local_init(0, 0);
  serial_init();
  gdt_init_cpu(0);
  idt_init();
  idt_load();
  pic_disable();
  tsc_calibrate();
  const mm::u64 kmain_us = boot_microseconds_at(kmain_tsc);
  kprintf("pagelab kernel: kmain reached %lu us after entry; TSC %lu MHz\n", kmain_us, tsc_hz() / 1'000'000);

  if (multiboot_magic != kMultibootMagic) {
    fail_boot("not started by a Multiboot loader");
  }
  const auto& info = *phys_to_virt<const MultibootInfo>(multiboot_info);
  const char* cmdline = multiboot_cmdline(info);
  kprintf("boot: command line '%s'\n", cmdline);
  BootOptions options;
  if (!parse_boot_options(cmdline, options)) {
    fail_boot("bad command line");
  }
  if (!memory_init(info, options, kernel_memory)) {
    fail_boot("physical memory could not be set up");
  }
  if (!vm_init(options.shootdown)) {
    fail_boot("virtual memory could not be set up");
  }

  lapic_init_cpu();
  cpu_local_init(0, lapic_id());
  vm_cpu_online();
  CpuTopology topology;
  if (!acpi_find_cpus(topology)) {
    kprintf("smp: no ACPI MADT found: running on the boot CPU alone\n");
    topology.count = 1;
    topology.apic_ids[0] = lapic_id();
  }
  if (topology.ignored > 0) {
    kprintf("smp: %u processors beyond the %u this kernel supports are left off\n", topology.ignored, mm::kMaxCpus);
  }
  const mm::u32 online = smp_boot_aps(topology);
  drop_identity_map();
  kprintf("smp: %u of %u CPUs online at %lu us\n", online, topology.count, boot_microseconds());
  x86::enable_interrupts();

  if (options.fault == InjectedFault::PageFault) {
    kprintf("boot: reading 0x%lx on purpose (fault=page)\n", mm::u64{0xdead0000});
    (void)*reinterpret_cast<volatile mm::u64*>(0xdead0000);  // unmapped since the identity map went
  } else if (options.fault == InjectedFault::InvalidOpcode) {
    kprintf("boot: executing ud2 on purpose (fault=opcode)\n");
    asm volatile("ud2");
  }
  const bool scenarios_passed =
      options.scenarios_length == 0 || scenario::run_scenarios(options.scenarios, options.scenarios_length);
  if (!options.selftest) {
    kprintf("boot: self-tests off; done at %lu us\n", boot_microseconds());
    qemu_exit(online == topology.count && scenarios_passed ? ExitCode::Pass : ExitCode::Fail);
  }
  const SelfTestSummary summary = run_self_tests();
  const bool all_up = online == topology.count;
  if (!all_up) {
    kprintf("smp: FAILED: %u CPUs did not come up\n", topology.count - online);
  }
  kprintf("selftest: %u passed, %u failed\n", summary.passed, summary.failed + (all_up ? 0 : 1));
  print_shootdown_latency();
  kprintf("boot: kmain at %lu us, %u CPUs up and self-tests done at %lu us\n", kmain_us, online,
          boot_microseconds());
  qemu_exit(summary.failed == 0 && all_up && scenarios_passed ? ExitCode::Pass : ExitCode::Fail);
}
