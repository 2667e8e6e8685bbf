#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <vector>

#include "mm/paging/page_tables.hpp"
#include "mm/phys/buddy_allocator.hpp"
#include "support/frame_pool.hpp"
#include "support/reference_walker.hpp"

namespace {

using mm::PageSize;
using mm::PhysAddr;
using mm::Pte;
using mm::Status;
using mm::VirtAddr;
using pagelab::HostPlatform;
using pagelab::test::FramePool;
using pagelab::test::reference_walk;
using Tables = mm::PageTables<HostPlatform>;
using Batch = mm::TlbBatch<HostPlatform>;

constexpr mm::u64 K4 = 4096, M2 = 2 << 20, G1 = mm::u64{1} << 30;
constexpr mm::u64 kUserRw = mm::pte::kWritable | mm::pte::kUser;

struct PageTablesTest : ::testing::Test {
  static constexpr mm::FrameCount kFrames = 1024;  // RAM for page tables (and nothing else)
  FramePool pool{kFrames, mm::Pfn(0x1000), 1, /*with_ram=*/true};
  mm::BuddyAllocator buddy{pool.table()};
  std::unique_ptr<mm::PhysicalMemory<HostPlatform>> pmm;
  std::unique_ptr<Tables> tables;

  void SetUp() override {
    HostPlatform::bind_current_thread(0);
    ASSERT_EQ(buddy.add_free_range(pool.base(), kFrames), Status::Ok);
    pmm = std::make_unique<mm::PhysicalMemory<HostPlatform>>(pool.platform(), pool.table(), buddy,
                                                            mm::PhysicalMemoryConfig{.poison_freed = true});
    tables = std::make_unique<Tables>(pool.platform(), *pmm);
    ASSERT_EQ(tables->create(), Status::Ok);
  }
  void TearDown() override {
    Batch batch(pool.platform(), *pmm);
    ASSERT_EQ(tables->unmap(VirtAddr(0), mm::u64{1} << 47, batch, [](VirtAddr, Pte, PageSize) {}), Status::Ok);
    tables->destroy(batch);
    batch.flush();
    pmm->drain_all_caches();
    EXPECT_EQ(buddy.free_frames(), kFrames) << "page-table frames leaked";
  }

  pagelab::test::WalkResult walk(mm::u64 va) {
    return reference_walk(tables->root().value(), va, [&](mm::u64 pa) {
      mm::u64 v;
      std::memcpy(&v, pool.platform().direct_map(PhysAddr(pa)), 8);
      return v;
    });
  }
  Status unmap(mm::u64 va, mm::u64 bytes, std::vector<std::pair<mm::u64, PageSize>>* removed = nullptr) {
    Batch batch(pool.platform(), *pmm);
    const Status s = tables->unmap(VirtAddr(va), bytes, batch, [&](VirtAddr page, Pte, PageSize size) {
      if (removed) removed->push_back({page.value(), size});
    });
    batch.flush();
    return s;
  }
};

TEST_F(PageTablesTest, MapQueryUnmapOneSmallPage) {
  ASSERT_EQ(tables->map(VirtAddr(0x400000), PhysAddr(0x7000000), 1, PageSize::Size4K, kUserRw), Status::Ok);
  EXPECT_EQ(tables->table_frames(), 4u);  // root, PDPT, PD, PT
  const auto w = walk(0x400123);
  ASSERT_TRUE(w.present);
  EXPECT_EQ(w.physical, 0x7000123u);
  EXPECT_TRUE(w.writable && w.user && !w.no_execute);
  const auto t = tables->query(VirtAddr(0x400123));
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t.value().physical, PhysAddr(0x7000123));
  EXPECT_EQ(t.value().size, PageSize::Size4K);
  EXPECT_FALSE(walk(0x401000).present);
  EXPECT_EQ(tables->query(VirtAddr(0x401000)).status(), Status::NotFound);
  ASSERT_EQ(unmap(0x400000, K4), Status::Ok);
  EXPECT_FALSE(walk(0x400000).present);
  EXPECT_EQ(tables->table_frames(), 1u);  // the empty PT, PD and PDPT were freed
}

