// VmModel: the reference model of user address spaces - a deliberately
// simple, sequential, page-level statement of what map, unmap, protect,
// pin, unpin, fork, faults and kernel accesses mean. It is the executable
// specification two judges use: the address-space differential test
// (test/unit/address_space_differential_test.cpp), which drives the core
// and the model with the same calls; and the fuzzer's judge
// (model/judge.hpp), which replays the order a run actually took.
//
// It shares no code with src/mm: the vocabulary enums (mm::Prot,
// mm::Status, mm::Access, mm::FaultOutcome) are the only types it borrows,
// and only to compare answers. Everything is per 4 KiB page:
//
//  - each space is a std::map from page address to Page: the protection, the
//    kind (Anonymous, Stack, the Guard page below a stack, or Device memory
//    at a physical page), the fork policy, the pin count, and what backs it;
//  - a page is backed by nothing yet (never touched), by "the zero page"
//    (read before ever written, private only), by a Store: the content of
//    one frame, shared by every page that holds it, or (Device) by the
//    device page itself. A Shared-policy store is shared for good (writes
//    show in every holder); a Private store shared by fork is
//    copy-on-write: a holder that writes gets its own copy;
//  - a store keeps the 64-bit value of each slot (kSlotOffset). Every other
//    word of every page reads as zero, always: nobody writes there. A
//    device page keeps its slots' values for the whole run, mapped or not.
//
// Pins: a pinned page has a store of its own (pin unshares: never the zero
// page, never a copy-on-write store), a pinned page's first touch gives it
// one, and fork copies a pinned page's store for the child.
//
// The model predicts every Status and FaultOutcome of the AddressSpace
// contract (address_space.hpp), except ENOMEM, which depends on the
// physical allocator: a caller that sees ENOMEM uses the resync helpers at
// the end of this class, which take what an independent page walk shows.
// Device pages map the device's frames, possibly in 2 MiB pages, so their
// first touch may or may not fault: predict_fault answers MapBacking, and a
// judge accepts Complete too.
//
// The commitment rule it keeps (SerenityOS's committed pages): a private
// store held by n pages carries n - 1 commitments, so a copy-on-write fault
// never runs out of memory. commitments() is that sum.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <map>
#include <optional>

#include "mm/base/status.hpp"
#include "mm/paging/protection.hpp"
#include "mm/vm/fault.hpp"

namespace pagelab::model {

class VmModel {
 public:
  using u64 = std::uint64_t;
  using u32 = std::uint32_t;

  static constexpr u64 kPage = 4096;
  static constexpr u64 kUserStart = u64{4} << 20;  // user space is [4 MiB, 2^47)
  static constexpr u64 kUserEnd = u64{1} << 47;
  static constexpr int kSlots = 3;
  static constexpr u64 kSlotOffset[kSlots] = {0, 8, kPage - 8};

  enum class Kind : std::uint8_t { Anonymous, Stack, Guard, Device };
  enum class Sharing : std::uint8_t { Private, Shared };
  enum class Backing : std::uint8_t { None, Zero, Store, Device };

  struct Page {
    mm::Prot prot = mm::Prot::None;
    Kind kind = Kind::Anonymous;
    Sharing sharing = Sharing::Private;
    u32 pins = 0;
    Backing backing = Backing::None;
    u64 store = 0;     // with Backing::Store; with Backing::Device, the device page's physical address
    bool cow = false;  // the page's entry is copy-on-write (a private store that fork shared)
  };

  struct Store {
    u64 value[kSlots] = {};
    u32 holders = 0;
    u32 watchers = 0;  // judges that may still read it through a stale translation (watch())
    Sharing sharing = Sharing::Private;
  };

  struct MapArgs {
    u64 address = 0;  // for alloc, the hint
    u64 length = 0;
    mm::Prot prot = mm::Prot::ReadWrite;
    Kind kind = Kind::Anonymous;  // Guard here is a caller's mistake: EINVAL
    Sharing sharing = Sharing::Private;
    bool replace = false;
    bool populate = false;
    u64 physical = 0;  // Kind::Device: the first device page
  };

  using SpaceId = int;
  using Pages = std::map<u64, Page>;

  // ---- spaces -------------------------------------------------------------

