#include "arch/tsc.hpp"
#include "selftest/selftest.hpp"

namespace kernel {

namespace {

void run_suite(const SelfTestCase* tests, mm::usize count, SelfTestSummary& summary) {
  for (mm::usize i = 0; i < count; ++i) {
    const mm::u64 start = boot_microseconds();
    const bool ok = tests[i].run();
    const mm::u64 took = boot_microseconds() - start;
    kprintf("selftest: %-40s %s (%lu us)\n", tests[i].name, ok ? "ok" : "FAILED", took);
    ++(ok ? summary.passed : summary.failed);
  }
}

}  // namespace

SelfTestSummary run_self_tests() {
  SelfTestSummary summary;
  run_suite(kPmmSelfTests, kPmmSelfTestCount, summary);
  run_suite(kSmpSelfTests, kSmpSelfTestCount, summary);
  run_suite(kVmSelfTests, kVmSelfTestCount, summary);
  run_suite(kShootdownSelfTests, kShootdownSelfTestCount, summary);
  run_suite(kShootdownLatencySelfTests, kShootdownLatencySelfTestCount, summary);
  return summary;
}

}  // namespace kernel
