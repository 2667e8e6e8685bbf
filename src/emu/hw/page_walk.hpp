// The emulated MMU's page walk: IA-32e 4-level paging exactly as Intel SDM
// vol. 3A chapter 4 describes it, over page-table bytes reached through a
// Port, plus the paging-structure caches (SDM 4.10.3) the walk may use.
//
// This file deliberately shares no code with the mapper in src/mm/paging: the
// emulator's walker is the independent check on the page tables the core
// writes, so its entry bits are spelled out again here from the SDM tables.
//
// What is implemented (section numbers are SDM vol. 3A):
//   - canonical addresses (3.3.7.1 of vol. 1): a non-canonical address is a
//     #GP, reported as WalkOutcome::NonCanonical, never a #PF;
//   - the walk (4.5): PML4E -> PDPTE -> PDE -> PTE, 1 GiB leaves (PDPTE.PS)
//     and 2 MiB leaves (PDE.PS);
//   - reserved bits (4.5.4, tables 4-14 to 4-20) in any present entry:
//     bits 51:MAXPHYADDR, PS in a PML4E, bits 29:13 of a 1 GiB leaf and 20:13
//     of a 2 MiB leaf, PS in a PDPTE when 1 GiB pages are not supported, XD
//     (bit 63) while EFER.NXE = 0 -> #PF with RSVD = 1;
//   - access rights (4.6): R/W and U/S ANDed across the levels, XD ORed;
//     CR0.WP, CR4.SMEP, CR4.SMAP with RFLAGS.AC and implicit supervisor
//     accesses;
//   - the #PF error code (4.7): P, W/R, U/S, RSVD, I/D, and CR2;
//   - accessed and dirty flags (4.8): set with a locked compare-and-exchange
//     on every entry of a walk that succeeds, dirty on the leaf of a write;
//   - paging-structure caches (4.10.3): PML4E, PDPTE and PDE caches tagged
//     with the PCID.
// Not implemented: protection keys (CR4.PKE/PKS), CET shadow-stack accesses,
// 5-level paging (CR4.LA57), HLAT, memory types (PAT/PCD/PWT are reported
// only as part of the leaf entry), and the optional "may also" latitude the
// SDM gives real processors (speculative A-flag setting, extra
// invalidations): the emulator always does the minimum, so that every
// stale-translation bug the software could have stays visible.
#pragma once

#include <algorithm>
#include <array>
#include <concepts>
#include <vector>

#include "emu/hw/control_registers.hpp"
#include "mm/paging/pte.hpp"