  SpaceId create_space() {
    spaces_[next_space_] = Pages{};
    return next_space_++;
  }
  void destroy_space(SpaceId id) {
    for (auto& [va, page] : space(id)) drop_backing(page);
    spaces_.erase(id);
  }
  // The child gets every page, unpinned. First every untouched page of a
  // Shared region gets its store (populated as populate() would), so the two
  // spaces share it whenever it is first touched. Private stores become
  // copy-on-write in both spaces, except a pinned page's: the child gets a
  // store of its own with the same values, and the parent keeps its page as
  // it is. Shared stores are shared; untouched private pages stay untouched
  // in each.
  void fork(SpaceId parent, SpaceId child) {
    for (const u64 va : untouched_shared_pages(parent)) populate(parent, va);
    Pages& from = space(parent);
    Pages& to = space(child);
    if (!to.empty()) failure("fork into a space that is not empty", 0);
    for (auto& [va, page] : from) {
      Page copy = page;
      copy.pins = 0;
      if (page.backing == Backing::Store && page.sharing == Sharing::Private && page.pins > 0) {
        give_store(copy, Sharing::Private, store(page.store).value);
      } else if (page.backing == Backing::Store) {
        hold(page.store);
        if (page.sharing == Sharing::Private) {
          page.cow = true;
          copy.cow = true;
        }
      }
      to.emplace(va, copy);
    }
  }
  // Pages of Shared regions that fork must populate first (in address order).
  std::vector<u64> untouched_shared_pages(SpaceId id) const {
    std::vector<u64> out;
    for (const auto& [va, page] : space(id)) {
      if (page.sharing == Sharing::Shared && page.backing == Backing::None && populate_access(id, va)) {
        out.push_back(va);
      }
    }
    return out;
  }

  // Commitments a fork of `id` takes: one per unpinned page holding a private store.
  u64 fork_commitments(SpaceId id) const {
    u64 n = 0;
    for (const auto& [va, page] : space(id)) {
      n += page.backing == Backing::Store && page.sharing == Sharing::Private && page.pins == 0 ? 1 : 0;
    }
    return n;
  }

  // Frames a fork of `id` copies for the child: one per pinned page holding a private store.
  u64 fork_copies(SpaceId id) const {
    u64 n = 0;
    for (const auto& [va, page] : space(id)) {
      n += page.backing == Backing::Store && page.sharing == Sharing::Private && page.pins > 0 ? 1 : 0;
    }
    return n;
  }

  bool live(SpaceId id) const { return spaces_.count(id) != 0; }
  const Pages& pages(SpaceId id) const { return space(id); }
  const Page* page(SpaceId id, u64 va) const {
    const Pages& p = space(id);
    const auto it = p.find(va & ~(kPage - 1));
    return it == p.end() ? nullptr : &it->second;
  }
  const Store& store(u64 id) const {
    const auto it = stores_.find(id);
    if (it == stores_.end()) failure("no such store", id);
    return it->second;
  }
  u64 stores() const {  // alive (held by a page)
    u64 n = 0;
    for (const auto& [id, s] : stores_) n += s.holders > 0 ? 1 : 0;
    return n;
  }
  u64 commitments() const { return commitments_; }

  // ---- map, alloc, unmap, protect, pin ----------------------------------

  mm::Status check_map(SpaceId id, const MapArgs& a) const {
    if (!range_ok(a.address, a.length) || a.kind == Kind::Guard) return mm::Status::InvalidArgument;
    if (a.kind == Kind::Device && (a.physical & (kPage - 1)) != 0) return mm::Status::InvalidArgument;
    const bool stack = a.kind == Kind::Stack;
    if (stack && a.address < kUserStart + kPage) return mm::Status::InvalidArgument;
    const u64 lo = stack ? a.address - kPage : a.address;
    const u64 hi = a.address + a.length;
    if (any_page(id, lo, hi)) {
      if (!a.replace) return mm::Status::AlreadyExists;
      if (any_pinned(id, lo, hi)) return mm::Status::Busy;
    }
    return mm::Status::Ok;
  }

  // After check_map said Ok. Populates too, when asked.
  void map(SpaceId id, const MapArgs& a) {
    const bool stack = a.kind == Kind::Stack;
    const u64 lo = stack ? a.address - kPage : a.address;
    const u64 hi = a.address + a.length;
    unmap(id, lo, hi);
    Pages& p = space(id);
    for (u64 va = a.address; va < hi; va += kPage) {
      p[va] = Page{.prot = a.prot, .kind = a.kind, .sharing = a.sharing};
      if (a.kind == Kind::Device) {
        p[va].sharing = Sharing::Shared;
        p[va].backing = Backing::Device;
        p[va].store = a.physical + (va - a.address);
      }
    }
    if (stack) {
      p[lo] = Page{.prot = mm::Prot::None, .kind = Kind::Guard, .sharing = a.sharing};
    }
    if (a.populate && a.prot != mm::Prot::None && a.kind != Kind::Device) {
      for (u64 va = a.address; va < hi; va += kPage) populate(id, va);
    }
  }

