// RegionSet (find, first_ending_after, find_free with hint, alignment and
// wrap-around) against brute force, and the region editing of AddressSpace
// (merge, split, guard regions) seen through for_each_region and
// check_regions.
#include <gtest/gtest.h>

#include <cstdlib>
#include <deque>
#include <optional>
#include <vector>

#include "mm/vm/region_set.hpp"
#include "support/rng.hpp"
#include "support/sanitized.hpp"
#include "support/vm_world.hpp"

namespace {

using mm::Prot;
using mm::Region;
using mm::RegionKind;
using mm::Status;
using mm::u64;
using mm::VirtAddr;
using pagelab::test::Rng;
using pagelab::test::Space;
using pagelab::test::VmWorld;

constexpr u64 K4 = 4096;

// ---- RegionSet against brute force ------------------------------------------

// A random set of disjoint regions over [0, kUniverse) (in pages from
// kOrigin), the same ranges kept as plain intervals.
constexpr u64 kOrigin = u64{1} << 30;
constexpr u64 kUniverse = 256;  // pages

struct Interval {
  u64 base, end;
};

struct RandomSet {
  std::deque<Region> storage;  // stable addresses
  mm::RegionSet set;
  std::vector<Interval> intervals;  // sorted

  RandomSet(Rng& rng, int density_percent) {
    u64 page = 0;
    while (page < kUniverse) {
      if (rng.percent(density_percent)) {
        const u64 pages = std::min<u64>(rng.range(1, 12), kUniverse - page);
        Region& r = storage.emplace_back();
        r.base = VirtAddr(kOrigin + page * K4);
        r.size = pages * K4;
        set.insert(&r);
        intervals.push_back({r.base.value(), r.end().value()});
        page += pages;
      }
      page += rng.range(0, 6);  // adjacent regions too
    }
  }

