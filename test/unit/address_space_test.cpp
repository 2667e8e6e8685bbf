#include <gtest/gtest.h>

#include "support/vm_world.hpp"

namespace {

using mm::Access;
using mm::AccessMode;
using mm::FaultOutcome;
using mm::MapRequest;
using mm::Prot;
using mm::Status;
using mm::VirtAddr;
using namespace pagelab::test;

constexpr mm::u64 K4 = 4096;
constexpr mm::u64 kBase = 0x10000000;

MapRequest anon(mm::u64 address, mm::u64 length, Prot prot = Prot::ReadWrite) {
  return MapRequest{.address = VirtAddr(address), .length = length, .prot = prot};
}

struct AddressSpaceTest : ::testing::Test {
  VmWorld world;
  std::unique_ptr<Space> space = world.new_space();
  mm::FrameCount free_at_start = 0;

  void SetUp() override { free_at_start = world.free_frames(); }
  void TearDown() override {
    space->destroy();
    EXPECT_EQ(world.free_frames(), free_at_start + 1) << "frames leaked (the +1 is the space's root table)";
    EXPECT_EQ(world.pmm().stats().committed, 0u) << "commitments leaked";
    EXPECT_EQ(world.vm().live_regions(), 0u);
  }
  FaultOutcome fault(mm::u64 va, Access access) { return space->handle_fault(VirtAddr(va), access, AccessMode::User); }
};

TEST_F(AddressSpaceTest, DemandZeroReadMapsTheZeroFrameThenAWriteGetsItsOwn) {
  ASSERT_EQ(space->map(anon(kBase, 4 * K4)), Status::Ok);
  EXPECT_FALSE(world.walk(*space, kBase).present);
  EXPECT_EQ(fault(kBase + 8, Access::Read), FaultOutcome::MapBackingReadOnly);
  auto w = world.walk(*space, kBase);
  ASSERT_TRUE(w.present);
  EXPECT_EQ(w.physical & ~0xFFFull, world.vm().zero_frame().value());
  EXPECT_FALSE(w.writable);
  EXPECT_TRUE(w.user);
  EXPECT_TRUE(w.no_execute);
  EXPECT_EQ(world.load(w.physical), 0u);
  EXPECT_EQ(fault(kBase + 8, Access::Write), FaultOutcome::MapBacking);
  w = world.walk(*space, kBase);
  EXPECT_TRUE(w.writable);
  EXPECT_NE(w.physical & ~0xFFFull, world.vm().zero_frame().value());
  EXPECT_EQ(world.load(w.physical), 0u);  // zeroed, never the poison of its last owner
  EXPECT_EQ(fault(kBase + 8, Access::Write), FaultOutcome::Complete);  // already allowed: a stale TLB entry
  EXPECT_EQ(fault(kBase + K4, Access::Write), FaultOutcome::MapBacking);
}

TEST_F(AddressSpaceTest, AccessesTheRegionForbidsAreSegv) {
  ASSERT_EQ(space->map(anon(kBase, K4, Prot::Read)), Status::Ok);
  EXPECT_EQ(fault(kBase, Access::Write), FaultOutcome::Segv);
  EXPECT_EQ(fault(kBase, Access::Execute), FaultOutcome::Segv);
  EXPECT_EQ(fault(kBase, Access::Read), FaultOutcome::MapBackingReadOnly);
  EXPECT_EQ(fault(kBase + K4, Access::Read), FaultOutcome::Segv);       // no region
  EXPECT_EQ(fault(0x1000, Access::Read), FaultOutcome::Segv);            // below user space
  EXPECT_EQ(fault(0xFFFF800000000000, Access::Read), FaultOutcome::Segv);  // the kernel half, from user mode
  ASSERT_EQ(space->map(anon(kBase + 2 * K4, K4, Prot::None)), Status::Ok);
  EXPECT_EQ(fault(kBase + 2 * K4, Access::Read), FaultOutcome::Segv);
}

TEST_F(AddressSpaceTest, MapErrorsChangeNothing) {
  ASSERT_EQ(space->map(anon(kBase, 4 * K4)), Status::Ok);
  EXPECT_EQ(space->map(anon(kBase + K4, K4)), Status::AlreadyExists);
  EXPECT_EQ(space->map(anon(kBase - K4, 2 * K4)), Status::AlreadyExists);
  EXPECT_EQ(space->map(anon(kBase + 5 * K4 + 1, K4)), Status::InvalidArgument);  // misaligned
  EXPECT_EQ(space->map(anon(kBase + 5 * K4, 0)), Status::InvalidArgument);       // zero length
  EXPECT_EQ(space->map(anon(kBase + 5 * K4, 100)), Status::InvalidArgument);     // partial page
  EXPECT_EQ(space->map(anon(0x200000, K4)), Status::InvalidArgument);           // below 4 MiB
  EXPECT_EQ(space->map(anon(0x00007FFFFFFFF000, 2 * K4)), Status::InvalidArgument);  // past the lower half
  EXPECT_EQ(space->map(anon(0xFFFF800000000000, K4)), Status::InvalidArgument);  // the kernel half
  int regions = 0;
  space->for_each_region([&](const mm::Region& r) {
    ++regions;
    EXPECT_EQ(r.base, VirtAddr(kBase));
    EXPECT_EQ(r.size, 4 * K4);
  });
  EXPECT_EQ(regions, 1);
}

TEST_F(AddressSpaceTest, ReplaceUnmapsWhatWasThere) {
  ASSERT_EQ(space->map(anon(kBase, 4 * K4)), Status::Ok);
  ASSERT_EQ(space->write_u64(VirtAddr(kBase + K4), 42), Status::Ok);
  MapRequest r = anon(kBase + K4, K4, Prot::Read);
  r.fixed = mm::MapFixed::Replace;
  ASSERT_EQ(space->map(r), Status::Ok);
  EXPECT_EQ(space->read_u64(VirtAddr(kBase + K4)).value(), 0u);  // a fresh demand-zero page
  EXPECT_EQ(space->stats().regions, 3u);
}

TEST_F(AddressSpaceTest, UnmapSplitsAndMergesRegions) {
  ASSERT_EQ(space->map(anon(kBase, 8 * K4)), Status::Ok);
  ASSERT_EQ(space->write_u64(VirtAddr(kBase + 3 * K4), 7), Status::Ok);
  ASSERT_EQ(space->unmap(VirtAddr(kBase + 2 * K4), 2 * K4), Status::Ok);
  EXPECT_EQ(space->stats().regions, 2u);
  EXPECT_EQ(fault(kBase + 3 * K4, Access::Read), FaultOutcome::Segv);
  EXPECT_FALSE(world.walk(*space, kBase + 3 * K4).present);
  ASSERT_EQ(space->map(anon(kBase + 2 * K4, 2 * K4)), Status::Ok);
  EXPECT_EQ(space->stats().regions, 1u);  // merged back with both neighbours
  EXPECT_EQ(space->read_u64(VirtAddr(kBase + 3 * K4)).value(), 0u);
  EXPECT_EQ(space->unmap(VirtAddr(kBase + 100 * K4), K4), Status::Ok);  // a hole: fine
  EXPECT_EQ(space->unmap(VirtAddr(kBase), 0), Status::InvalidArgument);
  EXPECT_TRUE(space->check_regions());
}

TEST_F(AddressSpaceTest, ProtectChangesEntriesAndRefusesHoles) {
  ASSERT_EQ(space->map(anon(kBase, 4 * K4)), Status::Ok);
  ASSERT_EQ(space->write_u64(VirtAddr(kBase), 1), Status::Ok);
  ASSERT_EQ(space->protect(VirtAddr(kBase), K4, Prot::Read), Status::Ok);
  EXPECT_FALSE(world.walk(*space, kBase).writable);
  EXPECT_EQ(fault(kBase, Access::Write), FaultOutcome::Segv);
  EXPECT_EQ(space->stats().regions, 2u);
  EXPECT_EQ(space->protect(VirtAddr(kBase + 3 * K4), 2 * K4, Prot::Read), Status::NotFound);
  EXPECT_EQ(space->stats().regions, 2u);  // the failed protect split nothing
  ASSERT_EQ(space->protect(VirtAddr(kBase), K4, Prot::None), Status::Ok);
  EXPECT_FALSE(world.walk(*space, kBase).present);  // parked: PROT_NONE keeps the frame
  EXPECT_EQ(fault(kBase, Access::Read), FaultOutcome::Segv);
  ASSERT_EQ(space->protect(VirtAddr(kBase), K4, Prot::ReadWrite), Status::Ok);
  EXPECT_EQ(space->read_u64(VirtAddr(kBase)).value(), 1u);  // the data survived PROT_NONE
  EXPECT_TRUE(world.walk(*space, kBase).writable);
  EXPECT_EQ(space->stats().regions, 1u);
}

TEST_F(AddressSpaceTest, PinnedPagesCannotBeUnmapped) {
  ASSERT_EQ(space->map(anon(kBase, 4 * K4)), Status::Ok);
  ASSERT_EQ(space->pin(VirtAddr(kBase + K4), K4), Status::Ok);
  EXPECT_TRUE(world.walk(*space, kBase + K4).present);  // pinning populates
  EXPECT_EQ(space->unmap(VirtAddr(kBase), 4 * K4), Status::Busy);
  EXPECT_EQ(space->stats().regions, 3u);
  MapRequest r = anon(kBase, 2 * K4);
  r.fixed = mm::MapFixed::Replace;
  EXPECT_EQ(space->map(r), Status::Busy);
  EXPECT_EQ(space->pin(VirtAddr(kBase + 10 * K4), K4), Status::NotFound);
  EXPECT_EQ(space->unpin(VirtAddr(kBase), K4), Status::InvalidArgument);  // not pinned
  ASSERT_EQ(space->unpin(VirtAddr(kBase + K4), K4), Status::Ok);
  EXPECT_EQ(space->stats().regions, 1u);
  EXPECT_EQ(space->unmap(VirtAddr(kBase), 4 * K4), Status::Ok);
}

TEST_F(AddressSpaceTest, StackHasAGuardPageBelowIt) {
  MapRequest r = anon(kBase, 4 * K4);
  r.kind = mm::RegionKind::Stack;
  ASSERT_EQ(space->map(r), Status::Ok);
  EXPECT_EQ(fault(kBase + 3 * K4, Access::Write), FaultOutcome::MapBacking);
  EXPECT_EQ(fault(kBase - 8, Access::Write), FaultOutcome::Segv);  // the overflow hits the guard
  EXPECT_EQ(space->map(anon(kBase - K4, K4)), Status::AlreadyExists);
  EXPECT_EQ(space->stats().regions, 2u);
  ASSERT_EQ(space->unmap(VirtAddr(kBase), 4 * K4), Status::Ok);
  EXPECT_EQ(space->stats().regions, 0u);  // the guard went with its stack
}

TEST_F(AddressSpaceTest, AllocFindsFreeRangesFromAHint) {
  ASSERT_EQ(space->map(anon(kBase, 4 * K4)), Status::Ok);
  const mm::Result<VirtAddr> a = space->alloc(anon(kBase, 2 * K4));
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a.value(), VirtAddr(kBase + 4 * K4));
  const mm::Result<VirtAddr> b = space->alloc(anon(0, K4));
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b.value(), VirtAddr(mm::kUserSpaceStart));
  EXPECT_EQ(space->alloc(anon(0, mm::u64{1} << 47)).status(), Status::OutOfMemory);
  EXPECT_EQ(space->alloc(anon(0, 0)).status(), Status::InvalidArgument);
}