  // The lowest free range of `bytes` at or above `hint` (rounded down to a
  // page), else the lowest at all; nullopt when no gap is large enough.
  std::optional<u64> find_free(SpaceId id, u64 bytes, u64 hint) const {
    hint &= ~(kPage - 1);
    const u64 start = hint < kUserStart || hint >= kUserEnd ? kUserStart : hint;
    if (auto at = gap_from(id, start, bytes)) return at;
    if (start != kUserStart) return gap_from(id, kUserStart, bytes);
    return std::nullopt;
  }

  // alloc's answer: the address the region gets (the guard, for a stack, is
  // below it), or EINVAL / ENOMEM. Then map() with address = the answer.
  mm::Result<u64> check_alloc(SpaceId id, const MapArgs& a) const {
    if (a.length == 0 || (a.length & (kPage - 1)) != 0) return mm::Status::InvalidArgument;
    const u64 guard = a.kind == Kind::Stack ? kPage : 0;
    if (a.length > kUserEnd) return mm::Status::OutOfMemory;
    const std::optional<u64> at = find_free(id, a.length + guard, a.address);
    if (!at) return mm::Status::OutOfMemory;
    MapArgs placed = a;
    placed.address = *at + guard;
    placed.replace = false;
    const mm::Status s = check_map(id, placed);
    if (s != mm::Status::Ok) return s;
    return placed.address;
  }

  mm::Status check_unmap(SpaceId id, u64 address, u64 length) const {
    if (!range_ok(address, length)) return mm::Status::InvalidArgument;
    if (any_pinned(id, address, address + length)) return mm::Status::Busy;
    return mm::Status::Ok;
  }
  // Removes [lo, hi). A stack page whose lower neighbour is a guard page
  // takes the guard along (that page starts its stack).
  void unmap(SpaceId id, u64 lo, u64 hi) {
    Pages& p = space(id);
    auto it = p.lower_bound(lo);
    if (it != p.end() && it->first < hi && it->second.kind == Kind::Stack) {
      const auto below = p.find(it->first - kPage);
      if (below != p.end() && below->second.kind == Kind::Guard) {
        drop_backing(below->second);
        p.erase(below);
      }
    }
    // Inside the range, a guard below a stack page is inside the range too.
    while (it != p.end() && it->first < hi) {
      drop_backing(it->second);
      it = p.erase(it);
    }
  }

  mm::Status check_protect(SpaceId id, u64 address, u64 length) const {
    if (!range_ok(address, length)) return mm::Status::InvalidArgument;
    if (!covered(id, address, address + length)) return mm::Status::NotFound;
    return mm::Status::Ok;
  }
  void protect(SpaceId id, u64 address, u64 length, mm::Prot prot) {
    for (u64 va = address; va < address + length; va += kPage) page_at(id, va).prot = prot;
  }

  mm::Status check_pin(SpaceId id, u64 address, u64 length) const { return check_protect(id, address, length); }
  // Populates with a store of each page's own (never the zero page, never a
  // copy-on-write store: a pinned page keeps its frame), then pins.
  void pin(SpaceId id, u64 address, u64 length) {
    for (u64 va = address; va < address + length; va += kPage) unshare(id, va);
    for (u64 va = address; va < address + length; va += kPage) ++page_at(id, va).pins;
  }
  // The page's store becomes a copy of its own with the same values (the
  // judge, told that the core copied where the model's order had the page
  // take the store as its last holder).
  void split(SpaceId id, u64 va) {
    Page& p = page_at(id, va);
    if (p.backing != Backing::Store) failure("split of a page without a store", va);
    u64 values[kSlots];
    for (int s = 0; s < kSlots; ++s) values[s] = store(p.store).value[s];
    const u32 pins = p.pins;
    drop_backing(p);
    give_store(p, Sharing::Private, values);
    p.pins = pins;
  }

