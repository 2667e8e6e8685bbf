// One CPU's TLB (SDM vol. 3A, 4.10.2 and 4.10.4): translations cached by a
// geometry of set-associative arrays (tlb_geometry.hpp), tagged with the
// 12-bit PCID they were made under, global entries matching every PCID, and
// every entry kept until an invalidation or a replacement removes it -- on
// purpose: a stale entry is exactly what a missing shootdown leaves behind,
// and the emulator must let the software use it.
//
// What an entry holds (SDM 4.10.2.2): the page's physical base, its size, the
// rights combined over the levels (R/W, U/S ANDed; XD ORed), the dirty flag
// and the global flag. CR0.WP, SMEP, SMAP and NXE are applied on each use
// (access_violation in page_walk.hpp), not stored. A write that hits an
// entry whose dirty flag is 0 must walk again (SDM 4.8); that is the caller's
// rule, as is invalidating the faulting address after a #PF.
//
// Cost: lookup() is inline and allocation-free; a first-level hit is a probe
// of one set (a handful of compares of 8-byte keys) plus an LRU stamp, and
// arrays that hold no entry of a page size are not probed for it. All
// storage is allocated at construction. Not thread-safe: one CPU owns it.
#pragma once

#include <bit>
#include <cstdint>
#include <vector>

#include "emu/hw/page_walk.hpp"
#include "emu/hw/tlb_geometry.hpp"

namespace pagelab::hw {

enum class TlbLevel : u8 { Miss, L1, L2 };
const char* tlb_level_name(TlbLevel level);

struct TlbEntry {
  u64 page = 0;   // the virtual address of the page's first byte
  u64 frame = 0;  // the physical address of the page's first byte
  PageSize size = PageSize::Size4K;
  Pcid pcid = 0;  // the PCID it was made under (for a global entry: informative only)
  bool global = false;
  Permissions rights;
  bool dirty = false;

  constexpr u64 bytes() const { return bytes_of(size); }
  constexpr bool covers(u64 va) const { return (va & ~(bytes() - 1)) == page; }
  constexpr u64 translate(u64 va) const { return frame | (va & (bytes() - 1)); }
  constexpr bool maps_physical(u64 physical) const { return physical - frame < bytes(); }

  // The entry a successful walk of `result.va` under `pcid` creates.
  static constexpr TlbEntry from_walk(const WalkResult& result, Pcid pcid) {
    const u64 span = bytes_of(result.size);
    return TlbEntry{.page = result.va & ~(span - 1),
                    .frame = result.physical & ~(span - 1),
                    .size = result.size,
                    .pcid = pcid,
                    .global = result.global,
                    .rights = result.rights,
                    .dirty = result.dirty};
  }
  constexpr bool operator==(const TlbEntry&) const = default;
};

struct TlbLookup {
  TlbLevel level = TlbLevel::Miss;
  TlbEntry entry;  // meaningful on a hit
  constexpr bool hit() const { return level != TlbLevel::Miss; }
};

struct TlbCounters {
  u64 l1_hits = 0;
  u64 l2_hits = 0;     // each also refills L1 (counted in l1_refills)
  u64 misses = 0;
  u64 fills = 0;       // insert() calls
  u64 l1_refills = 0;  // L1 entries written from an L2 hit
  u64 evictions = 0;   // valid entries displaced by replacement
  u64 random_evictions = 0;
  u64 invalidations = 0;        // invalidating operations that were asked to invalidate something
  u64 entries_invalidated = 0;  // entries they removed
};

class Tlb {
 public:
  // `geometry` must pass validate(); a geometry that does not is a bug of the
  // caller (which validated user input first) and panics.
  explicit Tlb(const TlbGeometry& geometry);
  Tlb(const Tlb&) = delete;
  Tlb& operator=(const Tlb&) = delete;
  // Movable (the storage moves with it); a moved-from Tlb may only be destroyed.
  Tlb(Tlb&&) = default;
  Tlb& operator=(Tlb&&) = default;

