// TlbContext: what the shootdown protocol knows about one address space's
// translations (Linux's mm_struct cpumask and tlb_gen, Zircon's
// ArchVmAspace active-CPU set).
//
//   active      the CPUs that have the space loaded right now. A CPU adds
//               itself before it reads `generation` on a switch, and an
//               initiator bumps `generation` before it reads `active`; both
//               are sequentially consistent, so one of the two always sees
//               the other: either the CPU is sent the shootdown, or it saw the
//               new generation and flushes the space's PCID as it loads it.
//   generation  bumped by every shootdown of the space. A CPU that switched
//               away remembers the generation its PCID holds; when it comes
//               back to an older one, it flushes that PCID first.
//   pending     shootdowns gathered but not yet acknowledged (Linux's
//               tlb_flush_pending): while it is non-zero, a TLB entry of the
//               space may legitimately disagree with its page tables.
//   dying       set once by the space's teardown, before its last shootdown
//               (which makes every CPU still running the space leave it).
//               A CPU that loads the space sets its active bit first and
//               reads this after, both sequentially consistent: either the
//               teardown's shootdown reaches it, or it sees `dying` and
//               leaves at once. So no CPU is left with a freed root in CR3.
#pragma once

#include "mm/base/atomic.hpp"
#include "mm/platform/platform.hpp"

namespace mm {

struct TlbContext {
  Atomic<u64> active{0};
  Atomic<u64> generation{1};
  Atomic<u32> pending{0};
  Atomic<u32> dying{0};

  CpuSet active_cpus() const { return CpuSet::from_bits(active.load()); }
};

}  // namespace mm