namespace pagelab::hw {

using mm::PageSize;

// Bits of a paging-structure entry, SDM tables 4-15 to 4-20.
namespace entry {
inline constexpr u64 kP = u64{1} << 0;    // present
inline constexpr u64 kRW = u64{1} << 1;   // read/write
inline constexpr u64 kUS = u64{1} << 2;   // user/supervisor
inline constexpr u64 kPWT = u64{1} << 3;  // page-level write-through
inline constexpr u64 kPCD = u64{1} << 4;  // page-level cache disable
inline constexpr u64 kA = u64{1} << 5;    // accessed
inline constexpr u64 kD = u64{1} << 6;    // dirty (leaves only; ignored in a non-leaf entry)
inline constexpr u64 kPS = u64{1} << 7;   // page size (PDPTE, PDE); PAT in a PTE; reserved in a PML4E
inline constexpr u64 kG = u64{1} << 8;    // global (leaves only, with CR4.PGE = 1)
inline constexpr u64 kPatLarge = u64{1} << 12;  // PAT of a 2 MiB or 1 GiB leaf
inline constexpr u64 kXD = u64{1} << 63;  // execute-disable (reserved while EFER.NXE = 0)
// Bits 51:12: the next table, or the frame of a 4 KiB leaf.
inline constexpr u64 kAddress = 0x000FFFFFFFFFF000;
}  // namespace entry

// The page-fault error code (SDM 4.7, figure 4-12). Bits not listed (PK, SS,
// HLAT, SGX) are never set by this walker.
namespace pf {
inline constexpr u32 kP = 1u << 0;     // 0: not present; 1: protection violation (or reserved bit)
inline constexpr u32 kWR = 1u << 1;    // the access was a write
inline constexpr u32 kUS = 1u << 2;    // the access was a user-mode access
inline constexpr u32 kRSVD = 1u << 3;  // a reserved bit was set in a present entry
inline constexpr u32 kID = 1u << 4;    // an instruction fetch, reported only with SMEP or NXE on
}  // namespace pf

inline constexpr int kWalkLevels = 4;  // 4 = PML4, 3 = PDPT, 2 = PD, 1 = PT

// The bytes one entry at `level` maps: 4 KiB at level 1 ... 512 GiB at level 4.
constexpr u64 span_of_level(int level) { return u64{1} << (12 + 9 * (level - 1)); }
constexpr u64 index_at_level(u64 va, int level) { return (va >> (12 + 9 * (level - 1))) & 511; }
constexpr PageSize page_size_of_level(int level) {
  return level == 1 ? PageSize::Size4K : level == 2 ? PageSize::Size2M : PageSize::Size1G;
}
constexpr u64 bytes_of(PageSize size) { return mm::page_bytes(size); }

// Canonical for 4-level paging: bits 63:47 all equal (SDM vol. 1, 3.3.7.1).
constexpr bool is_canonical(u64 va) {
  const u64 top = va >> 47;
  return top == 0 || top == 0x1FFFF;
}

enum class AccessKind : u8 { Read, Write, Fetch };

// Who makes the access (SDM 4.6): a user-mode access is one made at CPL 3; a
// supervisor-mode access one at CPL < 3, or an *implicit* supervisor-mode
// access (to the GDT, LDT, IDT or TSS, or the shadow stack on delivery) made
// at any CPL. SMAP always applies to implicit accesses, whatever RFLAGS.AC.
enum class Mode : u8 { Supervisor, User, ImplicitSupervisor };

struct Access {
  AccessKind kind = AccessKind::Read;
  Mode mode = Mode::Supervisor;
  // RFLAGS.AC: with CR4.SMAP = 1, lets *explicit* supervisor data accesses
  // reach user-mode pages (STAC/CLAC).
  bool rflags_ac = false;

  constexpr bool is_write() const { return kind == AccessKind::Write; }
  constexpr bool is_fetch() const { return kind == AccessKind::Fetch; }
  constexpr bool is_user() const { return mode == Mode::User; }
};

// Access rights combined over every entry of a translation (SDM 4.6): a page
// is writable if R/W = 1 in all of them, a user-mode page if U/S = 1 in all,
// and execute-disabled if XD = 1 in any.
struct Permissions {
  bool writable = true;
  bool user = true;
  bool no_execute = false;

  constexpr void combine(u64 paging_entry) {
    writable = writable && (paging_entry & entry::kRW);
    user = user && (paging_entry & entry::kUS);
    no_execute = no_execute || (paging_entry & entry::kXD);
  }
  constexpr bool operator==(const Permissions&) const = default;
};

// CPUID properties the walk depends on.
struct PagingFeatures {
  // MAXPHYADDR (CPUID.80000008H:EAX[7:0]), 36..52: bits 51:MAXPHYADDR of
  // every present entry are reserved.
  unsigned maxphyaddr = 52;
  // 1 GiB pages (CPUID.80000001H:EDX.Page1GB): without them, PS = 1 in a
  // PDPTE is a reserved bit.
  bool gb_pages = true;