  const TlbGeometry& geometry() const { return geometry_; }
  const TlbCounters& counters() const { return counters_; }
  void reset_counters() { counters_ = TlbCounters{}; }

  // Finds a translation of `va` usable under `pcid` (an entry of that PCID
  // or a global one). A fetch looks in the L1 iTLB when there is one, data
  // accesses in the L1 dTLB; then both in L2. An L2 hit is copied into L1.
  // A non-canonical `va` (which the CPU turns into #GP before any lookup)
  // never hits: it misses.
  TlbLookup lookup(u64 va, Pcid pcid, AccessKind kind) {
    // Canonical: bits 63:47 all equal, i.e. va + 2^47 below 2^48. (Keys keep
    // only bits 47:12, so this is what keeps 0x0000'8000'0000'0000 from
    // hitting the entry of 0xFFFF'8000'0000'0000.)
    if (((va + (u64{1} << 47)) >> 48) != 0) [[unlikely]] return lookup_below_l1(va, pcid, kind);
    const Found found = find(l1_for(kind), va, pcid);
    if (found.probe != nullptr) [[likely]] {
      if (replacement_ == TlbReplacement::Lru) found.probe->stamps[found.index] = tick();
      ++counters_.l1_hits;
      return TlbLookup{TlbLevel::L1, decode(found.key, found.probe->payloads[found.index])};
    }
    return lookup_below_l1(va, pcid, kind);
  }

  // Caches `entry` (made by a walk for an access of `kind`): in the L1 array
  // of its size (the iTLB for a fetch when there is one) and in the L2 array
  // of its size, if those exist. An entry for the same page, size and PCID
  // (or both global) is replaced in place; otherwise the set's LRU entry
  // makes room: the way the geometry's replacement policy picks, an empty
  // one first.
  void insert(const TlbEntry& entry, AccessKind kind);

  // INVLPG va, executed under `current_pcid`: every entry that translates
  // `va` -- any size -- of that PCID, and every global one. Returns the
  // number of entries removed (every operation below does too). A
  // non-canonical `va` (#GP on hardware) removes nothing.
  u64 invalidate_page(u64 va, Pcid current_pcid);
  // INVPCID of `type` with descriptor (pcid, va); `va` is read by type 0 only
  // (non-canonical: #GP on hardware, nothing removed here).
  // Type 0: entries of `pcid` translating `va`, global ones kept; type 1:
  // every non-global entry of `pcid`; type 2: everything; type 3: every
  // non-global entry.
  u64 invpcid(InvpcidType type, Pcid pcid, u64 va = 0);
  // MOV to CR3 with operand `source` (bit 63 included) while CR4.PCIDE =
  // `pcide`: with PCIDE = 1 and bit 63 clear, every non-global entry of the
  // new PCID (source[11:0]); with bit 63 set, nothing; with PCIDE = 0, every
  // non-global entry.
  u64 mov_to_cr3(u64 source, bool pcide);
  // Every entry, global ones included (CR4.PGE toggled, CR4.PCIDE 1 -> 0,
  // CR0.PG 1 -> 0).
  u64 flush_all();
  // The instructions' effect for a CR4 write (cr4_write_invalidation).
  u64 apply(Cr4Invalidation invalidation, Pcid current_pcid);

  // Fault injection: removes one valid entry, chosen uniformly by `random`
  // among the valid ones. False when the TLB is empty.
  bool evict_random(u64 random);