TEST_F(PageTablesTest, LargePagesMapAndTranslate) {
  ASSERT_EQ(tables->map(VirtAddr(0x40000000), PhysAddr(0x200000000), 1, PageSize::Size1G, mm::pte::kWritable),
            Status::Ok);
  ASSERT_EQ(tables->map(VirtAddr(0x600000), PhysAddr(0x3400000), 2, PageSize::Size2M, mm::pte::kNoExecute),
            Status::Ok);
  auto g = walk(0x40000000 + 0x12345678);
  ASSERT_TRUE(g.present);
  EXPECT_EQ(g.page_bytes, G1);
  EXPECT_EQ(g.physical, 0x200000000u + 0x12345678);
  EXPECT_FALSE(g.user);
  auto m = walk(0x600000 + M2 + 5);
  ASSERT_TRUE(m.present);
  EXPECT_EQ(m.page_bytes, M2);
  EXPECT_EQ(m.physical, 0x3400000u + M2 + 5);
  EXPECT_TRUE(m.no_execute);
  EXPECT_FALSE(m.writable);
  EXPECT_FALSE(walk(0x600000 + 2 * M2).present);
}

TEST_F(PageTablesTest, PartialUnmapSplitsALargePage) {
  ASSERT_EQ(tables->map(VirtAddr(0x800000), PhysAddr(0x10000000), 1, PageSize::Size2M, kUserRw), Status::Ok);
  std::vector<std::pair<mm::u64, PageSize>> removed;
  ASSERT_EQ(unmap(0x800000 + 3 * K4, 2 * K4, &removed), Status::Ok);
  ASSERT_EQ(removed.size(), 2u);
  EXPECT_EQ(removed[0], std::make_pair(mm::u64{0x800000 + 3 * K4}, PageSize::Size4K));
  for (mm::u64 page = 0; page < 512; ++page) {
    const auto w = walk(0x800000 + page * K4);
    const bool gone = page == 3 || page == 4;
    ASSERT_EQ(w.present, !gone) << page;
    if (!gone) {
      EXPECT_EQ(w.physical, 0x10000000 + page * K4);
      EXPECT_EQ(w.page_bytes, K4);
      EXPECT_TRUE(w.writable && w.user);
    }
  }
}

TEST_F(PageTablesTest, ProtectingPartOfAGigabytePageSplitsTwice) {
  ASSERT_EQ(tables->map(VirtAddr(G1), PhysAddr(4 * G1), 1, PageSize::Size1G, kUserRw), Status::Ok);
  Batch batch(pool.platform(), *pmm);
  // Make one 4 KiB page in the middle read-only.
  const mm::u64 target = G1 + 5 * M2 + 7 * K4;
  ASSERT_EQ(tables->update(VirtAddr(target), K4, batch, [](VirtAddr, Pte old, PageSize) {
    return old.without(mm::pte::kWritable);
  }), Status::Ok);
  batch.flush();
  EXPECT_FALSE(walk(target).writable);
  EXPECT_EQ(walk(target).page_bytes, K4);
  EXPECT_EQ(walk(target).physical, 4 * G1 + 5 * M2 + 7 * K4);
  EXPECT_TRUE(walk(target + K4).writable);
  EXPECT_EQ(walk(target + K4).page_bytes, K4);
  EXPECT_EQ(walk(G1).page_bytes, M2);        // the other 2 MiB pages stay large
  EXPECT_EQ(walk(G1 + 6 * M2).page_bytes, M2);
  EXPECT_EQ(walk(G1 + 6 * M2 + 99).physical, 4 * G1 + 6 * M2 + 99);
}

TEST_F(PageTablesTest, BadMapsChangeNothing) {
  ASSERT_EQ(tables->map(VirtAddr(0x400000), PhysAddr(0x7000000), 4, PageSize::Size4K, kUserRw), Status::Ok);
  const mm::u64 tables_before = tables->table_frames();
  EXPECT_EQ(tables->map(VirtAddr(0x3FE000), PhysAddr(0x8000000), 4, PageSize::Size4K, kUserRw),
            Status::AlreadyExists);  // overlaps the first two pages
  EXPECT_FALSE(walk(0x3FE000).present);
  EXPECT_EQ(tables->map(VirtAddr(0x400000), PhysAddr(0x8000000), 1, PageSize::Size2M, kUserRw),
            Status::AlreadyExists);  // a large page over existing small ones
  EXPECT_EQ(tables->map(VirtAddr(0x400800), PhysAddr(0x8000000), 1, PageSize::Size4K, kUserRw),
            Status::InvalidArgument);  // misaligned virtual
  EXPECT_EQ(tables->map(VirtAddr(0x600000), PhysAddr(0x8001000), 1, PageSize::Size2M, kUserRw),
            Status::InvalidArgument);  // misaligned physical for 2 MiB
  EXPECT_EQ(tables->map(VirtAddr(0x0000800000000000), PhysAddr(0x8000000), 1, PageSize::Size4K, kUserRw),
            Status::InvalidArgument);  // non-canonical
  EXPECT_EQ(tables->map(VirtAddr(0x00007FFFFFFFF000), PhysAddr(0x8000000), 2, PageSize::Size4K, kUserRw),
            Status::InvalidArgument);  // runs off the lower half
  EXPECT_EQ(tables->map(VirtAddr(0x500000), PhysAddr(0x8000000), 0, PageSize::Size4K, kUserRw),
            Status::InvalidArgument);  // zero pages
  EXPECT_EQ(tables->table_frames(), tables_before);
  EXPECT_EQ(walk(0x400000).physical, 0x7000000u);
  EXPECT_EQ(unmap(0x400800, K4), Status::InvalidArgument);
  EXPECT_TRUE(walk(0x400000).present);
}

