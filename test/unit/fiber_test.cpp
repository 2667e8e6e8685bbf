#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "emu/sched/fiber.hpp"

namespace {

using pagelab::emu::Fiber;

// Two fibers and the thread's own context passing control around a ring;
// each records what it saw. Values live in callee-saved registers and on the
// fibers' stacks across every switch.
struct Ring {
  Fiber host;
  std::vector<std::unique_ptr<Fiber>> fibers;
  std::vector<std::string> log;
  int rounds = 0;
};

struct RingMember {
  Ring* ring;
  int index;
};

void ring_main(void* argument) {
  const RingMember me = *static_cast<RingMember*>(argument);
  Ring& ring = *me.ring;
  std::uint64_t local = 1000u * static_cast<std::uint64_t>(me.index);
  const int count = static_cast<int>(ring.fibers.size());
  for (int round = 0; round < ring.rounds; ++round) {
    local += static_cast<std::uint64_t>(round);
    ring.log.push_back(std::to_string(me.index) + ":" + std::to_string(round) + ":" + std::to_string(local));
    Fiber& next = me.index + 1 < count ? *ring.fibers[static_cast<std::size_t>(me.index + 1)] : ring.host;
    Fiber::switch_to(*ring.fibers[static_cast<std::size_t>(me.index)], next);
  }
  Fiber::exit_to(*ring.fibers[static_cast<std::size_t>(me.index)], ring.host);
}

TEST(Fiber, ControlPassesAroundARingAndLocalsSurvive) {
  Ring ring;
  ring.rounds = 3;
  std::vector<RingMember> members{{&ring, 0}, {&ring, 1}};
  for (RingMember& m : members) ring.fibers.push_back(std::make_unique<Fiber>(&ring_main, &m));
  for (int round = 0; round < 3; ++round) {
    ring.log.push_back("host:" + std::to_string(round));
    Fiber::switch_to(ring.host, *ring.fibers[0]);
  }
  // Fiber 0 has left its loop; let it end, then fiber 1.
  Fiber::switch_to(ring.host, *ring.fibers[0]);
  Fiber::switch_to(ring.host, *ring.fibers[1]);
  const std::vector<std::string> expected{"host:0", "0:0:0", "1:0:1000", "host:1", "0:1:1", "1:1:1001",
                                          "host:2", "0:2:3", "1:2:1003"};
  EXPECT_EQ(ring.log, expected);
}

// Many short-lived fibers, as explore makes them run after run: stacks are
// reused, and each fiber starts on a clean frame.
struct Counter {
  Fiber* host;
  Fiber* self;
  int* total;
};

void count_main(void* argument) {
  Counter& c = *static_cast<Counter*>(argument);
  volatile int scratch[64] = {};
  for (int i = 0; i < 64; ++i) scratch[i] = i;
  *c.total += scratch[63];
  Fiber::exit_to(*c.self, *c.host);
}

TEST(Fiber, ThousandsOfFibersComeAndGo) {
  Fiber host;
  int total = 0;
  for (int i = 0; i < 3000; ++i) {
    Counter c{&host, nullptr, &total};
    Fiber fiber(&count_main, &c);
    c.self = &fiber;
    Fiber::switch_to(host, fiber);
  }
  EXPECT_EQ(total, 3000 * 63);
}

// A recursion that never stops: the guard page below the stack turns the
// overflow into a crash, never a write into whatever lies below.
volatile int bottom = 1 << 30;  // never reached: the stack ends long before

int bottomless(int depth) {
  volatile char frame[4096];
  frame[0] = static_cast<char>(depth);
  return depth >= bottom ? 0 : bottomless(depth + 1) + frame[0];
}

struct Overflow {
  Fiber* host;
  Fiber* self;
};

void overflow_main(void* argument) {
  const Overflow& o = *static_cast<Overflow*>(argument);
  bottomless(0);
  Fiber::exit_to(*o.self, *o.host);
}

void overflow_a_small_stack() {
  Fiber host;
  Overflow o{&host, nullptr};
  Fiber fiber(&overflow_main, &o, 64 << 10);
  o.self = &fiber;
  Fiber::switch_to(host, fiber);
}

TEST(FiberDeathTest, AStackOverflowHitsTheGuardPage) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(overflow_a_small_stack(), "");
}

void returning_main(void*) {}

void start_a_returning_fiber() {
  Fiber host;
  Fiber fiber(&returning_main, nullptr);
  Fiber::switch_to(host, fiber);
}

TEST(FiberDeathTest, AnEntryThatReturnsIsABug) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(start_a_returning_fiber(), "entry function returned");
}

}  // namespace