  // Calls f(const TlbEntry&, TlbLevel) for every valid entry (a translation
  // cached in both levels is seen twice).
  template <typename F>
  void for_each(F&& f) const {
    for (const Bank* bank : {&l1d_, &l1i_, &l2_}) {
      for (u32 a = 0; a < bank->array_count; ++a) {
        const Array& array = bank->arrays[a];
        for (u32 i = 0; i < array.sets * array.ways; ++i) {
          if (array.keys[i] != kEmpty) f(decode(array.keys[i], array.payloads[i]), bank->level);
        }
      }
    }
  }
  // Can this CPU still use a cached translation to the byte at `physical`
  // under a PCID for which `usable(pcid)` is true (global entries always)?
  template <typename PcidPredicate>
  bool maps_physical(u64 physical, PcidPredicate&& usable) const {
    bool found = false;
    for_each([&](const TlbEntry& e, TlbLevel) {
      found = found || (e.maps_physical(physical) && (e.global || usable(e.pcid)));
    });
    return found;
  }
  // Valid entries, both levels counted.
  u64 valid_entries() const;

 private:
  // Each way of a set is an 8-byte key and an 8-byte payload, in separate
  // arrays (as is the recency information, below), so that a probe reads one
  // or two cache lines of keys and a hit one payload. The key:
  //   bits 47:12  the page's virtual address (bits 63:48 are its sign
  //               extension: lookups take canonical addresses only);
  //   bits 11:0   the PCID (0 for a global entry);
  //   bits 49:48  1 + PageSize (so 0 means an empty way);
  //   bit 50      global.
  // The payload:
  //   bits 63:52  the PCID the entry was made under (also for a global one);
  //   bits 51:12  the frame;
  //   bits 3:0    dirty, no-execute, user, writable (bit 3 .. bit 0).
  static constexpr u64 kEmpty = 0;
  static constexpr u64 kVpnBits = 0x0000'FFFF'FFFF'F000;
  static constexpr u64 kGlobalKey = u64{1} << 50;
  static constexpr int kSizeShift = 48;

  static constexpr u64 size_key(PageSize size) { return u64{static_cast<u8>(size) + 1u} << kSizeShift; }
  static constexpr unsigned size_index_of_key(u64 key) { return static_cast<unsigned>((key >> kSizeShift) & 3) - 1; }
  static constexpr u64 key_of(const TlbEntry& e) {
    return (e.page & kVpnBits & ~(e.bytes() - 1)) | size_key(e.size) | (e.global ? kGlobalKey : u64{e.pcid});
  }
  static constexpr u64 kFrameBits = 0x000F'FFFF'FFFF'F000;
  static constexpr u64 payload_of(const TlbEntry& e) {
    return (u64{e.pcid} << 52) | (e.frame & kFrameBits & ~(e.bytes() - 1)) | (e.rights.writable ? 1u : 0u) |
           (e.rights.user ? 2u : 0u) | (e.rights.no_execute ? 4u : 0u) | (e.dirty ? 8u : 0u);
  }
  static constexpr TlbEntry decode(u64 key, u64 payload) {
    // Bit 47 of the page address, sign-extended over 63:48.
    const u64 page = static_cast<u64>(static_cast<std::int64_t>((key & kVpnBits) << 16) >> 16);
    return TlbEntry{.page = page,
                    .frame = payload & kFrameBits,
                    .size = static_cast<PageSize>(size_index_of_key(key)),
                    .pcid = static_cast<Pcid>(payload >> 52),
                    .global = (key & kGlobalKey) != 0,
                    .rights = Permissions{.writable = (payload & 1) != 0,
                                          .user = (payload & 2) != 0,
                                          .no_execute = (payload & 4) != 0},
                    .dirty = (payload & 8) != 0};
  }

