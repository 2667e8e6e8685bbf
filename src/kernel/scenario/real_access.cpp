#include "scenario/real_access.hpp"

#include "arch/interrupts.hpp"
#include "arch/x86.hpp"
#include "boot/physical.hpp"
#include "console/kprintf.hpp"
#include "mm/paging/pte.hpp"
#include "smp/cpu_local.hpp"

extern "C" const char scenario_stub_start[], scenario_stub_end[];
extern "C" const char scenario_stub_read[], scenario_stub_write[], scenario_stub_exit[];
extern "C" const char scenario_kernel_read_insn[], scenario_kernel_write_insn[], scenario_kernel_fixup[];
extern "C" mm::u64 scenario_kernel_read(mm::u64 address, mm::u64* value);
extern "C" mm::u64 scenario_kernel_write(mm::u64 address, mm::u64 value);

namespace kernel::scenario {

namespace {

// What scenario_ring3_enter saves and loads; offsets are fixed in the .S.
struct Ring3Context {
  mm::u64 kernel_rsp;
  mm::u64 rbx, rbp, r12, r13, r14, r15;
  mm::u64 rip, rsp, rflags;
  mm::u64 fill;
  mm::u64 rdi, rsi, rdx;
};
static_assert(__builtin_offsetof(Ring3Context, rip) == 56 && __builtin_offsetof(Ring3Context, fill) == 80 &&
              __builtin_offsetof(Ring3Context, rdx) == 104);

extern "C" mm::u64 scenario_ring3_enter(Ring3Context* context);
extern "C" [[noreturn]] void scenario_ring3_return(Ring3Context* context, mm::u64 value);

constexpr mm::u64 kPml4Slot = (kStubBase >> 39) & 511;
constexpr mm::u64 kRing3Rflags = 0x202;  // IF and the always-one bit 1
constexpr mm::u64 kRflagsTf = 0x100;
constexpr mm::u64 kRflagsInterrupts = 0x200;
// In every register of an exec probe: non-canonical, and so is any sum or
// scaled sum of two of them, so a memory operand built from registers
// faults (#GP, #SS) instead of reaching memory.
constexpr mm::u64 kNowhere = 0x4000000000000000;
constexpr mm::u64 kPfWrite = 0x2, kPfUser = 0x4, kPfFetch = 0x10;
constexpr mm::u64 kOk = 0, kSegv = 1;

// The access in progress on one CPU (only that CPU touches its slot).
struct Probe {
  bool active = false;
  KernelSpace* space = nullptr;
  AccessKind kind = AccessKind::Read;
  mm::AccessMode mode = mm::AccessMode::User;
  mm::u64 target = 0;  // the scenario's address
  mm::u64 value = 0;   // a ring-3 read's value (the stub's exit RAX)
  mm::u32 faults = 0;
  Ring3Context context{};
};

Probe probes[mm::kMaxCpus];
bool stub_mapped = false;
bool nx_enabled = false;

mm::u64 stub_rip(const char* label) {
  return kStubBase + static_cast<mm::u64>(label - scenario_stub_start);
}

// The vectors an exec probe may end with, besides #PF: whatever the one
// instruction at the target can raise after it was fetched.
constexpr mm::u8 kExecEndVectors[] = {0, 1, 3, 4, 5, 6, 7, 10, 11, 12, 13, 16, 17, 19};

// A fault of the access itself goes to the core. True: retry the
// instruction; false: the access is a segv. The core is entered with
// interrupts as the faulting code had them (on, for ring 3 and for kernel
// accesses): it may spin for the space's lock while the holder waits for
// this CPU to acknowledge a shootdown (user/user_mode.cpp does the same).
bool route_to_core(Probe& probe, const InterruptFrame& frame, mm::u64 address) {
  const mm::u64 error_code = frame.error_code;
  ++probe.faults;
  if (frame.rflags & kRflagsInterrupts) x86::enable_interrupts();
  const mm::Access access = (error_code & kPfFetch) ? mm::Access::Execute
                            : (error_code & kPfWrite) ? mm::Access::Write
                                                      : mm::Access::Read;
  const mm::AccessMode mode = (error_code & kPfUser) ? mm::AccessMode::User : mm::AccessMode::Kernel;
  const mm::FaultOutcome outcome = probe.space->handle_fault(mm::VirtAddr(address), access, mode);
  return mm::resolved(outcome) && probe.faults < kMaxFaultsPerAccess;
}

// Is this fault of an exec probe the instruction fetch from the target's
// page (then it is the access's), or something after it: a data access of
// the instruction, or the fetch of its tail from the next page (the
// emulator's exec fetches from the target's page alone)?
bool is_fetch_fault(const Probe& probe, const InterruptFrame& frame, mm::u64 address) {
  if ((address >> mm::kPageShift) != (probe.target >> mm::kPageShift)) return false;
  if (nx_enabled) {
    return (frame.error_code & kPfFetch) != 0;  // I/D is reported only with EFER.NXE (or SMEP)
  }
  return frame.rip == probe.target && address >= probe.target && address < probe.target + 16;
}

void on_page_fault(InterruptFrame& frame) {
  Probe& probe = probes[current_cpu_index()];
  if (!probe.active) {
    user_page_fault(frame);  // not a scenario access: the self-tests' handler
    return;
  }
  const mm::u64 address = x86::read_cr2();
  if ((frame.cs & 3) == 3) {
    if (probe.kind != AccessKind::Exec && frame.rip == stub_rip(scenario_stub_exit)) {
      probe.value = frame.rax;
      scenario_ring3_return(&probe.context, kOk);
    }
    if (probe.kind == AccessKind::Exec && !is_fetch_fault(probe, frame, address)) {
      scenario_ring3_return(&probe.context, kOk);  // fetched; the instruction's operand faulted
    }
    if (!route_to_core(probe, frame, address)) {
      scenario_ring3_return(&probe.context, kSegv);
    }
    return;  // resolved: the instruction runs again
  }
  const mm::u64 rip = frame.rip;
  const bool ours = rip == reinterpret_cast<mm::u64>(scenario_kernel_read_insn) ||
                    rip == reinterpret_cast<mm::u64>(scenario_kernel_write_insn);
  if (!ours || address >= mm::kUserSpaceEnd) {
    fatal_exception(frame);  // the kernel faulted on its own, during a scenario access
  }
  if (!route_to_core(probe, frame, address)) {
    frame.rip = reinterpret_cast<mm::u64>(scenario_kernel_fixup);
  }
}

// Any other exception from ring 3 ends an exec probe as `ok`: the fetch
// succeeded (the single-step #DB, or a fault of the instruction itself).
void on_exec_end(InterruptFrame& frame) {
  Probe& probe = probes[current_cpu_index()];
  if (probe.active && probe.kind == AccessKind::Exec && (frame.cs & 3) == 3) {
    scenario_ring3_return(&probe.context, kOk);
  }
  fatal_exception(frame);
}

// Maps the stub page: a code frame and the three tables above it, in a slot
// of the kernel half whose every level carries U. Never freed: it lives as
// long as the boot.
bool map_stub_page() {
  auto& pmm = *kernel_memory.pmm;
  mm::u64* pml4 = phys_to_virt<mm::u64>(x86::read_cr3() & mm::pte::kAddressMask);
  if (pml4[kPml4Slot] != 0) {
    kprintf("scenario: PML4 slot %lu, meant for the ring-3 stub, is in use\n", kPml4Slot);
    return false;
  }
  mm::PhysAddr frames[4];
  for (int i = 0; i < 4; ++i) {
    const mm::Result<mm::PhysAddr> frame =
        pmm.allocate_frame(i == 3 ? mm::FrameOwner::Kernel : mm::FrameOwner::PageTable, mm::AllocFlags::Zero);
    if (!frame.ok()) {
      kprintf("scenario: no frame for the ring-3 stub: %s\n", mm::errno_name(frame.status()));
      return false;
    }
    frames[i] = frame.value();
  }
  const mm::u64 table = mm::pte::kPresent | mm::pte::kWritable | mm::pte::kUser;
  __builtin_memcpy(phys_to_virt<char>(frames[3].value()), scenario_stub_start,
                   static_cast<mm::usize>(scenario_stub_end - scenario_stub_start));
  phys_to_virt<mm::u64>(frames[2].value())[(kStubBase >> 12) & 511] =
      frames[3].value() | mm::pte::kPresent | mm::pte::kUser;  // r-x for ring 3
  phys_to_virt<mm::u64>(frames[1].value())[(kStubBase >> 21) & 511] = frames[2].value() | table;
  phys_to_virt<mm::u64>(frames[0].value())[(kStubBase >> 30) & 511] = frames[1].value() | table;
  __atomic_store_n(&pml4[kPml4Slot], frames[0].value() | table, __ATOMIC_RELEASE);
  return true;
}

mm::u64 run_ring3(Probe& probe, mm::u64 rip, mm::u64 rflags, mm::u64 fill, mm::u64 value) {
  probe.context.rip = rip;
  probe.context.rsp = kUserExitAddress;  // nothing is ever mapped below 4 MiB
  probe.context.rflags = rflags;
  probe.context.fill = fill;
  probe.context.rdi = kUserExitAddress;
  probe.context.rsi = probe.target;
  probe.context.rdx = value;
  return scenario_ring3_enter(&probe.context);
}

}  // namespace

bool real_access_begin() {
  if (!stub_mapped) {
    if (!map_stub_page()) return false;
    stub_mapped = true;
  }
  nx_enabled = (x86::rdmsr(x86::kMsrEfer) >> 11) & 1;
  set_interrupt_handler(kVectorPageFault, on_page_fault);
  for (const mm::u8 vector : kExecEndVectors) set_interrupt_handler(vector, on_exec_end);
  return true;
}

void real_access_end() {
  set_interrupt_handler(kVectorPageFault, user_page_fault);
  for (const mm::u8 vector : kExecEndVectors) set_interrupt_handler(vector, nullptr);
}

AccessResult real_access(KernelSpace& space, AccessKind kind, mm::AccessMode mode, mm::u64 address, mm::u64 value) {
  Probe& probe = probes[current_cpu_index()];
  probe.space = &space;
  probe.kind = kind;
  probe.mode = mode;
  probe.target = address;
  probe.value = 0;
  probe.faults = 0;
  probe.active = true;
  mm::u64 status = kOk;
  mm::u64 read = 0;
  if (mode == mm::AccessMode::Kernel) {
    // With the caller's interrupts (on), like any kernel code touching user
    // memory. exec never comes here: the compiler refuses kernel-mode exec.
    status = kind == AccessKind::Write ? scenario_kernel_write(address, value) : scenario_kernel_read(address, &read);
  } else {
    // Ring 3 runs with interrupts on (its RFLAGS); the way back arrives
    // from a trap handler, with them off, and the caller's come back here.
    const mm::u64 flags = x86::save_flags_and_disable();
    if (kind == AccessKind::Exec) {
      status = run_ring3(probe, address, kRing3Rflags | kRflagsTf, kNowhere, 0);
    } else {
      status = run_ring3(probe, stub_rip(kind == AccessKind::Read ? scenario_stub_read : scenario_stub_write), kRing3Rflags,
                         0, value);
      read = probe.value;
    }
    x86::restore_flags(flags);
  }
  probe.active = false;
  AccessResult result;
  result.segv = status != kOk;
  result.value = kind == AccessKind::Read && !result.segv ? read : 0;
  result.faults = probe.faults;
  return result;
}

}  // namespace kernel::scenario