TEST_F(AddressSpaceTest, ForkSharesCopyOnWriteAndCopiesOnlyWhileShared) {
  ASSERT_EQ(space->map(anon(kBase, 4 * K4)), Status::Ok);
  ASSERT_EQ(space->write_u64(VirtAddr(kBase), 111), Status::Ok);
  ASSERT_EQ(space->write_u64(VirtAddr(kBase + K4), 222), Status::Ok);
  auto child = world.new_space();
  ASSERT_EQ(space->fork(*child), Status::Ok);
  EXPECT_EQ(world.pmm().stats().committed, 2u);  // one per shared frame
  EXPECT_FALSE(world.walk(*space, kBase).writable);
  EXPECT_EQ(world.walk(*space, kBase).physical, world.walk(*child, kBase).physical);
  // The child writes: a copy, and the parent keeps the original.
  EXPECT_EQ(child->handle_fault(VirtAddr(kBase), Access::Write, AccessMode::User), FaultOutcome::CopyBacking);
  ASSERT_EQ(child->write_u64(VirtAddr(kBase), 333), Status::Ok);
  EXPECT_EQ(space->read_u64(VirtAddr(kBase)).value(), 111u);
  EXPECT_EQ(child->read_u64(VirtAddr(kBase)).value(), 333u);
  EXPECT_EQ(world.pmm().stats().committed, 1u);
  // The parent is now the frame's only user: it takes it back in place.
  const mm::u64 before = world.walk(*space, kBase).physical;
  EXPECT_EQ(fault(kBase, Access::Write), FaultOutcome::MapBacking);
  EXPECT_EQ(world.walk(*space, kBase).physical, before);
  // The other page: the child goes away, and the parent's write is in place.
  child->destroy();
  EXPECT_EQ(world.pmm().stats().committed, 0u);
  EXPECT_EQ(fault(kBase + K4, Access::Write), FaultOutcome::MapBacking);
  EXPECT_EQ(space->read_u64(VirtAddr(kBase + K4)).value(), 222u);
}

