// The emulated MMU's page walk (src/emu/hw/page_walk.hpp) against the Intel
// SDM vol. 3A chapter 4: one table row per rule, named after it, over page
// tables built in a plain vector "RAM"; then the accessed/dirty updates
// (including a compare-and-exchange that loses a race), the paging-structure
// caches, and a differential run against test/support/reference_walker.hpp.
#include <gtest/gtest.h>

#include <functional>
#include <optional>
#include <ostream>
#include <vector>

#include "emu/hw/control_registers.hpp"
#include "emu/hw/page_walk.hpp"
#include "support/reference_walker.hpp"
#include "support/rng.hpp"

namespace {

using namespace pagelab::hw;  // NOLINT: the whole test is about this namespace
using mm::u64;

// ---------------------------------------------------------------------------
// A tiny machine: RAM as 8-byte words, and the Port the walker reads it by.

class RamPort {
 public:
  explicit RamPort(std::vector<u64>& ram) : ram_(ram) {}

  u64 load(u64 physical) {
    ++loads;
    return word(physical);
  }
  bool compare_exchange(u64 physical, u64& expected, u64 desired) {
    ++exchanges;
    u64& cell = word(physical);
    if (cell != expected) {
      expected = cell;
      ++failed_exchanges;
      return false;
    }
    cell = desired;
    return true;
  }

  int loads = 0;
  int exchanges = 0;
  int failed_exchanges = 0;

 private:
  u64& word(u64 physical) {
    EXPECT_EQ(physical % 8, 0u) << "unaligned entry address " << std::hex << physical;
    return ram_.at(physical / 8);
  }
  std::vector<u64>& ram_;
};

constexpr u64 kPml4 = 0x1000, kPdpt = 0x2000, kPd = 0x3000, kPt = 0x4000, kPdptHigh = 0x5000, kPtOther = 0x6000;
constexpr u64 kRamBytes = 16 * 4096;

constexpr u64 va_of(u64 i4, u64 i3, u64 i2, u64 i1, u64 offset) {
  const u64 va = (i4 << 39) | (i3 << 30) | (i2 << 21) | (i1 << 12) | offset;
  return (va & (u64{1} << 47)) ? va | 0xFFFF'0000'0000'0000 : va;
}
// Three translations under PML4[1] -> PDPT: a 4 KiB page (PDPT[2] -> PD[3]
// -> PT[4]), a 2 MiB page (PD[5]) and a 1 GiB page (PDPT[7]); and a 1 GiB page
// in the upper half (PML4[256] -> PDPT[1]).
constexpr u64 kVa4K = va_of(1, 2, 3, 4, 0x123);
constexpr u64 kVa2M = va_of(1, 2, 5, 0, 0x12345);
constexpr u64 kVa1G = va_of(1, 7, 0, 0, 0x1234567);
constexpr u64 kVaHigh = va_of(256, 1, 0, 0, 0x89AB);
constexpr u64 kFrame4K = 0x12345000, kFrame2M = 0x40600000, kFrame1G = 0x80000000, kFrameHigh = 0xC0000000;
constexpr u64 kOtherFrame4K = 0x55555000;
constexpr u64 kTable = entry::kP | entry::kRW | entry::kUS;  // a maximally permissive non-leaf entry

enum class Path : u8 { Page4K, Page2M, Page1G, High1G };

struct Tables {
  std::vector<u64> ram = std::vector<u64>(kRamBytes / 8, 0);

  Tables() {
    set(kPml4 + 1 * 8, kPdpt | kTable);
    set(kPml4 + 256 * 8, kPdptHigh | kTable);
    set(kPdpt + 2 * 8, kPd | kTable);
    set(kPdpt + 7 * 8, kFrame1G | kTable | entry::kPS);
    set(kPdptHigh + 1 * 8, kFrameHigh | kTable | entry::kPS);
    set(kPd + 3 * 8, kPt | kTable);
    set(kPd + 5 * 8, kFrame2M | kTable | entry::kPS);
    set(kPt + 4 * 8, kFrame4K | kTable);
  }
  void set(u64 physical, u64 value) { ram.at(physical / 8) = value; }
  u64 get(u64 physical) const { return ram.at(physical / 8); }

  // The address of the entry at `level` on `path` (0 when the path has none).
  static u64 entry_address(Path path, int level) {
    switch (path) {
      case Path::Page4K: return level == 4 ? kPml4 + 8 : level == 3 ? kPdpt + 16 : level == 2 ? kPd + 24 : kPt + 32;
      case Path::Page2M: return level == 4 ? kPml4 + 8 : level == 3 ? kPdpt + 16 : level == 2 ? kPd + 40 : 0;
      case Path::Page1G: return level == 4 ? kPml4 + 8 : level == 3 ? kPdpt + 56 : 0;
      case Path::High1G: return level == 4 ? kPml4 + 256 * 8 : level == 3 ? kPdptHigh + 8 : 0;
    }
    return 0;
  }
  static int leaf_level(Path path) { return path == Path::Page4K ? 1 : path == Path::Page2M ? 2 : 3; }
  static u64 va(Path path) {
    return path == Path::Page4K ? kVa4K : path == Path::Page2M ? kVa2M : path == Path::Page1G ? kVa1G : kVaHigh;
  }
  static u64 physical(Path path) {
    switch (path) {
      case Path::Page4K: return kFrame4K | (kVa4K & 0xFFF);
      case Path::Page2M: return kFrame2M | (kVa2M & 0x1FFFFF);
      case Path::Page1G: return kFrame1G | (kVa1G & 0x3FFFFFFF);
      case Path::High1G: return kFrameHigh | (kVaHigh & 0x3FFFFFFF);
    }
    return 0;
  }
};

// ---------------------------------------------------------------------------
// The rule table.

struct Cpu {
  bool wp = true;
  bool nxe = true;
  bool smep = false;
  bool smap = false;
  bool pge = true;

