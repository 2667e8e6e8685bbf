// Lock classes: every lock the core declares names one, and the classes are
// listed here in the order a CPU may take them. A CPU that holds a lock of
// one class may take a lock of a class further down the list, never one
// further up: that order is what keeps two CPUs from each waiting for a lock
// the other holds.
//
// The order, outermost first, and what each lock guards:
//
//   AddressSpace   AddressSpace::lock_: one space's regions and page tables.
//                  Held across a whole map/unmap/protect/fault/fork/destroy,
//                  including its TLB shootdown (so everything below nests in it).
//   MemoryObject   (second wave, issue 7/10) a memory object's page index and
//                  parent chain. Placeholder rank: Zircon and Linux take the
//                  object's lock inside the space's (mmap_lock, then the
//                  VMO's); 7/10 settles it and says why here.
//   BusyPage       (7/10, 8/10) a page under I/O or being moved: inside the
//                  object's lock (Linux's folio lock comes after mmap_lock).
//   ReverseMap     (8/10) an object's list of the regions that map it. A
//                  reverse-map walk that needs a space's lock must try_lock
//                  it (a try never waits, so it adds no order) or drop this
//                  one first: the space's lock ranks above.
//   Swap           (8/10) the swap slot allocator.
//   VmSystem       VmSystem::lock_: the region pool and the VM counters. Taken
//                  under a space's lock (region objects for a split); takes the
//                  physical memory's locks when the pool grows or shrinks.
//   CpuFrameCache  One CPU's cache of free frames: its owner's CPU section
//                  (Platform::enter_cpu_section) or its steal lock
//                  (CpuFrameCache::steal_lock, a drain from another CPU).
//                  Never two caches at once (a drain takes each in turn);
//                  the owner's slow path takes its steal lock inside its
//                  section (LockNesting::Inner).
//   Zone           PhysicalMemory::zone_lock_: the frame allocator. Taken
//                  in a cache's section or under its steal lock to refill or
//                  drain it.
//   TlbCpu         TlbCoherence's per-CPU lock: one CPU's shootdown queue and
//                  PCID slots. A leaf: an initiator takes each target's in
//                  turn under its space's lock, and a CPU takes its own to
//                  handle a shootdown (in its interrupt, or while it waits).
//   Console        the kernel's console (kprintf): taken under anything, so
//                  a message can be printed with any lock held.
//
// Two locks of one class are held at once only where something else orders
// them, and the code says so with a LockNesting at the inner acquisition
// (Linux's spin_lock_nested): fork holds the parent's space lock and takes
// the new child's with LockNesting::Inner (nobody else can hold the child's
// yet). Taking a second lock of a class with no annotation is an error.
//
// The platform's SpinLock is constructed from its class (platform.hpp). The
// emulator's checks every acquisition against the orders it has seen
// (docs/EMULATOR.md, "The lock checker"); the kernel's keeps the class and
// ignores it. A new class goes where its place in the order is; a test
// (test/unit/lock_checker_test.cpp) runs every bundled scenario and checks
// that each order the emulator observes agrees with this list.
#pragma once

#include "mm/base/types.hpp"

namespace mm {

enum class LockClass : u8 {
  AddressSpace,
  MemoryObject,
  BusyPage,
  ReverseMap,
  Swap,
  VmSystem,
  CpuFrameCache,
  Zone,
  TlbCpu,
  Console,
};
inline constexpr u32 kLockClassCount = static_cast<u32>(LockClass::Console) + 1;

// A name for reports: "address-space", "zone", ...
constexpr const char* lock_class_name(LockClass c) {
  switch (c) {
    case LockClass::AddressSpace: return "address-space";
    case LockClass::MemoryObject: return "memory-object";
    case LockClass::BusyPage: return "busy-page";
    case LockClass::ReverseMap: return "reverse-map";
    case LockClass::Swap: return "swap";
    case LockClass::VmSystem: return "vm-system";
    case LockClass::CpuFrameCache: return "cpu-frame-cache";
    case LockClass::Zone: return "zone";
    case LockClass::TlbCpu: return "tlb-cpu";
    case LockClass::Console: return "console";
  }
  return "?";
}

// Which of several locks of one class an acquisition is, when a CPU holds
// more than one (a subclass, as in Linux's spin_lock_nested): Outer is the
// default, and Inner may be taken while holding an Outer of the same class.
enum class LockNesting : u8 { Outer, Inner, Inner2, Inner3 };
inline constexpr u32 kLockNestingLevels = 4;

// Where and how a lock is taken: the source line of the acquisition (from
// __builtin_FILE/__builtin_LINE, so nothing is computed at run time) and its
// nesting. A platform lock that checks lock order takes one in lock(site);
// one that does not is called with plain lock() (mm::acquire, platform.hpp).
struct LockSite {
  const char* file = nullptr;
  u32 line = 0;
  LockNesting nesting = LockNesting::Outer;
};

}  // namespace mm
