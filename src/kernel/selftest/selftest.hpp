// The in-kernel self-test runner. Each test prints its failures itself
// (KCHECK) and returns whether it passed; the runner prints one line per test
// and the summary line "selftest: N passed, M failed".
#pragma once

#include "console/kprintf.hpp"
#include "mm/base/types.hpp"

namespace kernel {

using SelfTest = bool (*)();

struct SelfTestCase {
  const char* name;
  SelfTest run;
};

// The test suites, defined next to what they test.
extern const SelfTestCase kPmmSelfTests[];
extern const mm::usize kPmmSelfTestCount;
extern const SelfTestCase kSmpSelfTests[];
extern const mm::usize kSmpSelfTestCount;
extern const SelfTestCase kVmSelfTests[];
extern const mm::usize kVmSelfTestCount;
extern const SelfTestCase kShootdownSelfTests[];
extern const mm::usize kShootdownSelfTestCount;
extern const SelfTestCase kShootdownLatencySelfTests[];
extern const mm::usize kShootdownLatencySelfTestCount;

struct SelfTestSummary {
  mm::u32 passed = 0;
  mm::u32 failed = 0;
};

SelfTestSummary run_self_tests();

}  // namespace kernel

#define KCHECK(cond)                                                              \
  do {                                                                            \
    if (!(cond)) {                                                                \
      ::kernel::kprintf("    check failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
      return false;                                                               \
    }                                                                             \
  } while (0)