  ControlRegisters registers() const {
    u64 cr4 = 0;
    if (smep) cr4 |= cr4::kSMEP;
    if (smap) cr4 |= cr4::kSMAP;
    if (pge) cr4 |= cr4::kPGE;
    ControlRegisters cr = ControlRegisters::long_mode(kPml4, cr4, nxe ? efer::kNXE : 0);
    if (!wp) cr.cr0 &= ~cr0::kWP;
    return cr;
  }
};

// A change to the entry at `level` on the row's path.
struct Mod {
  int level = 0;
  u64 set = 0;
  u64 clear = 0;
};

struct Expect {
  WalkOutcome outcome = WalkOutcome::Translated;
  u32 error_code = 0;
  FaultReason reason = FaultReason::None;
  int fault_level = 0;
  u64 physical = 0;  // 0: the path's usual translation
  std::optional<bool> global = std::nullopt;
};
constexpr Expect kTranslates{};
Expect fault(FaultReason reason, u32 error_code, int level = 0) {
  return Expect{.outcome = WalkOutcome::PageFault, .error_code = error_code, .reason = reason, .fault_level = level};
}
Expect translates_to(u64 physical) { return Expect{.physical = physical}; }
Expect translates_global(bool global) { return Expect{.global = global}; }
const Expect kNonCanonical{.outcome = WalkOutcome::NonCanonical};

constexpr Access kUserRead{.kind = AccessKind::Read, .mode = Mode::User};
constexpr Access kUserWrite{.kind = AccessKind::Write, .mode = Mode::User};
constexpr Access kUserFetch{.kind = AccessKind::Fetch, .mode = Mode::User};
constexpr Access kSupRead{.kind = AccessKind::Read, .mode = Mode::Supervisor};
constexpr Access kSupWrite{.kind = AccessKind::Write, .mode = Mode::Supervisor};
constexpr Access kSupFetch{.kind = AccessKind::Fetch, .mode = Mode::Supervisor};
constexpr Access kSupReadAc{.kind = AccessKind::Read, .mode = Mode::Supervisor, .rflags_ac = true};
constexpr Access kSupWriteAc{.kind = AccessKind::Write, .mode = Mode::Supervisor, .rflags_ac = true};
constexpr Access kImplicitReadAc{.kind = AccessKind::Read, .mode = Mode::ImplicitSupervisor, .rflags_ac = true};
constexpr Access kImplicitWriteAc{.kind = AccessKind::Write, .mode = Mode::ImplicitSupervisor, .rflags_ac = true};
constexpr Access kImplicitRead{.kind = AccessKind::Read, .mode = Mode::ImplicitSupervisor};

constexpr u32 P = pf::kP, W = pf::kWR, U = pf::kUS, R = pf::kRSVD, I = pf::kID;
constexpr u64 bit(int n) { return u64{1} << n; }
constexpr u64 kSupervisorOnly = entry::kUS;  // as Mod::clear: a supervisor-mode page

struct Row {
  const char* name;
  Path path = Path::Page4K;
  Access access = kUserRead;
  Cpu cpu = {};
  std::vector<Mod> mods = {};
  Expect expect = kTranslates;
  PagingFeatures features = {};
  u64 va = 0;  // 0: the path's address
};
void PrintTo(const Row& row, std::ostream* os) { *os << row.name; }

const std::vector<Row>& rows() {
  static const std::vector<Row> table = {
      // --- Canonical addresses (vol. 1, 3.3.7.1): #GP, never #PF.
      {.name = "CanonicalLowHalfAddressTranslates"},
      {.name = "CanonicalHighHalfAddressTranslates", .path = Path::High1G, .access = kSupRead},
      {.name = "NonCanonicalAddressAboveLowHalfIsGeneralProtection", .expect = kNonCanonical,
       .va = 0x0000'8000'0000'0000},
      {.name = "NonCanonicalAddressBelowHighHalfIsGeneralProtection", .expect = kNonCanonical,
       .va = 0xFFFF'7FFF'FFFF'F000},
      {.name = "NonCanonicalWithBit63OnlyIsGeneralProtection", .expect = kNonCanonical,
       .va = 0x8000'0000'0000'1000},

      // --- Not present (4.5, 4.7: P = 0 in the error code).
      {.name = "NotPresentPml4eFaults", .mods = {{.level = 4, .clear = entry::kP}},
       .expect = fault(FaultReason::NotPresent, U, 4)},
      {.name = "NotPresentPdpteFaults", .mods = {{.level = 3, .clear = entry::kP}},
       .expect = fault(FaultReason::NotPresent, U, 3)},
      {.name = "NotPresentPdeFaults", .mods = {{.level = 2, .clear = entry::kP}},
       .expect = fault(FaultReason::NotPresent, U, 2)},
      {.name = "NotPresentPteFaults", .mods = {{.level = 1, .clear = entry::kP}},
       .expect = fault(FaultReason::NotPresent, U, 1)},
      {.name = "NotPresent2MLeafFaults", .path = Path::Page2M, .mods = {{.level = 2, .clear = entry::kP}},
       .expect = fault(FaultReason::NotPresent, U, 2)},
      {.name = "NotPresent1GLeafFaults", .path = Path::Page1G, .mods = {{.level = 3, .clear = entry::kP}},
       .expect = fault(FaultReason::NotPresent, U, 3)},
      {.name = "NotPresentSupervisorWriteReportsWrNotUs", .access = kSupWrite,
       .mods = {{.level = 1, .clear = entry::kP}}, .expect = fault(FaultReason::NotPresent, W, 1)},
      {.name = "NotPresentFetchReportsIdWithNxe", .access = kUserFetch, .mods = {{.level = 1, .clear = entry::kP}},
       .expect = fault(FaultReason::NotPresent, U | I, 1)},
      {.name = "FetchFaultHasNoIdWithNxeAndSmepOff", .access = kUserFetch, .cpu = {.nxe = false},
       .mods = {{.level = 1, .clear = entry::kP}}, .expect = fault(FaultReason::NotPresent, U, 1)},
      {.name = "FetchFaultReportsIdWithSmepAndNxeOff", .access = kSupFetch, .cpu = {.nxe = false, .smep = true},
       .mods = {{.level = 2, .clear = entry::kP}}, .expect = fault(FaultReason::NotPresent, I, 2)},
      {.name = "ReservedBitsOfNotPresentEntryAreIgnored", .mods = {{.level = 1, .set = bit(45) | bit(63), .clear = entry::kP}},
       .expect = fault(FaultReason::NotPresent, U, 1), .features = {.maxphyaddr = 40}},
      {.name = "NotPresentBelowBeatsRightsAbove", .mods = {{.level = 4, .clear = entry::kUS}, {.level = 1, .clear = entry::kP}},
       .expect = fault(FaultReason::NotPresent, U, 1)},

      // --- Reserved bits (4.5.4, tables 4-14..4-20): RSVD = 1, P = 1.
      {.name = "AddressBitAboveMaxPhyAddrInPml4eIsReserved", .mods = {{.level = 4, .set = bit(40)}},
       .expect = fault(FaultReason::ReservedBit, P | U | R, 4), .features = {.maxphyaddr = 40}},
      {.name = "AddressBitAboveMaxPhyAddrInPdpteIsReserved", .mods = {{.level = 3, .set = bit(51)}},
       .expect = fault(FaultReason::ReservedBit, P | U | R, 3), .features = {.maxphyaddr = 40}},
      {.name = "AddressBitAboveMaxPhyAddrInPdeIsReserved", .mods = {{.level = 2, .set = bit(46)}},
       .expect = fault(FaultReason::ReservedBit, P | U | R, 2), .features = {.maxphyaddr = 46}},
      {.name = "AddressBitAboveMaxPhyAddrInPteIsReserved", .mods = {{.level = 1, .set = bit(45)}},
       .expect = fault(FaultReason::ReservedBit, P | U | R, 1), .features = {.maxphyaddr = 40}},
      {.name = "AddressBitAboveMaxPhyAddrIn2MLeafIsReserved", .path = Path::Page2M,
       .mods = {{.level = 2, .set = bit(39)}}, .expect = fault(FaultReason::ReservedBit, P | U | R, 2),
       .features = {.maxphyaddr = 39}},
      {.name = "AddressBitAboveMaxPhyAddrIn1GLeafIsReserved", .path = Path::Page1G,
       .mods = {{.level = 3, .set = bit(36)}}, .expect = fault(FaultReason::ReservedBit, P | U | R, 3),
       .features = {.maxphyaddr = 36}},
      {.name = "AddressBitBelowMaxPhyAddrIsAnAddress", .mods = {{.level = 1, .set = bit(39)}},
       .expect = translates_to(kFrame4K | bit(39) | (kVa4K & 0xFFF)), .features = {.maxphyaddr = 40}},
      {.name = "Bit51IsAnAddressWithMaxPhyAddr52", .mods = {{.level = 1, .set = bit(51)}},
       .expect = translates_to(kFrame4K | bit(51) | (kVa4K & 0xFFF))},
      {.name = "PsInPml4eIsReserved", .mods = {{.level = 4, .set = entry::kPS}},
       .expect = fault(FaultReason::ReservedBit, P | U | R, 4)},
      {.name = "Bit13Of2MLeafIsReserved", .path = Path::Page2M, .mods = {{.level = 2, .set = bit(13)}},
       .expect = fault(FaultReason::ReservedBit, P | U | R, 2)},
      {.name = "Bit20Of2MLeafIsReserved", .path = Path::Page2M, .mods = {{.level = 2, .set = bit(20)}},
       .expect = fault(FaultReason::ReservedBit, P | U | R, 2)},
      {.name = "Bit12Of2MLeafIsPatNotAddress", .path = Path::Page2M, .mods = {{.level = 2, .set = bit(12)}}},
      {.name = "Bit13Of1GLeafIsReserved", .path = Path::Page1G, .mods = {{.level = 3, .set = bit(13)}},
       .expect = fault(FaultReason::ReservedBit, P | U | R, 3)},
      {.name = "Bit29Of1GLeafIsReserved", .path = Path::Page1G, .mods = {{.level = 3, .set = bit(29)}},
       .expect = fault(FaultReason::ReservedBit, P | U | R, 3)},
      {.name = "Bit12Of1GLeafIsPatNotAddress", .path = Path::Page1G, .mods = {{.level = 3, .set = bit(12)}}},
      {.name = "Bits20To13OfPdePointingToTableAreAddress", .mods = {{.level = 2, .set = bit(13)}},
       .expect = fault(FaultReason::NotPresent, U, 1)},  // PT moves to kPt + 8 KiB: an empty frame
      {.name = "PsInPdpteIsReservedWithout1GPages", .path = Path::Page1G,
       .expect = fault(FaultReason::ReservedBit, P | U | R, 3), .features = {.gb_pages = false}},
      {.name = "PatBitOfPteIsNotReserved", .mods = {{.level = 1, .set = entry::kPS}}},
      {.name = "IgnoredBitsAreNotReserved",
       .mods = {{.level = 4, .set = bit(52) | bit(62) | bit(9) | bit(11) | entry::kD | entry::kG},
                {.level = 1, .set = bit(52) | bit(58) | bit(9) | bit(10) | bit(11)}}},
      {.name = "XdWithNxeOffIsReserved", .cpu = {.nxe = false}, .mods = {{.level = 1, .set = entry::kXD}},
       .expect = fault(FaultReason::ReservedBit, P | U | R, 1)},
      {.name = "XdWithNxeOffIsReservedInPml4e", .cpu = {.nxe = false}, .mods = {{.level = 4, .set = entry::kXD}},
       .expect = fault(FaultReason::ReservedBit, P | U | R, 4)},
      {.name = "XdWithNxeOnIsNotReserved", .mods = {{.level = 3, .set = entry::kXD}}},
      {.name = "ReservedBitFaultOnWriteReportsWr", .access = kUserWrite, .mods = {{.level = 2, .set = bit(47)}},
       .expect = fault(FaultReason::ReservedBit, P | W | U | R, 2), .features = {.maxphyaddr = 47}},
      {.name = "ReservedBitFaultOnFetchReportsId", .path = Path::Page2M, .access = kSupFetch,
       .mods = {{.level = 2, .set = bit(14)}}, .expect = fault(FaultReason::ReservedBit, P | R | I, 2)},
      {.name = "ReservedBitBeatsRightsFault", .mods = {{.level = 4, .clear = entry::kUS}, {.level = 1, .set = bit(45)}},
       .expect = fault(FaultReason::ReservedBit, P | U | R, 1), .features = {.maxphyaddr = 40}},

      // --- User-mode accesses (4.6.1): U/S = 1 at every level; writes need R/W = 1 at every level.
      {.name = "UserReadNeedsUsInPml4e", .mods = {{.level = 4, .clear = kSupervisorOnly}},
       .expect = fault(FaultReason::SupervisorPage, P | U)},
      {.name = "UserReadNeedsUsInPdpte", .mods = {{.level = 3, .clear = kSupervisorOnly}},
       .expect = fault(FaultReason::SupervisorPage, P | U)},
      {.name = "UserReadNeedsUsInPde", .mods = {{.level = 2, .clear = kSupervisorOnly}},
       .expect = fault(FaultReason::SupervisorPage, P | U)},
      {.name = "UserReadNeedsUsInPte", .mods = {{.level = 1, .clear = kSupervisorOnly}},
       .expect = fault(FaultReason::SupervisorPage, P | U)},
      {.name = "UserReadNeedsUsIn2MLeaf", .path = Path::Page2M, .mods = {{.level = 2, .clear = kSupervisorOnly}},
       .expect = fault(FaultReason::SupervisorPage, P | U)},
      {.name = "UserWriteNeedsRwInPml4e", .access = kUserWrite, .mods = {{.level = 4, .clear = entry::kRW}},
       .expect = fault(FaultReason::ReadOnly, P | W | U)},
      {.name = "UserWriteNeedsRwInPdpte", .access = kUserWrite, .mods = {{.level = 3, .clear = entry::kRW}},
       .expect = fault(FaultReason::ReadOnly, P | W | U)},
      {.name = "UserWriteNeedsRwInPde", .access = kUserWrite, .mods = {{.level = 2, .clear = entry::kRW}},
       .expect = fault(FaultReason::ReadOnly, P | W | U)},
      {.name = "UserWriteNeedsRwInPte", .access = kUserWrite, .mods = {{.level = 1, .clear = entry::kRW}},
       .expect = fault(FaultReason::ReadOnly, P | W | U)},
      {.name = "UserWriteNeedsRwAbove1GLeaf", .path = Path::Page1G, .access = kUserWrite,
       .mods = {{.level = 4, .clear = entry::kRW}}, .expect = fault(FaultReason::ReadOnly, P | W | U)},
      {.name = "UserWriteToWritableUserPageSucceeds", .access = kUserWrite},
      {.name = "UserReadOfReadOnlyPageSucceeds", .mods = {{.level = 1, .clear = entry::kRW}}},
      {.name = "UserWriteNeedsRwEvenWithWpOff", .access = kUserWrite, .cpu = {.wp = false},
       .mods = {{.level = 1, .clear = entry::kRW}}, .expect = fault(FaultReason::ReadOnly, P | W | U)},
      {.name = "UserWriteToSupervisorPageIsUsFault", .access = kUserWrite, .mods = {{.level = 3, .clear = kSupervisorOnly}},
       .expect = fault(FaultReason::SupervisorPage, P | W | U)},
      {.name = "UserFetchNeedsUs", .access = kUserFetch, .mods = {{.level = 2, .clear = kSupervisorOnly}},
       .expect = fault(FaultReason::SupervisorPage, P | U | I)},
      {.name = "UserFetchFromReadOnlyPageSucceeds", .access = kUserFetch, .mods = {{.level = 1, .clear = entry::kRW}}},

      // --- Supervisor-mode writes (4.6.1): CR0.WP decides whether R/W applies.
      {.name = "SupervisorReadOfSupervisorPageSucceeds", .access = kSupRead, .mods = {{.level = 1, .clear = kSupervisorOnly}}},
      {.name = "SupervisorWriteNeedsRwAtEveryLevelWithWp", .access = kSupWrite,
       .mods = {{.level = 1, .clear = kSupervisorOnly}, {.level = 3, .clear = entry::kRW}},
       .expect = fault(FaultReason::ReadOnly, P | W)},
      {.name = "SupervisorWriteIgnoresRwWithoutWp", .access = kSupWrite, .cpu = {.wp = false},
       .mods = {{.level = 1, .clear = kSupervisorOnly}, {.level = 3, .clear = entry::kRW}}},
      {.name = "SupervisorWriteToReadOnlyUserPageFaultsWithWp", .access = kSupWrite,
       .mods = {{.level = 1, .clear = entry::kRW}}, .expect = fault(FaultReason::ReadOnly, P | W)},
      {.name = "SupervisorWriteToReadOnlyUserPageSucceedsWithoutWp", .access = kSupWrite, .cpu = {.wp = false},
       .mods = {{.level = 1, .clear = entry::kRW}}},

      // --- Execute-disable (4.6.1 with EFER.NXE = 1): XD ORed across levels.
      {.name = "FetchWithXdInPml4eFaults", .access = kUserFetch, .mods = {{.level = 4, .set = entry::kXD}},
       .expect = fault(FaultReason::NoExecute, P | U | I)},
      {.name = "FetchWithXdInPdpteFaults", .access = kUserFetch, .mods = {{.level = 3, .set = entry::kXD}},
       .expect = fault(FaultReason::NoExecute, P | U | I)},
      {.name = "FetchWithXdInPdeFaults", .access = kUserFetch, .mods = {{.level = 2, .set = entry::kXD}},
       .expect = fault(FaultReason::NoExecute, P | U | I)},
      {.name = "FetchWithXdInPteFaults", .access = kUserFetch, .mods = {{.level = 1, .set = entry::kXD}},
       .expect = fault(FaultReason::NoExecute, P | U | I)},
      {.name = "FetchWithXdIn2MLeafFaults", .path = Path::Page2M, .access = kSupFetch,
       .mods = {{.level = 2, .set = entry::kXD}, {.level = 3, .clear = kSupervisorOnly}},
       .expect = fault(FaultReason::NoExecute, P | I)},
      {.name = "SupervisorFetchWithXdFaults", .access = kSupFetch,
       .mods = {{.level = 1, .set = entry::kXD, .clear = kSupervisorOnly}}, .expect = fault(FaultReason::NoExecute, P | I)},
      {.name = "ReadOfXdPageSucceeds", .mods = {{.level = 1, .set = entry::kXD}}},
      {.name = "WriteOfXdPageSucceeds", .access = kUserWrite, .mods = {{.level = 2, .set = entry::kXD}}},

      // --- SMEP (4.6.1): no supervisor-mode fetch from a user-mode page.
      {.name = "SmepBlocksSupervisorFetchFromUserPage", .access = kSupFetch, .cpu = {.smep = true},
       .expect = fault(FaultReason::Smep, P | I)},
      {.name = "SmepBlocksSupervisorFetchFromUser2MPage", .path = Path::Page2M, .access = kSupFetch,
       .cpu = {.smep = true}, .expect = fault(FaultReason::Smep, P | I)},
      {.name = "SmepReportsIdWithNxeOff", .access = kSupFetch, .cpu = {.nxe = false, .smep = true},
       .expect = fault(FaultReason::Smep, P | I)},
      {.name = "SmepAllowsSupervisorFetchFromSupervisorPage", .access = kSupFetch, .cpu = {.smep = true},
       .mods = {{.level = 3, .clear = kSupervisorOnly}}},
      {.name = "SmepOffAllowsSupervisorFetchFromUserPage", .access = kSupFetch},
      {.name = "SmepDoesNotApplyToSupervisorReads", .access = kSupRead, .cpu = {.smep = true}},
      {.name = "SmepDoesNotApplyToUserFetches", .access = kUserFetch, .cpu = {.smep = true}},

      // --- SMAP (4.6.1): no supervisor-mode data access to a user-mode page,
      // unless RFLAGS.AC = 1 for an explicit access; implicit ones always checked.
      {.name = "SmapBlocksSupervisorReadOfUserPageUnlessAc", .access = kSupRead, .cpu = {.smap = true},
       .expect = fault(FaultReason::Smap, P)},
      {.name = "SmapAllowsSupervisorReadOfUserPageWithAc", .access = kSupReadAc, .cpu = {.smap = true}},
      {.name = "SmapBlocksSupervisorWriteToUserPageUnlessAc", .access = kSupWrite, .cpu = {.smap = true},
       .expect = fault(FaultReason::Smap, P | W)},
      {.name = "SmapAllowsSupervisorWriteToUserPageWithAc", .access = kSupWriteAc, .cpu = {.smap = true}},
      {.name = "SmapWithAcStillHonoursWpOnReadOnlyUserPage", .access = kSupWriteAc, .cpu = {.smap = true},
       .mods = {{.level = 1, .clear = entry::kRW}}, .expect = fault(FaultReason::ReadOnly, P | W)},
      {.name = "SmapBlocksImplicitSupervisorReadEvenWithAc", .access = kImplicitReadAc, .cpu = {.smap = true},
       .expect = fault(FaultReason::Smap, P)},
      {.name = "SmapBlocksImplicitSupervisorWriteEvenWithAc", .access = kImplicitWriteAc, .cpu = {.smap = true},
       .expect = fault(FaultReason::Smap, P | W)},
      {.name = "SmapAllowsSupervisorReadOfSupervisorPage", .access = kSupRead, .cpu = {.smap = true},
       .mods = {{.level = 2, .clear = kSupervisorOnly}}},
      {.name = "SmapAllowsImplicitReadOfSupervisorPage", .access = kImplicitRead, .cpu = {.smap = true},
       .mods = {{.level = 4, .clear = kSupervisorOnly}}},
      {.name = "SmapOffAllowsImplicitReadOfUserPage", .access = kImplicitRead},
      {.name = "SmapDoesNotApplyToFetches", .access = kSupFetch, .cpu = {.smap = true}},
      {.name = "SmapDoesNotApplyToUserAccesses", .access = kUserWrite, .cpu = {.smap = true}},

      // --- Global pages (4.10.2.4): G in the leaf, honoured only with CR4.PGE = 1.
      {.name = "GlobalLeafIsGlobalWithPge", .mods = {{.level = 1, .set = entry::kG}}, .expect = translates_global(true)},
      {.name = "GlobalLeafIsNotGlobalWithoutPge", .cpu = {.pge = false}, .mods = {{.level = 1, .set = entry::kG}},
       .expect = translates_global(false)},
      {.name = "GlobalBitOfNonLeafIsIgnored", .mods = {{.level = 2, .set = entry::kG}}, .expect = translates_global(false)},
      {.name = "Global2MLeafIsGlobal", .path = Path::Page2M, .mods = {{.level = 2, .set = entry::kG}},
       .expect = translates_global(true)},

      // --- Large pages (4.5): the leaf's frame plus the low 21 or 30 bits of the address.
      {.name = "TwoMegabytePageTranslates", .path = Path::Page2M, .access = kUserWrite},
      {.name = "OneGigabytePageTranslates", .path = Path::Page1G, .access = kUserWrite},
      {.name = "LargePageRightsCombineWithUpperLevels", .path = Path::Page2M, .access = kUserWrite,
       .mods = {{.level = 3, .clear = entry::kRW}}, .expect = fault(FaultReason::ReadOnly, P | W | U)},
  };
  return table;
}

class HwWalkRule : public ::testing::TestWithParam<Row> {};

TEST_P(HwWalkRule, Holds) {
  const Row& row = GetParam();
  Tables tables;
  for (const Mod& mod : row.mods) {
    const u64 address = Tables::entry_address(row.path, mod.level);
    ASSERT_NE(address, 0u) << "the path has no entry at level " << mod.level;
    tables.set(address, (tables.get(address) | mod.set) & ~mod.clear);
  }
  const std::vector<u64> before = tables.ram;
  RamPort port(tables.ram);
  const ControlRegisters cr = row.cpu.registers();
  const u64 va = row.va != 0 ? row.va : Tables::va(row.path);

  const WalkResult r = walk(port, cr, va, row.access, nullptr, row.features);

  ASSERT_EQ(r.outcome, row.expect.outcome) << "reason " << fault_reason_name(r.reason) << ", error code " << r.error_code;
  if (r.outcome == WalkOutcome::NonCanonical) {
    EXPECT_EQ(port.loads, 0) << "a non-canonical address is never walked";
    EXPECT_EQ(tables.ram, before);
    return;
  }
  if (r.outcome == WalkOutcome::PageFault) {
    EXPECT_EQ(r.error_code, row.expect.error_code);
    EXPECT_EQ(r.reason, row.expect.reason) << fault_reason_name(r.reason);
    EXPECT_EQ(r.fault_level, row.expect.fault_level);
    EXPECT_EQ(r.cr2, va);
    EXPECT_EQ(port.exchanges, 0);
    EXPECT_EQ(tables.ram, before) << "a faulting walk sets no accessed or dirty flag";
    return;
  }
  EXPECT_EQ(r.physical, row.expect.physical != 0 ? row.expect.physical : Tables::physical(row.path));
  EXPECT_EQ(r.size, page_size_of_level(Tables::leaf_level(row.path)));
  if (row.expect.global) {
    EXPECT_EQ(r.global, *row.expect.global);
  }
  // Every entry of the translation now has A; the leaf has D exactly for a write.
  const int leaf = Tables::leaf_level(row.path);
  ASSERT_EQ(r.step_count, 5 - leaf);
  for (int level = 4; level >= leaf; --level) {
    const u64 address = Tables::entry_address(row.path, level);
    const u64 now = tables.get(address);
    EXPECT_TRUE(now & entry::kA) << "A not set at level " << level;
    const bool dirty_expected = level == leaf ? row.access.is_write() : (before.at(address / 8) & entry::kD) != 0;
    EXPECT_EQ((now & entry::kD) != 0, dirty_expected) << "D at level " << level;
    EXPECT_EQ(now & ~(entry::kA | entry::kD), before.at(address / 8) & ~(entry::kA | entry::kD));
    const WalkStep& step = r.steps[4 - level];
    EXPECT_EQ(step.level, level);
    EXPECT_EQ(step.entry_address, address);
    EXPECT_EQ(step.entry, before.at(address / 8));
  }
  EXPECT_EQ(r.leaf, tables.get(Tables::entry_address(row.path, leaf)));
  EXPECT_EQ(r.dirty, row.access.is_write());
}

INSTANTIATE_TEST_SUITE_P(Sdm, HwWalkRule, ::testing::ValuesIn(rows()),
                         [](const ::testing::TestParamInfo<Row>& row_info) { return std::string(row_info.param.name); });

// ---------------------------------------------------------------------------
// Accessed and dirty flags (4.8).

struct HwWalk : ::testing::Test {
  Tables tables;
  RamPort port{tables.ram};
  ControlRegisters cr = ControlRegisters::long_mode(kPml4, cr4::kPGE | cr4::kPCIDE);
};

TEST_F(HwWalk, ReadSetsAccessedAtEveryLevelAndNoDirty) {
  const WalkResult r = walk(port, cr, kVa4K, kUserRead);
  ASSERT_TRUE(r.ok());
  for (int level = 4; level >= 1; --level) {
    const u64 e = tables.get(Tables::entry_address(Path::Page4K, level));
    EXPECT_TRUE(e & entry::kA) << level;
    EXPECT_FALSE(e & entry::kD) << level;
  }
  EXPECT_EQ(port.exchanges, 4);
  EXPECT_FALSE(r.dirty);
}

TEST_F(HwWalk, WriteSetsDirtyOnTheLeafOnly) {
  const WalkResult r = walk(port, cr, kVa2M, kUserWrite);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(tables.get(Tables::entry_address(Path::Page2M, 2)) & (entry::kA | entry::kD), entry::kA | entry::kD);
  EXPECT_EQ(tables.get(Tables::entry_address(Path::Page2M, 3)) & (entry::kA | entry::kD), entry::kA);
  EXPECT_EQ(tables.get(Tables::entry_address(Path::Page2M, 4)) & (entry::kA | entry::kD), entry::kA);
  EXPECT_TRUE(r.dirty);
  EXPECT_TRUE(r.leaf & entry::kD);
}

TEST_F(HwWalk, FlagsAlreadySetAreNotWrittenAgain) {
  ASSERT_TRUE(walk(port, cr, kVa4K, kUserWrite).ok());
  port.exchanges = 0;
  const std::vector<u64> before = tables.ram;
  ASSERT_TRUE(walk(port, cr, kVa4K, kUserWrite).ok());
  ASSERT_TRUE(walk(port, cr, kVa4K, kUserRead).ok());
  EXPECT_EQ(port.exchanges, 0);
  EXPECT_EQ(tables.ram, before);
}

TEST_F(HwWalk, ReadAfterWriteKeepsDirty) {
  ASSERT_TRUE(walk(port, cr, kVa4K, kUserWrite).ok());
  const WalkResult r = walk(port, cr, kVa4K, kUserRead);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r.dirty);
}

TEST_F(HwWalk, FaultingWalkSetsNothingEvenOnLevelsItPassed) {
  tables.set(Tables::entry_address(Path::Page4K, 1), 0);  // PTE not present
  const std::vector<u64> before = tables.ram;
  const WalkResult r = walk(port, cr, kVa4K, kUserRead);
  ASSERT_TRUE(r.page_fault());
  EXPECT_EQ(r.step_count, 4);
  EXPECT_EQ(tables.ram, before);
  EXPECT_EQ(port.exchanges, 0);
}

// A Port on which another agent's store lands between the walker's read of
// the entry at `target` and its first locked update of it.
struct RaceOnce : RamPort {
  RaceOnce(std::vector<u64>& ram, u64 target_entry, std::function<void()> race)
      : RamPort(ram), target(target_entry), on_target(std::move(race)) {}
  u64 target;
  std::function<void()> on_target;
  bool compare_exchange(u64 physical, u64& expected, u64 desired) {
    if (physical == target && on_target) {
      const std::function<void()> once = std::move(on_target);
      on_target = nullptr;
      once();
    }
    return RamPort::compare_exchange(physical, expected, desired);
  }
};

TEST_F(HwWalk, ExchangeThatLosesToAnotherCpusDirtyUpdateIsRetried) {
  const u64 pte = Tables::entry_address(Path::Page4K, 1);
  // Another CPU writes through a translation of its own and sets D first.
  RaceOnce racing(tables.ram, pte, [&] { tables.set(pte, tables.get(pte) | entry::kA | entry::kD); });
  const WalkResult r = walk(racing, cr, kVa4K, kUserRead);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(racing.failed_exchanges, 1);
  EXPECT_EQ(r.restarts, 0u) << "only A/D changed: retry, do not restart";
  EXPECT_EQ(tables.get(pte) & (entry::kA | entry::kD), entry::kA | entry::kD);
  EXPECT_TRUE(r.dirty) << "the result reports the leaf as it is now";
  EXPECT_EQ(r.physical, Tables::physical(Path::Page4K));
}

TEST_F(HwWalk, ExchangeThatLosesToAnotherWalkersAccessedUpdateIsRetried) {
  ASSERT_TRUE(walk(port, cr, kVa4K, kUserRead).ok());
  const u64 pte = Tables::entry_address(Path::Page4K, 1);
  tables.set(pte, tables.get(pte) & ~entry::kA);  // page aging cleared A
  // Another CPU's walk sets A between this walker's read and its A+D update.
  RaceOnce racing(tables.ram, pte, [&] { tables.set(pte, tables.get(pte) | entry::kA); });
  const WalkResult r = walk(racing, cr, kVa4K, kUserWrite);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(racing.failed_exchanges, 1);
  EXPECT_EQ(racing.exchanges, 2);
  EXPECT_EQ(tables.get(pte) & (entry::kA | entry::kD), entry::kA | entry::kD);
}

TEST_F(HwWalk, ExchangeThatLosesToAnUpperLevelAccessedUpdateIsRetried) {
  const u64 pdpte = Tables::entry_address(Path::Page4K, 3);
  RaceOnce racing(tables.ram, pdpte, [&] { tables.set(pdpte, tables.get(pdpte) | entry::kA); });
  const WalkResult r = walk(racing, cr, kVa4K, kUserWrite);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(racing.failed_exchanges, 1);
  EXPECT_EQ(r.restarts, 0u);
  // The PDPTE already had A by then: no second exchange on it; the PD, PT and PML4E got theirs.
  EXPECT_EQ(racing.exchanges, 4);
  EXPECT_TRUE(tables.get(Tables::entry_address(Path::Page4K, 1)) & entry::kD);
}

TEST_F(HwWalk, EntryThatBecameNotPresentRestartsTheWalk) {
  const u64 pte = Tables::entry_address(Path::Page4K, 1);
  RaceOnce racing(tables.ram, pte, [&] { tables.set(pte, 0); });  // unmapped by another CPU
  const WalkResult r = walk(racing, cr, kVa4K, kUserWrite);
  ASSERT_TRUE(r.page_fault());
  EXPECT_EQ(r.reason, FaultReason::NotPresent);
  EXPECT_EQ(r.fault_level, 1);
  EXPECT_EQ(r.error_code, W | U);
  EXPECT_EQ(r.restarts, 1u);
  EXPECT_EQ(tables.get(pte), 0u) << "nothing written into the now-empty entry";
}

TEST_F(HwWalk, EntryThatNowPointsElsewhereRestartsTheWalk) {
  const u64 pte = Tables::entry_address(Path::Page4K, 1);
  RaceOnce racing(tables.ram, pte, [&] { tables.set(pte, kOtherFrame4K | kTable); });  // remapped
  const WalkResult r = walk(racing, cr, kVa4K, kUserRead);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.restarts, 1u);
  EXPECT_EQ(r.physical, kOtherFrame4K | (kVa4K & 0xFFF));
  EXPECT_EQ(tables.get(pte), kOtherFrame4K | kTable | entry::kA);
}

TEST_F(HwWalk, EntryThatLostWriteRightRestartsAndFaults) {
  const u64 pde = Tables::entry_address(Path::Page4K, 2);
  RaceOnce racing(tables.ram, pde, [&] { tables.set(pde, tables.get(pde) & ~entry::kRW); });  // mprotect
  const WalkResult r = walk(racing, cr, kVa4K, kUserWrite);
  ASSERT_TRUE(r.page_fault());
  EXPECT_EQ(r.reason, FaultReason::ReadOnly);
  EXPECT_EQ(r.restarts, 1u);
  EXPECT_FALSE(tables.get(Tables::entry_address(Path::Page4K, 1)) & entry::kD) << "no D on the leaf";
}

TEST_F(HwWalk, StepsRecordEveryLevelRead) {
  const WalkResult r = walk(port, cr, kVa1G, kSupRead);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r.step_count, 2);
  EXPECT_EQ(r.steps[0].level, 4);
  EXPECT_EQ(r.steps[0].entry_address, kPml4 + 8);
  EXPECT_EQ(r.steps[0].entry, kPdpt | kTable);
  EXPECT_EQ(r.steps[1].level, 3);
  EXPECT_EQ(r.steps[1].entry_address, kPdpt + 7 * 8);
  EXPECT_EQ(r.size, PageSize::Size1G);
  EXPECT_EQ(r.page_base(), kFrame1G);
}

// ---------------------------------------------------------------------------
// Paging-structure caches (4.10.3).

TEST_F(HwWalk, SecondWalkStartsFromThePdeCache) {
  PagingStructureCache psc;
  ASSERT_TRUE(walk(port, cr, kVa4K, kUserRead, &psc).ok());
  EXPECT_EQ(psc.counters().fills, 3u);
  port.loads = 0;
  const WalkResult r = walk(port, cr, kVa4K, kUserRead, &psc);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.psc_level, 2);
  EXPECT_EQ(r.step_count, 1);
  EXPECT_EQ(r.steps[0].level, 1);
  EXPECT_EQ(port.loads, 1);
  EXPECT_EQ(r.physical, Tables::physical(Path::Page4K));
}