  // Bits 51:MAXPHYADDR.
  constexpr u64 reserved_address_bits() const {
    return maxphyaddr >= 52 ? 0 : entry::kAddress & ~((u64{1} << maxphyaddr) - 1);
  }
};

// Why a translation failed.
enum class FaultReason : u8 {
  None,
  NotPresent,        // P = 0 in the entry at fault_level
  ReservedBit,       // a reserved bit set in the present entry at fault_level
  SupervisorPage,    // a user-mode access to a supervisor-mode page (U/S = 0 at some level)
  ReadOnly,          // a write to a page with R/W = 0 at some level (user, or supervisor with CR0.WP = 1)
  NoExecute,         // a fetch from a page with XD = 1 at some level, EFER.NXE = 1
  Smep,              // a supervisor-mode fetch from a user-mode page, CR4.SMEP = 1
  Smap,              // a supervisor-mode data access to a user-mode page, CR4.SMAP = 1, AC = 0 or implicit
};
constexpr const char* fault_reason_name(FaultReason reason) {
  switch (reason) {
    case FaultReason::None: return "none";
    case FaultReason::NotPresent: return "not-present";
    case FaultReason::ReservedBit: return "reserved-bit";
    case FaultReason::SupervisorPage: return "supervisor-page";
    case FaultReason::ReadOnly: return "read-only";
    case FaultReason::NoExecute: return "no-execute";
    case FaultReason::Smep: return "smep";
    case FaultReason::Smap: return "smap";
  }
  return "?";
}

// SDM 4.6.1: may `access` use a translation with the combined rights
// `rights` under `cr`? FaultReason::None when it may. The same check serves
// a TLB hit (TLB entries hold the combined rights; CR0.WP, SMEP, SMAP and
// NXE are applied at use) and the end of a walk.
constexpr FaultReason access_violation(Permissions rights, const ControlRegisters& cr, Access access) {
  // With NXE = 0 no translation can carry XD (it is a reserved bit).
  const bool execute_disabled = cr.nxe() && rights.no_execute;
  if (access.mode == Mode::User) {
    if (!rights.user) return FaultReason::SupervisorPage;
    if (access.kind == AccessKind::Write && !rights.writable) return FaultReason::ReadOnly;
    if (access.kind == AccessKind::Fetch && execute_disabled) return FaultReason::NoExecute;
    return FaultReason::None;
  }
  // Supervisor-mode access, explicit or implicit.
  if (access.kind == AccessKind::Fetch) {
    if (rights.user && cr.smep()) return FaultReason::Smep;
    if (execute_disabled) return FaultReason::NoExecute;
    return FaultReason::None;
  }
  if (rights.user && cr.smap() && (access.mode == Mode::ImplicitSupervisor || !access.rflags_ac)) {
    return FaultReason::Smap;
  }
  if (access.kind == AccessKind::Write && !rights.writable && cr.wp()) return FaultReason::ReadOnly;
  return FaultReason::None;
}

// The #PF error code for `access` failing for `reason` (SDM 4.7). I/D is
// reported only when CR4.SMEP = 1, or CR4.PAE = 1 and EFER.NXE = 1.
constexpr u32 page_fault_error_code(FaultReason reason, const ControlRegisters& cr, Access access) {
  u32 code = 0;
  if (reason != FaultReason::NotPresent) code |= pf::kP;
  if (reason == FaultReason::ReservedBit) code |= pf::kRSVD;
  if (access.kind == AccessKind::Write) code |= pf::kWR;
  if (access.mode == Mode::User) code |= pf::kUS;
  if (access.kind == AccessKind::Fetch && (cr.smep() || ((cr.cr4 & cr4::kPAE) && cr.nxe()))) code |= pf::kID;
  return code;
}

enum class WalkOutcome : u8 {
  Translated,
  PageFault,     // #PF: error_code and cr2 say why and where
  NonCanonical,  // #GP(0) (#SS(0) for a stack access): no walk, no CR2
};

// One paging-structure entry the walk read, for the trace.
// (No default member initializers: a walk writes the steps it takes and
// nothing else, so that starting one costs no zeroing.)
struct WalkStep {
  u8 level;           // 4 = PML4E ... 1 = PTE
  u64 entry_address;  // its physical address
  u64 entry;          // its value as read (before any A/D update)
};

struct WalkResult {
  WalkOutcome outcome = WalkOutcome::PageFault;
  u64 va = 0;

