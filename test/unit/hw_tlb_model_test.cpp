// The TLB (src/emu/hw/tlb.hpp) against a plain model of what it promises,
// over long random sequences of lookups, fills and every invalidation, for
// the presets and for odd shapes (non-power-of-two sets, way counts that
// are not a multiple of four, more than 16 ways at L2, arrays shared by two
// page sizes), under each replacement policy. The Tlb keeps packed keys,
// per-size presence bits, unrolled probes and skips searches it can prove
// useless; the model keeps none of that: a set is a list of ways searched in
// order, recency is the time of each way's last use (or, for an L2 array of
// at most 16 ways, an explicit most-to-least-recent list), and every lookup
// probes every array. Any difference -- in a lookup's result, in which way a
// fill takes (seen through for_each's order and later evictions), in a
// count -- fails the test at the operation that caused it. (The model was
// also run against the Tlb as it was before its lookup and fill paths were
// rewritten for speed, and agreed with it too.)
//
// Also: TlbSetIndex, the division-free set index, against `%`.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "emu/hw/tlb.hpp"
#include "emu/hw/tlb_geometry.hpp"

namespace {

using namespace pagelab::hw;  // NOLINT: the whole test is about this namespace
using mm::u64;

constexpr u64 kVpnBits = 0x0000'FFFF'FFFF'F000;
constexpr u64 kFrameBits = 0x000F'FFFF'FFFF'F000;
constexpr u64 kGlobalBit = u64{1} << 50;

u64 sign_extend_47(u64 va) { return static_cast<u64>(static_cast<std::int64_t>(va << 16) >> 16); }
unsigned shift_of(PageSize size) { return size == PageSize::Size4K ? 12 : size == PageSize::Size2M ? 21 : 30; }

// What a cached entry reads back as: the page's bits 47:12 (sign-extended),
// the frame's bits 51:12, both aligned to the size; the PCID's 12 bits.
TlbEntry normalized(TlbEntry e) {
  const u64 offset = bytes_of(e.size) - 1;
  e.page = sign_extend_47(e.page & kVpnBits & ~offset);
  e.frame &= kFrameBits & ~offset;
  e.pcid = static_cast<Pcid>(e.pcid & 0xFFF);
  return e;
}

// The tag a lookup compares: page bits 47:12 of the size, the size, and the
// PCID -- or the global bit instead of a PCID.
u64 tag_of(u64 page, PageSize size, bool global, Pcid pcid) {
  return (page & kVpnBits & ~(bytes_of(size) - 1)) | (u64{static_cast<unsigned>(size) + 1u} << 48) |
         (global ? kGlobalBit : u64{pcid});
}

class ModelTlb {
 public:
  explicit ModelTlb(const TlbGeometry& g) : policy_(g.replacement), random_(g.seed) {
    build(l1d_, g.l1d, TlbLevel::L1, false);
    build(l1i_, g.l1i, TlbLevel::L1, false);
    build(l2_, g.l2, TlbLevel::L2, true);
  }

  TlbCounters counters;

  TlbLookup lookup(u64 va, Pcid pcid, AccessKind kind) {
    if (!is_canonical(va)) {
      ++counters.misses;
      return TlbLookup{};
    }
    Level& l1 = l1_for(kind);
    if (Way* way = find(l1, va, pcid)) {
      if (policy_ == TlbReplacement::Lru) way->stamp = ++clock_;
      ++counters.l1_hits;
      return TlbLookup{TlbLevel::L1, way->entry};
    }
    Array* array = nullptr;
    u32 set = 0;
    if (Way* way = find(l2_, va, pcid, &array, &set)) {
      if (policy_ == TlbReplacement::Lru) {
        touch(*array, set, static_cast<u32>(way - &array->ways[set * array->ways_per_set]));
      }
      ++counters.l2_hits;
      const TlbEntry entry = way->entry;
      const u64 tag = way->tag;
      if (Array* refill = array_for(l1, entry.size)) {
        fill(*refill, entry, tag);
        ++counters.l1_refills;
      }
      return TlbLookup{TlbLevel::L2, entry};
    }
    ++counters.misses;
    return TlbLookup{};
  }

