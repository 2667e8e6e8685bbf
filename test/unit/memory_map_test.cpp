#include <gtest/gtest.h>

#include <vector>

#include "mm/phys/buddy_allocator.hpp"
#include "mm/phys/memory_map.hpp"
#include "support/frame_pool.hpp"
#include "support/snapshot.hpp"

namespace {

using mm::MemoryKind;
using mm::MemoryMap;
using mm::MemoryRange;
using mm::PhysAddr;
using mm::Status;

MemoryRange range(mm::u64 base, mm::u64 length, MemoryKind kind) { return {PhysAddr(base), length, kind}; }

constexpr mm::u64 MiB = 1 << 20;

// The map QEMU's BIOS hands a 128 MiB guest, as Multiboot reports it.
std::vector<MemoryRange> qemu_128m() {
  return {
      range(0x0, 0x9FC00, MemoryKind::Free),
      range(0x9FC00, 0x400, MemoryKind::Reserved),
      range(0xF0000, 0x10000, MemoryKind::Reserved),
      range(0x100000, 0x7EE0000, MemoryKind::Free),
      range(0x7FE0000, 0x20000, MemoryKind::Reserved),
      range(0xFFFC0000, 0x40000, MemoryKind::Reserved),
  };
}

TEST(MemoryMap, QemuMapKeepsLowMemoryAndBiosAreasOutOfTheFreeSet) {
  MemoryMap map;
  ASSERT_EQ(map.ingest(qemu_128m()), Status::Ok);
  // Free is exactly 1 MiB .. 0x7FE0000.
  EXPECT_EQ(map.frames_of(MemoryKind::Free), (0x7FE0000 - 0x100000) / mm::kPageSize);
  EXPECT_EQ(map.first_usable(), mm::Pfn(0x100));
  EXPECT_EQ(map.end_usable(), mm::Pfn(0x7FE0));
  for (const MemoryRange& r : map.ranges()) {
    if (r.kind == MemoryKind::Free) {
      EXPECT_GE(r.base.value(), MiB);
    }
    EXPECT_TRUE(r.base.is_page_aligned());
    EXPECT_EQ(r.length % mm::kPageSize, 0u);
  }
}

TEST(MemoryMap, SortsUnorderedEntries) {
  std::vector<MemoryRange> raw = qemu_128m();
  std::swap(raw[0], raw[3]);
  std::swap(raw[1], raw[5]);
  MemoryMap map;
  ASSERT_EQ(map.ingest(raw), Status::Ok);
  mm::u64 last_end = 0;
  for (const MemoryRange& r : map.ranges()) {
    EXPECT_GE(r.base.value(), last_end);
    last_end = r.end();
  }
  EXPECT_EQ(map.frames_of(MemoryKind::Free), (0x7FE0000 - 0x100000) / mm::kPageSize);
}

TEST(MemoryMap, TrimsFreeInwardAndWidensReservedOutward) {
  MemoryMap map;
  const std::vector<MemoryRange> raw = {
      range(2 * MiB + 0x10, 4 * MiB - 0x20, MemoryKind::Free),  // 2 MiB+16 .. 6 MiB-16
      range(8 * MiB + 0x800, 0x100, MemoryKind::Reserved),      // inside one frame
      range(8 * MiB - 0x1000, 0x3000, MemoryKind::Free),        // covers that frame
  };
  ASSERT_EQ(map.ingest(raw), Status::Ok);
  const auto ranges = map.ranges();
  ASSERT_EQ(ranges.size(), 4u);
  EXPECT_EQ(ranges[0].base.value(), 2 * MiB + 0x1000);
  EXPECT_EQ(ranges[0].end(), 6 * MiB - 0x1000);
  EXPECT_EQ(ranges[1].kind, MemoryKind::Free);
  EXPECT_EQ(ranges[1].base.value(), 8 * MiB - 0x1000);
  EXPECT_EQ(ranges[2].kind, MemoryKind::Reserved);  // the whole frame 8 MiB .. 8 MiB+4K
  EXPECT_EQ(ranges[2].base.value(), 8 * MiB);
  EXPECT_EQ(ranges[2].length, mm::kPageSize);
  EXPECT_EQ(ranges[3].kind, MemoryKind::Free);
  EXPECT_EQ(ranges[3].end(), 8 * MiB + 0x2000);
}

TEST(MemoryMap, OverlapsResolveToTheMoreRestrictiveKind) {
  MemoryMap map;
  const std::vector<MemoryRange> raw = {
      range(16 * MiB, 16 * MiB, MemoryKind::Free),
      range(20 * MiB, 2 * MiB, MemoryKind::Kernel),
      range(21 * MiB, 2 * MiB, MemoryKind::Reclaimable),
      range(24 * MiB, 1 * MiB, MemoryKind::Device),
      range(24 * MiB, 4 * MiB, MemoryKind::Reserved),
  };
  ASSERT_EQ(map.ingest(raw), Status::Ok);
  struct Expect { mm::u64 base, end; MemoryKind kind; };
  const Expect want[] = {
      {16 * MiB, 20 * MiB, MemoryKind::Free},        {20 * MiB, 22 * MiB, MemoryKind::Kernel},
      {22 * MiB, 23 * MiB, MemoryKind::Reclaimable}, {23 * MiB, 24 * MiB, MemoryKind::Free},
      {24 * MiB, 25 * MiB, MemoryKind::Device},      {25 * MiB, 28 * MiB, MemoryKind::Reserved},
      {28 * MiB, 32 * MiB, MemoryKind::Free},
  };
  const auto ranges = map.ranges();
  ASSERT_EQ(ranges.size(), std::size(want));
  for (size_t i = 0; i < std::size(want); ++i) {
    EXPECT_EQ(ranges[i].base.value(), want[i].base) << i;
    EXPECT_EQ(ranges[i].end(), want[i].end) << i;
    EXPECT_EQ(ranges[i].kind, want[i].kind) << i;
  }
}

TEST(MemoryMap, HolesStayHoles) {
  MemoryMap map;
  ASSERT_EQ(map.ingest(std::vector{range(2 * MiB, MiB, MemoryKind::Free), range(8 * MiB, MiB, MemoryKind::Free)}),
            Status::Ok);
  ASSERT_EQ(map.ranges().size(), 2u);
  EXPECT_EQ(map.frames_of(MemoryKind::Free), 2 * MiB / mm::kPageSize);
}

TEST(MemoryMap, ZeroLengthEntriesAreIgnoredAndTopOfAddressSpaceIsClipped) {
  MemoryMap map;
  const std::vector<MemoryRange> raw = {
      range(4 * MiB, 0, MemoryKind::Reserved),
      range(2 * MiB, 4 * MiB, MemoryKind::Free),
      range(~mm::u64{0} - 0xFFF, 0x1000, MemoryKind::Free),  // ends exactly at 2^64
  };
  ASSERT_EQ(map.ingest(raw), Status::Ok);
  EXPECT_EQ(map.frames_of(MemoryKind::Free), 4 * MiB / mm::kPageSize);
  EXPECT_EQ(map.ranges().size(), 1u);
}

TEST(MemoryMap, WrappingEntryIsRejectedAndNamedAndMapUnchanged) {
  MemoryMap map;
  ASSERT_EQ(map.ingest(qemu_128m()), Status::Ok);
  const auto before = std::vector<MemoryRange>(map.ranges().begin(), map.ranges().end());
  const std::vector<MemoryRange> raw = {
      range(2 * MiB, MiB, MemoryKind::Free),
      range(~mm::u64{0} - 0xFFF, 0x2000, MemoryKind::Reserved),
  };
  EXPECT_EQ(map.ingest(raw), Status::InvalidArgument);
  EXPECT_EQ(map.rejected_entry(), 1u);
  ASSERT_EQ(map.ranges().size(), before.size());
  for (size_t i = 0; i < before.size(); ++i) {
    EXPECT_EQ(map.ranges()[i].base, before[i].base);
    EXPECT_EQ(map.ranges()[i].length, before[i].length);
    EXPECT_EQ(map.ranges()[i].kind, before[i].kind);
  }
}

TEST(MemoryMap, NoUsableRamIsOutOfMemoryAndMapUnchanged) {
  MemoryMap map;
  ASSERT_EQ(map.ingest(qemu_128m()), Status::Ok);
  const size_t before = map.ranges().size();
  // Only low memory and a reserved range: nothing usable at or above 1 MiB.
  EXPECT_EQ(map.ingest(std::vector{range(0, 0x9F000, MemoryKind::Free),
                                   range(2 * MiB, MiB, MemoryKind::Reserved)}),
            Status::OutOfMemory);
  EXPECT_EQ(map.ingest(std::vector<MemoryRange>{}), Status::OutOfMemory);
  // Free RAM entirely shadowed by a device window is not usable either.
  EXPECT_EQ(map.ingest(std::vector{range(2 * MiB, MiB, MemoryKind::Free), range(MiB, 4 * MiB, MemoryKind::Device)}),
            Status::OutOfMemory);
  EXPECT_EQ(map.ranges().size(), before);
  EXPECT_EQ(map.frames_of(MemoryKind::Free), (0x7FE0000 - 0x100000) / mm::kPageSize);
}

TEST(MemoryMap, TooManyEntriesIsE2big) {
  std::vector<MemoryRange> raw;
  for (size_t i = 0; i <= MemoryMap::kMaxInputRanges; ++i) {
    raw.push_back(range(2 * MiB + i * 2 * mm::kPageSize, mm::kPageSize, MemoryKind::Free));
  }
  MemoryMap map;
  EXPECT_EQ(map.ingest(raw), Status::TooBig);
  EXPECT_TRUE(map.ranges().empty());
  raw.pop_back();
  EXPECT_EQ(map.ingest(raw), Status::Ok);
  EXPECT_EQ(map.ranges().size(), MemoryMap::kMaxInputRanges);
}

TEST(MemoryMap, TakeForKernelCarvesFromTheTopOfFreeMemory) {
  MemoryMap map;
  ASSERT_EQ(map.ingest(qemu_128m()), Status::Ok);
  const mm::FrameCount free_before = map.frames_of(MemoryKind::Free);
  const mm::Result<mm::Pfn> first = map.take_for_kernel(16);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first.value(), mm::Pfn(0x7FE0 - 16));
  const mm::Result<mm::Pfn> second = map.take_for_kernel(4);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second.value(), mm::Pfn(0x7FE0 - 20));
  EXPECT_EQ(map.frames_of(MemoryKind::Free), free_before - 20);
  EXPECT_EQ(map.frames_of(MemoryKind::Kernel), 20u);
  EXPECT_EQ(map.take_for_kernel(1 << 30).status(), Status::OutOfMemory);
  EXPECT_EQ(map.take_for_kernel(0).status(), Status::InvalidArgument);
}

