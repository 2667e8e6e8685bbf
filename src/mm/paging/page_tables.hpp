// PageTables: one 4-level x86-64 page-table tree and the mapper over it.
//
// It maps, unmaps, re-protects and queries 4 KiB, 2 MiB and 1 GiB pages;
// splits a large page when an operation covers only part of it; and frees
// page-table pages that become empty. It reaches page-table memory only
// through the platform's direct map, and stores entries only through
// Platform::pte_store, so the emulator can trace and order every store.
//
// Each page-table page's Frame::owner_data counts its non-zero entries
// (present, or parked for PROT_NONE), so emptiness is known in O(1). A table that empties is unlinked from its parent
// and handed to the TLB batch, which frees it after the flush: until then a
// paging-structure cache may still point at it.
//
// Not synchronized: the owning AddressSpace's lock serializes every call.
// The hardware walker (or the emulator's MMU) reads concurrently, which is why
// every entry access is a platform atomic.
#pragma once

#include "mm/base/status.hpp"
#include "mm/paging/pte.hpp"
#include "mm/paging/tlb_batch.hpp"
#include "mm/phys/physical_memory.hpp"

namespace mm {

// What a virtual address translates to, as the page tables say.
struct Translation {
  Pte leaf;
  PageSize size = PageSize::Size4K;
  VirtAddr page;      // the first address of the page holding the address
  PhysAddr frame;     // the first byte of the page's frame (or run, for large pages)
  PhysAddr physical;  // the byte the address itself translates to
};

template <Platform P>
class PageTables {
 public:
  // Entries 256..511 of the top level map the kernel half, shared by every space.
  static constexpr u64 kKernelHalfFirstEntry = 256;

  // With `coherence`, every batch this tree makes (and its owner makes
  // through tlb_target()) is a cross-CPU shootdown of this tree's context.
  PageTables(P& platform, PhysicalMemory<P>& memory, TlbCoherence<P>* coherence = nullptr)
      : platform_(platform), memory_(memory), coherence_(coherence) {}
  PageTables(const PageTables&) = delete;
  PageTables& operator=(const PageTables&) = delete;

  // Allocates the top-level table. With `kernel_half`, its entries 256..511
  // are copied, so the kernel half is shared. ENOMEM without a frame.
  Status create(const PageTables* kernel_half = nullptr) {
    root_ = MM_TRY(new_table());
    if (kernel_half != nullptr) {
      const u64* from = table(kernel_half->root_);
      u64* to = table(root_);
      for (u64 i = kKernelHalfFirstEntry; i < kEntriesPerTable; ++i) {
        const u64 entry = platform_.pte_load(&from[i]);
        if (entry != 0) {
          store(root_, &to[i], Pte(entry));
        }
      }
    }
    return Status::Ok;
  }

  // Wraps a tree built elsewhere (the kernel's boot page tables), to serve as
  // the kernel half new spaces copy. It is never destroyed through this object.
  void adopt(PhysAddr root) { root_ = root; }

  // Frees the tables of the lower half and the root, through the batch.
  // Every lower-half leaf must have been unmapped first.
  void destroy(TlbBatch<P>& batch) {
    if (root_.value() == 0) {
      return;
    }
    u64* top = table(root_);
    for (u64 i = 0; i < kKernelHalfFirstEntry; ++i) {
      const Pte entry(platform_.pte_load(&top[i]));
      if (entry.mapped()) {
        free_subtree(entry.address(), 3, batch);
      }
    }
    batch.invalidate_everywhere();  // every top-level entry goes
    retire_table(root_, batch);
    root_ = PhysAddr(0);
  }

  PhysAddr root() const { return root_; }
  u64 table_frames() const { return tables_; }
  TlbContext& tlb_context() { return context_; }
  const TlbContext& tlb_context() const { return context_; }
  TlbTarget<P> tlb_target() { return TlbTarget<P>{coherence_, &context_}; }

