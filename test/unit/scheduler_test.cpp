#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "emu/sched/scheduler.hpp"

namespace {

using pagelab::emu::Scheduler;
using pagelab::emu::Strategy;
using pagelab::emu::Wait;

// Runs `cpus` threads doing `points` scheduling points each; returns the
// order in which the (cpu, point) pairs ran.
std::vector<std::pair<std::uint32_t, int>> run(Scheduler& scheduler, std::uint32_t cpus, int points) {
  std::vector<std::pair<std::uint32_t, int>> order;  // written only by the CPU holding the turn
  std::vector<std::thread> threads;
  for (std::uint32_t cpu = 0; cpu < cpus; ++cpu) {
    threads.emplace_back([&, cpu] {
      scheduler.enter(cpu);
      for (int i = 0; i < points && !scheduler.stopped(); ++i) {
        order.emplace_back(cpu, i);
        scheduler.point(cpu);
      }
      scheduler.exit(cpu);
    });
  }
  for (auto& t : threads) t.join();
  return order;
}

Scheduler::Options options(std::uint64_t seed, Strategy strategy = {}) {
  Scheduler::Options o;
  o.seed = seed;
  o.strategy = strategy;
  return o;
}

TEST(Scheduler, SameSeedSameInterleavingDifferentSeedDifferent) {
  Scheduler a(4, options(7)), b(4, options(7)), c(4, options(8));
  const auto ra = run(a, 4, 200), rb = run(b, 4, 200), rc = run(c, 4, 200);
  EXPECT_EQ(ra.size(), 800u);
  EXPECT_EQ(ra, rb);
  EXPECT_NE(ra, rc);
  EXPECT_EQ(a.schedule(), b.schedule());
}

TEST(Scheduler, EachCpuRunsItsPointsInOrderAndOneAtATime) {
  Scheduler s(3, options(3));
  const auto order = run(s, 3, 100);
  std::vector<int> next(3, 0);
  for (const auto& [cpu, i] : order) {
    EXPECT_EQ(i, next[cpu]++);
  }
  EXPECT_EQ(next, std::vector<int>({100, 100, 100}));
}

TEST(Scheduler, ARecordedScheduleReplaysExactly) {
  Scheduler original(4, options(99));
  const auto first = run(original, 4, 150);
  Scheduler::Options replay = options(12345);  // a different seed: the replay must not use it
  replay.replay = original.schedule();
  Scheduler again(4, replay);
  EXPECT_EQ(run(again, 4, 150), first);
  EXPECT_FALSE(again.replay_diverged());
}

TEST(Scheduler, AReplayThatAsksForAFinishedCpuDiverges) {
  Scheduler::Options replay = options(1);
  replay.replay = std::vector<std::uint32_t>{0, 0, 0, 0, 0, 0};  // CPU 0 only, but CPU 0 does 2 points
  Scheduler s(2, replay);
  run(s, 2, 2);
  EXPECT_TRUE(s.replay_diverged());
}

TEST(Scheduler, PctIsDeterministicAndRunsTheHighestPriorityFirst) {
  std::string error;
  const Strategy pct = *Strategy::parse("pct:1", error);  // depth 1: no change points
  Scheduler a(4, options(5, pct)), b(4, options(5, pct));
  const auto ra = run(a, 4, 50);
  EXPECT_EQ(ra, run(b, 4, 50));
  // Without change points one CPU runs to its end before the next starts.
  for (std::size_t i = 1; i < ra.size(); ++i) {
    if (ra[i].first != ra[i - 1].first) {
      EXPECT_EQ(ra[i - 1].second, 49);
    }
  }
}

TEST(Scheduler, SpinningCpusLetTheOthersRun) {
  // CPU 1 spins until CPU 0 has set a flag; the scheduler must pick CPU 0.
  Scheduler s(2, options(11));
  bool flag = false;
  std::uint64_t spins = 0;
  std::thread t0([&] {
    s.enter(0);
    for (int i = 0; i < 50; ++i) s.point(0);
    flag = true;
    s.exit(0);
  });
  std::thread t1([&] {
    s.enter(1);
    while (!flag && !s.stopped()) {
      ++spins;
      s.point(1, Wait::Spinning);
    }
    s.exit(1);
  });
  t0.join();
  t1.join();
  EXPECT_TRUE(flag);
  EXPECT_LE(spins, 2u);  // a spinning CPU is passed over while another can progress
}

TEST(Scheduler, EveryoneSpinningIsADeadlock) {
  Scheduler::Options o = options(2);
  o.deadlock_steps = 1000;
  Scheduler s(2, o);
  std::vector<std::thread> threads;
  for (std::uint32_t cpu = 0; cpu < 2; ++cpu) {
    threads.emplace_back([&, cpu] {
      s.enter(cpu);
      while (!s.stopped()) s.point(cpu, Wait::Spinning);
      s.exit(cpu);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_TRUE(s.deadlocked());
}

TEST(Scheduler, StrategyNames) {
  std::string error;
  EXPECT_EQ(Strategy::parse("random", error)->name(), "random");
  EXPECT_EQ(Strategy::parse("pct:3", error)->name(), "pct:3");
  EXPECT_FALSE(Strategy::parse("pct:", error).has_value());
  EXPECT_NE(error.find("expected 'random' or 'pct:D'"), std::string::npos);
  EXPECT_FALSE(Strategy::parse("fifo", error).has_value());
}

TEST(Scheduler, ParallelModeCostsNothingAndRecordsNothing) {
  Scheduler::Options o = options(1);
  o.deterministic = false;
  Scheduler s(2, o);
  // The threads really run at once here: count with an atomic, not the
  // unsynchronized log run() keeps (which only a deterministic run may use).
  std::atomic<int> points{0};
  std::vector<std::thread> threads;
  for (std::uint32_t cpu = 0; cpu < 2; ++cpu) {
    threads.emplace_back([&, cpu] {
      s.enter(cpu);
      for (int i = 0; i < 1000; ++i) {
        points.fetch_add(1, std::memory_order_relaxed);
        s.point(cpu);
      }
      s.exit(cpu);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(points.load(), 2000);
  EXPECT_TRUE(s.schedule().empty());
  EXPECT_EQ(s.steps(), 0u);
}

}  // namespace