  // WalkOutcome::Translated:
  u64 physical = 0;                   // the translated address (frame + offset)
  PageSize size = PageSize::Size4K;
  Permissions rights;                 // combined over the levels (incl. those from a PSC hit)
  bool global = false;                // G in the leaf and CR4.PGE = 1
  u64 leaf = 0;                       // the leaf entry, A (and D) as the walk left them
  bool dirty = false;                 // D in the leaf after the walk

  // WalkOutcome::PageFault:
  u32 error_code = 0;
  u64 cr2 = 0;                        // the faulting linear address
  FaultReason reason = FaultReason::None;
  u8 fault_level = 0;                 // the level of the not-present or reserved entry; 0 for a rights fault

  // The entries read, top down, in the last pass (a restarted walk keeps only
  // the pass that finished); only the first step_count are meaningful. A
  // walk that started from a paging-structure-cache hit reads only the
  // levels below psc_level.
  std::array<WalkStep, kWalkLevels> steps;
  u8 step_count = 0;
  u8 psc_level = 0;                   // 4, 3 or 2: the cached entry the walk started from; 0: none
  u32 restarts = 0;                   // passes abandoned because an entry changed under the A/D update

  constexpr bool ok() const { return outcome == WalkOutcome::Translated; }
  constexpr bool page_fault() const { return outcome == WalkOutcome::PageFault; }
  constexpr bool non_canonical() const { return outcome == WalkOutcome::NonCanonical; }
  // The physical base of the page (the frame of a 4 KiB page, the 2 MiB or 1 GiB base otherwise).
  constexpr u64 page_base() const { return physical & ~(bytes_of(size) - 1); }
};

// INVPCID's four types (SDM vol. 2, INVPCID).
enum class InvpcidType : u8 {
  IndividualAddress = 0,      // one linear address in one PCID, global translations excepted
  SingleContext = 1,          // every non-global translation of one PCID
  AllContextsAndGlobal = 2,   // everything, global translations included
  AllContextsKeepGlobal = 3,  // every non-global translation of every PCID
};

// The paging-structure caches of one CPU (SDM 4.10.3): a PML4E cache (keyed
// by VA bits 47:39), a PDPTE cache (47:30, only PDPTEs with PS = 0) and a PDE
// cache (47:21, only PDEs with PS = 0), each entry holding the physical
// address of the next table and the rights combined down to its level, and
// tagged with the PCID it was created under. There are no global PSC entries.
//
// Entries are created only by walks that succeed (so from present entries
// without reserved bits whose A flag is set) and stay until invalidated,
// even after the software changes the entry they came from: that staleness is
// what the oracle checks against ("no page-table frame is freed while a
// paging-structure cache points at it").
//
// Each cache is fully associative with LRU replacement; sizes are fixed at
// construction. Not thread-safe: it belongs to one CPU.
class PagingStructureCache {
 public:
  struct Geometry {
    u32 pml4e_entries = 4;
    u32 pdpte_entries = 4;
    u32 pde_entries = 32;
  };
  // One cached entry: the entry at `level` (4, 3 or 2) that maps `va_base`
  // (VA aligned down to span_of_level(level)) points to the table at `table`.
  struct Entry {
    u8 level = 0;
    u64 va_base = 0;
    u64 table = 0;
    Pcid pcid = 0;
    Permissions rights;
  };
  struct Hit {
    u8 level = 0;  // 0: miss
    u64 table = 0;
    Permissions rights;
    constexpr explicit operator bool() const { return level != 0; }
  };
  struct Counters {
    u64 hits[5] = {};  // by level (2, 3, 4)
    u64 misses = 0;
    u64 fills = 0;
    u64 invalidations = 0;       // invalidating operations
    u64 entries_invalidated = 0;
  };

  PagingStructureCache() : PagingStructureCache(Geometry{}) {}
  explicit PagingStructureCache(Geometry geometry)
      : caches_{std::vector<Slot>(geometry.pde_entries), std::vector<Slot>(geometry.pdpte_entries),
                std::vector<Slot>(geometry.pml4e_entries)} {}