TEST_F(AddressSpaceTest, SharedRegionsShareFramesAcrossFork) {
  MapRequest r = anon(kBase, K4);
  r.fork = mm::ForkPolicy::Shared;
  ASSERT_EQ(space->map(r), Status::Ok);
  ASSERT_EQ(space->write_u64(VirtAddr(kBase), 5), Status::Ok);
  auto child = world.new_space();
  ASSERT_EQ(space->fork(*child), Status::Ok);
  ASSERT_EQ(child->write_u64(VirtAddr(kBase), 6), Status::Ok);
  EXPECT_EQ(space->read_u64(VirtAddr(kBase)).value(), 6u);
  EXPECT_EQ(world.pmm().stats().committed, 0u);
  child->destroy();
}

TEST_F(AddressSpaceTest, PhysicalRegionsMapTheirFramesAndNeverFreeThem) {
  const mm::PhysAddr device = world.pmm().allocate_run({.count = 2}).value();
  MapRequest r{.address = VirtAddr(kBase), .length = 2 * K4, .prot = Prot::ReadWrite,
               .kind = mm::RegionKind::Physical, .physical = device, .populate = true};
  ASSERT_EQ(space->map(r), Status::Ok);
  EXPECT_EQ(world.walk(*space, kBase + K4 + 16).physical, device.value() + K4 + 16);
  ASSERT_EQ(space->unmap(VirtAddr(kBase), 2 * K4), Status::Ok);
  EXPECT_EQ(world.pmm().free_run(device, 2), Status::Ok);  // still ours to free: the space never took it
}

