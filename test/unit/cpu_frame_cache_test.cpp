// The steal protocol of a CPU's frame cache (mm/phys/cpu_frame_cache.hpp),
// step by step on two host threads: a stealer waits for the operation its
// owner has in flight, and an owner that finds a stealer goes to the lock.
//
// The wait is what a real machine needs and neither a deterministic run of
// the emulator (an owner is never parked mid-operation with the cache out
// of shape) nor a stress test (an owner's operation rarely outlasts the
// stealer's barrier) shows: here the owner holds its operation open on
// purpose.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "emu/host_platform.hpp"
#include "mm/phys/cpu_frame_cache.hpp"

namespace {

using pagelab::HostPlatform;
using Cache = mm::CpuFrameCache<pagelab::HostSpinLock>;

struct StealProtocol : ::testing::Test {
  HostPlatform platform{std::span<std::byte>(), mm::PhysAddr(0), 2};
  Cache cache;
};

TEST_F(StealProtocol, AStealerWaitsForTheOwnersOperationInFlight) {
  ASSERT_TRUE(cache.begin());  // the owner is in an operation
  cache.push(mm::Pfn(0x100));

  std::atomic<bool> stopped{false};
  std::thread stealer([&] {
    mm::LockGuard guard(cache.steal_lock);
    cache.stop_owner(platform);
    stopped.store(true);
    EXPECT_EQ(cache.count(), 2u);  // what the owner finished, whole
    cache.release_owner();
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(stopped.load()) << "the stealer went in while the owner's operation was open";
  cache.push(mm::Pfn(0x101));
  cache.end();
  stealer.join();
  EXPECT_TRUE(stopped.load());
  EXPECT_TRUE(cache.begin()) << "the stealer left: the fast path is open again";
  cache.end();
}

TEST_F(StealProtocol, AnOwnerThatFindsAStealerGoesToTheLock) {
  {
    mm::LockGuard guard(cache.steal_lock);
    cache.stop_owner(platform);  // no operation in flight: returns at once
    EXPECT_FALSE(cache.begin()) << "an owner went past a stealer";
    cache.release_owner();
  }
  EXPECT_TRUE(cache.begin());
  cache.end();
}

TEST_F(StealProtocol, StatsAreReadableFromAnyCpuWithoutAStop) {
  ASSERT_TRUE(cache.begin());
  cache.push(mm::Pfn(0x100));
  cache.push(mm::Pfn(0x101));
  (void)cache.pop();
  cache.end();
  std::thread reader([&] {
    const mm::FrameCacheStats s = cache.stats();
    EXPECT_EQ(s.cached, 1u);
    EXPECT_EQ(s.hits, 1u);
  });
  reader.join();
}

}  // namespace