  // The deepest cached entry for `va` under `pcid` (PDE first, then PDPTE,
  // then PML4E), or a miss.
  Hit lookup(u64 va, Pcid pcid) {
    for (int level = 2; level <= 4; ++level) {
      const u64 base = va & ~(span_of_level(level) - 1);
      for (Slot& slot : cache(level)) {
        if (slot.valid && slot.entry.va_base == base && slot.entry.pcid == pcid) {
          slot.stamp = ++clock_;
          ++counters_.hits[level];
          return Hit{static_cast<u8>(level), slot.entry.table, slot.entry.rights};
        }
      }
    }
    ++counters_.misses;
    return Hit{};
  }

  // Caches the entry at `level` (4, 3 or 2, a non-leaf) used to translate
  // `va` under `pcid`, replacing an entry for the same (level, va, pcid) or
  // the least recently used one.
  void fill(int level, u64 va, Pcid pcid, u64 table, Permissions rights) {
    std::vector<Slot>& slots = cache(level);
    if (slots.empty()) return;
    const u64 base = va & ~(span_of_level(level) - 1);
    Slot* victim = &slots[0];
    for (Slot& slot : slots) {
      if (slot.valid && slot.entry.va_base == base && slot.entry.pcid == pcid) {
        victim = &slot;
        break;
      }
      if (!slot.valid) {
        if (victim->valid) victim = &slot;
      } else if (victim->valid && slot.stamp < victim->stamp) {
        victim = &slot;
      }
    }
    victim->valid = true;
    victim->stamp = ++clock_;
    victim->entry = Entry{static_cast<u8>(level), base, table, pcid, rights};
    ++counters_.fills;
  }

  // Every entry of `pcid`: what INVLPG does to the current PCID's entries
  // whatever the address (SDM 4.10.4.1), and INVPCID types 0 and 1.
  void invalidate_pcid(Pcid pcid) {
    drop([pcid](const Entry& e) { return e.pcid == pcid; });
  }
  // Every entry of every PCID: INVPCID types 2 and 3, CR4.PGE toggles,
  // CR4.PCIDE 1 -> 0, CR0.PG 1 -> 0.
  void invalidate_all() {
    drop([](const Entry&) { return true; });
  }

  // The instruction-shaped forms, mirroring Tlb's, so the CPU can do the same
  // thing to both.
  void invlpg(Pcid current_pcid) { invalidate_pcid(current_pcid); }
  void invpcid(InvpcidType type, Pcid pcid) {
    if (type == InvpcidType::IndividualAddress || type == InvpcidType::SingleContext) {
      invalidate_pcid(pcid);
    } else {
      invalidate_all();
    }
  }
  // MOV to CR3 with operand `source`: PCIDE = 1 without bit 63 drops the new
  // PCID's entries, with bit 63 nothing; PCIDE = 0 drops PCID 0's entries
  // (which, with PCIDE = 0, are all there are).
  void mov_to_cr3(u64 source, bool pcide) {
    if (!pcide) {
      invalidate_all();
    } else if (!(source & cr3::kNoFlush)) {
      invalidate_pcid(static_cast<Pcid>(source & cr3::kPcidMask));
    }
  }

  // Calls f(const Entry&) for every valid entry.
  template <typename F>
  void for_each(F&& f) const {
    for (const std::vector<Slot>& slots : caches_) {
      for (const Slot& slot : slots) {
        if (slot.valid) f(slot.entry);
      }
    }
  }
  // Does any entry point at the table in the 4 KiB frame at `table`?
  bool references_table(u64 table) const {
    bool found = false;
    for_each([&](const Entry& e) { found = found || e.table == table; });
    return found;
  }

  const Counters& counters() const { return counters_; }

  // As constructed, for another run on the same storage (Machine::restart):
  // every slot empty, the recency clock and the counters at zero.
  void reset() {
    for (std::vector<Slot>& slots : caches_) std::fill(slots.begin(), slots.end(), Slot{});
    clock_ = 0;
    counters_ = Counters{};
  }

