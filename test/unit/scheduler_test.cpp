#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "emu/sched/scheduler.hpp"

namespace {

using pagelab::emu::Scheduler;
using pagelab::emu::Strategy;
using pagelab::emu::Wait;

// The two ways a deterministic run's CPUs can be hosted: fibers on one
// thread (Scheduler::run_cpus, what run_scenario uses) or a thread each that
// calls enter/point/exit itself. Both must make the same choices.
enum class Host { Fibers, Threads };

// Runs body(cpu) for every CPU, hosted as asked.
void run_cpus(Scheduler& scheduler, std::uint32_t cpus, Host host, const std::function<void(std::uint32_t)>& body) {
  if (host == Host::Fibers) {
    scheduler.run_cpus(body);
    return;
  }
  std::vector<std::thread> threads;
  for (std::uint32_t cpu = 0; cpu < cpus; ++cpu) threads.emplace_back([&, cpu] { body(cpu); });
  for (auto& t : threads) t.join();
}

// Runs `cpus` CPUs doing `points` scheduling points each; returns the
// order in which the (cpu, point) pairs ran.
std::vector<std::pair<std::uint32_t, int>> run(Scheduler& scheduler, std::uint32_t cpus, int points,
                                               Host host = Host::Fibers) {
  std::vector<std::pair<std::uint32_t, int>> order;  // written only by the CPU holding the turn
  run_cpus(scheduler, cpus, host, [&](std::uint32_t cpu) {
    scheduler.enter(cpu);
    for (int i = 0; i < points && !scheduler.stopped(); ++i) {
      order.emplace_back(cpu, i);
      scheduler.point(cpu);
    }
    scheduler.exit(cpu);
  });
  return order;
}

Scheduler::Options options(std::uint64_t seed, Strategy strategy = {}) {
  Scheduler::Options o;
  o.seed = seed;
  o.strategy = strategy;
  return o;
}

class SchedulerHosted : public ::testing::TestWithParam<Host> {};

TEST_P(SchedulerHosted, SameSeedSameInterleavingDifferentSeedDifferent) {
  Scheduler a(4, options(7)), b(4, options(7)), c(4, options(8));
  const auto ra = run(a, 4, 200, GetParam()), rb = run(b, 4, 200, GetParam()), rc = run(c, 4, 200, GetParam());
  EXPECT_EQ(ra.size(), 800u);
  EXPECT_EQ(ra, rb);
  EXPECT_NE(ra, rc);
  EXPECT_EQ(a.schedule(), b.schedule());
}

TEST_P(SchedulerHosted, EachCpuRunsItsPointsInOrderAndOneAtATime) {
  Scheduler s(3, options(3));
  const auto order = run(s, 3, 100, GetParam());
  std::vector<int> next(3, 0);
  for (const auto& [cpu, i] : order) {
    EXPECT_EQ(i, next[cpu]++);
  }
  EXPECT_EQ(next, std::vector<int>({100, 100, 100}));
}

TEST_P(SchedulerHosted, ARecordedScheduleReplaysExactly) {
  Scheduler original(4, options(99));
  const auto first = run(original, 4, 150, GetParam());
  Scheduler::Options replay = options(12345);  // a different seed: the replay must not use it
  replay.replay = original.schedule();
  Scheduler again(4, replay);
  EXPECT_EQ(run(again, 4, 150, GetParam()), first);
  EXPECT_FALSE(again.replay_diverged());
}

TEST_P(SchedulerHosted, AReplayThatAsksForAFinishedCpuDiverges) {
  Scheduler::Options replay = options(1);
  replay.replay = std::vector<std::uint32_t>{0, 0, 0, 0, 0, 0};  // CPU 0 only, but CPU 0 does 2 points
  Scheduler s(2, replay);
  run(s, 2, 2, GetParam());
  EXPECT_TRUE(s.replay_diverged());
}

TEST_P(SchedulerHosted, PctIsDeterministicAndRunsTheHighestPriorityFirst) {
  std::string error;
  const Strategy pct = *Strategy::parse("pct:1", error);  // depth 1: no change points
  Scheduler a(4, options(5, pct)), b(4, options(5, pct));
  const auto ra = run(a, 4, 50, GetParam());
  EXPECT_EQ(ra, run(b, 4, 50, GetParam()));
  // Without change points one CPU runs to its end before the next starts.
  for (std::size_t i = 1; i < ra.size(); ++i) {
    if (ra[i].first != ra[i - 1].first) {
      EXPECT_EQ(ra[i - 1].second, 49);
    }
  }
}

TEST_P(SchedulerHosted, SpinningCpusLetTheOthersRun) {
  // CPU 1 spins until CPU 0 has set a flag; the scheduler must pick CPU 0.
  Scheduler s(2, options(11));
  bool flag = false;
  std::uint64_t spins = 0;
  run_cpus(s, 2, GetParam(), [&](std::uint32_t cpu) {
    s.enter(cpu);
    if (cpu == 0) {
      for (int i = 0; i < 50; ++i) s.point(0);
      flag = true;
    } else {
      while (!flag && !s.stopped()) {
        ++spins;
        s.point(1, Wait::Spinning);
      }
    }
    s.exit(cpu);
  });
  EXPECT_TRUE(flag);
  EXPECT_LE(spins, 2u);  // a spinning CPU is passed over while another can progress
}

TEST_P(SchedulerHosted, EveryoneSpinningIsADeadlock) {
  Scheduler::Options o = options(2);
  o.deadlock_steps = 1000;
  Scheduler s(2, o);
  run_cpus(s, 2, GetParam(), [&](std::uint32_t cpu) {
    s.enter(cpu);
    while (!s.stopped()) s.point(cpu, Wait::Spinning);
    s.exit(cpu);
  });
  EXPECT_TRUE(s.deadlocked());
  EXPECT_GT(s.steps(), 1000u);
}

// A stop lets every CPU reach its next check and leave, one at a time.
TEST_P(SchedulerHosted, AStopLetsEveryCpuLeave) {
  Scheduler s(3, options(4));
  std::vector<int> done(3, 0);
  run_cpus(s, 3, GetParam(), [&](std::uint32_t cpu) {
    s.enter(cpu);
    for (int i = 0; !s.stopped(); ++i) {
      if (cpu == 2 && i == 20) s.stop();
      s.point(cpu);
    }
    done[cpu] = 1;
    s.exit(cpu);
  });
  EXPECT_TRUE(s.stopped());
  EXPECT_FALSE(s.deadlocked());
  EXPECT_EQ(done, std::vector<int>({1, 1, 1}));
}

TEST_P(SchedulerHosted, CpusThatExitEarlyLeaveTheRotation) {
  // CPU i does 10 * i points: the others go on without the ones that left.
  Scheduler s(4, options(21));
  const std::uint32_t cpus = 4;
  std::vector<int> points(cpus, 0);
  run_cpus(s, cpus, GetParam(), [&](std::uint32_t cpu) {
    s.enter(cpu);
    for (std::uint32_t i = 0; i < 10 * cpu; ++i) {
      ++points[cpu];
      s.point(cpu);
    }
    s.exit(cpu);
  });
  EXPECT_EQ(points, std::vector<int>({0, 10, 20, 30}));
  EXPECT_EQ(s.running(), ~std::uint32_t{0});  // nobody holds the turn after the last exit
}

std::string host_name(const ::testing::TestParamInfo<Host>& hosted) {
  return hosted.param == Host::Fibers ? "Fibers" : "Threads";
}

INSTANTIATE_TEST_SUITE_P(Scheduler, SchedulerHosted, ::testing::Values(Host::Fibers, Host::Threads), host_name);

TEST(Scheduler, FibersAndThreadsMakeTheSameChoices) {
  for (std::uint64_t seed = 1; seed <= 5; ++seed) {
    for (const char* strategy : {"random", "pct:3"}) {
      std::string error;
      Scheduler::Options o = options(seed, *Strategy::parse(strategy, error));
      o.pct_horizon = 300;
      Scheduler fibers(3, o), threads(3, o);
      EXPECT_EQ(run(fibers, 3, 100, Host::Fibers), run(threads, 3, 100, Host::Threads)) << strategy << " seed " << seed;
      EXPECT_EQ(fibers.schedule(), threads.schedule());
    }
  }
}

// Deterministic run_cpus runs every CPU on the calling thread, and gives each
// its own copy of the carried thread_local (starting from T{}), restoring
// the caller's at the end.
struct Tag {
  int value = 7;
};
thread_local Tag carried_tag;

TEST(Scheduler, FibersRunOnTheCallingThreadAndCarryTheirThreadLocal) {
  Scheduler s(3, options(8));
  const std::thread::id caller = std::this_thread::get_id();
  carried_tag.value = -1;
  int wrong_thread = 0, wrong_value = 0, started_clean = 0;
  s.run_cpus(
      [&](std::uint32_t cpu) {
        if (carried_tag.value == 7) ++started_clean;
        const int mine = 100 + static_cast<int>(cpu);
        carried_tag.value = mine;
        s.enter(cpu);
        for (int i = 0; i < 200; ++i) {
          if (std::this_thread::get_id() != caller) ++wrong_thread;
          if (carried_tag.value != mine) ++wrong_value;
          s.point(cpu);
        }
        s.exit(cpu);
      },
      carried_tag);
  EXPECT_EQ(started_clean, 3);
  EXPECT_EQ(wrong_thread, 0);
  EXPECT_EQ(wrong_value, 0);
  EXPECT_EQ(carried_tag.value, -1);
  EXPECT_EQ(s.steps(), 3u * 200 + 3);  // a choice per point, the first, and one per exit but the last
}

// Deep frames on a CPU's fiber: its stack holds far more than the core's
// deepest path.
int deep(int depth) {
  volatile char frame[1024];
  frame[0] = static_cast<char>(depth);
  return depth == 0 ? frame[0] : deep(depth - 1) + frame[0];
}

TEST(Scheduler, FibersHaveRoomForDeepCalls) {
  const int expected = deep(100);  // about 100 KiB of frames
  Scheduler s(2, options(5));
  int sum = 0;
  s.run_cpus([&](std::uint32_t cpu) {
    s.enter(cpu);
    for (int i = 0; i < 4; ++i) {
      sum += deep(100);
      s.point(cpu);
    }
    s.exit(cpu);
  });
  EXPECT_EQ(sum, 8 * expected);
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
  std::atomic<int> on_caller{0};
  const std::thread::id caller = std::this_thread::get_id();
  s.run_cpus([&](std::uint32_t cpu) {
    s.enter(cpu);
    if (std::this_thread::get_id() == caller) on_caller.fetch_add(1);
    for (int i = 0; i < 1000; ++i) {
      points.fetch_add(1, std::memory_order_relaxed);
      s.point(cpu);
    }
    s.exit(cpu);
  });
  EXPECT_EQ(points.load(), 2000);
  EXPECT_EQ(on_caller.load(), 0);  // parallel mode: a thread per CPU
  EXPECT_TRUE(s.schedule().empty());
  EXPECT_EQ(s.steps(), 0u);
}

}  // namespace
