#include <gtest/gtest.h>

#include <vector>

#include "mm/phys/bitmap_allocator.hpp"
#include "support/frame_pool.hpp"
#include "support/snapshot.hpp"

namespace {

using mm::FrameOwner;
using mm::FrameRequest;
using mm::Pfn;
using mm::Status;
using pagelab::test::FramePool;

struct BitmapFixture : ::testing::Test {
  static constexpr mm::FrameCount kFrames = 1000;  // not a multiple of 64 on purpose
  FramePool pool{kFrames, Pfn(0x1000)};
  std::vector<mm::u64> bits = std::vector<mm::u64>(mm::BitmapAllocator::words_for(kFrames));
  mm::BitmapAllocator bitmap{pool.table(), bits};
  void SetUp() override { ASSERT_EQ(bitmap.add_free_range(pool.base(), kFrames), Status::Ok); }
};

TEST_F(BitmapFixture, FirstFitFromTheLowestFreeFrame) {
  EXPECT_EQ(bitmap.allocate({.count = 3}).value(), pool.base());
  EXPECT_EQ(bitmap.allocate({.count = 1}).value(), pool.base() + 3);
  ASSERT_EQ(bitmap.free(pool.base() + 1, 1), Status::Ok);  // sub-runs are freeable
  EXPECT_EQ(bitmap.allocate({.count = 1}).value(), pool.base() + 1);
  EXPECT_EQ(bitmap.free_frames(), kFrames - 4);
}

TEST_F(BitmapFixture, RunsSkipPastUsedFramesAndRespectAlignment) {
  // Leave frame 100 used, everything below it free.
  const Pfn a = bitmap.allocate({.count = 101}).value();  // [0, 101)
  ASSERT_EQ(bitmap.free(a, 100), Status::Ok);              // keep frame 100
  // [0, 100) is too small for 301 frames; the run starts just past frame 100.
  const Pfn b = bitmap.allocate({.count = 301}).value();
  EXPECT_EQ(b, pool.base() + 101);
  // 128 frames aligned to 128: [0, 128) holds frame 100, [101, 402) is used,
  // so the first fit is the next 128-aligned start, 512.
  const mm::Result<Pfn> r = bitmap.allocate({.count = 128, .alignment = 128});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value(), Pfn(0x1000 + 512));
  // Frames [0, 100) are still free and 64-aligned: a 64-frame, 64-aligned run fits there.
  EXPECT_EQ(bitmap.allocate({.count = 64, .alignment = 64}).value(), pool.base());
}

TEST_F(BitmapFixture, LimitKeepsRunsBelowAnAddress) {
  EXPECT_EQ(bitmap.allocate({.count = 10, .limit = pool.base() + 10}).value(), pool.base());
  EXPECT_EQ(bitmap.allocate({.count = 1, .limit = pool.base() + 10}).status(), Status::OutOfMemory);
  EXPECT_EQ(bitmap.allocate({.count = 1, .limit = pool.base() + 11}).value(), pool.base() + 10);
  EXPECT_EQ(bitmap.allocate({.count = 1, .limit = Pfn(0x10)}).status(), Status::OutOfMemory);
}

TEST_F(BitmapFixture, WholePoolAndNoMore) {
  EXPECT_EQ(bitmap.allocate({.count = kFrames + 1}).status(), Status::OutOfMemory);
  EXPECT_EQ(bitmap.allocate({.count = kFrames}).value(), pool.base());
  EXPECT_EQ(bitmap.free_frames(), 0u);
  EXPECT_EQ(bitmap.allocate({.count = 1}).status(), Status::OutOfMemory);
  ASSERT_EQ(bitmap.free(pool.base(), kFrames), Status::Ok);
  EXPECT_EQ(bitmap.free_frames(), kFrames);
}

TEST_F(BitmapFixture, FreeOfAPartlyFreeRunFailsWhole) {
  const Pfn run = bitmap.allocate({.count = 16}).value();
  ASSERT_EQ(bitmap.free(run + 4, 1), Status::Ok);
  const auto before = pagelab::test::snapshot(pool.table(), bitmap);
  EXPECT_EQ(bitmap.free(run, 16), Status::NotFound);  // frame 4 is already free
  EXPECT_EQ(pagelab::test::snapshot(pool.table(), bitmap), before);
}

TEST_F(BitmapFixture, FreeBlocksReportNaturallyAlignedRuns) {
  // base 0x1000 is 4096-aligned; 1000 frames = 512 + 256 + 128 + 64 + 32 + 8.
  const mm::FreeBlockCounts c = bitmap.free_blocks();
  EXPECT_EQ(c.blocks[9], 1u);
  EXPECT_EQ(c.blocks[8], 1u);
  EXPECT_EQ(c.blocks[7], 1u);
  EXPECT_EQ(c.blocks[6], 1u);
  EXPECT_EQ(c.blocks[5], 1u);
  EXPECT_EQ(c.blocks[3], 1u);
  EXPECT_EQ(c.frames_at_or_above(0), kFrames);
}

}  // namespace