  const Interval* containing(u64 va) const {
    for (const Interval& i : intervals) {
      if (i.base <= va && va < i.end) return &i;
    }
    return nullptr;
  }
  const Interval* first_ending_after(u64 va) const {
    for (const Interval& i : intervals) {
      if (i.end > va) return &i;
    }
    return nullptr;
  }
  bool free(u64 lo, u64 hi) const {
    for (const Interval& i : intervals) {
      if (i.base < hi && lo < i.end) return false;
    }
    return true;
  }
  // The lowest `alignment`-aligned c >= from with [c, c + size) free and
  // inside [.., hi), stepping one alignment at a time.
  std::optional<u64> lowest_fit(u64 from, u64 size, u64 alignment, u64 hi) const {
    for (u64 c = mm::align_up(from, alignment); c < hi && hi - c >= size; c += alignment) {
      if (free(c, c + size)) return c;
    }
    return std::nullopt;
  }
  std::optional<u64> brute_find_free(u64 size, u64 alignment, u64 hint, u64 lo, u64 hi) const {
    const u64 start = hint < lo || hint >= hi ? lo : hint;
    if (auto c = lowest_fit(start, size, alignment, hi)) return c;
    if (start != lo) return lowest_fit(lo, size, alignment, hi);
    return std::nullopt;
  }
};

u64 random_address(Rng& rng) {
  // Mostly page-aligned, now and then not; a little outside the universe.
  const u64 page = rng.below(kUniverse + 8);
  const u64 va = kOrigin + page * K4 - 4 * K4;
  return rng.percent(20) ? va + rng.below(K4) : va;
}

TEST(RegionSet, FindAndFirstEndingAfterMatchBruteForce) {
  for (u64 seed = 1; seed <= 40; ++seed) {
    Rng rng(seed);
    RandomSet s(rng, static_cast<int>(rng.range(10, 90)));
    ASSERT_TRUE(s.set.check());
    ASSERT_EQ(s.set.size(), s.intervals.size());
    for (int q = 0; q < 300; ++q) {
      const u64 va = random_address(rng);
      const Region* found = s.set.find(VirtAddr(va));
      const Interval* want = s.containing(va);
      ASSERT_EQ(found == nullptr, want == nullptr) << "find " << std::hex << va;
      if (found) {
        EXPECT_EQ(found->base.value(), want->base);
      }
      const Region* after = s.set.first_ending_after(VirtAddr(va));
      const Interval* want_after = s.first_ending_after(va);
      ASSERT_EQ(after == nullptr, want_after == nullptr) << "first_ending_after " << std::hex << va;
      if (after) {
        EXPECT_EQ(after->base.value(), want_after->base);
      }
    }
  }
}

TEST(RegionSet, FindFreeMatchesBruteForce) {
  static constexpr u64 kAlignments[] = {K4, 2 * K4, 4 * K4, 16 * K4, 64 * K4};
  const u64 kQueries = pagelab::test::kSanitized ? 100 : 400;
  u64 wrapped = 0, failed = 0;
  for (u64 seed = 1; seed <= 40; ++seed) {
    Rng rng(seed * 977);
    RandomSet s(rng, static_cast<int>(rng.range(10, 95)));
    for (u64 q = 0; q < kQueries; ++q) {
      const u64 size = rng.range(1, rng.percent(80) ? 8 : 64) * K4;
      const u64 alignment = kAlignments[rng.below(std::size(kAlignments))];
      // The search window: the whole universe, or a part of it (cutting
      // through regions, and ending exactly at a region edge now and then).
      u64 lo = kOrigin, hi = kOrigin + kUniverse * K4;
      if (rng.percent(50)) {
        lo = kOrigin + rng.below(kUniverse / 2) * K4;
        hi = lo + rng.range(1, kUniverse / 2) * K4;
      }
      if (rng.percent(10) && !s.intervals.empty()) {
        hi = s.intervals[rng.below(s.intervals.size())].end;
        if (hi <= lo) hi = lo + K4;
      }
      // The hint: inside the window, at its edges, below or above it.
      u64 hint;
      switch (rng.below(5)) {
        case 0: hint = lo; break;
        case 1: hint = hi; break;                           // out of the window: start from lo
        case 2: hint = lo > K4 ? lo - K4 : 0; break;        // below it, likewise
        case 3: hint = hi - K4; break;                      // near the top: likely to wrap
        default: hint = lo + rng.below((hi - lo) / K4) * K4;
      }
      if (rng.percent(10)) hint += rng.below(K4);  // unaligned
      VirtAddr out;
      const bool got = s.set.find_free(size, alignment, VirtAddr(hint), VirtAddr(lo), VirtAddr(hi), out);
      const std::optional<u64> want = s.brute_find_free(size, alignment, hint, lo, hi);
      ASSERT_EQ(got, want.has_value()) << "seed " << seed << " query " << q << std::hex << ": size " << size
                                       << " align " << alignment << " hint " << hint << " in [" << lo << ", " << hi
                                       << ")";
      if (got) {
        ASSERT_EQ(out.value(), *want) << "seed " << seed << " query " << q << std::hex << ": size " << size
                                      << " align " << alignment << " hint " << hint << " in [" << lo << ", " << hi
                                      << ")";
        wrapped += out.value() < hint ? 1 : 0;
      } else {
        ++failed;
      }
    }
  }
  EXPECT_GT(wrapped, 0u) << "no query wrapped around to the bottom of the window";
  EXPECT_GT(failed, 0u) << "no query found every gap too small";
}

TEST(RegionSet, FindFreeEdges) {
  std::deque<Region> storage;
  mm::RegionSet set;
  const auto add = [&](u64 base, u64 pages) {
    Region& r = storage.emplace_back();
    r.base = VirtAddr(base);
    r.size = pages * K4;
    set.insert(&r);
  };
  const u64 lo = mm::kUserSpaceStart, hi = mm::kUserSpaceEnd;
  VirtAddr out;
  // Empty: the hint itself, or lo for a hint outside the window.
  ASSERT_TRUE(set.find_free(K4, K4, VirtAddr(lo + 10 * K4), VirtAddr(lo), VirtAddr(hi), out));
  EXPECT_EQ(out.value(), lo + 10 * K4);
  ASSERT_TRUE(set.find_free(K4, K4, VirtAddr(hi), VirtAddr(lo), VirtAddr(hi), out));
  EXPECT_EQ(out.value(), lo);
  ASSERT_TRUE(set.find_free(K4, K4, VirtAddr(0), VirtAddr(lo), VirtAddr(hi), out));
  EXPECT_EQ(out.value(), lo);
  // The whole window, exactly; one byte more does not fit.
  ASSERT_TRUE(set.find_free(hi - lo, K4, VirtAddr(0), VirtAddr(lo), VirtAddr(hi), out));
  EXPECT_EQ(out.value(), lo);
  EXPECT_FALSE(set.find_free(hi - lo + K4, K4, VirtAddr(0), VirtAddr(lo), VirtAddr(hi), out));
  // The last page of user space, taken: a hint there wraps to the bottom.
  add(hi - K4, 1);
  ASSERT_TRUE(set.find_free(K4, K4, VirtAddr(hi - K4), VirtAddr(lo), VirtAddr(hi), out));
  EXPECT_EQ(out.value(), lo);
  // A hint inside a region: the first fit after it.
  add(lo, 4);
  ASSERT_TRUE(set.find_free(K4, K4, VirtAddr(lo + K4), VirtAddr(lo), VirtAddr(hi), out));
  EXPECT_EQ(out.value(), lo + 4 * K4);
  // Alignment skips a gap that is large enough but misaligned.
  add(lo + 5 * K4, 1);  // gap [lo + 4p, lo + 5p) is one page
  ASSERT_TRUE(set.find_free(K4, 8 * K4, VirtAddr(lo), VirtAddr(lo), VirtAddr(hi), out));
  EXPECT_EQ(out.value(), lo + 8 * K4);
  // The window's top: a gap right below hi fits exactly.
  ASSERT_TRUE(set.find_free(2 * K4, K4, VirtAddr(hi - 3 * K4), VirtAddr(lo), VirtAddr(hi), out));
  EXPECT_EQ(out.value(), hi - 3 * K4);
  ASSERT_TRUE(set.find_free(3 * K4, K4, VirtAddr(hi - 3 * K4), VirtAddr(lo), VirtAddr(hi), out));
  EXPECT_EQ(out.value(), lo + 6 * K4);  // wrapped: the first three free pages from the bottom
  EXPECT_TRUE(set.check());
}

// ---- AddressSpace: merging and splitting regions ----------------------------

constexpr u64 kBase = 0x40000000;

struct View {
  u64 base, end;
  Prot prot;
  RegionKind kind;
  mm::ForkPolicy fork;
  std::uint32_t pins;
  bool operator==(const View&) const = default;
};
std::ostream& operator<<(std::ostream& os, const View& v) {
  return os << "[" << std::hex << v.base << ", " << v.end << std::dec << ") " << mm::prot_name(v.prot) << " "
            << mm::region_kind_name(v.kind) << (v.fork == mm::ForkPolicy::Shared ? " shared" : "") << " pins "
            << v.pins;
}

View anon_view(u64 base, u64 pages, Prot prot = Prot::ReadWrite, std::uint32_t pins = 0) {
  return View{base, base + pages * K4, prot, RegionKind::Anonymous, mm::ForkPolicy::Private, pins};
}

mm::MapRequest anon(u64 address, u64 pages, Prot prot = Prot::ReadWrite) {
  return mm::MapRequest{.address = VirtAddr(address), .length = pages * K4, .prot = prot};
}
mm::MapRequest stack(u64 address, u64 pages) {
  mm::MapRequest r = anon(address, pages);
  r.kind = RegionKind::Stack;
  return r;
}

struct RegionEditingTest : ::testing::Test {
  VmWorld world;
  std::unique_ptr<Space> space = world.new_space();
  mm::FrameCount free_at_start = 0;