  // Maps `count` pages of `size` from `va` to consecutive frames from `pa`.
  // EINVAL: a zero count, an address not aligned to the page size, a range
  // that is not canonical or crosses into the other half. EEXIST: some page
  // of the range is already mapped. ENOMEM: no frame for a page table.
  // On any error nothing has changed.
  Status map(VirtAddr va, PhysAddr pa, u64 count, PageSize size, u64 attributes) {
    const u64 bytes = page_bytes(size);
    if (count == 0 || (va.value() & (bytes - 1)) != 0 || (pa.value() & (bytes - 1)) != 0 ||
        count > (kMaxPhysAddr - pa.value()) / bytes || !range_ok(va, count * bytes)) {
      return Status::InvalidArgument;
    }
    for (u64 i = 0; i < count; ++i) {
      if (occupied(va + i * bytes, size)) {
        return Status::AlreadyExists;
      }
    }
    for (u64 i = 0; i < count; ++i) {
      const Status s = map_one(va + i * bytes, pa + i * bytes, size, attributes);
      if (s != Status::Ok) {
        // Out of table frames part way: take back what this call mapped,
        // and the tables it created (the walk retires every empty one). The
        // range held nothing before, so this removes only this call's work.
        TlbBatch<P> batch(platform_, memory_, tlb_target());
        const Status undone = unmap(va, count * bytes, batch, [](VirtAddr, Pte, PageSize) {});
        MM_ASSERT(undone == Status::Ok);
        batch.flush();
        return s;
      }
    }
    return Status::Ok;
  }

  // Removes every leaf in [va, va + bytes). A large leaf that straddles an
  // edge is split first, so only the covered part goes. Calls
  // on_unmap(page, old_leaf, size) for each leaf removed; its frames are the
  // caller's to release (through the batch). Empty tables go to the batch.
  // EINVAL for a misaligned or non-canonical range, ENOMEM when a split finds
  // no frame (then nothing was removed).
  template <typename OnUnmap>
  Status unmap(VirtAddr va, u64 bytes, TlbBatch<P>& batch, OnUnmap&& on_unmap) {
    MM_TRY(split_edges(va, bytes, batch));
    walk_leaves(root_, 4, VirtAddr(0), va, last_of(va, bytes), batch, [&](VirtAddr page, Pte old, int level) {
      on_unmap(page, old, size_at_level(level));
      return Pte(0);
    });
    return Status::Ok;
  }

  // Replaces each leaf (present or parked) in [va, va + bytes) with
  // change(page, old_leaf, size); an unchanged result leaves the entry alone,
  // a changed one is stored and, if it was present, invalidated. Straddling large leaves are
  // split first. EINVAL / ENOMEM as for unmap.
  template <typename Change>
  Status update(VirtAddr va, u64 bytes, TlbBatch<P>& batch, Change&& change) {
    MM_TRY(split_edges(va, bytes, batch));
    walk_leaves(root_, 4, VirtAddr(0), va, last_of(va, bytes), batch, [&](VirtAddr page, Pte old, int level) {
      return change(page, old, size_at_level(level));
    });
    return Status::Ok;
  }

  // Sets the 4 KiB leaf at `va` (creating tables as needed), invalidating
  // the old one if it was present. The fault path's store. ENOMEM without a
  // table frame; EEXIST if a large leaf covers `va`.
  Status set_leaf(VirtAddr va, Pte leaf, TlbBatch<P>& batch) {
    const Slot at = MM_TRY(slot_for(va, 1, /*create=*/true));
    const Pte old(platform_.pte_load(at.slot));
    store(at.table, at.slot, leaf);
    if (old.present()) {
      batch.invalidate(va, old.has(pte::kGlobal));
    }
    return Status::Ok;
  }

  // The translation of `va` (its leaf may be parked: check leaf.present()),
  // or ENOENT when nothing maps it.
  Result<Translation> query(VirtAddr va) const {
    PhysAddr at = root_;
    for (int level = 4; level >= 1; --level) {
      const Pte entry(platform_.pte_load(&table(at)[table_index(va, level)]));
      if (!entry.mapped()) {
        return Status::NotFound;
      }
      if (entry.is_leaf(level)) {
        const u64 span = level_span(level);
        Translation t;
        t.leaf = entry;
        t.size = size_at_level(level);
        t.page = VirtAddr(align_down(va.value(), span));
        t.frame = entry.address(level);
        t.physical = t.frame + (va.value() & (span - 1));
        return t;
      }
      at = entry.address();
    }
    return Status::NotFound;
  }

