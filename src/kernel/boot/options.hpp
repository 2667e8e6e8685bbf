// The kernel command line (QEMU -append), parsed strictly: an unknown word
// is an error, not something to ignore.
//
//   pmm=buddy|bitmap|stack   the physical allocator behind PhysicalMemory (buddy)
//   reserve=SIZE             the emergency reserve (2M)
//   memmap=SIZE@ADDR         add usable RAM to the firmware's map (Linux syntax)
//   memmap=SIZE$ADDR         mark a range reserved
//   selftest=off             boot, print the map, and stop without tests
//   fault=page|opcode        after boot, take that exception on purpose (to
//                            test that exceptions are reported, not hung on)
//   scenarios=all|NAME[,NAME...]
//                            run the bundled scenarios (all, or those named by
//                            file stem) on the real CPUs (scenario/scenario_runner.hpp)
//   shootdown=POLICY         how TLB shootdowns are done (mm::ShootdownPolicy):
//                            batched (the default), broadcast, or one of the
//                            unsafe-... policies that leave stale
//                            translations on purpose (the SMP shootdown
//                            test's negative control)
// SIZE and ADDR are decimal or 0x hex, with an optional K, M, G or T.
#pragma once

#include "mm/paging/shootdown_policy.hpp"
#include "mm/phys/memory_map.hpp"

namespace kernel {

enum class PmmKind : mm::u8 { Buddy, Bitmap, Stack };
enum class InjectedFault : mm::u8 { None, PageFault, InvalidOpcode };

struct BootOptions {
  PmmKind pmm = PmmKind::Buddy;
  mm::u64 reserve_bytes = 2 << 20;
  bool selftest = true;
  InjectedFault fault = InjectedFault::None;
  mm::ShootdownPolicy shootdown = mm::ShootdownPolicy::Batched;
  // scenarios=, copied: the command line's memory is not kept from the allocator.
  char scenarios[512] = {};
  mm::usize scenarios_length = 0;  // 0: no scenarios= given
  mm::MemoryRange extra_ranges[8];
  mm::usize extra_count = 0;
};

// Fills `options`; on a bad word prints what is wrong and returns false.
bool parse_boot_options(const char* cmdline, BootOptions& options);

const char* pmm_kind_name(PmmKind kind);

}  // namespace kernel