  void SetUp() override { free_at_start = world.free_frames(); }
  void TearDown() override {
    space->destroy();
    EXPECT_EQ(world.free_frames(), free_at_start + 1) << "frames leaked (the +1 is the space's root table)";
    EXPECT_EQ(world.pmm().stats().committed, 0u);
    EXPECT_EQ(world.vm().live_regions(), 0u);
  }

  std::vector<View> regions(Space& s) {
    std::vector<View> out;
    s.for_each_region([&](const Region& r) {
      out.push_back(View{r.base.value(), r.end().value(), r.prot, r.kind, r.fork, r.pins});
    });
    EXPECT_TRUE(s.check_regions());
    return out;
  }
  std::vector<View> regions() { return regions(*space); }
  bool writable(u64 va) { return world.walk(*space, va).writable; }
};

TEST_F(RegionEditingTest, AdjacentMapsWithEqualAttributesMerge) {
  ASSERT_EQ(space->map(anon(kBase, 2)), Status::Ok);
  ASSERT_EQ(space->map(anon(kBase + 2 * K4, 2)), Status::Ok);  // above
  EXPECT_EQ(regions(), (std::vector<View>{anon_view(kBase, 4)}));
  ASSERT_EQ(space->map(anon(kBase - 2 * K4, 2)), Status::Ok);  // below
  EXPECT_EQ(regions(), (std::vector<View>{anon_view(kBase - 2 * K4, 6)}));
  // Filling a hole joins both sides into one.
  ASSERT_EQ(space->map(anon(kBase + 8 * K4, 2)), Status::Ok);
  EXPECT_EQ(regions().size(), 2u);
  ASSERT_EQ(space->map(anon(kBase + 4 * K4, 4)), Status::Ok);
  EXPECT_EQ(regions(), (std::vector<View>{anon_view(kBase - 2 * K4, 12)}));
  // Replace with equal attributes inside a region leaves one region.
  mm::MapRequest r = anon(kBase + K4, 2);
  r.fixed = mm::MapFixed::Replace;
  ASSERT_EQ(space->map(r), Status::Ok);
  EXPECT_EQ(regions(), (std::vector<View>{anon_view(kBase - 2 * K4, 12)}));
}

TEST_F(RegionEditingTest, AdjacentMapsWithDifferentAttributesStaySeparate) {
  ASSERT_EQ(space->map(anon(kBase, 2)), Status::Ok);
  ASSERT_EQ(space->map(anon(kBase + 2 * K4, 2, Prot::Read)), Status::Ok);  // another protection
  mm::MapRequest shared = anon(kBase + 4 * K4, 2);
  shared.fork = mm::ForkPolicy::Shared;  // another fork policy
  ASSERT_EQ(space->map(shared), Status::Ok);
  ASSERT_EQ(space->map(stack(kBase + 7 * K4, 2)), Status::Ok);  // another kind (its guard at +6 pages)
  ASSERT_EQ(space->map(anon(kBase + 9 * K4, 1, Prot::ReadWrite)), Status::Ok);  // anon above a stack
  const std::vector<View> got = regions();
  ASSERT_EQ(got.size(), 6u);
  EXPECT_EQ(got[0], anon_view(kBase, 2));
  EXPECT_EQ(got[1], anon_view(kBase + 2 * K4, 2, Prot::Read));
  EXPECT_EQ(got[2], (View{kBase + 4 * K4, kBase + 6 * K4, Prot::ReadWrite, RegionKind::Anonymous,
                          mm::ForkPolicy::Shared, 0}));
  EXPECT_EQ(got[3].kind, RegionKind::Guard);
  EXPECT_EQ(got[3].base, kBase + 6 * K4);
  EXPECT_EQ(got[4].kind, RegionKind::Stack);
  EXPECT_EQ(got[5], anon_view(kBase + 9 * K4, 1));
}

TEST_F(RegionEditingTest, UnmapOfTheMiddlePageSplitsInTwo) {
  ASSERT_EQ(space->map(anon(kBase, 5)), Status::Ok);
  ASSERT_EQ(space->write_u64(VirtAddr(kBase + 4 * K4), 44), Status::Ok);
  ASSERT_EQ(space->unmap(VirtAddr(kBase + 2 * K4), K4), Status::Ok);
  EXPECT_EQ(regions(), (std::vector<View>{anon_view(kBase, 2), anon_view(kBase + 3 * K4, 2)}));
  EXPECT_EQ(space->read_u64(VirtAddr(kBase + 4 * K4)).value(), 44u);  // the upper part kept its data
  // Unmapping across both pieces and the hole between them.
  ASSERT_EQ(space->unmap(VirtAddr(kBase + K4), 3 * K4), Status::Ok);
  EXPECT_EQ(regions(), (std::vector<View>{anon_view(kBase, 1), anon_view(kBase + 4 * K4, 1)}));
}

TEST_F(RegionEditingTest, ProtectOfAnEdgePageSplitsAndProtectingBackMerges) {
  ASSERT_EQ(space->map(anon(kBase, 4)), Status::Ok);
  ASSERT_EQ(space->write_u64(VirtAddr(kBase), 1), Status::Ok);
  ASSERT_EQ(space->write_u64(VirtAddr(kBase + 3 * K4), 2), Status::Ok);
  // The first page.
  ASSERT_EQ(space->protect(VirtAddr(kBase), K4, Prot::Read), Status::Ok);
  EXPECT_EQ(regions(), (std::vector<View>{anon_view(kBase, 1, Prot::Read), anon_view(kBase + K4, 3)}));
  EXPECT_FALSE(writable(kBase));
  ASSERT_EQ(space->protect(VirtAddr(kBase), K4, Prot::ReadWrite), Status::Ok);
  EXPECT_EQ(regions(), (std::vector<View>{anon_view(kBase, 4)}));
  EXPECT_TRUE(writable(kBase));
  // The last page.
  ASSERT_EQ(space->protect(VirtAddr(kBase + 3 * K4), K4, Prot::None), Status::Ok);
  EXPECT_EQ(regions(), (std::vector<View>{anon_view(kBase, 3), anon_view(kBase + 3 * K4, 1, Prot::None)}));
  EXPECT_FALSE(world.walk(*space, kBase + 3 * K4).present);
  ASSERT_EQ(space->protect(VirtAddr(kBase + 3 * K4), K4, Prot::ReadWrite), Status::Ok);
  EXPECT_EQ(regions(), (std::vector<View>{anon_view(kBase, 4)}));
  EXPECT_EQ(space->read_u64(VirtAddr(kBase + 3 * K4)).value(), 2u);
  // A protect that covers a hole refuses and splits nothing.
  EXPECT_EQ(space->protect(VirtAddr(kBase + 2 * K4), 4 * K4, Prot::Read), Status::NotFound);
  EXPECT_EQ(regions(), (std::vector<View>{anon_view(kBase, 4)}));
}

TEST_F(RegionEditingTest, ProtectAcrossRegionsMergesThem) {
  // Three regions, the middle one read-only; one protect makes them one.
  ASSERT_EQ(space->map(anon(kBase, 6)), Status::Ok);
  ASSERT_EQ(space->protect(VirtAddr(kBase + 2 * K4), 2 * K4, Prot::Read), Status::Ok);
  ASSERT_EQ(regions().size(), 3u);
  ASSERT_EQ(space->protect(VirtAddr(kBase), 6 * K4, Prot::ReadExec), Status::Ok);
  EXPECT_EQ(regions(), (std::vector<View>{anon_view(kBase, 6, Prot::ReadExec)}));
}

TEST_F(RegionEditingTest, PinSplitsAndUnpinMerges) {
  ASSERT_EQ(space->map(anon(kBase, 4)), Status::Ok);
  ASSERT_EQ(space->pin(VirtAddr(kBase + K4), K4), Status::Ok);  // the middle
  EXPECT_EQ(regions(), (std::vector<View>{anon_view(kBase, 1), anon_view(kBase + K4, 1, Prot::ReadWrite, 1),
                                          anon_view(kBase + 2 * K4, 2)}));
  EXPECT_TRUE(world.walk(*space, kBase + K4).present);  // pinning populates
  EXPECT_FALSE(world.walk(*space, kBase).present);
  ASSERT_EQ(space->pin(VirtAddr(kBase + 3 * K4), K4), Status::Ok);  // an edge
  EXPECT_EQ(regions().size(), 4u);
  EXPECT_EQ(space->unmap(VirtAddr(kBase + 3 * K4), K4), Status::Busy);
  ASSERT_EQ(space->unpin(VirtAddr(kBase + K4), K4), Status::Ok);
  ASSERT_EQ(space->unpin(VirtAddr(kBase + 3 * K4), K4), Status::Ok);
  EXPECT_EQ(regions(), (std::vector<View>{anon_view(kBase, 4)}));
  // Pinned twice, unpinned once: still pinned.
  ASSERT_EQ(space->pin(VirtAddr(kBase), 4 * K4), Status::Ok);
  ASSERT_EQ(space->pin(VirtAddr(kBase), 4 * K4), Status::Ok);
  ASSERT_EQ(space->unpin(VirtAddr(kBase), 4 * K4), Status::Ok);
  EXPECT_EQ(regions(), (std::vector<View>{anon_view(kBase, 4, Prot::ReadWrite, 1)}));
  EXPECT_EQ(space->unmap(VirtAddr(kBase), K4), Status::Busy);
  ASSERT_EQ(space->unpin(VirtAddr(kBase), 4 * K4), Status::Ok);
  EXPECT_EQ(space->unpin(VirtAddr(kBase), 4 * K4), Status::InvalidArgument);  // nothing pinned now
  EXPECT_EQ(regions(), (std::vector<View>{anon_view(kBase, 4)}));
}

TEST_F(RegionEditingTest, AStacksGuardBlocksMappingsAndGoesWithTheStack) {
  const u64 top = kBase + 16 * K4;
  ASSERT_EQ(space->map(stack(top - 4 * K4, 4)), Status::Ok);
  const u64 guard = top - 5 * K4;
  std::vector<View> got = regions();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0], (View{guard, guard + K4, Prot::None, RegionKind::Guard, mm::ForkPolicy::Private, 0}));
  EXPECT_EQ(got[1], (View{guard + K4, top, Prot::ReadWrite, RegionKind::Stack, mm::ForkPolicy::Private, 0}));
  // The guard page is taken: mappings over it fail, operations on it see a hole.
  EXPECT_EQ(space->map(anon(guard, 1)), Status::AlreadyExists);
  EXPECT_EQ(space->map(anon(guard - K4, 2)), Status::AlreadyExists);
  EXPECT_EQ(space->map(stack(top, 2)), Status::AlreadyExists);  // a stack right above: its guard is our top page
  EXPECT_EQ(space->protect(VirtAddr(guard), K4, Prot::ReadWrite), Status::NotFound);
  EXPECT_EQ(space->pin(VirtAddr(guard), 2 * K4), Status::NotFound);
  EXPECT_EQ(space->handle_fault(VirtAddr(guard), mm::Access::Read, mm::AccessMode::User), mm::FaultOutcome::Segv);
  EXPECT_EQ(space->read_u64(VirtAddr(guard)).status(), Status::BadAddress);
  // A region right below the guard stays separate from it.
  ASSERT_EQ(space->map(anon(guard - 2 * K4, 2)), Status::Ok);
  EXPECT_EQ(regions().size(), 3u);
  // Unmapping the stack's lowest page takes the guard along; the rest of
  // the stack has none any more.
  ASSERT_EQ(space->unmap(VirtAddr(guard + K4), K4), Status::Ok);
  got = regions();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0], anon_view(guard - 2 * K4, 2));
  EXPECT_EQ(got[1], (View{guard + 2 * K4, top, Prot::ReadWrite, RegionKind::Stack, mm::ForkPolicy::Private, 0}));
  ASSERT_EQ(space->map(anon(guard, 2)), Status::Ok);  // the guard's page is free again
  EXPECT_EQ(regions().size(), 2u);                    // and merged with the region below it
  // A whole stack unmapped takes its guard; the region below is untouched.
  ASSERT_EQ(space->map(stack(kBase + 64 * K4, 2)), Status::Ok);
  ASSERT_EQ(regions().size(), 4u);
  ASSERT_EQ(space->unmap(VirtAddr(kBase + 64 * K4), 2 * K4), Status::Ok);
  EXPECT_EQ(regions().size(), 2u);
}

