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
// Cost (docs/BENCHMARKS.md, BM_Translate_*): lookup() is inline and
// allocation-free. A first-level hit of a 4 KiB page in the common L1 shape
// (4 ways, a power-of-two number of sets, no global entry cached) is a mask,
// up to four compares of 8-byte keys, an LRU stamp and a counter, and the
// entry is decoded from two words in registers, so a caller pays only for
// the fields it reads. A miss of both levels costs one call without a stack
// frame, and insert() one call. Arrays that hold no entry of a page size are
// not probed for it, the global key is compared only while some global
// entry is cached, a set index is a mask (or a multiplication,
// TlbSetIndex), and an insert right after the miss it answers skips the
// search for its own key. All storage is allocated at construction. Not
// thread-safe: one CPU owns it.
#pragma once

#include <bit>
#include <cstddef>
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
  // Zeroes the counters (the recency clock, of which the L1 hit count is a
  // part, keeps running).
  void reset_counters() {
    clock_base_ += counters_.l1_hits;
    counters_ = TlbCounters{};
  }
  // Back to the state the constructor left, for another run on the same
  // storage (Machine::restart): every way empty, the recency and replacement
  // state, the counters and version() as new. Costs a scan of each array
  // that holds an entry, up to its last one, and (if any entry was ever
  // made) the L2 recency words; nothing is allocated. Left as they are is
  // what nothing reads: the payload of a way whose entry was invalidated,
  // and the scratch stamps that L1 hits write under FIFO and Random.
  void reset();

  // Finds a translation of `va` usable under `pcid` (an entry of that PCID
  // or a global one). A fetch looks in the L1 iTLB when there is one, data
  // accesses in the L1 dTLB; then both in L2. An L2 hit is copied into L1.
  // A non-canonical `va` (which the CPU turns into #GP before any lookup)
  // never hits: it misses.
  [[gnu::always_inline]] TlbLookup lookup(u64 va, Pcid pcid, AccessKind kind) {
    // Canonical: bits 63:47 all equal, i.e. va + 2^47 below 2^48. (Keys keep
    // only bits 47:12, so this is what keeps 0x0000'8000'0000'0000 from
    // hitting the entry of 0xFFFF'8000'0000'0000.)
    const bool canonical = ((va + (u64{1} << 47)) >> 48) == 0;
    // The common hit first, with its own return: its key is the one
    // compared, whose size bits are constants, so a caller's use of the
    // entry's size (translate(), bytes()) folds away.
    const Bank& l1 = l1_for(kind);
    Found found;
    if (canonical && (l1.present & kFast4KLocal)) [[likely]] {
      const u64 local = (va & kVpnBits) | size_key(PageSize::Size4K) | pcid;
      const u64 first = (va >> 10) & l1.by_size[0].first_way_mask;
      if (u64* const hit = match_fixed<4, false>(l1.by_size[0].keys + first, local, local)) [[likely]] {
        hit_l1(hit);
        return TlbLookup{TlbLevel::L1, decode(local, hit[payload_offset_])};
      }
      // Not as a 4 KiB page: L1 may still hold a larger one.
      if (l1.present & 6) [[unlikely]] found = find_large(l1, va, pcid);
    } else if (canonical) {
      found = find(l1, va, pcid);
    }
    // Every other path ends in the one decode below, from two words in
    // registers (a miss decodes to TlbEntry{}), so that a caller that reads
    // only a field or two of the entry gets just those, and no TlbEntry goes
    // through memory.
    TlbLevel level = TlbLevel::L1;
    Raw raw;
    if (found.key != nullptr) {
      hit_l1(found.key);
      raw = Raw{found.value, found.key[payload_offset_]};
    } else {
      raw = canonical ? lookup_below_l1(va, pcid, kind) : lookup_non_canonical();
      level = raw.key == kMissKey ? TlbLevel::Miss : TlbLevel::L2;
    }
    return TlbLookup{level, decode(raw.key, raw.payload)};
  }

  // Caches `entry` (made by a walk for an access of `kind`): in the L1 array
  // of its size (the iTLB for a fetch when there is one) and in the L2 array
  // of its size, if those exist. An entry for the same page, size and PCID
  // (or both global) is replaced in place; otherwise the set's LRU entry
  // makes room: the way the geometry's replacement policy picks, an empty
  // one first.
  void insert(const TlbEntry& entry, AccessKind kind) {
    insert_encoded(key_of(entry), payload_of(entry), entry.page, entry.size, entry.pcid, kind);
  }

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
        u32 left = array.live[0] + array.live[1] + array.live[2];  // stop at the last valid way
        for (u32 i = 0; left > 0 && i < array.sets * array.ways; ++i) {
          if (array.keys[i] == kEmpty) continue;
          --left;
          f(decode(array.keys[i], array.payloads[i]), bank->level);
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
  // Changes whenever an entry may have (a fill, even in place, an eviction,
  // an invalidation): a copy of the entries taken at one version is current
  // while it lasts (the oracle's copies).
  u64 version() const { return version_; }

 private:
  // Each way of a set is an 8-byte key and an 8-byte payload, in separate
  // regions of one vector (as is the recency information, below), so that a
  // probe reads one or two cache lines of keys, and the payload (and stamp)
  // of the key at p are p[payload_offset_] (and p[stamp_offset_]). The key:
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
  // The page's virtual address in a key: bit 47 sign-extended over 63:48.
  static constexpr u64 page_of_key(u64 key) {
    return static_cast<u64>(static_cast<std::int64_t>((key & kVpnBits) << 16) >> 16);
  }
  static constexpr TlbEntry decode(u64 key, u64 payload) {
    return TlbEntry{.page = page_of_key(key),
                    .frame = payload & kFrameBits,
                    .size = static_cast<PageSize>(size_index_of_key(key)),
                    .pcid = static_cast<Pcid>(payload >> 52),
                    .global = (key & kGlobalKey) != 0,
                    .rights = Permissions{.writable = (payload & 1) != 0,
                                          .user = (payload & 2) != 0,
                                          .no_execute = (payload & 4) != 0},
                    .dirty = (payload & 8) != 0};
  }
  // A way's two words, as lookup_below_l1 returns them (in registers).
  struct Raw {
    u64 key;
    u64 payload;
  };
  // What lookup_below_l1 returns for a miss: words that decode to TlbEntry{}
  // (page 0, 4 KiB, PCID 0, not global, writable and user, clean) with bit
  // 51 set in the key, which no stored key has.
  static constexpr u64 kMissKey = (u64{1} << 51) | (u64{1} << kSizeShift);
  static constexpr u64 kMissPayload = 3;
  static constexpr Raw kMiss{kMissKey, kMissPayload};

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
    // The positions a set of `ways` ways uses.
    static constexpr u64 used(u32 ways) { return ways >= 16 ? ~u64{0} : (u64{1} << (4 * ways)) - 1; }
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
    // to_front(order, least_recent(order, ways)), for `used` = used(ways):
    // every used position moves back by one.
    static u64 least_recent_to_front(u64 order, u64 used_positions, u32 way) {
      return (order & ~used_positions) | ((order << 4) & used_positions) | way;
    }
    static u64 to_back(u64 order, u32 way, u32 ways) {
      const unsigned p = position_of(order, way);
      const u64 below = (u64{1} << (4 * p)) - 1;
      const u64 through = (below << 4) | 0xF;
      const unsigned last = 4 * (ways - 1);
      const u64 in_use = used(ways);
      const u64 shifted = ((order & ~through) >> 4) & in_use & ~(u64{0xF} << last);
      return (order & below) | shifted | (u64{way} << last) | (order & ~in_use);
    }
  };
  static constexpr u32 kMaxOrderedWays = 16;

  // One set-associative array's storage and shape.
  struct Array {
    u64* keys = nullptr;
    u64* stamps = nullptr;  // per way, when orders is null
    u64* orders = nullptr;  // per set (RecencyOrder), or null
    u64* payloads = nullptr;
    u32* live = nullptr;    // valid entries per PageSize: 3 counters
    TlbSetIndex set_index;
    u32 sets = 1;
    u32 ways = 1;
    PageSizeSet sizes = 0;

    u32 set_of(u64 page_number) const { return set_index.of(page_number); }
  };
  // Where a translation of one page size sits in one array: everything a
  // lookup and a fill of that size need, in one place. (Aligned so that a
  // probe is two cache lines, the hot fields in the first, and by_size[] is
  // indexed by a shift.)
  struct alignas(64) Probe {
    u64* keys = nullptr;
    u64* stamps = nullptr;
    u64* orders = nullptr;
    u32* live = nullptr;        // the array's 3 counts of valid entries, by PageSize
    u64 vpn_mask = 0;           // kVpnBits without the size's offset bits
    u64 size_key = 0;
    u64 used_positions = 0;     // RecencyOrder::used(ways), with orders
    TlbSetIndex set_index;
    u32 ways = 1;
    u32 ways_by_4 = 0;          // ways rounded down to a multiple of 4
    u8 shift = 12;              // the size's page-number shift, for the set index
    // The common L1 shape, 4 ways and a power-of-two number of sets: the
    // first way of the set of a 4 KiB page at `va` is
    // (va >> 10) & first_way_mask.
    bool four_ways_pow2 = false;
    u64 first_way_mask = 0;

    u32 set_of(u64 address) const { return set_index.of(address >> shift); }
  };
  // One level's arrays (an L1 bank or L2). Within a level each page size
  // has at most one array (validate()), so a bank has one probe per size it
  // holds, by_size[size]. A lookup tries the sizes in `present` -- those
  // whose array holds at least one entry of that size, kept exact by every
  // change of a key -- smallest first; a fill goes to by_size[size].
  // `present` also has, kept as exact:
  static constexpr u8 kFast4K = 8;        // bit 0, and by_size[0].four_ways_pow2
  static constexpr u8 kGlobals = 16;      // a global entry is cached (else a probe compares this PCID's key only)
  static constexpr u8 kFast4KLocal = 32;  // kFast4K without kGlobals: the common L1 case, one test
  struct Bank {
    Array arrays[kMaxTlbArraysPerLevel];
    u32 array_count = 0;
    Probe by_size[3];
    u32 global_entries = 0;
    u8 held = 0;     // bit `size`: by_size[size] is an array's
    u8 present = 0;  // bit `size`: ... and that array holds an entry of that size; kFast4K, kGlobals
    u8 present_bits[3] = {1, 2, 4};  // what `present` gains while a size is present
    TlbLevel level = TlbLevel::L1;
  };
  // Where a lookup found its entry.
  struct Found {
    u64* key = nullptr;  // the way's key; null: not found
    const Probe* probe = nullptr;
    u32 set = 0;
    // *key, when found: the key the probe compared, so that a caller
    // decoding it need not wait for (or repeat) the load -- for the fast L1
    // case a value known before the probe, whose size bits are constants.
    u64 value = 0;
  };

  const Bank& l1_for(AccessKind kind) const {
    return kind == AccessKind::Fetch && l1i_.array_count != 0 ? l1i_ : l1d_;
  }
  Bank& l1_for(AccessKind kind) { return kind == AccessKind::Fetch && l1i_.array_count != 0 ? l1i_ : l1d_; }

  template <bool WithGlobal>
  static bool matches(u64 key, u64 local, u64 global) {
    return key == local || (WithGlobal && key == global);
  }
  // The first of the `ways` keys from `set` that is `local` or (when
  // `WithGlobal`) `global`, or null. The common way counts are unrolled
  // completely; any other goes four ways per round (`ways_by_4`: ways
  // rounded down to a multiple of 4), then one by one. (Branches, not
  // masks: a predicted hit lets the payload load start before the keys
  // arrive.)
  template <u32 Ways, bool WithGlobal>
  static u64* match_fixed(u64* set, u64 local, u64 global) {
#pragma GCC unroll 16
    for (u32 w = 0; w < Ways; ++w) {
      if (matches<WithGlobal>(set[w], local, global)) return set + w;
    }
    return nullptr;
  }
  template <bool WithGlobal>
  static u64* match(u64* set, u32 ways, u32 ways_by_4, u64 local, u64 global) {
    if (ways == 4) [[likely]] return match_fixed<4, WithGlobal>(set, local, global);
    if (ways == 12) return match_fixed<12, WithGlobal>(set, local, global);
    if (ways == 8) return match_fixed<8, WithGlobal>(set, local, global);
    return match_any<WithGlobal>(set, ways, ways_by_4, local, global);
  }
  // Any other way count (out of line: it needs registers the others do not).
  template <bool WithGlobal>
  [[gnu::noinline]] static u64* match_any(u64* set, u32 ways, u32 ways_by_4, u64 local, u64 global) {
    u64* k = set;
    for (const u64* const end = set + ways_by_4; k != end; k += 4) {
      if (matches<WithGlobal>(k[0], local, global)) return k;
      if (matches<WithGlobal>(k[1], local, global)) return k + 1;
      if (matches<WithGlobal>(k[2], local, global)) return k + 2;
      if (matches<WithGlobal>(k[3], local, global)) return k + 3;
    }
    for (const u64* const end = set + ways; k != end; ++k) {
      if (matches<WithGlobal>(*k, local, global)) return k;
    }
    return nullptr;
  }
  static u64* match(bool with_global, u64* set, u32 ways, u32 ways_by_4, u64 local, u64 global) {
    return with_global ? match<true>(set, ways, ways_by_4, local, global)
                       : match<false>(set, ways, ways_by_4, local, global);
  }

  // The way of `probe`'s set for `va` that holds its key under `pcid` (or
  // the global one), if any.
  static Found find_in(const Probe& probe, bool with_global, u64 va, Pcid pcid) {
    const u64 page_key = (va & probe.vpn_mask) | probe.size_key;
    const u32 set = probe.set_of(va);
    u64* const hit = match(with_global, probe.keys + set * probe.ways, probe.ways, probe.ways_by_4, page_key | pcid,
                           page_key | kGlobalKey);
    return Found{hit, &probe, set, hit != nullptr ? *hit : 0};
  }
  // The translation in `bank`, trying the sizes present smallest first: the
  // 4 KiB case inline (its shifts and masks constants), the others (rarer)
  // out of line.
  [[gnu::always_inline]] static Found find(const Bank& bank, u64 va, Pcid pcid) {
    const Found found = find_4k(bank, va, pcid);
    if (found.key != nullptr) [[likely]] return found;
    if (bank.present & 6) [[unlikely]] return find_large(bank, va, pcid);
    return Found{};
  }
  [[gnu::always_inline]] static Found find_4k(const Bank& bank, u64 va, Pcid pcid) {
    const u32 present = bank.present;
    const Probe& probe = bank.by_size[0];
    const u64 page_key = (va & kVpnBits) | size_key(PageSize::Size4K);
    const u64 local = page_key | pcid;
    const u64 global = page_key | kGlobalKey;
    if (present & kFast4KLocal) [[likely]] {
      const u64 first = (va >> 10) & probe.first_way_mask;
      return Found{match_fixed<4, false>(probe.keys + first, local, global), &probe, static_cast<u32>(first >> 2),
                   local};
    }
    if (present & kFast4K) {
      const u64 first = (va >> 10) & probe.first_way_mask;
      u64* const hit = match_fixed<4, true>(probe.keys + first, local, global);
      return Found{hit, &probe, static_cast<u32>(first >> 2), hit != nullptr ? *hit : 0};
    }
    if (present & 1) {
      const u32 set = probe.set_index.of(va >> 12);
      u64* const hit = match((present & kGlobals) != 0, probe.keys + set * probe.ways, probe.ways, probe.ways_by_4,
                             local, global);
      return Found{hit, &probe, set, hit != nullptr ? *hit : 0};
    }
    return Found{};
  }
  [[gnu::noinline]] static Found find_large(const Bank& bank, u64 va, Pcid pcid) {
    for (u32 sizes = bank.present & 6u; sizes != 0; sizes &= sizes - 1) {
      const Found found = find_in(bank.by_size[std::countr_zero(sizes)], bank.global_entries != 0, va, pcid);
      if (found.key != nullptr) return found;
    }
    return Found{};
  }
  // An L1 hit on the way whose key is at `key`. LRU: a hit is a use (an L1
  // array keeps stamps, never orders); under FIFO and Random
  // hit_stamp_offset_ leads to a region nobody reads. The hit count is part
  // of the clock (tick()), so this is one increment, not two.
  void hit_l1(u64* key) { key[hit_stamp_offset_] = ++counters_.l1_hits + clock_base_; }
  // The recency clock (LRU: last use; FIFO: fill): clock_base_ +
  // counters_.l1_hits, the number of stamps handed out so far -- an L1 hit
  // advances it by counting itself, every other use by tick(). Stamps only
  // ever compare within a set, and each is larger than every earlier one;
  // 64 bits never wrap.
  u64 tick() { return ++clock_base_ + counters_.l1_hits; }
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
  // One more (fewer) valid entry of `size` in the bank's array `live` counts.
  static void count_in(Bank& bank, u32* live, unsigned size) {
    if (live[size]++ == 0) set_present(bank, bank.present | bank.present_bits[size]);
  }
  static void count_out(Bank& bank, u32* live, unsigned size) {
    if (--live[size] == 0) set_present(bank, bank.present & ~bank.present_bits[size]);
  }
  // One more (fewer) global entry in the bank.
  static void count_global_in(Bank& bank) {
    if (bank.global_entries++ == 0) set_present(bank, bank.present | kGlobals);
  }
  static void count_global_out(Bank& bank) {
    if (--bank.global_entries == 0) set_present(bank, bank.present & ~kGlobals);
  }
  // `present` with kFast4KLocal recomputed from kFast4K and kGlobals.
  static void set_present(Bank& bank, unsigned present) {
    present &= ~unsigned{kFast4KLocal};
    if ((present & (kFast4K | kGlobals)) == kFast4K) present |= kFast4KLocal;
    bank.present = static_cast<u8>(present);
  }
  // Empties way `index` of `array` (one of `bank`'s), which becomes the least
  // recently used of its set.
  static void forget(Bank& bank, const Array& array, u32 index) {
    count_out(bank, array.live, size_index_of_key(array.keys[index]));
    if (array.keys[index] & kGlobalKey) count_global_out(bank);
    array.keys[index] = kEmpty;
    if (array.orders != nullptr) {
      const u32 set = index / array.ways;
      array.orders[set] = RecencyOrder::to_back(array.orders[set], index - set * array.ways, array.ways);
    } else {
      array.stamps[index] = 0;
    }
  }

  // After an L1 miss of a canonical `va`: kMiss when L2 misses too; on an L2
  // hit, the entry's words, after refreshing its recency and copying it into
  // L1.
  Raw lookup_below_l1(u64 va, Pcid pcid, AccessKind kind);
  // Its parts: the general search; L2 has the translation (the way at
  // key_slot); L2 misses too (inline).
  [[gnu::noinline]] Raw lookup_l2_any(u64 va, Pcid pcid, AccessKind kind);
  [[gnu::noinline]] Raw l2_hit(u64* key_slot, const Probe* probe, u32 set, AccessKind kind);
  Raw l2_miss(u64 va, Pcid pcid, AccessKind kind);
  // lookup() of a non-canonical `va`: a miss.
  Raw lookup_non_canonical();
  // insert() of the entry whose key and payload these are.
  void insert_encoded(u64 key, u64 payload, u64 page, PageSize size, Pcid pcid, AccessKind kind);
  // Writes (key, payload) for a page of `size` at `page` into the bank's
  // array for that size, if it has one, as the replacement `Policy` (the
  // TLB's, replacement_) says; `Level2`: the bank is l2_. `key_absent`: the
  // caller knows the array holds no way with `key`.
  template <TlbReplacement Policy, bool Level2>
  [[gnu::always_inline]] inline void fill(Bank& bank, unsigned size, u64 page, u64 key, u64 payload, bool key_absent);
  // An L2 hit's copy into L1.
  void refill_l1(Bank& l1, unsigned size, u64 key, u64 payload);
  template <typename Pred>
  u64 drop_all_where(Pred pred);
  template <typename Pred>
  u64 drop_at(u64 va, Pred pred);

  TlbGeometry geometry_;
  // Every array's keys, then their payloads, then their stamps, then (FIFO
  // and Random only) a scratch region as large, where L1 hits write the
  // stamps that those policies ignore -- so that a hit stores unconditionally.
  std::vector<u64> slots_;
  std::size_t payload_offset_ = 0;     // entries: the payload of the key at p is p[payload_offset_]
  std::size_t stamp_offset_ = 0;       // and its stamp p[stamp_offset_]
  std::size_t hit_stamp_offset_ = 0;   // stamp_offset_ (LRU) or the scratch region
  std::vector<u64> orders_;
  std::vector<u32> live_;  // Array::live of every array
  Bank l1d_;
  Bank l1i_;
  Bank l2_;
  u64 clock_base_ = 0;
  TlbReplacement replacement_ = TlbReplacement::Lru;
  u64 random_state_ = 0;
  // Bumped by every change of a key (fill, invalidation, eviction).
  u64 epoch_ = 0;
  u64 version_ = 0;  // version()
  // The last lookup that missed both levels, so that the insert that
  // follows it can skip searching the sets for its own key.
  struct LastMiss {
    u64 va = 0;
    u64 epoch = ~u64{0};
    const Bank* bank = nullptr;  // the L1 bank it missed in
    Pcid pcid = 0;
  };
  LastMiss last_miss_;
  TlbCounters counters_;
};

}  // namespace pagelab::hw