  void insert(const TlbEntry& e, AccessKind kind) {
    ++counters.fills;
    const TlbEntry entry = normalized(e);
    const u64 tag = tag_of(e.page, e.size, e.global, e.pcid);
    if (Array* a = array_for(l1_for(kind), e.size)) fill(*a, entry, tag);
    if (Array* a = array_for(l2_, e.size)) fill(*a, entry, tag);
  }

  u64 invalidate_page(u64 va, Pcid pcid) {
    return drop_at(va, [&](u64 tag, u64 page_tag) {
      return tag == (page_tag | pcid) || tag == (page_tag | kGlobalBit);
    });
  }
  u64 invpcid(InvpcidType type, Pcid pcid, u64 va) {
    switch (type) {
      case InvpcidType::IndividualAddress:
        return drop_at(va, [&](u64 tag, u64 page_tag) { return tag == (page_tag | pcid); });
      case InvpcidType::SingleContext:
        return drop_all([&](const Way& w) { return !w.entry.global && w.entry.pcid == pcid; });
      case InvpcidType::AllContextsAndGlobal:
        return drop_all([](const Way&) { return true; });
      case InvpcidType::AllContextsKeepGlobal:
        return drop_all([](const Way& w) { return !w.entry.global; });
    }
    return 0;
  }
  u64 mov_to_cr3(u64 source, bool pcide) {
    if (!pcide) return drop_all([](const Way& w) { return !w.entry.global; });
    if (source & cr3::kNoFlush) return 0;
    const Pcid pcid = static_cast<Pcid>(source & cr3::kPcidMask);
    return drop_all([&](const Way& w) { return !w.entry.global && w.entry.pcid == pcid; });
  }
  u64 flush_all() {
    return drop_all([](const Way&) { return true; });
  }
  u64 apply(Cr4Invalidation invalidation, Pcid pcid) {
    switch (invalidation) {
      case Cr4Invalidation::None: return 0;
      case Cr4Invalidation::CurrentPcid: return invpcid(InvpcidType::SingleContext, pcid, 0);
      case Cr4Invalidation::All: return flush_all();
    }
    return 0;
  }
  bool evict_random(u64 random) {
    const u64 valid = valid_entries();
    if (valid == 0) return false;
    u64 pick = random % valid;
    for (Level* level : {&l1d_, &l1i_, &l2_}) {
      for (Array& a : level->arrays) {
        for (u32 i = 0; i < a.ways.size(); ++i) {
          if (!a.ways[i].valid) continue;
          if (pick-- == 0) {
            forget(a, i);
            ++counters.random_evictions;
            return true;
          }
        }
      }
    }
    return false;
  }
  void reset_counters() { counters = TlbCounters{}; }

  u64 valid_entries() const {
    u64 n = 0;
    for (const Level* level : {&l1d_, &l1i_, &l2_}) {
      for (const Array& a : level->arrays) {
        for (const Way& w : a.ways) n += w.valid ? 1 : 0;
      }
    }
    return n;
  }
  std::vector<std::pair<TlbEntry, TlbLevel>> entries() const {
    std::vector<std::pair<TlbEntry, TlbLevel>> out;
    for (const Level* level : {&l1d_, &l1i_, &l2_}) {
      for (const Array& a : level->arrays) {
        for (const Way& w : a.ways) {
          if (w.valid) out.emplace_back(w.entry, level->level);
        }
      }
    }
    return out;
  }

 private:
  struct Way {
    bool valid = false;
    u64 tag = 0;
    TlbEntry entry;
    u64 stamp = 0;  // last use (LRU) or fill (FIFO); 0 when empty
  };
  struct Array {
    u32 sets = 1;
    u32 ways_per_set = 1;
    PageSizeSet sizes = 0;
    bool ordered = false;                // an L2 array of at most 16 ways
    std::vector<Way> ways;               // set-major
    std::vector<std::vector<u32>> order;  // per set, when ordered: most to least recent
  };
  struct Level {
    std::vector<Array> arrays;
    TlbLevel level = TlbLevel::L1;
  };