  // Fork's walk: for each leaf in [va, va + bytes), f(page, mine, theirs, size)
  // may change `mine` (stored and invalidated here if it changes) and sets
  // `theirs`, the leaf `child` gets at the same address (Pte(0) for none); it
  // returns a Status, and an error stops the walk before anything is stored
  // for that leaf. Child tables are created as needed. ENOMEM (no table, or
  // from f) stops the walk; what was done stays done, for the caller to undo.
  template <typename F>
  Status share_into(PageTables& child, VirtAddr va, u64 bytes, TlbBatch<P>& batch, F&& f) {
    if (bytes == 0) return Status::Ok;
    return share_walk(root_, child.root_, 4, VirtAddr(0), va, last_of(va, bytes), child, batch, f);
  }

  // Calls f(page, leaf, size) for each leaf (present or parked) overlapping
  // [va, va + bytes), in address order.
  template <typename F>
  void for_each_leaf(VirtAddr va, u64 bytes, F&& f) const {
    if (bytes != 0) {
      visit(root_, 4, VirtAddr(0), va, last_of(va, bytes), f);
    }
  }

 private:
  // A slot and the table it lives in.
  struct Slot {
    PhysAddr table;
    u64* slot = nullptr;
  };

  u64* table(PhysAddr at) const { return reinterpret_cast<u64*>(platform_.direct_map(at)); }
  Frame& frame_of(PhysAddr at) { return memory_.frames()[Pfn::containing(at)]; }
  // The last byte of a range (inclusive, so a range may end at 2^64).
  static VirtAddr last_of(VirtAddr va, u64 bytes) { return VirtAddr(va.value() + bytes - 1); }
  // The first address an entry of a table maps: upper-half addresses are
  // sign-extended from bit 47.
  static VirtAddr entry_start(VirtAddr base, int level, u64 index) {
    const u64 raw = base.value() + index * level_span(level);
    return VirtAddr(level == 4 && index >= kKernelHalfFirstEntry ? raw | 0xFFFF000000000000 : raw);
  }
  // The first entry of a table whose range starts at `base` that can reach `lo`.
  static u64 first_index(VirtAddr base, int level, VirtAddr lo) {
    return lo.value() > base.value() ? table_index(lo, level) : 0;
  }

  static bool range_ok(VirtAddr va, u64 bytes) {
    if (bytes == 0 || !va.is_canonical()) return false;
    const u64 last = va.value() + bytes - 1;
    if (last < va.value()) return false;
    // Both ends canonical and in the same half.
    return VirtAddr(last).is_canonical() && (va.value() >> 63) == (last >> 63);
  }

  Result<PhysAddr> new_table() {
    const PhysAddr at = MM_TRY(memory_.allocate_frame(FrameOwner::PageTable, AllocFlags::Zero));
    frame_of(at).owner_data = 0;
    ++tables_;
    return at;
  }

  // A table leaves the tree: its one reference is dropped, and so the
  // frame freed, after the batch has flushed.
  void retire_table(PhysAddr at, TlbBatch<P>& batch) {
    batch.release_after_flush(at);
    --tables_;
  }

  // Stores an entry into a slot of the table at `at`, keeping its count.
  void store(PhysAddr at, u64* slot, Pte value) {
    const bool was = platform_.pte_load(slot) != 0;
    platform_.pte_store(slot, value.raw());
    u64& count = frame_of(at).owner_data;
    count = count + (value.raw() != 0 ? 1 : 0) - (was ? 1 : 0);
  }

  // Is some page of [va, va + size) mapped? A large leaf above counts.
  bool occupied(VirtAddr va, PageSize size) const {
    PhysAddr at = root_;
    for (int level = 4; level > leaf_level(size); --level) {
      const Pte entry(platform_.pte_load(&table(at)[table_index(va, level)]));
      if (!entry.mapped()) return false;
      if (entry.is_leaf(level)) return true;
      at = entry.address();
    }
    // At the leaf level: the slot itself, or (for a large page over an
    // existing table) anything in the table below it.
    return platform_.pte_load(&table(at)[table_index(va, leaf_level(size))]) != 0;
  }