TEST_F(RegionEditingTest, ReplacingAStackReplacesItsGuard) {
  ASSERT_EQ(space->map(stack(kBase + 4 * K4, 4)), Status::Ok);
  mm::MapRequest r = stack(kBase + 2 * K4, 6);  // overlaps the old guard and stack
  r.fixed = mm::MapFixed::Replace;
  ASSERT_EQ(space->map(r), Status::Ok);
  const std::vector<View> got = regions();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].kind, RegionKind::Guard);
  EXPECT_EQ(got[0].base, kBase + K4);
  EXPECT_EQ(got[1], (View{kBase + 2 * K4, kBase + 8 * K4, Prot::ReadWrite, RegionKind::Stack,
                          mm::ForkPolicy::Private, 0}));
}

// A fork copies every region with its attributes, but not its pins.
TEST_F(RegionEditingTest, ForkCopiesRegionsWithoutPins) {
  ASSERT_EQ(space->map(anon(kBase, 4)), Status::Ok);
  ASSERT_EQ(space->map(stack(kBase + 8 * K4, 2)), Status::Ok);
  ASSERT_EQ(space->pin(VirtAddr(kBase + K4), K4), Status::Ok);
  auto child = world.new_space();
  ASSERT_EQ(space->fork(*child), Status::Ok);
  std::vector<View> want = regions();
  for (View& v : want) v.pins = 0;
  EXPECT_EQ(regions(*child), want);
  EXPECT_EQ(child->unmap(VirtAddr(kBase), 4 * K4), Status::Ok);  // nothing pinned in the child
  child->destroy();
}