  static void build(Level& level, const std::vector<TlbArrayGeometry>& arrays, TlbLevel which, bool l2) {
    level.level = which;
    for (const TlbArrayGeometry& g : arrays) {
      Array a{.sets = g.sets,
              .ways_per_set = g.ways,
              .sizes = g.sizes,
              .ordered = l2 && g.ways <= 16,
              .ways = {},
              .order = {}};
      a.ways.resize(std::size_t{g.sets} * g.ways);
      if (a.ordered) {
        for (u32 s = 0; s < g.sets; ++s) {
          std::vector<u32> o(g.ways);
          for (u32 w = 0; w < g.ways; ++w) o[w] = w;  // way 0 most recent, the last way least
          a.order.push_back(o);
        }
      }
      level.arrays.push_back(std::move(a));
    }
  }

  Level& l1_for(AccessKind kind) { return kind == AccessKind::Fetch && !l1i_.arrays.empty() ? l1i_ : l1d_; }
  static Array* array_for(Level& level, PageSize size) {
    for (Array& a : level.arrays) {
      if (a.sizes & size_bit(size)) return &a;
    }
    return nullptr;
  }
  static u32 set_of(const Array& a, u64 address, PageSize size) {
    return static_cast<u32>((address >> shift_of(size)) % a.sets);
  }

  // Sizes smallest first, each in the array holding it, ways in order.
  static Way* find(Level& level, u64 va, Pcid pcid, Array** where = nullptr, u32* set_out = nullptr) {
    for (PageSize size : {PageSize::Size4K, PageSize::Size2M, PageSize::Size1G}) {
      Array* a = array_for(level, size);
      if (a == nullptr) continue;
      const u64 local = tag_of(va, size, false, pcid);
      const u64 global = tag_of(va, size, true, 0);
      const u32 set = set_of(*a, va, size);
      for (u32 w = 0; w < a->ways_per_set; ++w) {
        Way& way = a->ways[set * a->ways_per_set + w];
        if (way.valid && (way.tag == local || way.tag == global)) {
          if (where != nullptr) *where = a;
          if (set_out != nullptr) *set_out = set;
          return &way;
        }
      }
    }
    return nullptr;
  }

  void touch(Array& a, u32 set, u32 way) {
    if (a.ordered) {
      std::vector<u32>& o = a.order[set];
      o.erase(std::find(o.begin(), o.end(), way));
      o.insert(o.begin(), way);
    } else {
      a.ways[set * a.ways_per_set + way].stamp = ++clock_;
    }
  }