TEST_F(HwWalk, PdpteCacheServesANeighbouringPageDirectory) {
  PagingStructureCache psc;
  ASSERT_TRUE(walk(port, cr, kVa4K, kUserRead, &psc).ok());
  const WalkResult r = walk(port, cr, kVa2M, kUserRead, &psc);  // same PDPTE, other PDE
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.psc_level, 3);
  EXPECT_EQ(r.step_count, 1);
  EXPECT_EQ(r.size, PageSize::Size2M);
}

TEST_F(HwWalk, PagingStructureCacheIsTaggedByPcid) {
  PagingStructureCache psc;
  ASSERT_TRUE(walk(port, cr, kVa4K, kUserRead, &psc).ok());
  ControlRegisters other = cr;
  other.cr3 = kPml4 | 5;  // PCID 5
  const WalkResult r = walk(port, other, kVa4K, kUserRead, &psc);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.psc_level, 0);
  EXPECT_EQ(r.step_count, 4);
}

TEST_F(HwWalk, PagingStructureCacheStaysStaleUntilInvalidated) {
  PagingStructureCache psc;
  ASSERT_TRUE(walk(port, cr, kVa4K, kUserRead, &psc).ok());
  EXPECT_TRUE(psc.references_table(kPt));
  // The software moves the page table without invalidating.
  tables.set(kPtOther + 4 * 8, kOtherFrame4K | kTable);
  tables.set(Tables::entry_address(Path::Page4K, 2), kPtOther | kTable);
  EXPECT_EQ(walk(port, cr, kVa4K, kUserRead, &psc).physical, Tables::physical(Path::Page4K)) << "the stale PDE cache entry";
  psc.invlpg(cr.pcid());
  EXPECT_FALSE(psc.references_table(kPt));
  EXPECT_EQ(walk(port, cr, kVa4K, kUserRead, &psc).physical, kOtherFrame4K | (kVa4K & 0xFFF));
}