 private:
  struct Slot {
    bool valid = false;
    u64 stamp = 0;
    Entry entry;
  };
  std::vector<Slot>& cache(int level) { return caches_[level - 2]; }

  template <typename Pred>
  void drop(Pred pred) {
    ++counters_.invalidations;
    for (std::vector<Slot>& slots : caches_) {
      for (Slot& slot : slots) {
        if (slot.valid && pred(slot.entry)) {
          slot.valid = false;
          ++counters_.entries_invalidated;
        }
      }
    }
  }

  std::array<std::vector<Slot>, 3> caches_;  // PDE, PDPTE, PML4E caches
  u64 clock_ = 0;
  Counters counters_;
};

// Physical memory as the walker sees it: aligned 8-byte loads and a locked
// 8-byte compare-and-exchange (on failure `expected` receives the current
// value), both ordered by the emulator against the core's page-table stores.
template <typename Port>
concept PhysicalPort = requires(Port& port, u64 physical, u64& expected, u64 desired) {
  { port.load(physical) } -> std::convertible_to<u64>;
  { port.compare_exchange(physical, expected, desired) } -> std::convertible_to<bool>;
};

namespace detail {

// The entries one pass of a walk read, top down: a copy of the steps'
// addresses and values that the walk keeps in registers (the WalkResult's
// steps are written for the caller, and a caller that never reads them lets
// the compiler drop those stores once the walk is inlined).
struct StepWords {
  std::array<u64, kWalkLevels> address;
  std::array<u64, kWalkLevels> entry;
};

// A walk's A/D update (SDM 4.8), the rare part of a walk kept out of line:
// sets A in each of the `count` entries read and `wanted_leaf_bits` in the
// last one, the leaf, each with compare_exchange. An exchange that fails
// because only A or D changed is retried on the new value. False when an
// entry changed in any other way (what was read is stale: the walk must
// restart); otherwise `leaf` receives the leaf's value after the update.
// (The steps come as eight words, not as a StepWords in memory, so that
// the walk's copy never has to be.)
template <typename Port>
[[gnu::noinline]] bool set_accessed_dirty(Port& port, u8 count, u64 wanted_leaf_bits, u64& leaf, u64 address0,
                                          u64 entry0, u64 address1, u64 entry1, u64 address2, u64 entry2,
                                          u64 address3, u64 entry3) {
  const StepWords steps{{address0, address1, address2, address3}, {entry0, entry1, entry2, entry3}};
  for (u8 i = 0; i < count; ++i) {
    const bool is_leaf = i + 1 == count;
    const u64 bits = is_leaf ? wanted_leaf_bits : entry::kA;
    const u64 read = steps.entry[i];
    u64 current = read;
    while ((current & bits) != bits) {
      u64 expected = current;
      if (port.compare_exchange(steps.address[i], expected, current | bits)) {
        current |= bits;
        break;
      }
      // Someone changed the entry since we read it. Only A/D: set ours on
      // the new value. Anything else: what we read is stale; start over.
      if ((expected & ~(entry::kA | entry::kD)) != (read & ~(entry::kA | entry::kD))) return false;
      current = expected;
    }
    if (is_leaf) leaf = current;
  }
  return true;
}

// The walk, with the paging-structure-cache code compiled in only where a
// cache is given. Without one every pass reads the four levels from the
// top, so each level's step index, shifts and reserved-bit mask are
// constants and the hot path is straight-line code: per level one load, the
// step record (three stores), a present test, a reserved-bit test and two
// ALU operations on the rights. Always inlined: the result is then the
// caller's own variable, and stores to fields the caller never reads (the
// steps, for a caller that does not trace) can be dropped.
template <bool WithPsc, typename Port>
[[gnu::always_inline]] inline WalkResult walk(Port& port, const ControlRegisters& cr, u64 va, Access access,
                                              PagingStructureCache* psc, const PagingFeatures& features) {
  WalkResult r;
  r.va = va;
  if (!is_canonical(va)) [[unlikely]] {
    r.outcome = WalkOutcome::NonCanonical;
    return r;
  }
  const auto fail = [&](FaultReason reason, int level) {
    r.outcome = WalkOutcome::PageFault;
    r.reason = reason;
    r.fault_level = static_cast<u8>(level);
    r.error_code = page_fault_error_code(reason, cr, access);
    r.cr2 = va;
  };
  // Reserved in every present entry: bits 51:MAXPHYADDR, and XD without NXE.
  const u64 reserved_any = features.reserved_address_bits() | (cr.nxe() ? 0 : entry::kXD);
  // A 1 GiB leaf: bits 29:13 (bit 12 is PAT), or PS itself without 1 GiB pages.
  const u64 reserved_1g = features.gb_pages ? (span_of_level(3) - 1) & ~u64{0x1FFF} : entry::kPS;
  // A 2 MiB leaf: bits 20:13.
  constexpr u64 kReserved2m = (span_of_level(2) - 1) & ~u64{0x1FFF};
  const u64 wanted_leaf_bits = entry::kA | (access.is_write() ? entry::kD : 0);

  for (;;) {
    u64 table = cr.root();
    // Rights as bits: R/W and U/S ANDed over the entries read (with A: did
    // every entry read already have it?), and the entries ORed (of which
    // only XD is kept).
    u64 and_bits = entry::kRW | entry::kUS | entry::kA;
    u64 or_bits = 0;
    int start = kWalkLevels;
    r.psc_level = 0;
    if constexpr (WithPsc) {
      if (const PagingStructureCache::Hit hit = psc->lookup(va, cr.pcid())) {
        r.psc_level = hit.level;
        start = hit.level - 1;
        table = hit.table;
        and_bits = (hit.rights.writable ? entry::kRW : 0) | (hit.rights.user ? entry::kUS : 0) | entry::kA;
        or_bits = hit.rights.no_execute ? entry::kXD : 0;
      }
    }
    const u64 and_above = and_bits;
    const u64 or_above = or_bits;
    StepWords words{};

    // One level, its number a constant: loads and checks the entry, records
    // the step. Returns 1 when the walk goes on below, 0 at a leaf, -1 on a
    // fault (r filled in).
    u64 e = 0;
    const auto read_level = [&]<int Level>() -> int {
      const u8 index = static_cast<u8>(start - Level);  // a constant without a PSC
      const u64 address = table + index_at_level(va, Level) * 8;
      e = port.load(address);
      words.address[index] = address;
      words.entry[index] = e;
      // The step, as three plain stores: the entry is stored on each side of
      // the present test, which keeps the compiler from packing address and
      // entry into a vector first.
      WalkStep& step = r.steps[index];
      step.level = static_cast<u8>(Level);
      step.entry_address = address;
      if (!(e & entry::kP)) [[unlikely]] {
        step.entry = e;
        r.step_count = static_cast<u8>(index + 1);
        fail(FaultReason::NotPresent, Level);
        return -1;
      }
      step.entry = e;
      const bool ps = Level > 1 && Level < 4 && (e & entry::kPS);
      u64 reserved = reserved_any;
      if constexpr (Level == 4) reserved |= entry::kPS;
      if constexpr (Level == 3) reserved |= ps ? reserved_1g : 0;
      if constexpr (Level == 2) reserved |= ps ? kReserved2m : 0;
      if (e & reserved) [[unlikely]] {
        r.step_count = static_cast<u8>(index + 1);
        fail(FaultReason::ReservedBit, Level);
        return -1;
      }
      and_bits &= e;
      or_bits |= e;
      if (Level == 1 || ps) return 0;
      table = e & entry::kAddress;
      return 1;
    };
    // Down from `start` (4 without a PSC hit) to the leaf, whose level ends
    // in leaf_level.
    int leaf_level = 1;
    int status = 1;
    if (!WithPsc || start >= 4) status = read_level.template operator()<4>();
    if (status > 0 && (!WithPsc || start >= 3)) {
      status = read_level.template operator()<3>();
      leaf_level = 3;
    }
    if (status > 0 && (!WithPsc || start >= 2)) {
      status = read_level.template operator()<2>();
      leaf_level = 2;
    }
    if (status > 0) {
      status = read_level.template operator()<1>();
      leaf_level = 1;
    }
    if (status < 0) return r;
    u64 leaf = e;
    const u8 count = static_cast<u8>(start - leaf_level + 1);
    r.step_count = count;

    const Permissions rights{.writable = (and_bits & entry::kRW) != 0,
                             .user = (and_bits & entry::kUS) != 0,
                             .no_execute = (or_bits & entry::kXD) != 0};
    // The rights of the whole translation (SDM 4.6).
    const FaultReason denied = access_violation(rights, cr, access);
    if (denied != FaultReason::None) [[unlikely]] {
      fail(denied, 0);
      return r;
    }

    // Accessed flags on every entry read, dirty on the leaf of a write (SDM
    // 4.8) -- unless they are all there already, the common case.
    if (!(and_bits & entry::kA) || (leaf & wanted_leaf_bits) != wanted_leaf_bits) [[unlikely]] {
      if (!set_accessed_dirty(port, count, wanted_leaf_bits, leaf, words.address[0], words.entry[0],
                              words.address[1], words.entry[1], words.address[2], words.entry[2],
                              words.address[3], words.entry[3])) {
        ++r.restarts;
        continue;
      }
    }

    // Cache the non-leaf entries read, with the rights down to each.
    if constexpr (WithPsc) {
      Permissions cumulative{.writable = (and_above & entry::kRW) != 0,
                             .user = (and_above & entry::kUS) != 0,
                             .no_execute = or_above != 0};
      for (u8 i = 0; i + 1 < count; ++i) {
        cumulative.combine(words.entry[i]);
        psc->fill(start - i, va, cr.pcid(), words.entry[i] & entry::kAddress, cumulative);
      }
    }

    const u64 span = span_of_level(leaf_level);
    r.outcome = WalkOutcome::Translated;
    r.size = page_size_of_level(leaf_level);
    r.physical = (leaf & entry::kAddress & ~(span - 1)) | (va & (span - 1));
    r.rights = rights;
    r.global = cr.pge() && (leaf & entry::kG);
    r.leaf = leaf;
    r.dirty = leaf & entry::kD;
    return r;
  }
}

}  // namespace detail

// Translates `va` for `access` under `cr`, as one CPU's page walker does on
// a TLB miss. Reads the paging structures through `port` and, when `psc` is
// given, starts from its deepest matching entry and fills it afterwards.
//
// Contract:
//   - cr.four_level_paging() must hold (the emulator runs in IA-32e mode);
//   - a walk that faults changes nothing: no A or D flag is set, no PSC entry
//     is created (the caller must still do the fault's own TLB/PSC
//     invalidation of `va`, SDM 4.10.4.1);
//   - a walk that succeeds has set A in every entry it read (levels served by
//     the PSC are not read, hence not touched) and, for a write, D in the leaf,
//     each with compare_exchange. When an exchange fails because someone
//     else changed only A or D, it is retried on the new value; when any
//     other bit changed (the entry went not-present, or now points elsewhere,
//     or has other rights), the translation read so far is stale and the walk
//     restarts from CR3 (result.restarts counts those);
//   - the result does not fill the TLB: the caller inserts it.
//
// Cost: inline (see detail::walk); without a PSC and with the tables in the
// cache, about a hundred instructions, most of them the four dependent loads'
// checks and the result's fields.
template <typename Port>
  requires PhysicalPort<Port>
[[gnu::always_inline]] inline WalkResult walk(Port& port, const ControlRegisters& cr, u64 va, Access access,
                                              PagingStructureCache* psc = nullptr,
                                              const PagingFeatures& features = {}) {
  return psc != nullptr ? detail::walk<true>(port, cr, va, access, psc, features)
                        : detail::walk<false>(port, cr, va, access, nullptr, features);
}

}  // namespace pagelab::hw
