// The control registers that steer one emulated CPU's address translation:
// CR0, CR3, CR4 and the IA32_EFER MSR, with the bits 4-level paging reads
// (Intel SDM vol. 3A, 2.5 and 4.1), and what a write to CR0, CR3 or CR4 does
// to the TLBs and paging-structure caches (SDM vol. 3A, 4.10.4.1).
//
// Plain values: a CPU owns one ControlRegisters and changes it only through
// its own instructions, so nothing here is atomic.
#pragma once

#include "mm/base/types.hpp"

namespace pagelab::hw {

using mm::u16;
using mm::u32;
using mm::u64;
using mm::u8;

namespace cr0 {
inline constexpr u64 kPE = u64{1} << 0;   // protected mode
inline constexpr u64 kWP = u64{1} << 16;  // write protect: supervisor writes honour R/W
inline constexpr u64 kPG = u64{1} << 31;  // paging
}  // namespace cr0

namespace cr3 {
// With CR4.PCIDE = 1, bits 11:0 are the current PCID; with PCIDE = 0, bits 3
// and 4 are PWT and PCD and the rest of 11:0 is ignored.
inline constexpr u64 kPcidMask = 0xFFF;
inline constexpr u64 kPwt = u64{1} << 3;
inline constexpr u64 kPcd = u64{1} << 4;
// Bits 51:12: the physical address of the PML4 table (bits above MAXPHYADDR
// must be zero; a MOV that sets them faults with #GP before any walk).
inline constexpr u64 kRootMask = 0x000FFFFFFFFFF000;
// Bit 63 of the *source operand* of MOV to CR3 with CR4.PCIDE = 1: do not
// invalidate the new PCID's entries. It is never stored in CR3 itself.
inline constexpr u64 kNoFlush = u64{1} << 63;
}  // namespace cr3

namespace cr4 {
inline constexpr u64 kPAE = u64{1} << 5;     // physical address extension (required for 4-level paging)
inline constexpr u64 kPGE = u64{1} << 7;     // global pages
inline constexpr u64 kPCIDE = u64{1} << 17;  // process-context identifiers
inline constexpr u64 kSMEP = u64{1} << 20;   // supervisor-mode execution prevention
inline constexpr u64 kSMAP = u64{1} << 21;   // supervisor-mode access prevention
}  // namespace cr4

namespace efer {
inline constexpr u64 kSCE = u64{1} << 0;
inline constexpr u64 kLME = u64{1} << 8;   // long mode enable
inline constexpr u64 kLMA = u64{1} << 10;  // long mode active (set by the CPU when CR0.PG = 1 with LME = 1)
inline constexpr u64 kNXE = u64{1} << 11;  // execute-disable bit (XD) enable
}  // namespace efer

// A 12-bit process-context identifier (0 when CR4.PCIDE = 0).
using Pcid = u16;
inline constexpr Pcid kPcidCount = 4096;

struct ControlRegisters {
  u64 cr0 = 0;
  u64 cr3 = 0;
  u64 cr4 = 0;
  u64 efer = 0;

  // CR0.PG = 1, CR4.PAE = 1 and EFER.LMA = 1: IA-32e mode with 4-level
  // paging, the only paging mode page_walk.hpp implements (SDM 4.1.1).
  constexpr bool four_level_paging() const {
    return (cr0 & cr0::kPG) && (cr4 & cr4::kPAE) && (efer & efer::kLMA);
  }
  constexpr bool wp() const { return cr0 & cr0::kWP; }
  constexpr bool pge() const { return cr4 & cr4::kPGE; }
  constexpr bool pcide() const { return cr4 & cr4::kPCIDE; }
  constexpr bool smep() const { return cr4 & cr4::kSMEP; }
  constexpr bool smap() const { return cr4 & cr4::kSMAP; }
  constexpr bool nxe() const { return efer & efer::kNXE; }

  // The current PCID: CR3[11:0] when CR4.PCIDE = 1, otherwise 0 (SDM 4.10.1).
  constexpr Pcid pcid() const { return pcide() ? static_cast<Pcid>(cr3 & cr3::kPcidMask) : Pcid{0}; }
  // The PML4 table's physical address, CR3[51:12].
  constexpr u64 root() const { return cr3 & cr3::kRootMask; }

  // Long mode with paging on, CR0.WP = 1, and the given extra CR4/EFER bits:
  // the state a 64-bit kernel runs in. `pml4` is the PML4 table's address.
  static constexpr ControlRegisters long_mode(u64 pml4, u64 extra_cr4 = 0, u64 extra_efer = efer::kNXE) {
    return ControlRegisters{.cr0 = cr0::kPE | cr0::kWP | cr0::kPG,
                            .cr3 = pml4 & cr3::kRootMask,
                            .cr4 = cr4::kPAE | extra_cr4,
                            .efer = efer::kLME | efer::kLMA | extra_efer};
  }
};

// What a MOV to CR3 with `source` (the instruction's operand, bit 63
// included) invalidates, SDM 4.10.4.1:
//   PCIDE = 0: every non-global TLB entry of PCID 0 and every paging-structure
//              cache entry of PCID 0;
//   PCIDE = 1, bit 63 = 0: the same for the PCID in source[11:0];
//   PCIDE = 1, bit 63 = 1: nothing.
// The value CR3 then holds is the operand without bit 63.
constexpr u64 cr3_value_of_mov(u64 source) { return source & ~cr3::kNoFlush; }

// What a MOV to CR4 from `before` to `after` invalidates (SDM 4.10.4.1).
enum class Cr4Invalidation : u8 {
  None,
  // CR4.PAE changed, or CR4.SMEP went 0 -> 1: the TLB entries and paging-
  // structure-cache entries of the current PCID. The SDM guarantees nothing
  // about global entries here, so the emulator keeps them (the stricter choice
  // for the oracle: anything that may stay stale, does).
  CurrentPcid,
  // CR4.PGE changed, or CR4.PCIDE went 1 -> 0: everything, global entries and
  // every PCID included.
  All,
};
constexpr Cr4Invalidation cr4_write_invalidation(u64 before, u64 after) {
  const u64 changed = before ^ after;
  if ((changed & cr4::kPGE) || ((before & cr4::kPCIDE) && !(after & cr4::kPCIDE))) return Cr4Invalidation::All;
  if ((changed & cr4::kPAE) || (!(before & cr4::kSMEP) && (after & cr4::kSMEP))) return Cr4Invalidation::CurrentPcid;
  return Cr4Invalidation::None;
}

// A MOV to CR0 that clears CR0.PG invalidates everything, global entries
// included (SDM 4.10.4.1). Other CR0 changes (WP among them) invalidate
// nothing: TLB entries hold the combined R/W, U/S and XD, and CR0.WP, SMEP
// and SMAP are applied on every use.
constexpr bool cr0_write_invalidates_all(u64 before, u64 after) { return (before & cr0::kPG) && !(after & cr0::kPG); }

}  // namespace pagelab::hw
