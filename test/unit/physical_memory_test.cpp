#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "mm/phys/bitmap_allocator.hpp"
#include "mm/phys/buddy_allocator.hpp"
#include "mm/phys/physical_memory.hpp"
#include "support/frame_pool.hpp"
#include "support/snapshot.hpp"

namespace {

using mm::AllocFlags;
using mm::FrameOwner;
using mm::PhysAddr;
using mm::Pfn;
using mm::Status;
using pagelab::HostPlatform;
using pagelab::test::FramePool;
using Pmm = mm::PhysicalMemory<HostPlatform>;

struct PmmFixture : ::testing::Test {
  static constexpr mm::FrameCount kFrames = 256;
  FramePool pool{kFrames + 8, Pfn(0x200), /*cpus=*/2, /*with_ram=*/true};
  mm::BuddyAllocator buddy{pool.table()};

  void SetUp() override {
    HostPlatform::bind_current_thread(0);
    // The first 8 frames stay reserved.
    ASSERT_EQ(buddy.add_free_range(pool.base() + 8, kFrames), Status::Ok);
  }
  void TearDown() override { HostPlatform::bind_current_thread(0); }

  Pmm make(mm::PhysicalMemoryConfig config = {}) { return Pmm(pool.platform(), pool.table(), buddy, config); }
};

TEST_F(PmmFixture, CacheRefillsInBatchesAndServesFromTheCache) {
  Pmm pmm(pool.platform(), pool.table(), buddy, {.cache_batch = 8, .cache_high = 16});
  const PhysAddr a = pmm.allocate_frame(FrameOwner::Anonymous).value();
  mm::PhysicalMemoryStats s = pmm.stats();
  EXPECT_EQ(s.per_cpu[0].refills, 1u);
  EXPECT_EQ(s.per_cpu[0].cached, 7u);   // one batch of 8, one handed out
  EXPECT_EQ(buddy.free_frames(), kFrames - 8);
  EXPECT_EQ(s.free, kFrames - 1);
  EXPECT_EQ(pool.table()[Pfn::containing(a)].state, mm::FrameState::Allocated);
  EXPECT_EQ(pool.table()[Pfn::containing(a)].owner, FrameOwner::Anonymous);

  ASSERT_EQ(pmm.free_frame(a), Status::Ok);
  // Parked in the cache: still Allocated for the allocator, but unowned.
  EXPECT_EQ(pool.table()[Pfn::containing(a)].state, mm::FrameState::Allocated);
  EXPECT_EQ(pool.table()[Pfn::containing(a)].refcount.load(), 0u);
  EXPECT_EQ(pool.table()[Pfn::containing(a)].owner, FrameOwner::Free);
  // Last freed, first reused: the cache is a stack.
  EXPECT_EQ(pmm.allocate_frame(FrameOwner::Kernel).value(), a);
  s = pmm.stats();
  EXPECT_EQ(s.per_cpu[0].hits, 2u);
  EXPECT_EQ(s.per_cpu[0].refills, 1u);
}

TEST_F(PmmFixture, CacheAboveTheHighMarkDrainsOneBatch) {
  Pmm pmm(pool.platform(), pool.table(), buddy, {.cache_batch = 8, .cache_high = 16});
  std::vector<PhysAddr> frames;
  for (int i = 0; i < 40; ++i) {
    frames.push_back(pmm.allocate_frame(FrameOwner::Anonymous).value());
  }
  for (PhysAddr f : frames) {
    ASSERT_EQ(pmm.free_frame(f), Status::Ok);
    EXPECT_LE(pmm.stats().per_cpu[0].cached, 16u);
  }
  const mm::PhysicalMemoryStats s = pmm.stats();
  EXPECT_GT(s.per_cpu[0].drains, 0u);
  EXPECT_EQ(s.free, kFrames);
  EXPECT_EQ(buddy.free_frames() + s.cached, kFrames);
}

TEST_F(PmmFixture, EachCpuHasItsOwnCacheAndDrainAllEmptiesThemAll) {
  Pmm pmm = make({.cache_batch = 4, .cache_high = 8});
  HostPlatform::bind_current_thread(1);
  const PhysAddr on1 = pmm.allocate_frame(FrameOwner::Anonymous).value();
  ASSERT_EQ(pmm.free_frame(on1), Status::Ok);
  HostPlatform::bind_current_thread(0);
  const PhysAddr on0 = pmm.allocate_frame(FrameOwner::Anonymous).value();
  EXPECT_NE(on0, on1);  // CPU 0 refilled its own cache; CPU 1's frames stay put
  mm::PhysicalMemoryStats s = pmm.stats();
  EXPECT_EQ(s.per_cpu[1].cached, 4u);
  EXPECT_EQ(s.per_cpu[0].cached, 3u);
  pmm.drain_all_caches();
  s = pmm.stats();
  EXPECT_EQ(s.per_cpu[0].cached, 0u);
  EXPECT_EQ(s.per_cpu[1].cached, 0u);
  EXPECT_EQ(s.full_drains, 1u);
  EXPECT_EQ(buddy.free_frames(), kFrames - 1);
  ASSERT_EQ(pmm.free_frame(on0), Status::Ok);
  pmm.drain_all_caches();
  EXPECT_EQ(buddy.free_blocks().frames_at_or_above(0), kFrames);
}

// The owner's path never synchronizes the CPUs; a drain does once for each
// other CPU's cache that holds frames (issue 3/10: the fence a lock would
// put on every operation is paid by the rare stealer).
TEST_F(PmmFixture, OnlyAStealFromAnotherCpusCacheSynchronizesTheCpus) {
  Pmm pmm = make({.cache_batch = 4, .cache_high = 8});
  const auto synchronizations = [&] { return pool.platform().counters().cpu_synchronizations.load(); };
  std::vector<PhysAddr> held;
  for (int i = 0; i < 20; ++i) held.push_back(pmm.allocate_frame(FrameOwner::Anonymous).value());
  for (const PhysAddr f : held) ASSERT_EQ(pmm.free_frame(f), Status::Ok);
  EXPECT_EQ(synchronizations(), 0u);  // refills and drains of its own cache included

  // CPU 1 fills its cache and goes away (its thread would have ended).
  HostPlatform::bind_current_thread(1);
  const PhysAddr on1 = pmm.allocate_frame(FrameOwner::Anonymous).value();
  ASSERT_EQ(pmm.free_frame(on1), Status::Ok);
  HostPlatform::bind_current_thread(0);
  ASSERT_EQ(pmm.stats().per_cpu[1].cached, 4u);
  EXPECT_EQ(synchronizations(), 0u);

  pmm.drain_all_caches();  // CPU 0 drains its own cache and steals CPU 1's
  mm::PhysicalMemoryStats s = pmm.stats();
  EXPECT_EQ(synchronizations(), 1u);
  EXPECT_EQ(s.cached, 0u);
  EXPECT_EQ(buddy.free_frames(), kFrames);

  pmm.drain_all_caches();  // nothing cached anywhere: nothing to steal
  EXPECT_EQ(synchronizations(), 1u);
  // CPU 1's cache works as before after the steal.
  HostPlatform::bind_current_thread(1);
  const PhysAddr again = pmm.allocate_frame(FrameOwner::Anonymous).value();
  EXPECT_EQ(pmm.stats().per_cpu[1].refills, 2u);
  ASSERT_EQ(pmm.free_frame(again), Status::Ok);
}

TEST_F(PmmFixture, ReserveIsNeverTakenByOrdinaryAllocations) {
  constexpr mm::FrameCount kReserve = 10;
  Pmm pmm = make({.watermarks = {.reserve = kReserve}, .cache_batch = 16, .cache_high = 32});
  std::vector<PhysAddr> frames;
  while (true) {
    const mm::Result<PhysAddr> r = pmm.allocate_frame(FrameOwner::Anonymous);
    if (!r.ok()) {
      EXPECT_EQ(r.status(), Status::OutOfMemory);
      break;
    }
    frames.push_back(r.value());
  }
  EXPECT_EQ(frames.size(), kFrames - kReserve);
  EXPECT_EQ(buddy.free_frames(), kReserve);  // the failing call drained every cache
  EXPECT_EQ(pmm.allocate_run({.count = 1}).status(), Status::OutOfMemory);
  PhysAddr batch[4];
  EXPECT_EQ(pmm.allocate_batch(batch, FrameOwner::Anonymous), 0u);
  // Emergency allocations may use it, and only it.
  for (mm::FrameCount i = 0; i < kReserve; ++i) {
    frames.push_back(pmm.allocate_frame(FrameOwner::Kernel, AllocFlags::Emergency).value());
  }
  EXPECT_EQ(pmm.allocate_frame(FrameOwner::Kernel, AllocFlags::Emergency).status(), Status::OutOfMemory);
  const mm::PhysicalMemoryStats s = pmm.stats();
  EXPECT_EQ(s.emergency_allocations, kReserve);
  EXPECT_GE(s.failed_allocations, 2u);
  for (PhysAddr f : frames) {
    ASSERT_EQ(pmm.free_frame(f), Status::Ok);
  }
}

TEST_F(PmmFixture, FreesRefillAShortReserveBeforeTheCache) {
  constexpr mm::FrameCount kReserve = 8;
  Pmm pmm = make({.watermarks = {.reserve = kReserve}, .cache_batch = 4, .cache_high = 8});
  std::vector<PhysAddr> frames;
  for (mm::Result<PhysAddr> r = pmm.allocate_frame(FrameOwner::Anonymous); r.ok();
       r = pmm.allocate_frame(FrameOwner::Anonymous)) {
    frames.push_back(r.value());
  }
  ASSERT_EQ(buddy.free_frames(), kReserve);
  const PhysAddr emergency = pmm.allocate_frame(FrameOwner::Kernel, AllocFlags::Emergency).value();
  EXPECT_EQ(buddy.free_frames(), kReserve - 1);
  EXPECT_EQ(pmm.pressure(), mm::Pressure::Emergency);
  // Its free goes back to the allocator, not to the cache, so the next
  // ordinary allocation still finds nothing above the reserve.
  ASSERT_EQ(pmm.free_frame(emergency), Status::Ok);
  EXPECT_EQ(buddy.free_frames(), kReserve);
  EXPECT_EQ(pmm.stats().cached, 0u);
  EXPECT_EQ(pmm.allocate_frame(FrameOwner::Anonymous).status(), Status::OutOfMemory);
  for (PhysAddr f : frames) {
    ASSERT_EQ(pmm.free_frame(f), Status::Ok);
  }
}

TEST_F(PmmFixture, CommittedFramesAreKeptForCommittedAllocations) {
  constexpr mm::FrameCount kReserve = 8, kCommit = 20;
  Pmm pmm = make({.watermarks = {.reserve = kReserve}, .cache_batch = 4, .cache_high = 8});
  ASSERT_EQ(pmm.commit(kCommit), Status::Ok);
  EXPECT_EQ(pmm.commit(kFrames), Status::OutOfMemory);  // more than is left above the reserve
  EXPECT_EQ(pmm.stats().committed, kCommit);
  std::vector<PhysAddr> frames;
  for (mm::Result<PhysAddr> r = pmm.allocate_frame(FrameOwner::Anonymous); r.ok();
       r = pmm.allocate_frame(FrameOwner::Anonymous)) {
    frames.push_back(r.value());
  }
  // Ordinary allocations stop short of the reserve and the commitments.
  EXPECT_EQ(frames.size(), kFrames - kReserve - kCommit);
  for (mm::FrameCount i = 0; i < kCommit; ++i) {
    const mm::Result<PhysAddr> r = pmm.allocate_frame(FrameOwner::Anonymous, AllocFlags::Committed);
    ASSERT_TRUE(r.ok()) << i;
    frames.push_back(r.value());
  }
  EXPECT_EQ(pmm.stats().committed, 0u);
  EXPECT_EQ(buddy.free_frames(), kReserve);
  EXPECT_EQ(pmm.commit(1), Status::OutOfMemory);
  for (PhysAddr f : frames) {
    ASSERT_EQ(pmm.free_frame(f), Status::Ok);
  }
  ASSERT_EQ(pmm.commit(5), Status::Ok);
  pmm.uncommit(5);
  EXPECT_EQ(pmm.stats().committed, 0u);
}

TEST_F(PmmFixture, PutFrameFreesOnTheLastReference) {
  Pmm pmm = make();
  const PhysAddr a = pmm.allocate_frame(FrameOwner::Anonymous).value();
  mm::Frame& frame = pool.table()[Pfn::containing(a)];
  frame.refcount.fetch_add(2);              // two more holders
  EXPECT_FALSE(pmm.put_frame(a));
  EXPECT_FALSE(pmm.put_frame(a));
  EXPECT_EQ(frame.refcount.load(), 1u);
  EXPECT_EQ(frame.owner, FrameOwner::Anonymous);
  EXPECT_TRUE(pmm.put_frame(a));            // the last one frees it
  EXPECT_EQ(frame.refcount.load(), 0u);
  EXPECT_EQ(frame.owner, FrameOwner::Free);
  EXPECT_EQ(pmm.free_frame(a), Status::NotFound);  // already free
  pmm.drain_all_caches();
  EXPECT_EQ(buddy.free_frames(), kFrames);
}

TEST_F(PmmFixture, PressureFollowsTheWatermarks) {
  // available = free - reserve; Warning at <= 100, Emergency at <= 20.
  Pmm pmm = make({.watermarks = {.reserve = 16, .emergency = 20, .warning = 100}, .cache_batch = 1, .cache_high = 1});
  EXPECT_EQ(pmm.pressure(), mm::Pressure::Normal);
  std::vector<PhysAddr> frames;
  auto take_until = [&](mm::FrameCount available) {
    while (buddy.free_frames() - 16 > available) {
      frames.push_back(pmm.allocate_run({.count = 1}).value());
    }
  };
  take_until(101);
  EXPECT_EQ(pmm.pressure(), mm::Pressure::Normal);
  take_until(100);
  EXPECT_EQ(pmm.pressure(), mm::Pressure::Warning);
  take_until(21);
  EXPECT_EQ(pmm.pressure(), mm::Pressure::Warning);
  take_until(20);
  EXPECT_EQ(pmm.pressure(), mm::Pressure::Emergency);
  EXPECT_EQ(pmm.stats().pressure, mm::Pressure::Emergency);
  for (PhysAddr f : frames) {
    ASSERT_EQ(pmm.free_run(f, 1), Status::Ok);
  }
  EXPECT_EQ(pmm.pressure(), mm::Pressure::Normal);
}

TEST_F(PmmFixture, ZeroFlagZeroesAndPoisonFillsFreedFrames) {
  Pmm pmm = make({.poison_freed = true});
  const PhysAddr a = pmm.allocate_frame(FrameOwner::Anonymous).value();
  std::memset(pool.ram(Pfn::containing(a)), 0x5A, mm::kPageSize);
  ASSERT_EQ(pmm.free_frame(a), Status::Ok);
  const auto* words = reinterpret_cast<const mm::u64*>(pool.ram(Pfn::containing(a)));
  for (size_t i = 0; i < mm::kPageSize / 8; ++i) {
    ASSERT_EQ(words[i], mm::kPoisonPattern) << "word " << i;
  }
  const PhysAddr b = pmm.allocate_frame(FrameOwner::Anonymous, AllocFlags::Zero).value();
  EXPECT_EQ(b, a);
  const auto* bytes = pool.ram(Pfn::containing(b));
  for (size_t i = 0; i < mm::kPageSize; ++i) {
    ASSERT_EQ(bytes[i], std::byte{0}) << "byte " << i;
  }
  const PhysAddr run = pmm.allocate_run({.count = 4}, AllocFlags::Zero).value();
  ASSERT_EQ(pmm.free_run(run, 4), Status::Ok);
  const auto* run_words = reinterpret_cast<const mm::u64*>(pool.ram(Pfn::containing(run) + 3));
  EXPECT_EQ(run_words[mm::kPageSize / 8 - 1], mm::kPoisonPattern);
}

TEST_F(PmmFixture, BadFreesAreRejectedAndChangeNothing) {
  Pmm pmm = make();
  const PhysAddr a = pmm.allocate_frame(FrameOwner::Anonymous).value();
  const PhysAddr block = pmm.allocate_run({.count = 8}).value();
  const PhysAddr shared = pmm.allocate_frame(FrameOwner::Shared).value();
  pool.table()[Pfn::containing(shared)].refcount.store(2);
  const PhysAddr freed = pmm.allocate_frame(FrameOwner::Anonymous).value();
  ASSERT_EQ(pmm.free_frame(freed), Status::Ok);

  const auto before = pagelab::test::snapshot(pool.table(), buddy);
  const mm::PhysicalMemoryStats stats_before = pmm.stats();
  EXPECT_EQ(pmm.free_frame(a + 8), Status::InvalidArgument);                      // misaligned
  EXPECT_EQ(pmm.free_frame(freed), Status::NotFound);                             // double free
  EXPECT_EQ(pmm.free_frame(pool.base().address()), Status::BadAddress);           // reserved
  EXPECT_EQ(pmm.free_frame(pool.end().address()), Status::BadAddress);            // outside RAM
  EXPECT_EQ(pmm.free_frame(block), Status::InvalidArgument);                      // heads an 8-frame block
  EXPECT_EQ(pmm.free_frame(block + mm::kPageSize), Status::InvalidArgument);      // inside it
  EXPECT_EQ(pmm.free_frame(shared), Status::Busy);                                // still referenced
  EXPECT_EQ(pmm.free_run(block, 4), Status::InvalidArgument);                     // wrong size
  EXPECT_EQ(pmm.free_run(block + 1, 8), Status::InvalidArgument);                 // misaligned
  EXPECT_EQ(pmm.allocate_run({.count = 0}).status(), Status::InvalidArgument);    // zero count
  const PhysAddr batch[] = {a, a};
  EXPECT_EQ(pmm.free_batch(batch), Status::NotFound);                             // named twice
  EXPECT_EQ(pagelab::test::snapshot(pool.table(), buddy), before);
  const mm::PhysicalMemoryStats stats_after = pmm.stats();
  EXPECT_EQ(stats_after.free, stats_before.free);
  EXPECT_EQ(stats_after.per_cpu[0].cached, stats_before.per_cpu[0].cached);

  pool.table()[Pfn::containing(shared)].refcount.store(1);
  EXPECT_EQ(pmm.free_frame(shared), Status::Ok);
  EXPECT_EQ(pmm.free_frame(a), Status::Ok);
  EXPECT_EQ(pmm.free_run(block, 8), Status::Ok);
}

TEST_F(PmmFixture, BatchesBypassTheCachesUnderOneLock) {
  Pmm pmm = make();
  std::vector<PhysAddr> frames(100);
  ASSERT_EQ(pmm.allocate_batch(frames, FrameOwner::Anonymous), 100u);
  EXPECT_EQ(buddy.free_frames(), kFrames - 100);
  EXPECT_EQ(pmm.stats().cached, 0u);
  ASSERT_EQ(pmm.free_batch(frames), Status::Ok);
  EXPECT_EQ(buddy.free_frames(), kFrames);
}

TEST_F(PmmFixture, StatsCountTotalsReservedAndOrders) {
  Pmm pmm = make();
  const mm::PhysicalMemoryStats s = pmm.stats();
  EXPECT_EQ(s.total, kFrames);
  EXPECT_EQ(s.reserved, 8u);
  EXPECT_EQ(s.free, kFrames);
  EXPECT_EQ(s.cpu_count, 2u);
  EXPECT_EQ(s.free_by_order.frames_at_or_above(0), kFrames);
  // Frames 0x208 .. 0x308 split into aligned blocks: 8 @0x208, 16, 32, 64, 128 @0x280, 8 @0x300.
  EXPECT_EQ(s.free_by_order.blocks[3], 2u);
  for (mm::u32 k : {4u, 5u, 6u, 7u}) {
    EXPECT_EQ(s.free_by_order.blocks[k], 1u) << "order " << k;
  }
  EXPECT_EQ(s.free_by_order.blocks[8], 0u);
}

TEST(PhysicalMemoryOverBitmap, RunsBelowALimitWithAlignment) {
  FramePool pool(4096, Pfn(0x100));
  std::vector<mm::u64> bits(mm::BitmapAllocator::words_for(4096));
  mm::BitmapAllocator bitmap(pool.table(), bits);
  ASSERT_EQ(bitmap.add_free_range(pool.base(), 4096), Status::Ok);
  HostPlatform::bind_current_thread(0);
  Pmm pmm(pool.platform(), pool.table(), bitmap, {});
  const PhysAddr dma = pmm.allocate_run({.count = 16, .alignment = 16, .limit = Pfn(0x1000)}).value();
  EXPECT_LE(Pfn::containing(dma) + 16, Pfn(0x1000));
  EXPECT_TRUE(Pfn::containing(dma).is_aligned(16));
  const PhysAddr big = pmm.allocate_run({.count = 512, .alignment = 512}).value();
  EXPECT_TRUE(Pfn::containing(big).is_aligned(512));
  // A frame of a bitmap run is owned on its own: it can go back through the cache.
  EXPECT_EQ(pmm.free_frame(big + 5 * mm::kPageSize), Status::Ok);
  EXPECT_EQ(pmm.free_run(dma, 16), Status::Ok);
}

}  // namespace
