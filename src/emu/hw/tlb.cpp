#include "emu/hw/tlb.hpp"

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
  if (!validate(geometry_).empty()) MM_PANIC("Tlb: invalid geometry (validate() it first); entries", geometry_.entries());
  const u32 total = geometry_.entries();
  keys_.assign(total, kEmpty);
  stamps_.assign(total, 0);
  u32 l2_sets = 0;
  for (const TlbArrayGeometry& g : geometry_.l2) l2_sets += g.ways <= kMaxOrderedWays ? g.sets : 0;
  orders_.assign(l2_sets, 0);
  payloads_.assign(total, 0);
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
    array.keys = keys_.data() + next.slot;
    array.stamps = stamps_.data() + next.slot;
    array.payloads = payloads_.data() + next.slot;
    next.slot += g.entries();
    array.live = live_.data() + 3 * next.array++;
    if (level == TlbLevel::L2 && g.ways <= kMaxOrderedWays) {
      array.orders = orders_.data() + next.set;
      next.set += g.sets;
      for (u32 set = 0; set < g.sets; ++set) array.orders[set] = RecencyOrder::initial(g.ways);
    }
    array.sets = g.sets;
    array.ways = g.ways;
    array.sets_pow2 = mm::is_power_of_two(g.sets);
    array.set_mask = array.sets_pow2 ? g.sets - 1 : 0;
    array.sizes = g.sizes;
  }
  for (PageSize size : {PageSize::Size4K, PageSize::Size2M, PageSize::Size1G}) {
    bank.array_for_size[static_cast<unsigned>(size)] = -1;
    for (u32 a = 0; a < bank.array_count; ++a) {
      if (bank.arrays[a].sizes & size_bit(size)) bank.array_for_size[static_cast<unsigned>(size)] = static_cast<std::int8_t>(a);
    }
  }
  // Probes by page size, smallest first: the common case is found first.
  bank.probe_count = 0;
  for (PageSize size : {PageSize::Size4K, PageSize::Size2M, PageSize::Size1G}) {
    for (u32 a = 0; a < bank.array_count; ++a) {
      const Array& array = bank.arrays[a];
      if (!(array.sizes & size_bit(size))) continue;
      bank.probes[bank.probe_count++] = Probe{.keys = array.keys,
                                              .stamps = array.stamps,
                                              .orders = array.orders,
                                              .payloads = array.payloads,
                                              .live = array.live + static_cast<unsigned>(size),
                                              .vpn_mask = kVpnBits & ~(bytes_of(size) - 1),
                                              .size_key = size_key(size),
                                              .set_mask = array.set_mask,
                                              .sets = array.sets,
                                              .ways = array.ways,
                                              .shift = static_cast<u8>(std::countr_zero(bytes_of(size))),
                                              .sets_pow2 = array.sets_pow2};
    }
  }
}

TlbLookup Tlb::lookup_below_l1(u64 va, Pcid pcid, AccessKind kind) {
  if (!is_canonical(va)) {
    ++counters_.misses;
    return TlbLookup{};
  }
  const Found found = find(l2_, va, pcid);
  if (found.probe == nullptr) {
    ++counters_.misses;
    last_miss_ = LastMiss{va, epoch_, &l1_for(kind), pcid};
    return TlbLookup{};
  }
  if (replacement_ != TlbReplacement::Lru) {
    // FIFO ages by fill only; Random keeps no recency.
  } else if (found.probe->orders != nullptr) {
    u64& order = found.probe->orders[found.set];
    order = RecencyOrder::to_front(order, found.index - found.set * found.probe->ways);
  } else {
    found.probe->stamps[found.index] = tick();
  }
  ++counters_.l2_hits;
  const TlbEntry entry = decode(found.key, found.probe->payloads[found.index]);
  Bank& l1 = l1_for(kind);
  if (l1.array_for_size[static_cast<unsigned>(entry.size)] >= 0) {
    fill(l1, entry.size, entry.page, found.key, found.probe->payloads[found.index], /*key_absent=*/false);
    ++counters_.l1_refills;
  }
  return TlbLookup{TlbLevel::L2, entry};
}