TEST_F(HwWalk, PagingStructureCacheKeepsRightsOfTheLevelsItSkips) {
  PagingStructureCache psc;
  tables.set(Tables::entry_address(Path::Page4K, 3), tables.get(Tables::entry_address(Path::Page4K, 3)) & ~entry::kRW);
  ASSERT_TRUE(walk(port, cr, kVa4K, kUserRead, &psc).ok());
  const WalkResult r = walk(port, cr, kVa4K, kUserWrite, &psc);
  ASSERT_TRUE(r.page_fault());
  EXPECT_EQ(r.psc_level, 2);
  EXPECT_EQ(r.reason, FaultReason::ReadOnly);
}

TEST_F(HwWalk, FaultingWalkFillsNoPagingStructureCache) {
  PagingStructureCache psc;
  tables.set(Tables::entry_address(Path::Page4K, 1), 0);
  ASSERT_TRUE(walk(port, cr, kVa4K, kUserRead, &psc).page_fault());
  EXPECT_EQ(psc.counters().fills, 0u);
  u64 entries = 0;
  psc.for_each([&](const PagingStructureCache::Entry&) { ++entries; });
  EXPECT_EQ(entries, 0u);
}

TEST(HwPagingStructureCache, InvalidationsFollowTheSdm) {
  PagingStructureCache psc;
  const auto count = [&] {
    u64 n = 0;
    psc.for_each([&](const PagingStructureCache::Entry&) { ++n; });
    return n;
  };
  const auto fill_both = [&] {
    psc.fill(2, kVa4K, 1, kPt, {});
    psc.fill(3, kVa4K, 2, kPd, {});
  };
  fill_both();
  EXPECT_EQ(count(), 2u);
  psc.invlpg(1);  // every entry of the current PCID, whatever the address
  EXPECT_EQ(count(), 1u);
  psc.invpcid(InvpcidType::SingleContext, 2);
  EXPECT_EQ(count(), 0u);
  fill_both();
  psc.invpcid(InvpcidType::AllContextsKeepGlobal, 0);
  EXPECT_EQ(count(), 0u);
  fill_both();
  psc.mov_to_cr3(kPml4 | 2 | cr3::kNoFlush, /*pcide=*/true);
  EXPECT_EQ(count(), 2u);
  psc.mov_to_cr3(kPml4 | 2, /*pcide=*/true);
  EXPECT_EQ(count(), 1u);
  psc.mov_to_cr3(kPml4, /*pcide=*/false);
  EXPECT_EQ(count(), 0u);
}

