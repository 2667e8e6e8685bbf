// The kernel's own shootdown latency (selftest/shootdown_latency.cpp): what
// the self-test measured, for the boot summary.
#pragma once

#include "mm/base/types.hpp"

namespace kernel {

struct ShootdownLatency {
  static constexpr mm::u32 kMaxTargets = 63;
  mm::u32 measured = 0;  // target counts 1..measured have figures
  mm::u64 tsc_mhz = 0;
  mm::u64 median_cycles[kMaxTargets + 1] = {};
  mm::u64 min_cycles[kMaxTargets + 1] = {};
  mm::u32 rounds[kMaxTargets + 1] = {};  // shootdowns timed
};

const ShootdownLatency& shootdown_latency();
// "boot: shootdown of one page, median (TSC, batched): 1 target N ns (of 32), ..."
// when the self-test ran on two CPUs or more; nothing otherwise.
void print_shootdown_latency();

}  // namespace kernel
