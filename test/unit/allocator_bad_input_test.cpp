// Every allocator, every bad input: the right status, and nothing changed.
#include <gtest/gtest.h>

#include "support/allocator_kinds.hpp"
#include "support/frame_pool.hpp"
#include "support/snapshot.hpp"

namespace {

using mm::FrameOwner;
using mm::Pfn;
using mm::Status;
using namespace pagelab::test;

template <typename Kind>
struct AllocatorBadInput : ::testing::Test {
  // 64 frames; the first 4 are never given to the allocator (reserved).
  FramePool pool{64, Pfn(0x800)};
  typename Kind::Instance instance{pool.table()};
  mm::FrameAllocator& allocator = instance.allocator;
  Pfn live;  // one allocated frame

  void SetUp() override {
    ASSERT_EQ(allocator.add_free_range(pool.base() + 4, 60), Status::Ok);
    live = allocator.allocate({.count = 1, .owner = FrameOwner::Anonymous}).value();
  }

  // Runs `call`, expects `want`, and checks the allocator's state is unchanged.
  template <typename Call>
  void expect_rejected(Status want, Call&& call) {
    const AllocatorSnapshot before = snapshot(pool.table(), allocator);
    EXPECT_EQ(call(), want);
    EXPECT_EQ(snapshot(pool.table(), allocator), before) << "state changed by a rejected call";
  }
};

using Kinds = ::testing::Types<StackKind, BitmapKind, BuddyKind>;
struct KindNames {
  template <typename T>
  static std::string GetName(int) { return T::kName; }
};
TYPED_TEST_SUITE(AllocatorBadInput, Kinds, KindNames);

TYPED_TEST(AllocatorBadInput, DoubleFreeIsEnoent) {
  ASSERT_EQ(this->allocator.free(this->live, 1), Status::Ok);
  this->expect_rejected(Status::NotFound, [&] { return this->allocator.free(this->live, 1); });
}

TYPED_TEST(AllocatorBadInput, FreeOfNeverAllocatedFrameIsEnoent) {
  const Pfn never = this->pool.end() - 1;
  ASSERT_NE(never, this->live);
  this->expect_rejected(Status::NotFound, [&] { return this->allocator.free(never, 1); });
}

TYPED_TEST(AllocatorBadInput, FreeOfReservedFrameIsEfault) {
  this->expect_rejected(Status::BadAddress, [&] { return this->allocator.free(this->pool.base(), 1); });
}

TYPED_TEST(AllocatorBadInput, FreeOutsideTheTableIsEfault) {
  this->expect_rejected(Status::BadAddress, [&] { return this->allocator.free(this->pool.end(), 1); });
  this->expect_rejected(Status::BadAddress, [&] { return this->allocator.free(Pfn(1), 1); });
}

TYPED_TEST(AllocatorBadInput, ZeroCountIsEinval) {
  this->expect_rejected(Status::InvalidArgument, [&] { return this->allocator.free(this->live, 0); });
  this->expect_rejected(Status::InvalidArgument,
                        [&] { return this->allocator.allocate({.count = 0}).status(); });
  this->expect_rejected(Status::InvalidArgument,
                        [&] { return this->allocator.add_free_range(this->pool.base(), 0); });
}

TYPED_TEST(AllocatorBadInput, NonPowerOfTwoAlignmentIsEinval) {
  this->expect_rejected(Status::InvalidArgument,
                        [&] { return this->allocator.allocate({.count = 1, .alignment = 3}).status(); });
}

TYPED_TEST(AllocatorBadInput, DonatingFramesTwiceIsEfault) {
  this->expect_rejected(Status::BadAddress,
                        [&] { return this->allocator.add_free_range(this->pool.base(), 8); });
  this->expect_rejected(Status::BadAddress,
                        [&] { return this->allocator.add_free_range(this->pool.end() - 2, 4); });
}

TYPED_TEST(AllocatorBadInput, BatchWithOneBadFrameFreesNothing) {
  const Pfn second = this->allocator.allocate({.count = 1}).value();
  const Pfn batch[] = {this->live, second, this->pool.base()};  // the last is reserved
  this->expect_rejected(Status::BadAddress, [&] { return this->allocator.free_batch(batch); });
  const Pfn twice[] = {this->live, second, this->live};
  this->expect_rejected(Status::NotFound, [&] { return this->allocator.free_batch(twice); });
  const Pfn good[] = {this->live, second};
  EXPECT_EQ(this->allocator.free_batch(good), Status::Ok);
}

// Orders exist only for the buddy.
TEST(BuddyBadInput, OrderOutOfRangeIsEinval) {
  FramePool pool(64, Pfn(0x800));
  mm::BuddyAllocator buddy(pool.table());
  ASSERT_EQ(buddy.add_free_range(pool.base(), 64), Status::Ok);
  const Pfn block = buddy.allocate_order(2, FrameOwner::Kernel).value();
  const AllocatorSnapshot before = snapshot(pool.table(), buddy);
  EXPECT_EQ(buddy.allocate_order(mm::kMaxOrder + 1, FrameOwner::Kernel).status(), Status::InvalidArgument);
  EXPECT_EQ(buddy.free_order(block, mm::kMaxOrder + 1), Status::InvalidArgument);
  EXPECT_EQ(buddy.free_order(block, 1), Status::InvalidArgument);  // wrong order for the block
  EXPECT_EQ(buddy.free(block, 3), Status::InvalidArgument);        // not a power of two
  EXPECT_EQ(buddy.free(block + 1, 1), Status::InvalidArgument);    // inside the block, not its head
  EXPECT_EQ(snapshot(pool.table(), buddy), before);
  EXPECT_EQ(buddy.free_order(block, 2), Status::Ok);
}

}  // namespace