  // Would pin's populate change this page? (It has no frame of its own yet.)
  bool needs_unshare(SpaceId id, u64 va) const {
    const Page* p = page(id, va);
    return p != nullptr && p->backing != Backing::Device && (p->backing != Backing::Store || p->cow);
  }
  // What pin's populate does to one page (nothing under PROT_NONE).
  void unshare(SpaceId id, u64 va) {
    const std::optional<mm::Access> access = populate_access(id, va);
    if (!access) return;
    Page& p = page_at(id, va);
    const u64 zeros[kSlots] = {};
    switch (p.backing) {
      case Backing::Device:
        return;
      case Backing::None:
        give_store(p, p.sharing, zeros);
        return;
      case Backing::Zero:
        give_store(p, Sharing::Private, zeros);
        return;
      case Backing::Store:
        if (!p.cow) return;
        if (store(p.store).holders == 1) {
          p.cow = false;
        } else {
          u64 values[kSlots];
          for (int s = 0; s < kSlots; ++s) values[s] = store(p.store).value[s];
          drop_backing(p);
          give_store(p, Sharing::Private, values);
        }
        return;
    }
  }

  mm::Status check_unpin(SpaceId id, u64 address, u64 length) const {
    if (!range_ok(address, length)) return mm::Status::InvalidArgument;
    if (!covered(id, address, address + length)) return mm::Status::NotFound;
    for (u64 va = address; va < address + length; va += kPage) {
      const Page* p = page(id, va);
      if (p == nullptr || p->pins == 0) return mm::Status::InvalidArgument;
    }
    return mm::Status::Ok;
  }
  void unpin(SpaceId id, u64 address, u64 length) {
    for (u64 va = address; va < address + length; va += kPage) --page_at(id, va).pins;
  }

  // ---- faults and accesses ----------------------------------------------

  // What AddressSpace::handle_fault answers for `access` at `va`. Complete
  // means the page tables already allow the access (no fault would happen).
  mm::FaultOutcome predict_fault(SpaceId id, u64 va, mm::Access access, bool user) const {
    const u64 top = va >> 47;
    if ((top != 0 && top != 0x1FFFF) || (user && va >= kUserEnd)) return mm::FaultOutcome::Segv;
    const Page* p = page(id, va);
    if (p == nullptr || p->kind == Kind::Guard) return mm::FaultOutcome::Segv;
    if (p->prot == mm::Prot::None) return mm::FaultOutcome::Segv;
    if (access == mm::Access::Write && !has(p->prot, mm::Prot::Write)) return mm::FaultOutcome::Segv;
    if (access == mm::Access::Execute && !has(p->prot, mm::Prot::Exec)) return mm::FaultOutcome::Segv;
    switch (p->backing) {
      case Backing::None:  // a pinned page never maps the zero page
        return access != mm::Access::Write && p->sharing == Sharing::Private && p->pins == 0
                   ? mm::FaultOutcome::MapBackingReadOnly
                   : mm::FaultOutcome::MapBacking;
      case Backing::Zero:
        return access == mm::Access::Write ? mm::FaultOutcome::MapBacking : mm::FaultOutcome::Complete;
      case Backing::Store:
        if (access != mm::Access::Write || !p->cow) return mm::FaultOutcome::Complete;
        return store(p->store).holders == 1 ? mm::FaultOutcome::MapBacking : mm::FaultOutcome::CopyBacking;
      case Backing::Device:  // its first touch maps it (unless a 2 MiB page already did)
        return mm::FaultOutcome::MapBacking;
    }
    return mm::FaultOutcome::Segv;
  }

  // Applies a fault that predict_fault says resolves (or Complete).
  void fault(SpaceId id, u64 va, mm::Access access) { apply_fault(id, va, predict_fault(id, va, access, /*user=*/false)); }
  // Applies a fault's `outcome` (predict_fault's: where the core unshared a
  // copy-on-write page the other way, the judge corrects the page after,
  // with split or by moving its binding). Taking the store while others
  // still hold it leaves them holding it until their drops are applied.
  void apply_fault(SpaceId id, u64 va, mm::FaultOutcome outcome) {
    Page& p = page_at(id, va);
    switch (outcome) {
      case mm::FaultOutcome::Complete:
        return;
      case mm::FaultOutcome::MapBackingReadOnly:
        p.backing = Backing::Zero;
        return;
      case mm::FaultOutcome::MapBacking:
        if (p.backing == Backing::Device) return;
        if (p.backing == Backing::Store) {
          if (p.cow && store(p.store).holders > 1 && store(p.store).sharing == Sharing::Private) --commitments_;
          p.cow = false;  // the only holder takes its frame back
        } else {
          const u64 zeros[kSlots] = {};
          give_store(p, p.backing == Backing::Zero ? Sharing::Private : p.sharing, zeros);
        }
        return;
      case mm::FaultOutcome::CopyBacking: {
        u64 values[kSlots];
        for (int s = 0; s < kSlots; ++s) values[s] = store(p.store).value[s];
        drop_backing(p);
        give_store(p, Sharing::Private, values);
        return;
      }
      default:
        failure("fault applied where it does not resolve", va);
    }
  }