// ---- regressions: merging while walking the range --------------------------
//
// Until e84a5d5, protect() and unpin() walked the regions of the range as
//     Region* next = regions_.next(r); merge_around_locked(r); r = next;
// and merge_around_locked(r) could merge r with `next` and free it. The loop
// went on with a freed Region: AvlTree::erase had cleared its links, so
// regions_.next() of it was null and the rest of the range was skipped; and
// merge_around_locked() on it followed its `left` field, by then the slab's
// free-list link, into a slot that may hold poison.

// Three regions rw / r / rw, protected to r: the first merged with the
// second, and the third was never changed (it stayed writable).
TEST_F(RegionEditingTest, ProtectAfterAMergeWithTheNextRegionReachesTheRest) {
  ASSERT_EQ(space->map(anon(kBase, 3)), Status::Ok);
  ASSERT_EQ(space->protect(VirtAddr(kBase + K4), K4, Prot::Read), Status::Ok);
  ASSERT_EQ(space->write_u64(VirtAddr(kBase + 2 * K4), 7), Status::Ok);  // the third page, writable
  ASSERT_EQ(space->protect(VirtAddr(kBase), 3 * K4, Prot::Read), Status::Ok);
  EXPECT_EQ(regions(), (std::vector<View>{anon_view(kBase, 3, Prot::Read)}));
  EXPECT_FALSE(writable(kBase + 2 * K4)) << "the third page is still writable after protect(r)";
  EXPECT_EQ(space->write_u64(VirtAddr(kBase + 2 * K4), 8), Status::BadAddress);
}

