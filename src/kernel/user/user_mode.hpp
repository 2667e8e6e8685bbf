// Ring 3 for the kernel's self-tests: the system's VmSystem, test processes
// (an AddressSpace with the test program and a stack mapped), and running
// the program in one until it exits or takes a fault the core cannot resolve.
//
// Page faults from ring 3, or from the kernel on a user address, go to the
// running process's AddressSpace::handle_fault. A resolved fault retries the
// instruction; an unresolved one (a segmentation fault, or out of memory)
// is delivered to the kernel: the program stops and run_user reports it.
//
// A program exits by storing its exit value to kUserExitAddress, below user
// space, where no mapping can ever be: the page fault is the exit. A
// hardware exception is the one way into the kernel that behaved the same
// under TCG and under the nested KVM of this project's machines, where
// INT 0x80 was seen skipped and SYSCALL seen arriving at CPL 3.
#pragma once

#include "boot/memory_setup.hpp"
#include "mm/vm/address_space.hpp"

namespace kernel {

using KernelSpace = mm::AddressSpace<KernelPlatform>;
using KernelVm = mm::VmSystem<KernelPlatform>;

// After memory_init: the kernel's page tables become the kernel half of
// every space, and the zero frame is allocated. Registers the #PF and TLB
// shootdown handlers; shootdowns follow `policy` (an unsafe one only for the
// negative control, boot option shootdown=). False (with a message) when
// there is no memory for it.
bool vm_init(mm::ShootdownPolicy policy = mm::ShootdownPolicy::Batched);
KernelVm& kernel_vm();
// The calling CPU takes part in TLB shootdowns from now on (its local APIC
// and IDT are set up). Every CPU calls it once, after vm_init: the boot CPU
// in kmain, each AP in ap_main before it reports in.
void vm_cpu_online();

// What the test program (user/test_program.S) does.
// ReadLoop and WriteLoop (the SMP shootdown test) take a fourth argument,
// the address of a progress word in a page whose first word is a stop flag.
enum class UserOp : mm::u64 { Read = 0, Write = 1, Execute = 2, Overflow = 3, ReadLoop = 4, WriteLoop = 5 };

struct UserRunResult {
  bool exited = false;         // it called exit; otherwise it faulted
  mm::u64 value = 0;           // the exit value, or RAX at the unresolved fault
  mm::u64 fault_address = 0;   // the unresolved fault's CR2
  mm::u64 error_code = 0;      // and its #PF error code (P, W/R, U/S, RSVD, I/D)
  mm::FaultOutcome fault = mm::FaultOutcome::Complete;  // the core's answer to it
  mm::u32 resolved_faults = 0;  // faults the core resolved on the way
  mm::FaultOutcome last_resolved = mm::FaultOutcome::Complete;
};

// Where a store means exit (one page below the 4 MiB where user space starts).
inline constexpr mm::u64 kUserExitAddress = 0x3FF000;

// A test process's layout.
inline constexpr mm::u64 kUserCodeBase = 0x400000;      // one page, r-x
inline constexpr mm::u64 kUserStackTop = 0x7FFF0000;
inline constexpr mm::u64 kUserStackSize = 4 * 4096;     // with a guard page below

// The #PF handler vm_init installs. scenario/real_access.cpp puts its own
// in front while scenarios run and hands it every fault that is not a
// scenario access.
struct InterruptFrame;
void user_page_fault(InterruptFrame& frame);

// Maps the test program and a stack into a fresh space.
mm::Status prepare_test_process(KernelSpace& space);

// Runs the test program in `space` on this CPU, in ring 3, with the given
// operation, address and value (and `extra`, for the loops). The space is
// loaded through the core (AddressSpace::activate), so this CPU is in its
// active mask, and is sent its shootdowns, until the program stops.
UserRunResult run_user(KernelSpace& space, UserOp op, mm::u64 address, mm::u64 value, mm::u64 extra = 0);

}  // namespace kernel
