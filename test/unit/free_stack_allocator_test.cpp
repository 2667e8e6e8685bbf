#include <gtest/gtest.h>

#include <set>
#include <vector>

#include "mm/phys/free_stack_allocator.hpp"
#include "support/frame_pool.hpp"

namespace {

using mm::FrameOwner;
using mm::Pfn;
using mm::Status;
using pagelab::test::FramePool;

TEST(FreeStackAllocator, HandsOutLowestFirstThenLastFreedFirst) {
  FramePool pool(16);
  mm::FreeStackAllocator stack(pool.table());
  ASSERT_EQ(stack.add_free_range(pool.base(), 16), Status::Ok);
  EXPECT_EQ(stack.managed_frames(), 16u);
  const Pfn a = stack.allocate_one(FrameOwner::Anonymous).value();
  const Pfn b = stack.allocate_one(FrameOwner::Anonymous).value();
  EXPECT_EQ(a, pool.base());
  EXPECT_EQ(b, pool.base() + 1);
  ASSERT_EQ(stack.free_one(a), Status::Ok);
  EXPECT_EQ(stack.allocate_one(FrameOwner::Kernel).value(), a);
  EXPECT_EQ(stack.free_frames(), 14u);
}

TEST(FreeStackAllocator, MetadataFollowsTheFrame) {
  FramePool pool(4);
  mm::FreeStackAllocator stack(pool.table());
  ASSERT_EQ(stack.add_free_range(pool.base(), 4), Status::Ok);
  const Pfn a = stack.allocate_one(FrameOwner::PageTable).value();
  const mm::Frame& f = pool.table()[a];
  EXPECT_EQ(f.state, mm::FrameState::Allocated);
  EXPECT_EQ(f.owner, FrameOwner::PageTable);
  EXPECT_EQ(f.refcount.load(), 1u);
  ASSERT_EQ(stack.free_one(a), Status::Ok);
  EXPECT_EQ(f.state, mm::FrameState::Free);
  EXPECT_EQ(f.owner, FrameOwner::Free);
  EXPECT_EQ(f.refcount.load(), 0u);
}

TEST(FreeStackAllocator, RunsOutWithEnomemAndRecovers) {
  FramePool pool(8);
  mm::FreeStackAllocator stack(pool.table());
  ASSERT_EQ(stack.add_free_range(pool.base(), 8), Status::Ok);
  std::set<Pfn> got;
  for (int i = 0; i < 8; ++i) {
    got.insert(stack.allocate_one(FrameOwner::Anonymous).value());
  }
  EXPECT_EQ(got.size(), 8u);
  EXPECT_EQ(stack.allocate_one(FrameOwner::Anonymous).status(), Status::OutOfMemory);
  ASSERT_EQ(stack.free_one(*got.begin()), Status::Ok);
  EXPECT_EQ(stack.allocate_one(FrameOwner::Anonymous).value(), *got.begin());
}

TEST(FreeStackAllocator, BatchMovesManyFramesInOneCall) {
  FramePool pool(100);
  mm::FreeStackAllocator stack(pool.table());
  ASSERT_EQ(stack.add_free_range(pool.base(), 100), Status::Ok);
  std::vector<Pfn> frames(64);
  ASSERT_EQ(stack.allocate_batch(frames, FrameOwner::Anonymous), 64u);
  EXPECT_EQ(std::set<Pfn>(frames.begin(), frames.end()).size(), 64u);
  EXPECT_EQ(stack.free_frames(), 36u);
  std::vector<Pfn> rest(64);
  EXPECT_EQ(stack.allocate_batch(rest, FrameOwner::Anonymous), 36u);  // short batch when memory runs out
  ASSERT_EQ(stack.free_batch(frames), Status::Ok);
  EXPECT_EQ(stack.free_frames(), 64u);
}

TEST(FreeStackAllocator, RefusesContiguousRequests) {
  FramePool pool(16);
  mm::FreeStackAllocator stack(pool.table());
  ASSERT_EQ(stack.add_free_range(pool.base(), 16), Status::Ok);
  EXPECT_EQ(stack.allocate({.count = 2}).status(), Status::NotSupported);
  EXPECT_EQ(stack.allocate({.count = 1, .alignment = 4}).status(), Status::NotSupported);
  EXPECT_EQ(stack.allocate({.count = 1, .limit = pool.base() + 8}).status(), Status::NotSupported);
  EXPECT_EQ(stack.free_frames(), 16u);
  EXPECT_TRUE(stack.allocate({.count = 1}).ok());
}

}  // namespace