TEST(HwPagingStructureCache, ReplacesTheLeastRecentlyUsedEntry) {
  PagingStructureCache psc(PagingStructureCache::Geometry{.pml4e_entries = 2, .pdpte_entries = 2, .pde_entries = 2});
  psc.fill(2, 0 << 21, 0, 0x1000, {});
  psc.fill(2, 1 << 21, 0, 0x2000, {});
  EXPECT_TRUE(psc.lookup(0, 0));  // touch the first
  psc.fill(2, 2 << 21, 0, 0x3000, {});
  EXPECT_TRUE(psc.lookup(0, 0));
  EXPECT_FALSE(psc.lookup(1 << 21, 0));
  EXPECT_TRUE(psc.lookup(2 << 21, 0));
}

// ---------------------------------------------------------------------------
// Helpers of control_registers.hpp and the error code.

TEST(HwControlRegisters, PcidAndRoot) {
  ControlRegisters cr = ControlRegisters::long_mode(0x0000'0012'3456'7000);
  cr.cr3 |= 0x18;  // PWT | PCD with PCIDE = 0
  EXPECT_EQ(cr.pcid(), 0);
  EXPECT_EQ(cr.root(), 0x0000'0012'3456'7000u);
  cr.cr4 |= cr4::kPCIDE;
  cr.cr3 = 0x0000'0012'3456'7ABC;
  EXPECT_EQ(cr.pcid(), 0xABC);
  EXPECT_EQ(cr.root(), 0x0000'0012'3456'7000u);
  EXPECT_TRUE(cr.four_level_paging());
  cr.efer &= ~efer::kLMA;
  EXPECT_FALSE(cr.four_level_paging());
  EXPECT_EQ(cr3_value_of_mov(0x8000'0000'0000'1005), 0x1005u);
}

TEST(HwControlRegisters, WhatACr4WriteInvalidates) {
  const u64 base = cr4::kPAE | cr4::kPGE | cr4::kPCIDE;
  EXPECT_EQ(cr4_write_invalidation(base, base), Cr4Invalidation::None);
  EXPECT_EQ(cr4_write_invalidation(base, base & ~cr4::kPGE), Cr4Invalidation::All);
  EXPECT_EQ(cr4_write_invalidation(base & ~cr4::kPGE, base), Cr4Invalidation::All);
  EXPECT_EQ(cr4_write_invalidation(base, base & ~cr4::kPCIDE), Cr4Invalidation::All);
  EXPECT_EQ(cr4_write_invalidation(base & ~cr4::kPCIDE, base), Cr4Invalidation::None);
  EXPECT_EQ(cr4_write_invalidation(base, base | cr4::kSMEP), Cr4Invalidation::CurrentPcid);
  EXPECT_EQ(cr4_write_invalidation(base | cr4::kSMEP, base), Cr4Invalidation::None);
  EXPECT_EQ(cr4_write_invalidation(base, base | cr4::kSMAP), Cr4Invalidation::None);
  EXPECT_TRUE(cr0_write_invalidates_all(cr0::kPG | cr0::kPE, cr0::kPE));
  EXPECT_FALSE(cr0_write_invalidates_all(cr0::kPG | cr0::kWP, cr0::kPG));
}

TEST(HwAccessRights, TlbHitUsesTheSameCheck) {
  ControlRegisters cr = ControlRegisters::long_mode(kPml4, cr4::kSMAP);
  const Permissions user_ro{.writable = false, .user = true, .no_execute = false};
  EXPECT_EQ(access_violation(user_ro, cr, kUserRead), FaultReason::None);
  EXPECT_EQ(access_violation(user_ro, cr, kUserWrite), FaultReason::ReadOnly);
  EXPECT_EQ(access_violation(user_ro, cr, kSupRead), FaultReason::Smap);
  EXPECT_EQ(access_violation(user_ro, cr, kSupReadAc), FaultReason::None);
  EXPECT_EQ(page_fault_error_code(FaultReason::ReadOnly, cr, kUserWrite), P | W | U);
}

// ---------------------------------------------------------------------------
// Differential: random page tables, this walker against the test suite's
// reference walker (supervisor reads, NXE on, so rights never fault).

TEST(HwWalkDifferential, AgreesWithTheReferenceWalker) {
  pagelab::test::Rng rng(0x5EED'0001);
  constexpr int kTables = 24;
  constexpr u64 kFirstTable = 0x1000;
  constexpr unsigned kMaxPhys = 44;
  const u64 indices[] = {0, 1, 2, 255, 256, 511};
  for (int round = 0; round < 40; ++round) {
    std::vector<u64> ram((kFirstTable + kTables * 4096) / 8, 0);
    // Fill only the entries the chosen indices reach.
    for (int t = 0; t < kTables; ++t) {
      for (u64 index : indices) {
        u64 e = 0;
        if (rng.percent(85)) e |= entry::kP;
        if (rng.percent(70)) e |= entry::kRW;
        if (rng.percent(70)) e |= entry::kUS;
        if (rng.percent(20)) e |= entry::kXD;
        if (rng.percent(10)) e |= entry::kA;
        if (rng.percent(25)) {
          e |= entry::kPS;  // a leaf at levels 2 and 3, PAT at 1, reserved at 4
          e |= rng.range(1, 1000) << 30;
          if (rng.percent(10)) e |= u64{1} << rng.range(12, 29);  // maybe a reserved bit, maybe PAT
        } else {
          e |= kFirstTable + rng.below(kTables) * 4096;
        }
        if (rng.percent(5)) e |= u64{1} << rng.range(kMaxPhys, 51);  // reserved above MAXPHYADDR
        if (rng.percent(5)) e |= u64{1} << rng.range(52, 62);        // ignored
        ram[(kFirstTable + t * 4096) / 8 + index] = e;
      }
    }
    RamPort port(ram);
    const u64 root = kFirstTable + rng.below(kTables) * 4096;
    const ControlRegisters cr = ControlRegisters::long_mode(root);
    for (int probe = 0; probe < 200; ++probe) {
      const u64 va = va_of(indices[rng.below(6)], indices[rng.below(6)], indices[rng.below(6)],
                           indices[rng.below(6)], rng.below(4096));
      const std::vector<u64> before = ram;
      const auto expected = pagelab::test::reference_walk(root, va, [&](u64 pa) { return before.at(pa / 8); }, kMaxPhys);
      const WalkResult r = walk(port, cr, va, kSupRead, nullptr, PagingFeatures{.maxphyaddr = kMaxPhys});
      SCOPED_TRACE(::testing::Message() << "round " << round << " va " << std::hex << va);
      if (expected.reserved_bit) {
        ASSERT_TRUE(r.page_fault());
        EXPECT_EQ(r.reason, FaultReason::ReservedBit);
        EXPECT_EQ(r.error_code, P | R);
      } else if (!expected.present) {
        ASSERT_TRUE(r.page_fault());
        EXPECT_EQ(r.reason, FaultReason::NotPresent);
        EXPECT_EQ(r.error_code, 0u);
      } else {
        ASSERT_TRUE(r.ok()) << fault_reason_name(r.reason);
        EXPECT_EQ(r.physical, expected.physical);
        EXPECT_EQ(bytes_of(r.size), expected.page_bytes);
        EXPECT_EQ(r.rights.writable, expected.writable);
        EXPECT_EQ(r.rights.user, expected.user);
        EXPECT_EQ(r.rights.no_execute, expected.no_execute);
        EXPECT_EQ(r.leaf | entry::kA, expected.leaf | entry::kA);
      }
    }
  }
}

}  // namespace