  u64 next_random() {  // splitmix64, as the header promises
    u64 z = (random_ += 0x9E37'79B9'7F4A'7C15);
    z = (z ^ (z >> 30)) * 0xBF58'476D'1CE4'E5B9;
    z = (z ^ (z >> 27)) * 0x94D0'49BB'1331'11EB;
    return z ^ (z >> 31);
  }

  // The same translation in place; else the policy's victim: Random the
  // first empty way or a draw; ordered arrays the least recent; the others
  // the smallest (stamp, way), an empty way's stamp being 0.
  void fill(Array& a, const TlbEntry& entry, u64 tag) {
    const u32 set = set_of(a, entry.page, entry.size);
    Way* ways = &a.ways[set * a.ways_per_set];
    u32 victim = a.ways_per_set;
    for (u32 w = 0; w < a.ways_per_set && victim == a.ways_per_set; ++w) {
      if (ways[w].valid && ways[w].tag == tag) victim = w;
    }
    if (victim == a.ways_per_set) {
      if (policy_ == TlbReplacement::Random) {
        for (u32 w = 0; w < a.ways_per_set && victim == a.ways_per_set; ++w) {
          if (!ways[w].valid) victim = w;
        }
        if (victim == a.ways_per_set) victim = static_cast<u32>(next_random() % a.ways_per_set);
      } else if (a.ordered) {
        victim = a.order[set].back();
      } else {
        victim = 0;
        for (u32 w = 1; w < a.ways_per_set; ++w) {
          if (ways[w].stamp < ways[victim].stamp) victim = w;
        }
      }
    }
    Way& way = ways[victim];
    const bool fresh = !way.valid || way.tag != tag;
    if (fresh && way.valid) ++counters.evictions;
    way.valid = true;
    way.tag = tag;
    way.entry = entry;
    if (policy_ == TlbReplacement::Lru || (policy_ == TlbReplacement::Fifo && fresh)) touch(a, set, victim);
  }

  void forget(Array& a, u32 index) {
    a.ways[index] = Way{};
    if (a.ordered) {
      const u32 set = index / a.ways_per_set;
      std::vector<u32>& o = a.order[set];
      const u32 way = index % a.ways_per_set;
      o.erase(std::find(o.begin(), o.end(), way));
      o.push_back(way);
    }
  }

  template <typename Pred>
  u64 drop_all(Pred pred) {
    ++counters.invalidations;
    u64 dropped = 0;
    for (Level* level : {&l1d_, &l1i_, &l2_}) {
      for (Array& a : level->arrays) {
        for (u32 i = 0; i < a.ways.size(); ++i) {
          if (a.ways[i].valid && pred(a.ways[i])) {
            forget(a, i);
            ++dropped;
          }
        }
      }
    }
    counters.entries_invalidated += dropped;
    return dropped;
  }
  template <typename Pred>
  u64 drop_at(u64 va, Pred pred) {
    if (!is_canonical(va)) return 0;
    ++counters.invalidations;
    u64 dropped = 0;
    for (Level* level : {&l1d_, &l1i_, &l2_}) {
      for (Array& a : level->arrays) {
        for (PageSize size : {PageSize::Size4K, PageSize::Size2M, PageSize::Size1G}) {
          if (!(a.sizes & size_bit(size))) continue;
          const u64 page_tag = tag_of(va, size, false, 0);
          const u32 first = set_of(a, va, size) * a.ways_per_set;
          for (u32 i = first; i < first + a.ways_per_set; ++i) {
            if (a.ways[i].valid && pred(a.ways[i].tag, page_tag)) {
              forget(a, i);
              ++dropped;
            }
          }
        }
      }
    }
    counters.entries_invalidated += dropped;
    return dropped;
  }

  TlbReplacement policy_;
  u64 random_;
  u64 clock_ = 0;
  Level l1d_;
  Level l1i_;
  Level l2_;
};

std::vector<std::pair<TlbEntry, TlbLevel>> entries_of(const Tlb& tlb) {
  std::vector<std::pair<TlbEntry, TlbLevel>> out;
  tlb.for_each([&](const TlbEntry& e, TlbLevel level) { out.emplace_back(e, level); });
  return out;
}

void expect_same_counters(const TlbCounters& a, const TlbCounters& b, const std::string& where) {
  EXPECT_EQ(a.l1_hits, b.l1_hits) << where;
  EXPECT_EQ(a.l2_hits, b.l2_hits) << where;
  EXPECT_EQ(a.misses, b.misses) << where;
  EXPECT_EQ(a.fills, b.fills) << where;
  EXPECT_EQ(a.l1_refills, b.l1_refills) << where;
  EXPECT_EQ(a.evictions, b.evictions) << where;
  EXPECT_EQ(a.random_evictions, b.random_evictions) << where;
  EXPECT_EQ(a.invalidations, b.invalidations) << where;
  EXPECT_EQ(a.entries_invalidated, b.entries_invalidated) << where;
}

// Addresses drawn mostly from a few 4 KiB pages inside two 2 MiB pages of
// one 1 GiB page, sometimes from 8192 pages (enough to overflow every L2),
// in the lower half, the upper half, and non-canonical aliases of the upper
// half's bits 47:12 -- so that sizes overlap, sets collide and every array
// fills up.
// `large_pages` and `globals` off keep to the case the Tlb has fast paths
// for (4 KiB entries only, none global).
class Workload {
 public:
  explicit Workload(u64 seed, bool large_pages = true, bool globals = true)
      : rng_(seed), large_pages_(large_pages), globals_(globals) {}

