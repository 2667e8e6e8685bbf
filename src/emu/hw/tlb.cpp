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

Tlb::Tlb(const TlbGeometry& geometry) : geometry_(geometry) {
  if (!validate(geometry_).empty()) MM_PANIC("Tlb: invalid geometry (validate() it first); entries", geometry_.entries());
  const u32 total = geometry_.entries();
  keys_.assign(total, kEmpty);
  stamps_.assign(total, 0);
  entries_.assign(total, TlbEntry{});
  live_.assign(3 * (geometry_.l1d.size() + geometry_.l1i.size() + geometry_.l2.size()), 0);
  u32 next_slot = 0, next_array = 0;
  build(l1d_, geometry_.l1d, TlbLevel::L1, next_slot, next_array);
  build(l1i_, geometry_.l1i, TlbLevel::L1, next_slot, next_array);
  build(l2_, geometry_.l2, TlbLevel::L2, next_slot, next_array);
}

void Tlb::build(Bank& bank, const std::vector<TlbArrayGeometry>& arrays, TlbLevel level, u32& next_slot,
                u32& next_array) {
  bank.level = level;
  bank.array_count = static_cast<u32>(arrays.size());
  for (u32 a = 0; a < bank.array_count; ++a) {
    const TlbArrayGeometry& g = arrays[a];
    Array& array = bank.arrays[a];
    array.keys = keys_.data() + next_slot;
    array.stamps = stamps_.data() + next_slot;
    array.entries = entries_.data() + next_slot;
    array.live = live_.data() + 3 * next_array++;
    array.sets = g.sets;
    array.ways = g.ways;
    array.sets_pow2 = mm::is_power_of_two(g.sets);
    array.set_mask = array.sets_pow2 ? g.sets - 1 : 0;
    array.sizes = g.sizes;
    next_slot += g.entries();
  }
  // Probes by page size, smallest first: the common case is found first.
  bank.probe_count = 0;
  for (PageSize size : {PageSize::Size4K, PageSize::Size2M, PageSize::Size1G}) {
    for (u32 a = 0; a < bank.array_count; ++a) {
      const Array& array = bank.arrays[a];
      if (!(array.sizes & size_bit(size))) continue;
      bank.probes[bank.probe_count++] = Probe{.keys = array.keys,
                                              .stamps = array.stamps,
                                              .entries = array.entries,
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

// The clock wrapped: keep each set's LRU order, with small numbers.
void Tlb::renumber_stamps() {
  std::vector<u32> rank;
  for (Bank* bank : {&l1d_, &l1i_, &l2_}) {
    for (u32 a = 0; a < bank->array_count; ++a) {
      Array& array = bank->arrays[a];
      rank.assign(array.ways, 0);
      for (u32 set = 0; set < array.sets; ++set) {
        u32* stamps = array.stamps + set * array.ways;
        // Ways are few and this runs once every 2^32 uses: a quadratic rank will do.
        for (u32 w = 0; w < array.ways; ++w) {
          rank[w] = 0;
          for (u32 v = 0; v < array.ways; ++v) {
            rank[w] += (stamps[v] < stamps[w] || (stamps[v] == stamps[w] && v < w)) ? 1 : 0;
          }
        }
        for (u32 w = 0; w < array.ways; ++w) stamps[w] = rank[w];
      }
    }
  }
  clock_ = kMaxTlbWays;
}

TlbLookup Tlb::lookup_below_l1(u64 va, Pcid pcid, AccessKind kind) {
  const Found found = find(l2_, va, pcid);
  if (found.probe == nullptr) {
    ++counters_.misses;
    return TlbLookup{};
  }
  found.probe->stamps[found.index] = tick();
  ++counters_.l2_hits;
  const TlbEntry entry = found.probe->entries[found.index];
  Bank& l1 = l1_for(kind);
  for (u32 a = 0; a < l1.array_count; ++a) {
    if (l1.arrays[a].sizes & size_bit(entry.size)) {
      fill(l1, entry);
      ++counters_.l1_refills;
      break;
    }
  }
  return TlbLookup{TlbLevel::L2, entry};
}

void Tlb::fill(Bank& bank, const TlbEntry& entry) {
  const PageSizeSet size = size_bit(entry.size);
  for (u32 a = 0; a < bank.array_count; ++a) {
    const Array& array = bank.arrays[a];
    if (!(array.sizes & size)) continue;
    const u64 key = key_of(entry);
    const u64 page_number = entry.page >> std::countr_zero(entry.bytes());
    const u32 first = array.first_way(page_number);
    // Pick the way: the same translation (refreshed in place), else an empty
    // way, else the least recently used one. Branch-free: which way wins is
    // data the predictor cannot learn.
    u32 victim = first;  // ways >= 1
    u64 best = ~u64{0};
    for (u32 i = first; i < first + array.ways; ++i) {
      const u64 k = array.keys[i];
      const u64 score = k == key ? 0 : k == kEmpty ? 1 : u64{array.stamps[i]} + 2;
      victim = score < best ? i : victim;
      best = score < best ? score : best;
    }
    if (best != 0) {
      // Keep the per-size counts exact, touching them only when they change
      // (they are read by every lookup).
      const unsigned size_index = static_cast<unsigned>(entry.size);
      const u64 old = array.keys[victim];
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
    }
    array.stamps[victim] = tick();
    array.entries[victim] = entry;
    return;  // validate() guarantees one array per size and level
  }
}

void Tlb::insert(const TlbEntry& entry, AccessKind kind) {
  ++counters_.fills;
  fill(l1_for(kind), entry);
  fill(l2_, entry);
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
  ++counters_.invalidations;
  u64 dropped = 0;
  for (Bank* bank : {&l1d_, &l1i_, &l2_}) {
    for (u32 a = 0; a < bank->array_count; ++a) {
      const Array& array = bank->arrays[a];
      for (PageSize size : {PageSize::Size4K, PageSize::Size2M, PageSize::Size1G}) {
        if (!(array.sizes & size_bit(size)) || array.live[static_cast<unsigned>(size)] == 0) continue;
        const u64 page_key = (va & kVpnBits & ~(bytes_of(size) - 1)) | size_key(size);
        const u32 first = array.first_way(va >> std::countr_zero(bytes_of(size)));
        for (u32 i = first; i < first + array.ways; ++i) {
          if (array.keys[i] != kEmpty && pred(array.keys[i], page_key)) {
            forget(array, i);
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
          ++counters_.random_evictions;
          return true;
        }
      }
    }
  }
  return false;
}

}  // namespace pagelab::hw