  // Would `access` at `va` go through without a fault?
  bool allows(SpaceId id, u64 va, mm::Access access) const {
    return predict_fault(id, va, access, /*user=*/true) == mm::FaultOutcome::Complete;
  }

  // Kernel reads and writes (AddressSpace::read_u64 / write_u64): EINVAL
  // unaligned, EFAULT where the fault would be a segmentation fault.
  mm::Status check_kernel(SpaceId id, u64 va, mm::Access access) const {
    if ((va & 7) != 0) return mm::Status::InvalidArgument;
    return predict_fault(id, va, access, /*user=*/false) == mm::FaultOutcome::Segv ? mm::Status::BadAddress
                                                                                    : mm::Status::Ok;
  }
  // The value a read at `va` (8-aligned) returns: its slot's, or zero.
  u64 value(SpaceId id, u64 va) const {
    const Page* p = page(id, va);
    const int slot = slot_of(va);
    if (p == nullptr || slot < 0) return 0;
    if (p->backing == Backing::Device) return device_value(p->store, slot);
    if (p->backing != Backing::Store) return 0;
    return store(p->store).value[slot];
  }
  // A device page's slot, mapped or not (zero until written).
  u64 device_value(u64 physical, int slot) const {
    const auto it = device_.find(physical);
    return it == device_.end() ? 0 : it->second.value[slot];
  }
  void write_device(u64 physical, int slot, u64 v) { device_[physical].value[slot] = v; }
  // A store's slot (the store must be alive, or watched).
  u64 store_value(u64 id, int slot) const { return store(id).value[slot]; }
  void write_store(u64 id, int slot, u64 v) { stores_.at(id).value[slot] = v; }

  // A judge that may still read a store through a stale translation keeps
  // it alive (with its values) until it unwatches it.
  void watch(u64 id) { ++stores_.at(id).watchers; }
  void unwatch(u64 id) {
    const auto it = stores_.find(id);
    if (it == stores_.end() || it->second.watchers == 0) failure("unwatch of a store nobody watches", id);
    if (--it->second.watchers == 0 && it->second.holders == 0) stores_.erase(it);
  }
  bool store_alive(u64 id) const {
    const auto it = stores_.find(id);
    return it != stores_.end() && it->second.holders > 0;
  }
  // Held by a page, or watched.
  bool store_exists(u64 id) const { return stores_.count(id) != 0; }
  // A write at a slot the page may take now (after any fault).
  void write(SpaceId id, u64 va, u64 v) {
    Page& p = page_at(id, va);
    const int slot = slot_of(va);
    if (slot >= 0 && p.backing == Backing::Device && has(p.prot, mm::Prot::Write)) {
      write_device(p.store, slot, v);
      return;
    }
    if (slot < 0 || p.backing != Backing::Store || p.cow || !has(p.prot, mm::Prot::Write)) {
      failure("write the page does not allow", va);
    }
    stores_[p.store].value[slot] = v;
  }

  static int slot_of(u64 va) {
    for (int s = 0; s < kSlots; ++s) {
      if ((va & (kPage - 1)) == kSlotOffset[s]) return s;
    }
    return -1;
  }

  // What populate (map with populate, pin) does to one page: the fault of
  // the widest access the protection allows, or nothing under PROT_NONE.
  // Returns the access it faults with, if any.
  std::optional<mm::Access> populate_access(SpaceId id, u64 va) const {
    const Page* p = page(id, va);
    if (p == nullptr || p->kind == Kind::Guard || p->prot == mm::Prot::None) return std::nullopt;
    return has(p->prot, mm::Prot::Write) ? mm::Access::Write : mm::Access::Read;
  }
  void populate(SpaceId id, u64 va) {
    if (const auto access = populate_access(id, va)) fault(id, va, *access);
  }

