#include "user/user_mode.hpp"

#include <new>

#include "arch/interrupts.hpp"
#include "arch/lapic.hpp"
#include "arch/x86.hpp"
#include "console/kprintf.hpp"
#include "smp/cpu_local.hpp"

extern "C" const char user_test_program_start[], user_test_program_end[];

namespace kernel {

namespace {

// What user_entry.S saves and loads; offsets are fixed there.
struct UserContext {
  mm::u64 kernel_rsp;
  mm::u64 rbx, rbp, r12, r13, r14, r15;
  mm::u64 rip, rsp;
  mm::u64 args[4];
};
static_assert(__builtin_offsetof(UserContext, rip) == 56 && __builtin_offsetof(UserContext, args) == 72);

struct UserRun {
  UserContext context;
  KernelSpace* space;
  UserRunResult result;
};

extern "C" mm::u64 user_enter(UserContext* context);
extern "C" [[noreturn]] void user_return(UserContext* context, mm::u64 value);

alignas(mm::PageTables<KernelPlatform>) mm::u8 kernel_tables_storage[sizeof(mm::PageTables<KernelPlatform>)];
alignas(KernelVm) mm::u8 vm_storage[sizeof(KernelVm)];
KernelVm* vm = nullptr;

constexpr mm::u64 kRflagsInterrupts = 1 << 9;

UserRun* current_run() { return static_cast<UserRun*>(this_cpu().user_run); }

void on_page_fault(InterruptFrame& frame) {
  UserRun* run = current_run();
  const mm::u64 address = x86::read_cr2();
  const bool from_user = (frame.cs & 3) == 3;
  if (run != nullptr && from_user && address == kUserExitAddress) {
    run->result.exited = true;  // the program's exit: its value is in RAX
    run->result.value = frame.rax;
    user_return(&run->context, 0);
  }
  if (run == nullptr || (!from_user && address >= mm::kUserSpaceEnd)) {
    fatal_exception(frame);  // the kernel faulted on its own memory
  }
  const mm::Access access = (frame.error_code & 0x10) ? mm::Access::Execute
                            : (frame.error_code & 0x2) ? mm::Access::Write
                                                       : mm::Access::Read;
  const mm::AccessMode mode = (frame.error_code & 0x4) ? mm::AccessMode::User : mm::AccessMode::Kernel;
  // The core's fault path takes the space's lock, whose holder may be
  // waiting for this CPU to acknowledge a TLB shootdown: the fault is
  // resolved with interrupts on, as the faulting code ran (CR2 is read), so
  // the lock's wait takes the IPI (platform/spinlock.hpp).
  if (frame.rflags & kRflagsInterrupts) {
    x86::enable_interrupts();
  }
  const mm::FaultOutcome outcome = run->space->handle_fault(mm::VirtAddr(address), access, mode);
  if (mm::resolved(outcome)) {
    ++run->result.resolved_faults;
    run->result.last_resolved = outcome;
    return;  // retry the instruction
  }
  if (!from_user) {
    fatal_exception(frame);  // the kernel itself touched a bad user address
  }
  run->result.exited = false;
  run->result.value = frame.rax;
  run->result.fault_address = address;
  run->result.error_code = frame.error_code;
  run->result.fault = outcome;
  user_return(&run->context, 0);
}

// The TLB shootdown IPI: this CPU's part of TlbCoherence::shootdown.
void on_shootdown_ipi(InterruptFrame&) {
  vm->coherence().handle_ipi();
  lapic_eoi();
}

}  // namespace

void user_page_fault(InterruptFrame& frame) { on_page_fault(frame); }

bool vm_init(mm::ShootdownPolicy policy) {
  auto* kernel_tables = new (kernel_tables_storage) mm::PageTables<KernelPlatform>(kernel_platform, *kernel_memory.pmm);
  kernel_tables->adopt(mm::PhysAddr(x86::read_cr3() & mm::pte::kAddressMask));
  // No PCIDs: CR4.PCIDE stays off, every CR3 load flushes.
  vm = new (vm_storage) KernelVm(kernel_platform, *kernel_memory.pmm,
                                 mm::TlbCoherenceConfig{.policy = policy, .pcid = false});
  const mm::Status status = vm->init(kernel_tables);
  if (status != mm::Status::Ok) {
    kprintf("vm: no frame for the zero page: %s\n", mm::errno_name(status));
    return false;
  }
  set_interrupt_handler(kVectorPageFault, on_page_fault);
  set_interrupt_handler(kVectorShootdown, on_shootdown_ipi);
  if (mm::is_unsafe(policy)) {
    kprintf("vm: WARNING: TLB shootdown policy %s: stale translations are left on purpose\n",
            mm::shootdown_policy_name(policy));
  }
  return true;
}

void vm_cpu_online() {
  if (vm == nullptr) {
    MM_PANIC("vm_cpu_online before vm_init: this CPU would miss TLB shootdowns; CPU", current_cpu_index());
  }
  vm->coherence().cpu_online();
}

KernelVm& kernel_vm() { return *vm; }

mm::Status prepare_test_process(KernelSpace& space) {
  const mm::u64 bytes = static_cast<mm::u64>(user_test_program_end - user_test_program_start);
  MM_TRY(space.map(mm::MapRequest{.address = mm::VirtAddr(kUserCodeBase), .length = mm::kPageSize,
                                  .prot = mm::Prot::ReadWrite}));
  for (mm::u64 at = 0; at < bytes; at += 8) {
    mm::u64 word = 0;
    __builtin_memcpy(&word, user_test_program_start + at, bytes - at < 8 ? bytes - at : 8);
    MM_TRY(space.write_u64(mm::VirtAddr(kUserCodeBase + at), word));
  }
  MM_TRY(space.protect(mm::VirtAddr(kUserCodeBase), mm::kPageSize, mm::Prot::ReadExec));
  return space.map(mm::MapRequest{.address = mm::VirtAddr(kUserStackTop - kUserStackSize),
                                  .length = kUserStackSize,
                                  .prot = mm::Prot::ReadWrite,
                                  .kind = mm::RegionKind::Stack});
}

UserRunResult run_user(KernelSpace& space, UserOp op, mm::u64 address, mm::u64 value, mm::u64 extra) {
  UserRun run{};
  run.space = &space;
  run.context.rip = kUserCodeBase;
  run.context.rsp = kUserStackTop;
  run.context.args[0] = static_cast<mm::u64>(op);
  run.context.args[1] = address;
  run.context.args[2] = value;
  run.context.args[3] = extra;
  const mm::u64 flags = x86::save_flags_and_disable();
  this_cpu().user_run = &run;
  // Through the core, so the space's active mask has this CPU (it is sent
  // the space's shootdowns from here on) and has it no longer afterwards.
  const mm::Status loaded = space.activate();
  MM_ASSERT(loaded == mm::Status::Ok);  // a test program runs in a live space
  user_enter(&run.context);
  x86::disable_interrupts();  // a fault handler may have turned them on
  vm->coherence().switch_to_kernel();
  this_cpu().user_run = nullptr;
  x86::restore_flags(flags);
  return run.result;
}

}  // namespace kernel
