// A scenario's read, write and exec on a real CPU, through its MMU, in the
// address space loaded on that CPU (scenario/scenario_runner.cpp loads it).
//
// User mode is ring 3 for real: a three-instruction stub (real_access_stubs.S)
// is copied to one page that every address space shares, in a slot of the
// kernel half whose entries carry the U bit (kStubBase), so a scenario's
// space needs no mapping of ours and its regions, fault counts and leak
// checks stay exactly the scenario's. The stub does the one load or store
// and leaves by storing to kUserExitAddress, below user space: that page
// fault is the way back, as for the self-tests' programs (user/user_mode.hpp).
//
// Kernel mode is a load or store by the kernel itself (CR0.WP is on, SMAP
// and SMEP are off, as in the emulator), in a leaf routine whose faulting
// instruction has a fixup: a fault the core cannot resolve resumes there
// and the access is a segv instead of a fatal exception.
//
// exec (user mode only) jumps to the address in ring 3 with RFLAGS.TF set
// and every register pointing nowhere (a non-canonical value; RSP just below
// kUserExitAddress). The instruction fetch either faults, and that fault is
// the access's (I/D set in the error code), or succeeds: then whatever
// comes next — the single-step #DB after the one instruction, a #GP or #SS
// from its operand, a #UD, or a page fault on a data address — ends the
// probe as `ok`. No exception after the fetch reaches the core.
//
// Every page fault of an access goes to AddressSpace::handle_fault, as the
// emulator's MMU sends it; a resolved fault retries the instruction, at most
// kMaxFaultsPerAccess times (the emulator's bound), and an unresolved one is
// the segv. The count of faults an access took is returned for
// `check faults cpu N`.
#pragma once

#include "mm/base/types.hpp"
#include "mm/vm/fault.hpp"
#include "user/user_mode.hpp"

namespace kernel::scenario {

enum class AccessKind : mm::u8 { Read, Write, Exec };

struct AccessResult {
  bool segv = false;
  mm::u64 value = 0;   // what a read read
  mm::u32 faults = 0;  // page faults the access took, resolved or not
};

// Where the stub page sits: PML4 slot 509 of the kernel half, 0xFFFFFE8000000000.
inline constexpr mm::u64 kStubBase = 0xFFFFFE8000000000;
inline constexpr mm::u32 kMaxFaultsPerAccess = 8;

// On the boot CPU, before the first scenario space is created (new spaces
// copy the kernel half): maps the stub page and installs the exception
// handlers. False, with a message, when there is no memory for it. Safe to
// call again (it maps the page once).
bool real_access_begin();
// Gives the page-fault vector back to user/user_mode.cpp and removes the
// other handlers (those vectors are fatal again).
void real_access_end();

// One access on the calling CPU, in the space loaded there now; `space`
// answers its page faults.
AccessResult real_access(KernelSpace& space, AccessKind kind, mm::AccessMode mode, mm::u64 address, mm::u64 value);

}  // namespace kernel::scenario