  // ---- resync after ENOMEM ----------------------------------------------
  // A fork that ran out of page tables leaves some of the parent's private
  // pages write-protected (copy-on-write, now held only by the parent).
  void mark_copy_on_write(SpaceId id, u64 va) {
    Page& p = page_at(id, va);
    if (p.backing != Backing::Store || p.sharing != Sharing::Private) failure("copy-on-write without a store", va);
    p.cow = true;
  }

  static bool has(mm::Prot prot, mm::Prot bit) {
    return (static_cast<unsigned>(prot) & static_cast<unsigned>(bit)) == static_cast<unsigned>(bit);
  }

 private:
  [[noreturn]] static void failure(const char* what, u64 value) {
    std::fprintf(stderr, "vm reference model: %s (%#llx)\n", what, static_cast<unsigned long long>(value));
    std::abort();
  }

  Pages& space(SpaceId id) {
    const auto it = spaces_.find(id);
    if (it == spaces_.end()) failure("no such space", static_cast<u64>(id));
    return it->second;
  }
  const Pages& space(SpaceId id) const {
    const auto it = spaces_.find(id);
    if (it == spaces_.end()) failure("no such space", static_cast<u64>(id));
    return it->second;
  }
  Page& page_at(SpaceId id, u64 va) {
    Pages& p = space(id);
    const auto it = p.find(va & ~(kPage - 1));
    if (it == p.end()) failure("no page", va);
    return it->second;
  }

  static bool range_ok(u64 address, u64 length) {
    return length != 0 && (address & (kPage - 1)) == 0 && (length & (kPage - 1)) == 0 && address >= kUserStart &&
           address < kUserEnd && length <= kUserEnd - address;
  }
  bool any_page(SpaceId id, u64 lo, u64 hi) const {
    const Pages& p = space(id);
    const auto it = p.lower_bound(lo);
    return it != p.end() && it->first < hi;
  }
  bool any_pinned(SpaceId id, u64 lo, u64 hi) const {
    const Pages& p = space(id);
    for (auto it = p.lower_bound(lo); it != p.end() && it->first < hi; ++it) {
      if (it->second.pins > 0) return true;
    }
    return false;
  }
  // Every page of [lo, hi) mapped, and none a guard page.
  bool covered(SpaceId id, u64 lo, u64 hi) const {
    for (u64 va = lo; va < hi; va += kPage) {
      const Page* p = page(id, va);
      if (p == nullptr || p->kind == Kind::Guard) return false;
    }
    return true;
  }
  std::optional<u64> gap_from(SpaceId id, u64 candidate, u64 bytes) const {
    const Pages& p = space(id);
    for (auto it = p.lower_bound(candidate); it != p.end(); ++it) {
      if (it->first - candidate >= bytes) return candidate;
      candidate = it->first + kPage;
    }
    if (candidate < kUserEnd && kUserEnd - candidate >= bytes) return candidate;
    return std::nullopt;
  }

  void give_store(Page& p, Sharing sharing, const u64* values) {
    const u64 id = next_store_++;
    Store& s = stores_[id];
    for (int i = 0; i < kSlots; ++i) s.value[i] = values[i];
    s.holders = 1;
    s.sharing = sharing;
    p.backing = Backing::Store;
    p.store = id;
    p.cow = false;
  }
  // One more holder: a private store's commitments grow with its holders.
  void hold(u64 id) {
    Store& s = stores_[id];
    if (s.sharing == Sharing::Private) ++commitments_;
    ++s.holders;
  }
  void drop_backing(Page& p) {
    if (p.backing == Backing::Store) {
      const auto it = stores_.find(p.store);
      if (it == stores_.end() || it->second.holders == 0) failure("drop of a dead store", p.store);
      Store& s = it->second;
      --s.holders;
      if (s.holders == 0) {
        if (s.watchers == 0) stores_.erase(it);
      } else if (s.sharing == Sharing::Private) {
        --commitments_;
      }
    }
    p.backing = Backing::None;
    p.store = 0;
    p.cow = false;
  }

  std::map<SpaceId, Pages> spaces_;
  std::map<u64, Store> stores_;
  std::map<u64, Store> device_;  // by physical page: values only
  SpaceId next_space_ = 0;
  u64 next_store_ = 1;
  u64 commitments_ = 0;
};

}  // namespace pagelab::model
