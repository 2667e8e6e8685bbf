#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "mm/phys/buddy_allocator.hpp"
#include "support/frame_pool.hpp"
#include "support/snapshot.hpp"

namespace {

using mm::FrameOwner;
using mm::Pfn;
using mm::Status;
using pagelab::test::FramePool;

// 1024 frames at a 1024-aligned base: exactly one order-10 block.
struct BuddyFixture : ::testing::Test {
  FramePool pool{1024, Pfn(0x400)};
  mm::BuddyAllocator buddy{pool.table()};
  void SetUp() override { ASSERT_EQ(buddy.add_free_range(pool.base(), 1024), Status::Ok); }
};

TEST_F(BuddyFixture, AlignedRangeBecomesOneBlock) {
  const mm::FreeBlockCounts counts = buddy.free_blocks();
  EXPECT_EQ(counts.blocks[10], 1u);
  EXPECT_EQ(counts.frames_at_or_above(0), 1024u);
  EXPECT_EQ(pool.table()[pool.base()].state, mm::FrameState::Free);
  EXPECT_EQ(pool.table()[pool.base() + 1].state, mm::FrameState::Interior);
}

TEST_F(BuddyFixture, SplitsOnAllocationAndLeavesOneBlockPerLowerOrder) {
  const Pfn a = buddy.allocate_order(0, FrameOwner::Anonymous).value();
  EXPECT_EQ(a, pool.base());
  const mm::FreeBlockCounts counts = buddy.free_blocks();
  for (mm::u32 k = 0; k < 10; ++k) {
    EXPECT_EQ(counts.blocks[k], 1u) << "order " << k;
  }
  EXPECT_EQ(counts.blocks[10], 0u);
  EXPECT_EQ(buddy.free_frames(), 1023u);
}

TEST_F(BuddyFixture, CoalescesBackToTheOriginalBlock) {
  std::vector<Pfn> frames;
  for (int i = 0; i < 1024; ++i) {
    frames.push_back(buddy.allocate_order(0, FrameOwner::Anonymous).value());
  }
  EXPECT_EQ(buddy.allocate_order(0, FrameOwner::Anonymous).status(), Status::OutOfMemory);
  std::shuffle(frames.begin(), frames.end(), std::mt19937(7));
  for (Pfn f : frames) {
    ASSERT_EQ(buddy.free_order(f, 0), Status::Ok);
  }
  EXPECT_EQ(buddy.free_blocks().blocks[10], 1u);
  EXPECT_EQ(buddy.free_frames(), 1024u);
}

TEST_F(BuddyFixture, BlocksAreNaturallyAligned) {
  for (mm::u32 order : {0u, 3u, 1u, 9u, 2u}) {
    const Pfn p = buddy.allocate_order(order, FrameOwner::Anonymous).value();
    EXPECT_TRUE(p.is_aligned(mm::FrameCount{1} << order)) << "order " << order;
    EXPECT_EQ(pool.table()[p].order, order);
  }
}

TEST_F(BuddyFixture, AllocateHonoursLimitBySearchingLowBlocks) {
  // Take the low half: only [base+512, base+1024) stays free.
  const Pfn low = buddy.allocate_order(9, FrameOwner::Kernel).value();
  EXPECT_EQ(low, pool.base());
  EXPECT_EQ(buddy.allocate({.count = 1, .limit = pool.base() + 512}).status(), Status::OutOfMemory);
  // A limit that admits the lowest 8 frames of the free half splits it there.
  const mm::Result<Pfn> r = buddy.allocate({.count = 8, .limit = pool.base() + 520});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value(), pool.base() + 512);
  EXPECT_EQ(buddy.allocate({.count = 8, .limit = pool.base() + 527}).status(), Status::OutOfMemory);
}

TEST_F(BuddyFixture, RequestShapeErrors) {
  const auto before = pagelab::test::snapshot(pool.table(), buddy);
  EXPECT_EQ(buddy.allocate({.count = 3}).status(), Status::InvalidArgument);
  EXPECT_EQ(buddy.allocate({.count = 0}).status(), Status::InvalidArgument);
  EXPECT_EQ(buddy.allocate({.count = 4, .alignment = 3}).status(), Status::InvalidArgument);
  EXPECT_EQ(buddy.allocate({.count = 4, .alignment = 8}).status(), Status::NotSupported);
  EXPECT_EQ(buddy.allocate_order(mm::kMaxOrder + 1, FrameOwner::Kernel).status(), Status::InvalidArgument);
  EXPECT_EQ(buddy.allocate_order(11, FrameOwner::Kernel).status(), Status::OutOfMemory);
  EXPECT_EQ(pagelab::test::snapshot(pool.table(), buddy), before);
}

TEST(BuddyAllocator, UnalignedRangeIsSplitIntoMaximalBlocks) {
  // Frames 0x1003 .. 0x1003+13: 1 (0x1003) + 4 (0x1004) + 8 (0x1008)
  FramePool pool(13, Pfn(0x1003));
  mm::BuddyAllocator buddy(pool.table());
  ASSERT_EQ(buddy.add_free_range(pool.base(), 13), Status::Ok);
  const mm::FreeBlockCounts c = buddy.free_blocks();
  EXPECT_EQ(c.blocks[0], 1u);
  EXPECT_EQ(c.blocks[2], 1u);
  EXPECT_EQ(c.blocks[3], 1u);
  EXPECT_EQ(buddy.free_frames(), 13u);
}

TEST(BuddyAllocator, AdjacentRangesAddedSeparatelyMerge) {
  FramePool pool(64, Pfn(0x2000));
  mm::BuddyAllocator buddy(pool.table());
  ASSERT_EQ(buddy.add_free_range(pool.base() + 32, 32), Status::Ok);
  ASSERT_EQ(buddy.add_free_range(pool.base(), 32), Status::Ok);
  EXPECT_EQ(buddy.free_blocks().blocks[6], 1u);
}

TEST(BuddyAllocator, OneGibibyteOrderIsTheMaximum) {
  EXPECT_EQ(mm::kMaxOrder, 18u);
  FramePool pool(mm::FrameCount{1} << 19, Pfn(0));  // 2 GiB of frames, metadata only
  mm::BuddyAllocator buddy(pool.table());
  ASSERT_EQ(buddy.add_free_range(pool.base(), pool.table().size()), Status::Ok);
  EXPECT_EQ(buddy.free_blocks().blocks[18], 2u);  // never merged past 1 GiB
  const Pfn gib = buddy.allocate_order(18, FrameOwner::Kernel).value();
  EXPECT_TRUE(gib.is_aligned(mm::FrameCount{1} << 18));
  ASSERT_EQ(buddy.free(gib, mm::FrameCount{1} << 18), Status::Ok);
}

}  // namespace
