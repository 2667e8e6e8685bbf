#include "arch/gdt.hpp"

#include "mm/platform/platform.hpp"

namespace kernel {

namespace {

struct [[gnu::packed]] Tss {
  mm::u32 reserved0;
  mm::u64 rsp[3];
  mm::u64 reserved1;
  mm::u64 ist[7];
  mm::u64 reserved2;
  mm::u16 reserved3;
  mm::u16 iomap_base;
};
static_assert(sizeof(Tss) == 104);

struct [[gnu::packed]] DescriptorPointer {
  mm::u16 limit;
  mm::u64 base;
};

constexpr mm::u64 kIstStackSize = 8192;
constexpr mm::u64 kTrapStackSize = 16384;

struct alignas(16) CpuTables {
  mm::u64 gdt[7];  // null, kcode, kdata, udata, ucode, TSS (two slots)
  Tss tss;
  alignas(16) mm::u8 double_fault_stack[kIstStackSize];
  alignas(16) mm::u8 nmi_stack[kIstStackSize];
  alignas(16) mm::u8 trap_stack[kTrapStackSize];  // RSP0: where a trap from ring 3 lands
};

CpuTables tables[mm::kMaxCpus];

}  // namespace

void gdt_init_cpu(mm::u32 cpu) {
  CpuTables& t = tables[cpu];
  t.gdt[0] = 0;
  t.gdt[1] = 0x00AF9A000000FFFF;  // 64-bit code, DPL 0
  t.gdt[2] = 0x00CF92000000FFFF;  // data, DPL 0
  t.gdt[3] = 0x00CFF2000000FFFF;  // data, DPL 3
  t.gdt[4] = 0x00AFFA000000FFFF;  // 64-bit code, DPL 3
  t.tss = Tss{};
  t.tss.ist[kIstDoubleFault - 1] = reinterpret_cast<mm::u64>(t.double_fault_stack + kIstStackSize);
  t.tss.ist[kIstNmi - 1] = reinterpret_cast<mm::u64>(t.nmi_stack + kIstStackSize);
  t.tss.rsp[0] = reinterpret_cast<mm::u64>(t.trap_stack + kTrapStackSize);
  t.tss.iomap_base = sizeof(Tss);
  const mm::u64 base = reinterpret_cast<mm::u64>(&t.tss);
  const mm::u64 limit = sizeof(Tss) - 1;
  t.gdt[5] = (limit & 0xFFFF) | ((base & 0xFFFFFF) << 16) | (mm::u64{0x89} << 40) | (((limit >> 16) & 0xF) << 48) |
             (((base >> 24) & 0xFF) << 56);
  t.gdt[6] = base >> 32;

  const DescriptorPointer pointer{sizeof(t.gdt) - 1, reinterpret_cast<mm::u64>(t.gdt)};
  asm volatile(
      "lgdt %0\n"
      "pushq %1\n"
      "leaq 1f(%%rip), %%rax\n"
      "pushq %%rax\n"
      "lretq\n"
      "1:\n"
      "mov %2, %%ds\n"
      "mov %2, %%es\n"
      "mov %2, %%ss\n"
      "ltr %w3\n"
      :
      : "m"(pointer), "i"(static_cast<mm::u64>(kKernelCode)), "r"(static_cast<mm::u64>(kKernelData)),
        "r"(static_cast<mm::u64>(kTssSelector))
      : "rax", "memory");
}

}  // namespace kernel
