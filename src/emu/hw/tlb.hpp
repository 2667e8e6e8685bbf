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
// of one set per L1 array (a handful of compares) plus an LRU stamp. Storage
// is one array sized at construction. Not thread-safe: one CPU owns it.
#pragma once

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
  Tlb(Tlb&&) = default;
  Tlb& operator=(Tlb&&) = default;

  const TlbGeometry& geometry() const { return geometry_; }
  const TlbCounters& counters() const { return counters_; }
  void reset_counters() { counters_ = TlbCounters{}; }

  // Finds a translation of `va` usable under `pcid` (an entry of that PCID
  // or a global one). A fetch looks in the L1 iTLB when there is one, data
  // accesses in the L1 dTLB; then both in L2. An L2 hit is copied into L1.
  // `va` must be canonical (the #GP check comes first, as on hardware).
  TlbLookup lookup(u64 va, Pcid pcid, AccessKind kind) {
    const Found found = find(l1_for(kind), va, pcid);
    if (found.probe != nullptr) [[likely]] {
      found.probe->stamps[found.index] = tick();
      ++counters_.l1_hits;
      return TlbLookup{TlbLevel::L1, decode(found.key, found.probe->payloads[found.index])};
    }
    return lookup_below_l1(va, pcid, kind);
  }

  // Caches `entry` (made by a walk for an access of `kind`): in the L1 array
  // of its size (the iTLB for a fetch when there is one) and in the L2 array
  // of its size, if those exist. An entry for the same page, size and PCID
  // (or both global) is replaced in place; otherwise the set's LRU entry
  // makes room.
  void insert(const TlbEntry& entry, AccessKind kind);

  // INVLPG va (canonical), executed under `current_pcid`: every entry that translates
  // `va` -- any size -- of that PCID, and every global one. Returns the
  // number of entries removed.
  u64 invalidate_page(u64 va, Pcid current_pcid);
  // INVPCID of `type` with descriptor (pcid, va); `va` is read by type 0 only.
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
  // Each way of a set is an 8-byte key, an 8-byte payload and an LRU stamp,
  // in three separate arrays, so that a probe reads one or two cache lines
  // of keys and a hit one payload. The key:
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

  // One set-associative array's storage and shape.
  struct Array {
    u64* keys = nullptr;
    u64* stamps = nullptr;  // LRU: the clock at the last use; 0 for an empty way
    u64* payloads = nullptr;
    u32 sets = 1;
    u32 ways = 1;
    u64 set_mask = 0;  // sets - 1 when sets is a power of two
    bool sets_pow2 = true;
    PageSizeSet sizes = 0;
    u32* live = nullptr;  // valid entries per PageSize: 3 counters

    u32 first_way(u64 page_number) const {
      const u64 set = sets_pow2 ? (page_number & set_mask) : page_number % sets;
      return static_cast<u32>(set) * ways;
    }
  };
  // Where a translation of one page size may sit in one array. A lookup
  // tries a bank's probes in order (4 KiB ones first) and skips a probe whose
  // array holds no entry of its size.
  struct Probe {
    u64* keys = nullptr;
    u64* stamps = nullptr;
    u64* payloads = nullptr;
    const u32* live = nullptr;  // the array's count of valid entries of this size
    u64 vpn_mask = 0;           // kVpnBits without the size's offset bits
    u64 size_key = 0;
    u64 set_mask = 0;           // sets - 1 when sets is a power of two
    u32 sets = 1;
    u32 ways = 1;
    u8 shift = 12;              // the size's page-number shift, for the set index
    bool sets_pow2 = true;

    u32 first_way(u64 va) const {
      const u64 page_number = va >> shift;
      const u64 set = sets_pow2 ? (page_number & set_mask) : page_number % sets;
      return static_cast<u32>(set) * ways;
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
    u32 index = 0;
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
      const u32 first = probe->first_way(va);
      for (u32 i = first; i != first + probe->ways; ++i) {
        const u64 key = probe->keys[i];
        if (key == local || key == global) return Found{probe, i, key};
      }
    }
    return Found{};
  }
  // The LRU clock: 64 bits never wrap.
  u64 tick() { return ++clock_; }
  void build(Bank& bank, const std::vector<TlbArrayGeometry>& arrays, TlbLevel level, u32& next_slot, u32& next_array);
  static void forget(const Array& array, u32 index) {
    --array.live[size_index_of_key(array.keys[index])];
    array.keys[index] = kEmpty;
    array.stamps[index] = 0;  // an empty way is always the least recently used
  }

  TlbLookup lookup_below_l1(u64 va, Pcid pcid, AccessKind kind);
  // Writes (key, payload) for a page of `size` at `page` into the bank's
  // array for that size, if it has one.
  void fill(Bank& bank, PageSize size, u64 page, u64 key, u64 payload);
  template <typename Pred>
  u64 drop_all_where(Pred pred);
  template <typename Pred>
  u64 drop_at(u64 va, Pred pred);

  TlbGeometry geometry_;
  std::vector<u64> keys_;
  std::vector<u64> stamps_;
  std::vector<u64> payloads_;
  std::vector<u32> live_;  // Array::live of every array
  Bank l1d_;
  Bank l1i_;
  Bank l2_;
  u64 clock_ = 0;
  TlbCounters counters_;
};

}  // namespace pagelab::hw