// The same, in a fresh world whose next frames (the space's root table, the
// region slab) were freed, and so poisoned, before: the never-used slot the
// freed Region's `left` pointed to had the poison pattern for its `right`
// field, and prev() followed it (SIGSEGV). Run in a child process.
void protect_after_a_merge_on_a_recycled_slab() {
  VmWorld fresh;
  std::vector<mm::PhysAddr> recycled;
  for (int i = 0; i < 8; ++i) recycled.push_back(fresh.pmm().allocate_frame(mm::FrameOwner::Kernel).value());
  for (const mm::PhysAddr f : recycled) ASSERT_EQ(fresh.pmm().free_frame(f), Status::Ok);
  auto s = fresh.new_space();
  ASSERT_EQ(s->map(anon(kBase, 3)), Status::Ok);
  ASSERT_EQ(s->protect(VirtAddr(kBase + K4), K4, Prot::Read), Status::Ok);
  ASSERT_EQ(s->protect(VirtAddr(kBase), 3 * K4, Prot::Read), Status::Ok);
  s->destroy();
}
TEST_F(RegionEditingTest, ProtectAfterAMergeWithTheNextRegionOnARecycledSlabSurvives) {
  EXPECT_EXIT(
      {
        protect_after_a_merge_on_a_recycled_slab();
        std::exit(0);
      },
      ::testing::ExitedWithCode(0), "")
      << "protect() died (SIGSEGV: a wild pointer from a freed Region)";
}