TEST(MemoryMap, SeedGivesExactlyTheFreeFramesToAnAllocator) {
  MemoryMap map;
  ASSERT_EQ(map.ingest(qemu_128m()), Status::Ok);
  pagelab::test::FramePool pool(map.end_usable() - map.first_usable(), map.first_usable());
  mm::BuddyAllocator buddy(pool.table());
  ASSERT_EQ(map.seed(buddy, pool.table()), Status::Ok);
  EXPECT_EQ(buddy.free_frames(), map.frames_of(MemoryKind::Free));
  // Seeding twice would give frames away twice: refused, nothing changes.
  const auto before = pagelab::test::snapshot(pool.table(), buddy);
  EXPECT_EQ(map.seed(buddy, pool.table()), Status::BadAddress);
  EXPECT_EQ(pagelab::test::snapshot(pool.table(), buddy), before);
}

}  // namespace

namespace {

TEST(MemoryMap, TakeForKernelFromTheBottomStaysInLowMemoryAndMerges) {
  MemoryMap map;
  ASSERT_EQ(map.ingest(qemu_128m()), Status::Ok);
  const mm::Result<mm::Pfn> a = map.take_for_kernel(2, MemoryMap::Placement::Bottom);
  const mm::Result<mm::Pfn> b = map.take_for_kernel(3, MemoryMap::Placement::Bottom);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a.value(), mm::Pfn(0x100));
  EXPECT_EQ(b.value(), mm::Pfn(0x102));
  size_t kernel_ranges = 0;
  for (const MemoryRange& r : map.ranges()) {
    kernel_ranges += r.kind == MemoryKind::Kernel ? 1 : 0;
  }
  EXPECT_EQ(kernel_ranges, 1u);  // the two carvings merged into one range
  EXPECT_EQ(map.frames_of(MemoryKind::Kernel), 5u);
  EXPECT_EQ(map.first_usable(), mm::Pfn(0x105));
}

TEST(MemoryMap, TakeForKernelOfAWholeRangeMergesWithKernelNeighbours) {
  MemoryMap map;
  ASSERT_EQ(map.ingest(std::vector{range(2 * MiB, MiB, MemoryKind::Kernel), range(3 * MiB, MiB, MemoryKind::Free),
                                   range(4 * MiB, MiB, MemoryKind::Kernel), range(8 * MiB, MiB, MemoryKind::Free)}),
            Status::Ok);
  ASSERT_TRUE(map.take_for_kernel(MiB / mm::kPageSize, MemoryMap::Placement::Bottom).ok());
  ASSERT_EQ(map.ranges().size(), 2u);
  EXPECT_EQ(map.ranges()[0].kind, MemoryKind::Kernel);
  EXPECT_EQ(map.ranges()[0].length, 3 * MiB);
}

}  // namespace