TEST_F(PageTablesTest, OutOfTableFramesRollsBack) {
  // Take every free frame but two: a map needing three new tables fails.
  std::vector<PhysAddr> hog;
  while (buddy.free_frames() + pmm->stats().cached > 2) {
    hog.push_back(pmm->allocate_frame(mm::FrameOwner::Kernel).value());
  }
  const mm::u64 before = tables->table_frames();
  EXPECT_EQ(tables->map(VirtAddr(0x40000000000), PhysAddr(0x7000000), 1, PageSize::Size4K, kUserRw),
            Status::OutOfMemory);
  EXPECT_EQ(tables->table_frames(), before);
  EXPECT_FALSE(walk(0x40000000000).present);
  for (PhysAddr f : hog) ASSERT_EQ(pmm->free_frame(f), Status::Ok);
}

TEST_F(PageTablesTest, UpperHalfIsSharedFromATemplate) {
  ASSERT_EQ(tables->map(VirtAddr(0xFFFF800000200000), PhysAddr(0x200000), 1, PageSize::Size2M,
                        mm::pte::kWritable | mm::pte::kGlobal),
            Status::Ok);
  Tables other(pool.platform(), *pmm);
  ASSERT_EQ(other.create(tables.get()), Status::Ok);
  auto w = reference_walk(other.root().value(), 0xFFFF800000200042, [&](mm::u64 pa) {
    mm::u64 v;
    std::memcpy(&v, pool.platform().direct_map(PhysAddr(pa)), 8);
    return v;
  });
  ASSERT_TRUE(w.present);
  EXPECT_EQ(w.physical, 0x200042u);
  int leaves = 0;
  other.for_each_leaf(VirtAddr(0xFFFF800000000000), mm::u64{1} << 40, [&](VirtAddr page, Pte leaf, PageSize size) {
    ++leaves;
    EXPECT_EQ(page.value(), 0xFFFF800000200000u);
    EXPECT_EQ(size, PageSize::Size2M);
    EXPECT_TRUE(leaf.has(mm::pte::kGlobal));
  });
  EXPECT_EQ(leaves, 1);
  Batch batch(pool.platform(), *pmm);
  other.destroy(batch);  // frees its own root, not the shared kernel tables
  batch.flush();
  EXPECT_TRUE(walk(0xFFFF800000200000).present);
  ASSERT_EQ(unmap(0xFFFF800000200000, M2), Status::Ok);
}

TEST_F(PageTablesTest, BatchInvalidatesPageByPageThenFullyPastItsLimit) {
  ASSERT_EQ(tables->map(VirtAddr(0x400000), PhysAddr(0x7000000), 40, PageSize::Size4K, kUserRw), Status::Ok);
  // A page elsewhere under the same top-level entry keeps that entry (whose
  // removal would be a flush of everything on every CPU) in place.
  ASSERT_EQ(tables->map(VirtAddr(0x40000000), PhysAddr(0x7100000), 1, PageSize::Size4K, kUserRw), Status::Ok);
  const auto& counters = pool.platform().counters();
  const mm::u64 pages_before = counters.page_invalidations.load();
  const mm::u64 full_before = counters.pcid_flushes.load();
  ASSERT_EQ(unmap(0x400000, 8 * K4), Status::Ok);
  EXPECT_EQ(counters.page_invalidations.load() - pages_before, 8u);
  EXPECT_EQ(counters.pcid_flushes.load(), full_before);
  ASSERT_EQ(unmap(0x400000 + 8 * K4, 32 * K4), Status::Ok);  // 32 pages + the freed tables: past 32 items
  EXPECT_EQ(counters.pcid_flushes.load() - full_before, 1u);
  const mm::u64 all_before = counters.full_flushes.load();
  ASSERT_EQ(unmap(0x40000000, K4), Status::Ok);  // the last page under the top-level entry
  EXPECT_EQ(counters.full_flushes.load() - all_before, 1u);
}

}  // namespace