  u64 address() {
    static constexpr u64 kBases[] = {0x0000'7F00'0000'0000, 0xFFFF'8000'0000'0000, 0x0000'0000'4000'0000};
    const u64 pick = below(100);
    const u64 page = pick < 70 ? below(96) + (below(4) == 0 ? 512 : 0)  // in both 2 MiB halves
                               : below(8192);
    if (pick < 3) return 0x0000'8000'0000'0000 + page * 4096 + below(4096);  // non-canonical
    return kBases[below(3)] + page * 4096 + below(4096);
  }
  Pcid pcid() {
    static constexpr Pcid kPcids[] = {0, 1, 2, 4095};
    return kPcids[below(4)];
  }
  AccessKind kind() { return static_cast<AccessKind>(below(3)); }
  TlbEntry entry() {
    const u64 roll = large_pages_ ? below(10) : 0;
    const PageSize size = roll < 7 ? PageSize::Size4K : roll < 9 ? PageSize::Size2M : PageSize::Size1G;
    u64 va = address();
    if (!is_canonical(va)) va = 0x0000'7F00'0000'0000;
    const u64 span = bytes_of(size);
    return TlbEntry{.page = va & ~(span - 1),
                    .frame = (below(u64{1} << 20) << 20) & ~(span - 1),
                    .size = size,
                    .pcid = pcid(),
                    .global = globals_ && below(5) == 0,
                    .rights = Permissions{.writable = below(2) == 0,
                                          .user = below(2) == 0,
                                          .no_execute = below(2) == 0},
                    .dirty = below(2) == 0};
  }
  u64 below(u64 n) { return std::uniform_int_distribution<u64>(0, n - 1)(rng_); }
  u64 any() { return rng_(); }

 private:
  std::mt19937_64 rng_;
  bool large_pages_;
  bool globals_;
};

void run_against_model(const TlbGeometry& geometry, u64 seed, int operations, bool large_pages, bool globals) {
  ASSERT_EQ(validate(geometry), "") << geometry.name;
  Tlb tlb(geometry);
  ModelTlb model(geometry);
  Workload w(seed, large_pages, globals);
  for (int op = 0; op < operations; ++op) {
    const std::string where = geometry.name + ":" + tlb_replacement_name(geometry.replacement) + " seed " +
                              std::to_string(seed) + (large_pages ? "" : " 4K-only") + (globals ? "" : " no-globals") +
                              " op " + std::to_string(op);
    // Mostly lookups and fills; invalidations of one address often, wide
    // ones rarely (so that the arrays fill up and evict).
    const u64 roll = w.below(10000);
    if (roll < 5000) {
      const u64 va = w.address();
      const Pcid pcid = w.pcid();
      const AccessKind kind = w.kind();
      const TlbLookup got = tlb.lookup(va, pcid, kind);
      const TlbLookup want = model.lookup(va, pcid, kind);
      ASSERT_EQ(got.level, want.level) << where << " lookup " << std::hex << va << " pcid " << pcid;
      ASSERT_EQ(got.entry, want.entry) << where << " lookup " << std::hex << va;
    } else if (roll < 8600) {
      const TlbEntry e = w.entry();
      const AccessKind kind = w.kind();
      tlb.insert(e, kind);
      model.insert(e, kind);
    } else if (roll < 9100) {
      const u64 va = w.address();
      const Pcid pcid = w.pcid();
      ASSERT_EQ(tlb.invalidate_page(va, pcid), model.invalidate_page(va, pcid)) << where << " invlpg";
    } else if (roll < 9450) {
      // Type 0 mostly; 1, 2 and 3 flush widely.
      const u64 r = w.below(1000);
      const auto type = static_cast<InvpcidType>(r < 990 ? 0 : r < 995 ? 1 : r < 997 ? 2 : 3);
      const Pcid pcid = w.pcid();
      const u64 va = w.address();
      ASSERT_EQ(tlb.invpcid(type, pcid, va), model.invpcid(type, pcid, va)) << where << " invpcid";
    } else if (roll < 9550) {
      const bool keep = w.below(20) != 0;  // bit 63: nothing flushed
      const u64 source = (keep ? cr3::kNoFlush : 0) | 0x1000 | w.pcid();
      const bool pcide = keep || w.below(3) != 0;
      ASSERT_EQ(tlb.mov_to_cr3(source, pcide), model.mov_to_cr3(source, pcide)) << where << " cr3";
    } else if (roll < 9551) {
      ASSERT_EQ(tlb.flush_all(), model.flush_all()) << where << " flush";
    } else if (roll < 9600) {
      const u64 r = w.below(100);
      const auto inv = r < 90 ? Cr4Invalidation::None : r < 97 ? Cr4Invalidation::CurrentPcid : Cr4Invalidation::All;
      const Pcid pcid = w.pcid();
      ASSERT_EQ(tlb.apply(inv, pcid), model.apply(inv, pcid)) << where << " cr4";
    } else if (roll < 9700) {
      const u64 r = w.any();
      ASSERT_EQ(tlb.evict_random(r), model.evict_random(r)) << where << " evict";
    } else if (roll < 9702) {
      tlb.reset_counters();
      model.reset_counters();
    } else {
      const u64 va = w.address();
      const Pcid pcid = w.pcid();
      const TlbLookup got = tlb.lookup(va, pcid, AccessKind::Read);
      const TlbLookup want = model.lookup(va, pcid, AccessKind::Read);
      ASSERT_EQ(got.level, want.level) << where << " lookup " << std::hex << va << " pcid " << pcid;
      ASSERT_EQ(got.entry, want.entry) << where << " lookup " << std::hex << va;
    }
    expect_same_counters(tlb.counters(), model.counters, where);
    if (op % 64 == 0 || op + 1 == operations) {
      ASSERT_EQ(tlb.valid_entries(), model.valid_entries()) << where;
      ASSERT_EQ(entries_of(tlb), model.entries()) << where;
    }
    if (::testing::Test::HasFailure()) return;
  }
}

std::vector<TlbGeometry> shapes() {
  std::vector<TlbGeometry> out = {tiny_tlb_geometry(), skylake_tlb_geometry(), zen2_tlb_geometry()};
  // Odd counts everywhere; 20 ways at L2 (recency by stamps, not orders); 16
  // ways (a full order word); two sizes sharing an L1 array.
  out.push_back(TlbGeometry{.name = "odd",
                            .l1d = {{.sets = 3, .ways = 5, .sizes = kSizes4K},
                                    {.sets = 2, .ways = 2, .sizes = kSizes2M | kSizes1G}},
                            .l1i = {{.sets = 1, .ways = 3, .sizes = kAllSizes}},
                            .l2 = {{.sets = 7, .ways = 13, .sizes = kSizes4K},
                                   {.sets = 5, .ways = 20, .sizes = kSizes2M},
                                   {.sets = 1, .ways = 16, .sizes = kSizes1G}},
                            .replacement = TlbReplacement::Lru,
                            .seed = 7});
  // The 4-way fast path with a second size in the same array; 8-way L2.
  out.push_back(TlbGeometry{.name = "shared",
                            .l1d = {{.sets = 8, .ways = 4, .sizes = kSizes4K | kSizes2M}},
                            .l1i = {},
                            .l2 = {{.sets = 16, .ways = 8, .sizes = kAllSizes}},
                            .replacement = TlbReplacement::Lru,
                            .seed = 11});
  // A 4-way L1 whose set count is not a power of two, and 1-way arrays.
  out.push_back(TlbGeometry{.name = "direct",
                            .l1d = {{.sets = 6, .ways = 4, .sizes = kSizes4K},
                                    {.sets = 4, .ways = 1, .sizes = kSizes2M}},
                            .l1i = {{.sets = 2, .ways = 4, .sizes = kSizes4K}},
                            .l2 = {{.sets = 9, .ways = 1, .sizes = kSizes4K | kSizes1G}},
                            .replacement = TlbReplacement::Lru,
                            .seed = 3});
  return out;
}

TEST(HwTlbModel, EveryShapeAndPolicyAgreesWithTheModel) {
  for (TlbGeometry geometry : shapes()) {
    for (TlbReplacement policy : {TlbReplacement::Lru, TlbReplacement::Fifo, TlbReplacement::Random}) {
      geometry.replacement = policy;
      for (u64 seed : {1, 2, 3}) {
        run_against_model(geometry, seed, 6000, /*large_pages=*/true, /*globals=*/true);
        if (HasFailure()) return;
      }
      // The fast paths: 4 KiB entries only, without and with global ones.
      for (u64 seed : {4, 5}) {
        run_against_model(geometry, seed, 6000, /*large_pages=*/false, /*globals=*/false);
        if (HasFailure()) return;
        run_against_model(geometry, seed, 3000, /*large_pages=*/false, /*globals=*/true);
        if (HasFailure()) return;
      }
    }
  }
}

// A TLB that has been moved keeps working (its storage moved with it).
TEST(HwTlbModel, AMovedTlbStillAgrees) {
  TlbGeometry geometry = skylake_tlb_geometry();
  Tlb first(geometry);
  ModelTlb model(geometry);
  Workload w(5);
  for (int i = 0; i < 500; ++i) {
    const TlbEntry e = w.entry();
    first.insert(e, AccessKind::Read);
    model.insert(e, AccessKind::Read);
  }
  Tlb tlb(std::move(first));
  for (int i = 0; i < 2000; ++i) {
    const u64 va = w.address();
    const Pcid pcid = w.pcid();
    const TlbLookup got = tlb.lookup(va, pcid, AccessKind::Read);
    const TlbLookup want = model.lookup(va, pcid, AccessKind::Read);
    ASSERT_EQ(got.level, want.level);
    ASSERT_EQ(got.entry, want.entry);
    if (!got.hit()) {
      const TlbEntry e = w.entry();
      tlb.insert(e, AccessKind::Read);
      model.insert(e, AccessKind::Read);
    }
  }
  EXPECT_EQ(entries_of(tlb), model.entries());
}

TEST(HwTlbSetIndex, MatchesTheRemainderForEveryShape) {
  std::vector<u64> numbers = {0, 1, 2, 3, 170, 171, 172, 4095, 4096, (u64{1} << 32) - 1, u64{1} << 32,
                              (u64{1} << 32) + 1, (u64{1} << 36) - 1, u64{1} << 36, (u64{1} << 52) - 1,
                              0xFFFF'8000'0000'0000 >> 12, 0xFFFF'FFFF'FFFF'F000 >> 12, 0xFFFF'8000'0000'0000 >> 21,
                              0xFFFF'8000'0000'0000 >> 30, ~u64{0}, ~u64{0} - 1, u64{1} << 63};
  std::mt19937_64 rng(42);
  for (int i = 0; i < 2000; ++i) numbers.push_back(rng());
  for (int i = 0; i < 2000; ++i) numbers.push_back(rng() >> (rng() % 64));
  for (u32 sets : {1u, 2u, 3u, 5u, 6u, 7u, 12u, 16u, 128u, 171u, 1000u, 4095u, 4096u, 65535u, 99991u,
                   (1u << 20) - 1, 1u << 20}) {
    const TlbSetIndex index(sets);
    EXPECT_EQ(index.sets(), sets);
    for (const u64 n : numbers) ASSERT_EQ(index.of(n), n % sets) << "n " << n << " sets " << sets;
  }
  for (int i = 0; i < 200; ++i) {
    const u32 sets = static_cast<u32>(rng() % (1u << 20)) + 1;
    const TlbSetIndex index(sets);
    for (int j = 0; j < 200; ++j) {
      const u64 n = rng() >> (rng() % 64);
      ASSERT_EQ(index.of(n), n % sets) << "n " << n << " sets " << sets;
    }
  }
}

}  // namespace
