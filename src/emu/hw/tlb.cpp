#include "emu/hw/tlb.hpp"

#include <bit>
#include <string>

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
  slots_.resize(geometry_.entries());
  Slot* next = slots_.data();
  const auto build = [&](Bank& bank, const std::vector<TlbArrayGeometry>& arrays, TlbLevel level) {
    bank.level = level;
    bank.count = static_cast<u32>(arrays.size());
    for (u32 a = 0; a < bank.count; ++a) {
      const TlbArrayGeometry& g = arrays[a];
      Array& array = bank.arrays[a];
      array.slots = next;
      next += g.entries();
      array.sets = g.sets;
      array.ways = g.ways;
      array.sets_pow2 = mm::is_power_of_two(g.sets);
      array.set_mask = array.sets_pow2 ? g.sets - 1 : 0;
      array.sizes = g.sizes;
      array.probe_count = 0;
      if (g.sets == 1) {
        array.probe_shifts[array.probe_count++] = 12;  // one set: any shift finds it
      } else {
        for (PageSize size : {PageSize::Size4K, PageSize::Size2M, PageSize::Size1G}) {
          if (g.sizes & size_bit(size)) {
            array.probe_shifts[array.probe_count++] = static_cast<u8>(std::countr_zero(bytes_of(size)));
          }
        }
      }
    }
  };
  build(l1d_, geometry_.l1d, TlbLevel::L1);
  build(l1i_, geometry_.l1i, TlbLevel::L1);
  build(l2_, geometry_.l2, TlbLevel::L2);
}

TlbLookup Tlb::lookup_below_l1(u64 va, Pcid pcid, AccessKind kind) {
  if (Slot* slot = find(l2_, va, pcid)) {
    slot->stamp = ++clock_;
    ++counters_.l2_hits;
    const TlbEntry entry = slot->entry;
    Bank& l1 = l1_for(kind);
    for (u32 a = 0; a < l1.count; ++a) {
      if (l1.arrays[a].sizes & size_bit(entry.size)) {
        fill(l1, entry);
        ++counters_.l1_refills;
        break;
      }
    }
    return TlbLookup{TlbLevel::L2, entry};
  }
  ++counters_.misses;
  return TlbLookup{};
}

void Tlb::fill(Bank& bank, const TlbEntry& entry) {
  const PageSizeSet size = size_bit(entry.size);
  for (u32 a = 0; a < bank.count; ++a) {
    Array& array = bank.arrays[a];
    if (!(array.sizes & size)) continue;
    const u64 mask = ~(entry.bytes() - 1);
    const u32 tag = entry.global ? kGlobalTag : entry.pcid;
    Slot* set = array.set_of(entry.page >> std::countr_zero(entry.bytes()));
    Slot* victim = &set[0];  // ways >= 1
    for (u32 w = 0; w < array.ways; ++w) {
      Slot& slot = set[w];
      if (slot.base == entry.page && slot.mask == mask && slot.tag == tag) {
        victim = &slot;  // the same translation again: refresh it in place
        break;
      }
      if (victim->valid() && (!slot.valid() || slot.stamp < victim->stamp)) victim = &slot;
    }
    if (victim->valid() && !(victim->base == entry.page && victim->mask == mask && victim->tag == tag)) {
      ++counters_.evictions;
    }
    victim->mask = mask;
    victim->base = entry.page;
    victim->tag = tag;
    victim->stamp = ++clock_;
    victim->entry = entry;
    return;  // validate() guarantees one array per size and level
  }
}

void Tlb::insert(const TlbEntry& entry, AccessKind kind) {
  ++counters_.fills;
  fill(l1_for(kind), entry);
  fill(l2_, entry);
}

template <typename Pred>
u64 Tlb::drop_all_where(Pred pred) {
  ++counters_.invalidations;
  u64 dropped = 0;
  for (Slot& slot : slots_) {
    if (slot.valid() && pred(slot)) {
      slot.base = kInvalidBase;
      ++dropped;
    }
  }
  counters_.entries_invalidated += dropped;
  return dropped;
}

// Only the sets `va` can live in: one per size an array holds.
template <typename Pred>
u64 Tlb::drop_at(u64 va, Pred pred) {
  ++counters_.invalidations;
  u64 dropped = 0;
  for (Bank* bank : {&l1d_, &l1i_, &l2_}) {
    for (u32 a = 0; a < bank->count; ++a) {
      const Array& array = bank->arrays[a];
      for (u32 p = 0; p < array.probe_count; ++p) {
        Slot* set = array.set_of(va >> array.probe_shifts[p]);
        for (u32 w = 0; w < array.ways; ++w) {
          Slot& slot = set[w];
          if (slot.valid() && (va & slot.mask) == slot.base && pred(slot)) {
            slot.base = kInvalidBase;
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
  return drop_at(va, [&](const Slot& s) { return s.tag == kGlobalTag || s.tag == current_pcid; });
}

u64 Tlb::invpcid(InvpcidType type, Pcid pcid, u64 va) {
  switch (type) {
    case InvpcidType::IndividualAddress:
      return drop_at(va, [&](const Slot& s) { return s.tag == pcid; });
    case InvpcidType::SingleContext:
      return drop_all_where([&](const Slot& s) { return s.tag == pcid; });
    case InvpcidType::AllContextsAndGlobal:
      return drop_all_where([](const Slot&) { return true; });
    case InvpcidType::AllContextsKeepGlobal:
      return drop_all_where([](const Slot& s) { return s.tag != kGlobalTag; });
  }
  return 0;
}

u64 Tlb::mov_to_cr3(u64 source, bool pcide) {
  if (!pcide) return drop_all_where([](const Slot& s) { return s.tag != kGlobalTag; });
  if (source & cr3::kNoFlush) return 0;
  const u32 pcid = static_cast<u32>(source & cr3::kPcidMask);
  return drop_all_where([pcid](const Slot& s) { return s.tag == pcid; });
}

u64 Tlb::flush_all() {
  return drop_all_where([](const Slot&) { return true; });
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
  for (const Slot& slot : slots_) count += slot.valid() ? 1 : 0;
  return count;
}

bool Tlb::evict_random(u64 random) {
  const u64 valid = valid_entries();
  if (valid == 0) return false;
  u64 pick = random % valid;
  for (Slot& slot : slots_) {
    if (!slot.valid()) continue;
    if (pick-- == 0) {
      slot.base = kInvalidBase;
      ++counters_.random_evictions;
      return true;
    }
  }
  return false;
}

}  // namespace pagelab::hw