  // Recency within a set. An L1 array keeps a stamp per way (the clock at its
  // last use, 0 when empty): a hit, the hot path, is one store, and a fill
  // looks for the smallest stamp. An L2 array of at most 16 ways keeps one
  // word per set instead, its ways' numbers as nibbles from most (bits 3:0)
  // to least recently used, empty ways last: a fill, which is what L2 mostly
  // does, takes the last nibble, and a hit moves one nibble to the front.
  // Both are exact LRU.
  struct RecencyOrder {
    static constexpr u64 kNibbles = 0x1111'1111'1111'1111;
    // The initial order: way i at position i, unused positions 0xF.
    static constexpr u64 initial(u32 ways) {
      u64 order = ~u64{0};
      for (u32 w = 0; w < ways; ++w) order = (order & ~(u64{0xF} << (4 * w))) | (u64{w} << (4 * w));
      return order;
    }
    static unsigned position_of(u64 order, u32 way) {
      const u64 x = order ^ (kNibbles * way);
      const u64 zero = (x - kNibbles) & ~x & (kNibbles << 3);  // exact for the lowest zero nibble
      return static_cast<unsigned>(std::countr_zero(zero)) >> 2;
    }
    static u32 least_recent(u64 order, u32 ways) { return static_cast<u32>(order >> (4 * (ways - 1))) & 0xF; }
    static u64 to_front(u64 order, u32 way) {
      const unsigned p = position_of(order, way);
      const u64 below = (u64{1} << (4 * p)) - 1;  // positions < p
      const u64 through = (below << 4) | 0xF;     // positions <= p
      return (order & ~through) | ((order & below) << 4) | way;
    }
    static u64 to_back(u64 order, u32 way, u32 ways) {
      const unsigned p = position_of(order, way);
      const u64 below = (u64{1} << (4 * p)) - 1;
      const u64 through = (below << 4) | 0xF;
      const unsigned last = 4 * (ways - 1);
      const u64 used = ways == 16 ? ~u64{0} : (u64{1} << (4 * ways)) - 1;
      const u64 shifted = ((order & ~through) >> 4) & used & ~(u64{0xF} << last);
      return (order & below) | shifted | (u64{way} << last) | (order & ~used);
    }
  };
  static constexpr u32 kMaxOrderedWays = 16;

  // One set-associative array's storage and shape.
  struct Array {
    u64* keys = nullptr;
    u64* stamps = nullptr;  // per way, when orders is null
    u64* orders = nullptr;  // per set (RecencyOrder), or null
    u64* payloads = nullptr;
    u32 sets = 1;
    u32 ways = 1;
    u64 set_mask = 0;  // sets - 1 when sets is a power of two
    bool sets_pow2 = true;
    PageSizeSet sizes = 0;
    u32* live = nullptr;  // valid entries per PageSize: 3 counters

    u32 set_of(u64 page_number) const {
      return static_cast<u32>(sets_pow2 ? (page_number & set_mask) : page_number % sets);
    }
  };
  // Where a translation of one page size may sit in one array. A lookup
  // tries a bank's probes in order (4 KiB ones first) and skips a probe whose
  // array holds no entry of its size.
  struct Probe {
    u64* keys = nullptr;
    u64* stamps = nullptr;
    u64* orders = nullptr;
    u64* payloads = nullptr;
    const u32* live = nullptr;  // the array's count of valid entries of this size
    u64 vpn_mask = 0;           // kVpnBits without the size's offset bits
    u64 size_key = 0;
    u64 set_mask = 0;           // sets - 1 when sets is a power of two
    u32 sets = 1;
    u32 ways = 1;
    u8 shift = 12;              // the size's page-number shift, for the set index
    bool sets_pow2 = true;

    u32 set_of(u64 va) const {
      const u64 page_number = va >> shift;
      return static_cast<u32>(sets_pow2 ? (page_number & set_mask) : page_number % sets);
    }
  };
  struct Bank {
    Array arrays[kMaxTlbArraysPerLevel];
    u32 array_count = 0;
    std::int8_t array_for_size[3] = {-1, -1, -1};  // by PageSize: the array holding it, or -1
    Probe probes[3 * kMaxTlbArraysPerLevel];
    u32 probe_count = 0;
    TlbLevel level = TlbLevel::L1;
  };
  // Where a lookup found its entry.
  struct Found {
    const Probe* probe = nullptr;
    u32 index = 0;  // the way's index in the array
    u32 set = 0;
    u64 key = 0;
  };