  // The slot for `va` at `level`, creating tables on the way when asked.
  // EEXIST if a large leaf sits above that level.
  Result<Slot> slot_for(VirtAddr va, int level, bool create) {
    PhysAddr at = root_;
    for (int l = 4; l > level; --l) {
      u64* slot = &table(at)[table_index(va, l)];
      Pte entry(platform_.pte_load(slot));
      if (!entry.mapped()) {
        if (!create) return Status::NotFound;
        const PhysAddr child = MM_TRY(new_table());
        entry = Pte::table(child);
        store(at, slot, entry);
      } else if (entry.is_leaf(l)) {
        return Status::AlreadyExists;
      }
      at = entry.address();
    }
    return Slot{at, &table(at)[table_index(va, level)]};
  }

  Status map_one(VirtAddr va, PhysAddr pa, PageSize size, u64 attributes) {
    const Slot at = MM_TRY(slot_for(va, leaf_level(size), true));
    store(at.table, at.slot, Pte::leaf(pa, attributes, size));
    return Status::Ok;
  }

  // Splits large leaves so that `edge` falls on a leaf boundary.
  Status split_at(VirtAddr edge, TlbBatch<P>& batch) {
    PhysAddr at = root_;
    for (int level = 4; level > 1; --level) {
      u64* slot = &table(at)[table_index(edge, level)];
      Pte entry(platform_.pte_load(slot));
      if (!entry.mapped()) return Status::Ok;
      if (entry.is_leaf(level)) {
        if ((edge.value() & (level_span(level) - 1)) == 0) return Status::Ok;
        entry = MM_TRY(split_leaf(at, slot, entry, level, VirtAddr(align_down(edge.value(), level_span(level))), batch));
      }
      at = entry.address();
    }
    return Status::Ok;
  }

  Status split_edges(VirtAddr va, u64 bytes, TlbBatch<P>& batch) {
    if (!va.is_page_aligned() || (bytes & kPageMask) != 0 || !range_ok(va, bytes)) {
      return Status::InvalidArgument;
    }
    MM_TRY(split_at(va, batch));
    return split_at(va + bytes, batch);
  }

  // Replaces the large leaf at `slot` with a table of 512 leaves one level
  // down that map the same frames with the same attributes. Returns the new
  // table entry.
  Result<Pte> split_leaf(PhysAddr at, u64* slot, Pte leaf, int level, VirtAddr page, TlbBatch<P>& batch) {
    const PhysAddr child = MM_TRY(new_table());
    u64* entries = table(child);
    const u64 child_span = level_span(level - 1);
    u64 attributes = leaf.attributes();
    if (level - 1 == 1 && leaf.has(pte::kPatLarge)) {
      attributes |= pte::kHuge;  // bit 7 is PAT in a 4 KiB entry (Pte::leaf would clear it otherwise)
    }
    for (u64 i = 0; i < kEntriesPerTable; ++i) {
      Pte small = Pte::leaf(leaf.address(level) + i * child_span, attributes, size_at_level(level - 1));
      if (level - 1 > 1 && leaf.has(pte::kPatLarge)) small = small.with(pte::kPatLarge);
      platform_.pte_store(&entries[i], small.raw());
    }
    frame_of(child).owner_data = kEntriesPerTable;
    const Pte pointer = Pte::table(child);
    store(at, slot, pointer);
    // The same translations now come in smaller pages: drop the large one
    // (mixing both sizes for one address is what the SDM warns against).
    batch.invalidate(page, leaf.has(pte::kGlobal));
    return pointer;
  }

