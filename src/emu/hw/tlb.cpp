#include "emu/hw/tlb.hpp"

#include <algorithm>
#include <bit>
#include <string>
#include <vector>

#include "mm/base/panic.hpp"

namespace pagelab::hw {

const char* tlb_level_name(TlbLevel level) {
  switch (level) {
    case TlbLevel::Miss: return "miss";
    case TlbLevel::L1: return "L1";
    case TlbLevel::L2: return "L2";
  }
  return "?";
}

Tlb::Tlb(const TlbGeometry& geometry)
    : geometry_(geometry), replacement_(geometry.replacement), random_state_(geometry.seed) {
  static_assert(decode(kMissKey, kMissPayload) == TlbEntry{}, "a miss must decode to TlbEntry{}");
  if (!validate(geometry_).empty()) MM_PANIC("Tlb: invalid geometry (validate() it first); entries", geometry_.entries());
  const u32 total = geometry_.entries();
  const bool lru = replacement_ == TlbReplacement::Lru;
  slots_.assign((lru ? 3 : 4) * std::size_t{total}, 0);  // keys kEmpty, payloads 0, stamps 0
  payload_offset_ = total;
  stamp_offset_ = 2 * std::size_t{total};
  hit_stamp_offset_ = lru ? stamp_offset_ : 3 * std::size_t{total};
  u32 l2_sets = 0;
  for (const TlbArrayGeometry& g : geometry_.l2) l2_sets += g.ways <= kMaxOrderedWays ? g.sets : 0;
  orders_.assign(l2_sets, 0);
  live_.assign(3 * (geometry_.l1d.size() + geometry_.l1i.size() + geometry_.l2.size()), 0);
  Cursor next;
  build(l1d_, geometry_.l1d, TlbLevel::L1, next);
  build(l1i_, geometry_.l1i, TlbLevel::L1, next);
  build(l2_, geometry_.l2, TlbLevel::L2, next);
}

void Tlb::build(Bank& bank, const std::vector<TlbArrayGeometry>& arrays, TlbLevel level, Cursor& next) {
  bank.level = level;
  bank.array_count = static_cast<u32>(arrays.size());
  for (u32 a = 0; a < bank.array_count; ++a) {
    const TlbArrayGeometry& g = arrays[a];
    Array& array = bank.arrays[a];
    array.keys = slots_.data() + next.slot;
    array.payloads = array.keys + payload_offset_;
    array.stamps = array.keys + stamp_offset_;
    next.slot += g.entries();
    array.live = live_.data() + 3 * next.array++;
    if (level == TlbLevel::L2 && g.ways <= kMaxOrderedWays) {
      array.orders = orders_.data() + next.set;
      next.set += g.sets;
      for (u32 set = 0; set < g.sets; ++set) array.orders[set] = RecencyOrder::initial(g.ways);
    }
    array.sets = g.sets;
    array.ways = g.ways;
    array.set_index = TlbSetIndex(g.sets);
    array.sizes = g.sizes;
  }
  // A probe per page size held.
  bank.held = 0;
  bank.present = 0;
  bank.global_entries = 0;
  for (PageSize size : {PageSize::Size4K, PageSize::Size2M, PageSize::Size1G}) {
    for (u32 a = 0; a < bank.array_count; ++a) {
      const Array& array = bank.arrays[a];
      if (!(array.sizes & size_bit(size))) continue;
      bank.held = static_cast<u8>(bank.held | size_bit(size));
      bank.by_size[static_cast<unsigned>(size)] = Probe{
          .keys = array.keys,
          .stamps = array.stamps,
          .orders = array.orders,
          .live = array.live,
          .vpn_mask = kVpnBits & ~(bytes_of(size) - 1),
          .size_key = size_key(size),
          .used_positions = RecencyOrder::used(array.ways),
          .set_index = array.set_index,
          .ways = array.ways,
          .ways_by_4 = array.ways & ~u32{3},
          .shift = static_cast<u8>(std::countr_zero(bytes_of(size))),
          .four_ways_pow2 = array.ways == 4 && std::has_single_bit(array.sets),
          .first_way_mask = std::has_single_bit(array.sets) ? u64{array.sets - 1} << 2 : 0};
    }
  }
  bank.present_bits[0] = static_cast<u8>(1 | (bank.by_size[0].four_ways_pow2 ? kFast4K : 0));
}

void Tlb::reset() {
  for (Bank* bank : {&l1d_, &l1i_, &l2_}) {
    for (u32 a = 0; a < bank->array_count; ++a) {
      const Array& array = bank->arrays[a];
      u32 left = array.live[0] + array.live[1] + array.live[2];
      const u32 ways = array.sets * array.ways;
      for (u32 block = 0; left > 0 && block < ways; block += 8) {
        // Eight keys at a time: most of a large array is empty.
        const u32 end = block + 8 < ways ? block + 8 : ways;
        u64 any = 0;
        for (u32 i = block; i < end; ++i) any |= array.keys[i];
        if (any == kEmpty) continue;
        for (u32 i = block; i < end; ++i) {
          if (array.keys[i] == kEmpty) continue;
          --left;
          array.keys[i] = kEmpty;
          array.keys[i + payload_offset_] = 0;
          array.keys[i + stamp_offset_] = 0;  // (an empty way's stamp is 0: forget() keeps it so)
        }
      }
      // Orders change only with entries: an array that never held one is as built.
      if (array.orders != nullptr && epoch_ != 0) {
        for (u32 set = 0; set < array.sets; ++set) array.orders[set] = RecencyOrder::initial(array.ways);
      }
    }
    bank->global_entries = 0;
    bank->present = 0;
  }
  std::fill(live_.begin(), live_.end(), 0u);
  clock_base_ = 0;
  random_state_ = geometry_.seed;
  epoch_ = 0;
  version_ = 0;
  last_miss_ = LastMiss{};
  counters_ = TlbCounters{};
}

Tlb::Raw Tlb::lookup_non_canonical() {
  ++counters_.misses;
  return kMiss;
}

// The common case first -- L2 holds 4 KiB entries only, none global, in a
// power-of-two number of sets of 4, 8, 12 or 16 ways -- with every way out
// a return or a tail call, so that the miss, the path a walk follows, needs
// no stack frame; anything else goes to lookup_l2_any.
Tlb::Raw Tlb::lookup_below_l1(u64 va, Pcid pcid, AccessKind kind) {
  const Probe& probe = l2_.by_size[0];
  if ((l2_.present & (7 | kGlobals)) != 1 || !probe.set_index.power_of_two()) [[unlikely]] {
    return lookup_l2_any(va, pcid, kind);
  }
  const u64 local = (va & kVpnBits) | size_key(PageSize::Size4K) | pcid;
  const u32 set = static_cast<u32>((va >> 12) & probe.set_index.mask());
  u64* const keys = probe.keys + set * probe.ways;
  u64* hit;
  switch (probe.ways) {
    case 12: hit = match_fixed<12, false>(keys, local, local); break;
    case 4: hit = match_fixed<4, false>(keys, local, local); break;
    case 8: hit = match_fixed<8, false>(keys, local, local); break;
    case 16: hit = match_fixed<16, false>(keys, local, local); break;
    default: return lookup_l2_any(va, pcid, kind);
  }
  if (hit != nullptr) return l2_hit(hit, &probe, set, kind);
  return l2_miss(va, pcid, kind);
}

Tlb::Raw Tlb::lookup_l2_any(u64 va, Pcid pcid, AccessKind kind) {
  const Found found = find(l2_, va, pcid);
  if (found.key != nullptr) return l2_hit(found.key, found.probe, found.set, kind);
  return l2_miss(va, pcid, kind);
}

Tlb::Raw Tlb::l2_miss(u64 va, Pcid pcid, AccessKind kind) {
  ++counters_.misses;
  last_miss_ = LastMiss{va, epoch_, &l1_for(kind), pcid};
  return kMiss;
}

Tlb::Raw Tlb::l2_hit(u64* key_slot, const Probe* probe, u32 set, AccessKind kind) {
  const Found found{key_slot, probe, set};
  if (replacement_ != TlbReplacement::Lru) {
    // FIFO ages by fill only; Random keeps no recency.
  } else if (found.probe->orders != nullptr) {
    u64& order = found.probe->orders[found.set];
    const u64* const set_keys = found.probe->keys + found.set * found.probe->ways;
    order = RecencyOrder::to_front(order, static_cast<u32>(found.key - set_keys));
  } else {
    found.key[stamp_offset_] = tick();
  }
  ++counters_.l2_hits;
  const u64 key = *found.key;
  const u64 payload = found.key[payload_offset_];
  Bank& l1 = l1_for(kind);
  const unsigned size = size_index_of_key(key);
  if (l1.held & (1u << size)) {
    refill_l1(l1, size, key, payload);
    ++counters_.l1_refills;
  }
  return Raw{key, payload};
}

namespace {

// Which of a set's `ways` ways an insert of `key` takes: the way already
// holding `key` (a refresh), else the least recently used one (an empty way
// has stamp 0, so it goes first). Branch-free where the outcome is data the
// predictor cannot learn; with `Ways` a constant (the common geometries) the
// loops unroll completely.
template <u32 Ways>
[[gnu::always_inline]] inline u32 pick_way_fixed(const u64* keys, const u64* stamps, u64 key, bool key_absent) {
  if (!key_absent) {
    u32 same = Ways;
    for (u32 w = 0; w < Ways; ++w) same = keys[w] == key ? w : same;
    if (same != Ways) [[unlikely]] return same;
  }
  // Four independent minimum chains over (stamp << 8 | way).
  u64 best[4] = {~u64{0}, ~u64{0}, ~u64{0}, ~u64{0}};
  for (u32 w = 0; w < Ways; ++w) {
    const u64 candidate = stamps[w] << 8 | w;
    best[w % 4] = candidate < best[w % 4] ? candidate : best[w % 4];
  }
  const u64 low = best[0] < best[1] ? best[0] : best[1];
  const u64 high = best[2] < best[3] ? best[2] : best[3];
  return static_cast<u32>((low < high ? low : high) & 0xFF);
}

u32 pick_way_any(const u64* keys, const u64* stamps, u64 key, u32 ways, bool key_absent) {
  for (u32 w = 0; w < ways && !key_absent; ++w) {
    if (keys[w] == key) [[unlikely]] return w;
  }
  u64 best = ~u64{0};
  for (u32 w = 0; w < ways; ++w) {
    const u64 candidate = stamps[w] << 8 | w;
    best = candidate < best ? candidate : best;
  }
  return static_cast<u32>(best & 0xFF);
}

// `key_absent`: the caller knows no way of the set holds `key`.
[[gnu::always_inline]] inline u32 pick_way(const u64* keys, const u64* stamps, u64 key, u32 ways, bool key_absent) {
  switch (ways) {
    case 4: return pick_way_fixed<4>(keys, stamps, key, key_absent);
    case 8: return pick_way_fixed<8>(keys, stamps, key, key_absent);
    case 12: return pick_way_fixed<12>(keys, stamps, key, key_absent);
    case 16: return pick_way_fixed<16>(keys, stamps, key, key_absent);
    default: return pick_way_any(keys, stamps, key, ways, key_absent);
  }
}

// The Random policy's choice: the way holding `key`, else the first empty
// way, else a way drawn from `draw` (called only then).
template <typename Draw>
u32 pick_way_random(const u64* keys, u64 key, u32 ways, bool key_absent, Draw&& draw) {
  u32 empty = ways;
  for (u32 w = 0; w < ways; ++w) {
    if (!key_absent && keys[w] == key) [[unlikely]] return w;
    if (keys[w] == 0 && empty == ways) empty = w;
  }
  return empty != ways ? empty : static_cast<u32>(draw() % ways);
}

}  // namespace

template <TlbReplacement Policy, bool Level2>
void Tlb::fill(Bank& bank, unsigned size, u64 page, u64 key, u64 payload, bool key_absent) {
  if (!(bank.held & (1u << size))) return;
  // The probe's fields in locals: the stores below cannot make them reload.
  const Probe& probe = bank.by_size[size];
  u64* const stamps = probe.stamps;
  // Only an L2 array keeps orders.
  u64* const orders = Level2 ? probe.orders : nullptr;
  u32 set;
  u32 first;
  u32 way;
  bool least_recent = false;  // `way` is the set's LRU way (orders only)
  if (Policy != TlbReplacement::Random && !Level2 && size == 0 && probe.four_ways_pow2) [[likely]] {
    // The common L1 case: 4 KiB pages in 4 ways of a power-of-two number of sets.
    first = static_cast<u32>((page >> 10) & probe.first_way_mask);
    set = first >> 2;
    way = pick_way_fixed<4>(probe.keys + first, stamps + first, key, key_absent);
  } else {
    const u32 ways = probe.ways;
    set = probe.set_of(page);
    first = set * ways;
    u64* const keys = probe.keys + first;
    if constexpr (Policy == TlbReplacement::Random) {
      way = pick_way_random(keys, key, ways, key_absent, [this] { return next_random(); });
    } else if (orders != nullptr) {
      const u64* const same = key_absent ? nullptr : match<false>(keys, ways, probe.ways_by_4, key, key);
      if (same != nullptr) [[unlikely]] {
        way = static_cast<u32>(same - keys);
      } else {
        way = RecencyOrder::least_recent(orders[set], ways);
        least_recent = true;
      }
    } else {
      way = pick_way(keys, stamps + first, key, ways, key_absent);
    }
  }
  u64* const slot = probe.keys + first + way;
  const u64 old = *slot;
  if (old != key) {
    // Keep the per-size and global counts exact, touching them only when
    // they change (every lookup reads them): the common case, a valid entry
    // replaced by one of the same size and kind, changes none.
    constexpr u64 kCounted = (u64{3} << kSizeShift) | kGlobalKey;
    if (old != kEmpty) ++counters_.evictions;
    if ((old ^ key) & kCounted) [[unlikely]] {
      if (old != kEmpty) {
        count_out(bank, probe.live, size_index_of_key(old));
        if (old & kGlobalKey) count_global_out(bank);
      }
      count_in(bank, probe.live, size);
      if (key & kGlobalKey) count_global_in(bank);
    }
    *slot = key;
    ++epoch_;
  }
  // LRU: a fill is a use; FIFO: only a new translation is young (a refresh in
  // place keeps its age); Random: no recency.
  if (Policy == TlbReplacement::Lru || (Policy == TlbReplacement::Fifo && old != key)) {
    if (orders != nullptr) {
      u64& order = orders[set];
      order = least_recent ? RecencyOrder::least_recent_to_front(order, probe.used_positions, way)
                           : RecencyOrder::to_front(order, way);
    } else {
      slot[stamp_offset_] = tick();
    }
  }
  slot[payload_offset_] = payload;
  ++version_;
}

void Tlb::refill_l1(Bank& l1, unsigned size, u64 key, u64 payload) {
  const u64 page = page_of_key(key);
  switch (replacement_) {
    case TlbReplacement::Lru: return fill<TlbReplacement::Lru, false>(l1, size, page, key, payload, false);
    case TlbReplacement::Fifo: return fill<TlbReplacement::Fifo, false>(l1, size, page, key, payload, false);
    case TlbReplacement::Random: return fill<TlbReplacement::Random, false>(l1, size, page, key, payload, false);
  }
}

void Tlb::insert_encoded(u64 key, u64 payload, u64 page, PageSize size, Pcid pcid, AccessKind kind) {
  ++counters_.fills;
  Bank& l1 = l1_for(kind);
  // Right after lookup() missed this address in this L1 bank and in L2, with
  // nothing changed since, no way can hold the key (the lookup tried this
  // PCID's key and the global one, every size): skip that search.
  const bool key_absent = last_miss_.epoch == epoch_ && last_miss_.bank == &l1 &&
                          (last_miss_.va & ~(bytes_of(size) - 1)) == page &&
                          ((key & kGlobalKey) != 0 || pcid == last_miss_.pcid);
  const unsigned size_index = static_cast<unsigned>(size);
  if (replacement_ == TlbReplacement::Lru) [[likely]] {
    fill<TlbReplacement::Lru, false>(l1, size_index, page, key, payload, key_absent);
    fill<TlbReplacement::Lru, true>(l2_, size_index, page, key, payload, key_absent);
  } else if (replacement_ == TlbReplacement::Fifo) {
    fill<TlbReplacement::Fifo, false>(l1, size_index, page, key, payload, key_absent);
    fill<TlbReplacement::Fifo, true>(l2_, size_index, page, key, payload, key_absent);
  } else {
    fill<TlbReplacement::Random, false>(l1, size_index, page, key, payload, key_absent);
    fill<TlbReplacement::Random, true>(l2_, size_index, page, key, payload, key_absent);
  }
}

// pred(key) decides, for every valid way. An array's scan stops at its
// last valid way (its live counts say how many there are), and skips an
// empty array: a full flush of a large TLB holding a few entries is cheap.
template <typename Pred>
u64 Tlb::drop_all_where(Pred pred) {
  ++counters_.invalidations;
  u64 dropped = 0;
  for (Bank* bank : {&l1d_, &l1i_, &l2_}) {
    for (u32 a = 0; a < bank->array_count; ++a) {
      const Array& array = bank->arrays[a];
      u32 left = array.live[0] + array.live[1] + array.live[2];
      for (u32 i = 0; left > 0 && i < array.sets * array.ways; ++i) {
        if (array.keys[i] == kEmpty) continue;
        --left;
        if (pred(array.keys[i])) {
          forget(*bank, array, i);
          ++epoch_;
          ++version_;
          ++dropped;
        }
      }
    }
  }
  counters_.entries_invalidated += dropped;
  return dropped;
}

// Only the sets `va` can live in, one per size an array holds. pred(key,
// page_key) decides among the ways holding a translation of `va` of some
// size, page_key being that translation's key without PCID or global bit.
template <typename Pred>
u64 Tlb::drop_at(u64 va, Pred pred) {
  if (!is_canonical(va)) return 0;
  ++counters_.invalidations;
  u64 dropped = 0;
  for (Bank* bank : {&l1d_, &l1i_, &l2_}) {
    for (u32 a = 0; a < bank->array_count; ++a) {
      const Array& array = bank->arrays[a];
      for (PageSize size : {PageSize::Size4K, PageSize::Size2M, PageSize::Size1G}) {
        if (!(array.sizes & size_bit(size)) || array.live[static_cast<unsigned>(size)] == 0) continue;
        const u64 page_key = (va & kVpnBits & ~(bytes_of(size) - 1)) | size_key(size);
        const u32 first = array.set_of(va >> std::countr_zero(bytes_of(size))) * array.ways;
        for (u32 i = first; i < first + array.ways; ++i) {
          if (array.keys[i] != kEmpty && pred(array.keys[i], page_key)) {
            forget(*bank, array, i);
            ++epoch_;
            ++version_;
            ++dropped;
          }
        }
      }
    }
  }
  counters_.entries_invalidated += dropped;
  return dropped;
}

u64 Tlb::invalidate_page(u64 va, Pcid current_pcid) {
  return drop_at(va, [current_pcid](u64 key, u64 page_key) {
    return key == (page_key | current_pcid) || key == (page_key | kGlobalKey);
  });
}

u64 Tlb::invpcid(InvpcidType type, Pcid pcid, u64 va) {
  switch (type) {
    case InvpcidType::IndividualAddress:
      return drop_at(va, [pcid](u64 key, u64 page_key) { return key == (page_key | pcid); });
    case InvpcidType::SingleContext:
      return drop_all_where([pcid](u64 key) { return (key & kGlobalKey) == 0 && (key & cr3::kPcidMask) == pcid; });
    case InvpcidType::AllContextsAndGlobal:
      return drop_all_where([](u64) { return true; });
    case InvpcidType::AllContextsKeepGlobal:
      return drop_all_where([](u64 key) { return (key & kGlobalKey) == 0; });
  }
  return 0;
}

u64 Tlb::mov_to_cr3(u64 source, bool pcide) {
  if (!pcide) return drop_all_where([](u64 key) { return (key & kGlobalKey) == 0; });
  if (source & cr3::kNoFlush) return 0;
  const u64 pcid = source & cr3::kPcidMask;
  return drop_all_where([pcid](u64 key) { return (key & kGlobalKey) == 0 && (key & cr3::kPcidMask) == pcid; });
}

u64 Tlb::flush_all() {
  return drop_all_where([](u64) { return true; });
}

u64 Tlb::apply(Cr4Invalidation invalidation, Pcid current_pcid) {
  switch (invalidation) {
    case Cr4Invalidation::None: return 0;
    case Cr4Invalidation::CurrentPcid: return invpcid(InvpcidType::SingleContext, current_pcid);
    case Cr4Invalidation::All: return flush_all();
  }
  return 0;
}

u64 Tlb::valid_entries() const {
  u64 count = 0;
  for (std::size_t i = 0; i < payload_offset_; ++i) count += slots_[i] != kEmpty ? 1 : 0;
  return count;
}

bool Tlb::evict_random(u64 random) {
  const u64 valid = valid_entries();
  if (valid == 0) return false;
  u64 pick = random % valid;
  for (Bank* bank : {&l1d_, &l1i_, &l2_}) {
    for (u32 a = 0; a < bank->array_count; ++a) {
      const Array& array = bank->arrays[a];
      for (u32 i = 0; i < array.sets * array.ways; ++i) {
        if (array.keys[i] == kEmpty) continue;
        if (pick-- == 0) {
          forget(*bank, array, i);
          ++epoch_;
          ++version_;
          ++counters_.random_evictions;
          return true;
        }
      }
    }
  }
  return false;
}

}  // namespace pagelab::hw