namespace {

// Which of a set's `ways` ways an insert of `key` takes: the way already
// holding `key` (a refresh), else the least recently used one (an empty way
// has stamp 0, so it goes first). Branch-free where the outcome is data the
// predictor cannot learn; with `Ways` a constant (the common geometries) the
// loops unroll completely.
template <u32 Ways>
u32 pick_way_fixed(const u64* keys, const u64* stamps, u64 key, bool key_absent) {
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
u32 pick_way(const u64* keys, const u64* stamps, u64 key, u32 ways, bool key_absent) {
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

inline void Tlb::fill(Bank& bank, PageSize size, u64 page, u64 key, u64 payload, bool key_absent) {
  const int a = bank.array_for_size[static_cast<unsigned>(size)];
  if (a < 0) return;
  const Array& array = bank.arrays[a];
  const u32 set = array.set_of(page >> std::countr_zero(bytes_of(size)));
  const u32 first = set * array.ways;
  u32 victim;
  if (replacement_ == TlbReplacement::Random) {
    victim = first + pick_way_random(array.keys + first, key, array.ways, key_absent, [this] { return next_random(); });
  } else if (array.orders != nullptr) {
    u32 way = array.ways;
    for (u32 w = 0; w < array.ways && !key_absent; ++w) {
      if (array.keys[first + w] == key) [[unlikely]] {
        way = w;
        break;
      }
    }
    if (way == array.ways) way = RecencyOrder::least_recent(array.orders[set], array.ways);
    victim = first + way;
  } else {
    victim = first + pick_way(array.keys + first, array.stamps + first, key, array.ways, key_absent);
  }
  const u64 old = array.keys[victim];
  if (old != key) {
    // Keep the per-size counts exact, touching them only when they change
    // (every lookup reads them).
    const unsigned size_index = static_cast<unsigned>(size);
    if (old == kEmpty) {
      ++array.live[size_index];
    } else {
      ++counters_.evictions;
      if (size_index_of_key(old) != size_index) {
        --array.live[size_index_of_key(old)];
        ++array.live[size_index];
      }
    }
    array.keys[victim] = key;
    ++epoch_;
  }
  // LRU: a fill is a use; FIFO: only a new translation is young (a refresh in
  // place keeps its age); Random: no recency.
  if (replacement_ == TlbReplacement::Lru || (replacement_ == TlbReplacement::Fifo && old != key)) {
    if (array.orders != nullptr) {
      array.orders[set] = RecencyOrder::to_front(array.orders[set], victim - first);
    } else {
      array.stamps[victim] = tick();
    }
  }
  array.payloads[victim] = payload;
}

void Tlb::insert(const TlbEntry& entry, AccessKind kind) {
  ++counters_.fills;
  const u64 key = key_of(entry);
  const u64 payload = payload_of(entry);
  Bank& l1 = l1_for(kind);
  // Right after lookup() missed this address in this L1 bank and in L2, with
  // nothing changed since, no way can hold the key (the lookup tried this
  // PCID's key and the global one, every size): skip that search.
  const bool key_absent = last_miss_.epoch == epoch_ && last_miss_.bank == &l1 && entry.covers(last_miss_.va) &&
                          (entry.global || entry.pcid == last_miss_.pcid);
  fill(l1, entry.size, entry.page, key, payload, key_absent);
  fill(l2_, entry.size, entry.page, key, payload, key_absent);
}

// pred(key) decides, for every valid way.
template <typename Pred>
u64 Tlb::drop_all_where(Pred pred) {
  ++counters_.invalidations;
  u64 dropped = 0;
  for (Bank* bank : {&l1d_, &l1i_, &l2_}) {
    for (u32 a = 0; a < bank->array_count; ++a) {
      const Array& array = bank->arrays[a];
      for (u32 i = 0; i < array.sets * array.ways; ++i) {
        if (array.keys[i] != kEmpty && pred(array.keys[i])) {
          forget(array, i);
          ++epoch_;
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
            forget(array, i);
            ++epoch_;
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
  for (const u64 key : keys_) count += key != kEmpty ? 1 : 0;
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
          forget(array, i);
          ++epoch_;
          ++counters_.random_evictions;
          return true;
        }
      }
    }
  }
  return false;
}

}  // namespace pagelab::hw