  const Bank& l1_for(AccessKind kind) const {
    return kind == AccessKind::Fetch && l1i_.array_count != 0 ? l1i_ : l1d_;
  }
  Bank& l1_for(AccessKind kind) { return kind == AccessKind::Fetch && l1i_.array_count != 0 ? l1i_ : l1d_; }

  static Found find(const Bank& bank, u64 va, Pcid pcid) {
    for (const Probe* probe = bank.probes; probe != bank.probes + bank.probe_count; ++probe) {
      if (*probe->live == 0) continue;
      const u64 page_key = (va & probe->vpn_mask) | probe->size_key;
      const u64 local = page_key | pcid;
      const u64 global = page_key | kGlobalKey;
      const u32 set = probe->set_of(va);
      const u32 first = set * probe->ways;
      for (u32 i = first; i != first + probe->ways; ++i) {
        const u64 key = probe->keys[i];
        if (key == local || key == global) return Found{probe, i, set, key};
      }
    }
    return Found{};
  }
  // The recency clock (LRU: last use; FIFO: fill): 64 bits never wrap.
  u64 tick() { return ++clock_; }
  // The Random policy's generator (splitmix64): a pure function of the seed
  // and the number of draws, so runs are reproducible.
  u64 next_random() {
    u64 z = (random_state_ += 0x9E37'79B9'7F4A'7C15);
    z = (z ^ (z >> 30)) * 0xBF58'476D'1CE4'E5B9;
    z = (z ^ (z >> 27)) * 0x94D0'49BB'1331'11EB;
    return z ^ (z >> 31);
  }
  // Where the next array's storage starts, while the constructor lays them out.
  struct Cursor {
    u32 slot = 0;
    u32 array = 0;
    u32 set = 0;  // in orders_
  };
  void build(Bank& bank, const std::vector<TlbArrayGeometry>& arrays, TlbLevel level, Cursor& next);
  // Empties way `index`, which becomes the least recently used of its set.
  static void forget(const Array& array, u32 index) {
    --array.live[size_index_of_key(array.keys[index])];
    array.keys[index] = kEmpty;
    if (array.orders != nullptr) {
      const u32 set = index / array.ways;
      array.orders[set] = RecencyOrder::to_back(array.orders[set], index - set * array.ways, array.ways);
    } else {
      array.stamps[index] = 0;
    }
  }

  TlbLookup lookup_below_l1(u64 va, Pcid pcid, AccessKind kind);
  // Writes (key, payload) for a page of `size` at `page` into the bank's
  // array for that size, if it has one.
  // `key_absent`: the caller knows the array holds no way with `key`.
  void fill(Bank& bank, PageSize size, u64 page, u64 key, u64 payload, bool key_absent);
  template <typename Pred>
  u64 drop_all_where(Pred pred);
  template <typename Pred>
  u64 drop_at(u64 va, Pred pred);

  TlbGeometry geometry_;
  std::vector<u64> keys_;
  std::vector<u64> stamps_;
  std::vector<u64> orders_;
  std::vector<u64> payloads_;
  std::vector<u32> live_;  // Array::live of every array
  Bank l1d_;
  Bank l1i_;
  Bank l2_;
  u64 clock_ = 0;
  TlbReplacement replacement_ = TlbReplacement::Lru;
  u64 random_state_ = 0;
  // Bumped by every change of a key (fill, invalidation, eviction).
  u64 epoch_ = 0;
  // The last lookup that missed both levels, so that the insert that
  // follows it can skip searching the sets for its own key.
  struct LastMiss {
    u64 va = 0;
    u64 epoch = ~u64{0};
    const Bank* bank = nullptr;
    Pcid pcid = 0;
  };
  LastMiss last_miss_;
  TlbCounters counters_;
};

}  // namespace pagelab::hw