  // Walks the leaves of [lo, last] under the table at `at` (whose first
  // address is `base`), replacing each with visit(page, old, level). Every
  // leaf met lies wholly inside the range (split_edges ran first). Tables
  // that end up empty are unlinked and retired.
  template <typename Visit>
  void walk_leaves(PhysAddr at, int level, VirtAddr base, VirtAddr lo, VirtAddr last, TlbBatch<P>& batch,
                   Visit&& visit) {
    u64* entries = table(at);
    for (u64 i = first_index(base, level, lo); i < kEntriesPerTable; ++i) {
      const VirtAddr start = entry_start(base, level, i);
      if (start > last) break;
      u64* slot = &entries[i];
      const Pte entry(platform_.pte_load(slot));
      if (!entry.mapped()) continue;
      if (entry.is_leaf(level)) {
        const Pte replacement = visit(start, entry, level);
        if (replacement != entry) {
          store(at, slot, replacement);
          if (entry.present()) {  // a parked entry was never in a TLB
            batch.invalidate(start, entry.has(pte::kGlobal));
          }
        }
        continue;
      }
      const PhysAddr child = entry.address();
      walk_leaves(child, level - 1, start, lo, last, batch, visit);
      if (frame_of(child).owner_data == 0) {
        store(at, slot, Pte(0));
        if (level == 4) {
          batch.invalidate_everywhere();  // a top-level entry changed
        } else {
          batch.invalidate(start);  // an INVLPG also drops paging-structure caches
        }
        retire_table(child, batch);
      }
    }
  }

  template <typename F>
  Status share_walk(PhysAddr at, PhysAddr child_at, int level, VirtAddr base, VirtAddr lo, VirtAddr last,
                    PageTables& child, TlbBatch<P>& batch, F& f) {
    u64* entries = table(at);
    u64* child_entries = table(child_at);
    for (u64 i = first_index(base, level, lo); i < kEntriesPerTable; ++i) {
      const VirtAddr start = entry_start(base, level, i);
      if (start > last) break;
      u64* slot = &entries[i];
      const Pte entry(platform_.pte_load(slot));
      if (!entry.mapped()) continue;
      if (entry.is_leaf(level)) {
        Pte mine = entry;
        Pte theirs;
        MM_TRY(f(start, mine, theirs, size_at_level(level)));
        if (mine != entry) {
          store(at, slot, mine);
          if (entry.present()) batch.invalidate(start, entry.has(pte::kGlobal));
        }
        if (theirs.raw() != 0) {
          child.store(child_at, &child_entries[i], theirs);
        }
        continue;
      }
      Pte child_entry(platform_.pte_load(&child_entries[i]));
      if (!child_entry.mapped()) {
        const PhysAddr fresh = MM_TRY(child.new_table());
        child_entry = Pte::table(fresh);
        child.store(child_at, &child_entries[i], child_entry);
      }
      MM_TRY(share_walk(entry.address(), child_entry.address(), level - 1, start, lo, last, child, batch, f));
    }
    return Status::Ok;
  }

  template <typename F>
  void visit(PhysAddr at, int level, VirtAddr base, VirtAddr lo, VirtAddr last, F& f) const {
    const u64* entries = table(at);
    for (u64 i = first_index(base, level, lo); i < kEntriesPerTable; ++i) {
      const VirtAddr start = entry_start(base, level, i);
      if (start > last) break;
      const Pte entry(platform_.pte_load(&entries[i]));
      if (!entry.mapped()) continue;
      if (entry.is_leaf(level)) {
        f(start, entry, size_at_level(level));
      } else {
        visit(entry.address(), level - 1, start, lo, last, f);
      }
    }
  }

  void free_subtree(PhysAddr at, int level, TlbBatch<P>& batch) {
    u64* entries = table(at);
    for (u64 i = 0; i < kEntriesPerTable; ++i) {
      const Pte entry(platform_.pte_load(&entries[i]));
      if (!entry.mapped()) continue;
      MM_ASSERT(!entry.is_leaf(level));  // the caller unmapped every leaf
      free_subtree(entry.address(), level - 1, batch);
    }
    retire_table(at, batch);
  }

  P& platform_;
  PhysicalMemory<P>& memory_;
  TlbCoherence<P>* coherence_;
  TlbContext context_;
  PhysAddr root_;
  u64 tables_ = 0;
};

}  // namespace mm