// Pinned twice / pinned once, unpinned once together: the first merged with
// the second (both then pinned once), the second's own unpin was lost, and
// the second page stayed pinned.
TEST_F(RegionEditingTest, UnpinAfterAMergeWithTheNextRegionUnpinsTheRest) {
  ASSERT_EQ(space->map(anon(kBase, 2)), Status::Ok);
  ASSERT_EQ(space->pin(VirtAddr(kBase), 2 * K4), Status::Ok);
  ASSERT_EQ(space->pin(VirtAddr(kBase), K4), Status::Ok);
  ASSERT_EQ(space->unpin(VirtAddr(kBase), 2 * K4), Status::Ok);
  EXPECT_EQ(regions(), (std::vector<View>{anon_view(kBase, 1, Prot::ReadWrite, 1), anon_view(kBase + K4, 1)}));
  EXPECT_EQ(space->unmap(VirtAddr(kBase + K4), K4), Status::Ok) << "the second page was unpinned";
  EXPECT_EQ(space->unpin(VirtAddr(kBase), K4), Status::Ok);
}

// ---- regression: a populate that runs out of memory ---------------------------
//
// map() with populate once obtained the two Region objects its undo needs
// only after memory had run out; with the region slab full the undo could
// not run, and the half-populated region stayed although map() answered
// ENOMEM. The spares are now reserved before anything changes.
TEST_F(RegionEditingTest, MapWhosePopulateRunsOutOfMemoryLeavesNothingMapped) {
  constexpr u64 kPerSlab = mm::ObjectPool<Region, pagelab::HostPlatform>::kPerSlab;
  // Separate one-page regions until the slab has one free slot left.
  u64 va = kBase;
  while (world.vm().live_regions() % kPerSlab != kPerSlab - 1) {
    ASSERT_EQ(space->map(anon(va, 1)), Status::Ok);
    va += 2 * K4;
  }
  const std::vector<View> before = regions();
  // Every frame gone.
  std::vector<mm::PhysAddr> taken;
  for (mm::Result<mm::PhysAddr> f = world.pmm().allocate_frame(mm::FrameOwner::Kernel); f.ok();
       f = world.pmm().allocate_frame(mm::FrameOwner::Kernel)) {
    taken.push_back(f.value());
  }
  mm::MapRequest r = anon(kBase + 256 * K4, 4);
  r.populate = true;
  EXPECT_EQ(space->map(r), Status::OutOfMemory);
  bool left_behind = false;
  space->for_each_region([&](const Region& region) { left_behind |= region.contains(r.address); });
  EXPECT_FALSE(left_behind) << "the failed map left its region behind";
  EXPECT_EQ(regions().size(), before.size());
  for (const mm::PhysAddr f : taken) ASSERT_EQ(world.pmm().free_frame(f), Status::Ok);
}

}  // namespace