TEST(AddressSpaceLifecycle, ThousandsOfCreateForkDestroyCyclesLeakNothing) {
  VmWorld world;
  const mm::FrameCount free_at_start = world.free_frames();
  for (int cycle = 0; cycle < 2000; ++cycle) {
    auto parent = world.new_space();
    ASSERT_EQ(parent->map(anon(kBase, 8 * K4)), Status::Ok);
    ASSERT_EQ(parent->write_u64(VirtAddr(kBase + (cycle % 8) * K4), cycle), Status::Ok);
    auto child = world.new_space();
    ASSERT_EQ(parent->fork(*child), Status::Ok);
    ASSERT_EQ(child->write_u64(VirtAddr(kBase + (cycle % 8) * K4), cycle + 1), Status::Ok);
    ASSERT_EQ(parent->read_u64(VirtAddr(kBase + (cycle % 8) * K4)).value(), static_cast<mm::u64>(cycle));
    (cycle % 2 ? parent : child)->destroy();
    (cycle % 2 ? child : parent)->destroy();
  }
  EXPECT_EQ(world.free_frames(), free_at_start);
  EXPECT_EQ(world.pmm().stats().committed, 0u);
  EXPECT_EQ(world.vm().live_regions(), 0u);
}

}  // namespace

namespace {

TEST(AddressSpaceLargePages, DeviceRegionsMapTwoMegabytePagesWhereAlignmentAllows) {
  using namespace pagelab::test;
  VmWorld world(8192);  // 32 MiB of frames from 0x1000000
  auto space = world.new_space();
  constexpr mm::u64 M2 = 2 << 20;
  // 4 MiB + 8 KiB of "device" at a 2 MiB-aligned physical address; the
  // mapping starts 8 KiB before a 2 MiB boundary.
  const mm::PhysAddr device(0x2000000 - 0x2000);
  const mm::u64 va = 0x40000000 - 0x2000;
  ASSERT_EQ(space->map(mm::MapRequest{.address = mm::VirtAddr(va), .length = 2 * M2 + 0x2000,
                                      .prot = mm::Prot::ReadWrite, .kind = mm::RegionKind::Physical,
                                      .physical = device, .populate = true}),
            mm::Status::Ok);
  EXPECT_EQ(world.walk(*space, va).page_bytes, 4096u);        // the unaligned head: 4 KiB pages
  EXPECT_EQ(world.walk(*space, 0x40000000).page_bytes, M2);   // then whole 2 MiB pages
  EXPECT_EQ(world.walk(*space, 0x40000000 + M2 + 5).physical, 0x2000000 + M2 + 5);
  // Protecting part of a large page splits it; the rest keeps its rights.
  ASSERT_EQ(space->protect(mm::VirtAddr(0x40000000 + 0x3000), 0x1000, mm::Prot::Read), mm::Status::Ok);
  EXPECT_FALSE(world.walk(*space, 0x40003000).writable);
  EXPECT_EQ(world.walk(*space, 0x40003000).page_bytes, 4096u);
  EXPECT_TRUE(world.walk(*space, 0x40004000).writable);
  EXPECT_EQ(world.walk(*space, 0x40000000 + M2).page_bytes, M2);
  auto child = world.new_space();
  ASSERT_EQ(space->fork(*child), mm::Status::Ok);
  EXPECT_EQ(world.walk(*child, 0x40000000 + M2).page_bytes, M2);  // fork shares the large page as it is
  child->destroy();
  space->destroy();
}

}  // namespace
