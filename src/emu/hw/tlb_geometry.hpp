// The shape of one CPU's TLB: which arrays it has, at which level, how many
// sets and ways each has and which page sizes each holds, and the named
// presets (`tiny`, `skylake`, `zen2`) a scenario or the command line picks.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "emu/hw/control_registers.hpp"
#include "mm/paging/pte.hpp"

namespace pagelab::hw {

using mm::PageSize;

// A set of page sizes, as bits: 1 << PageSize.
using PageSizeSet = u8;
constexpr PageSizeSet size_bit(PageSize size) { return static_cast<PageSizeSet>(1u << static_cast<unsigned>(size)); }
inline constexpr PageSizeSet kSizes4K = size_bit(PageSize::Size4K);
inline constexpr PageSizeSet kSizes2M = size_bit(PageSize::Size2M);
inline constexpr PageSizeSet kSizes1G = size_bit(PageSize::Size1G);
inline constexpr PageSizeSet kAllSizes = kSizes4K | kSizes2M | kSizes1G;

// How a set chooses the way a new translation displaces when none is empty
// (an empty way, e.g. one an invalidation emptied, is always taken first):
//   Lru:    the least recently used way (a hit or a fill is a use);
//   Fifo:   the way filled longest ago, however recently it was used;
//   Random: a way drawn from a deterministic generator seeded by
//           TlbGeometry::seed, so that a run stays reproducible.
// Refreshing a translation already cached (same page, size and PCID) rewrites
// its way in place under every policy; under Fifo it keeps its age.
enum class TlbReplacement : u8 { Lru, Fifo, Random };
const char* tlb_replacement_name(TlbReplacement replacement);
// The policies' names ("lru", "fifo", "random"), in that order.
const std::vector<std::string_view>& tlb_replacement_names();

// One set-associative array: `sets` x `ways` entries, replaced within a set
// by the TLB's policy (TlbGeometry::replacement), holding translations of the page sizes in `sizes`. sets = 1 is fully
// associative. A set-associative array that holds several sizes indexes each
// size by its own page number (a lookup probes one set per size held).
struct TlbArrayGeometry {
  u32 sets = 1;
  u32 ways = 1;
  PageSizeSet sizes = kAllSizes;

  constexpr u32 entries() const { return sets * ways; }
  constexpr bool operator==(const TlbArrayGeometry&) const = default;
};

// The set a page number falls in, in an array of `sets` sets: page_number %
// sets, computed without a division. A power of two takes a mask; any other
// count Lemire's remainder by multiplication (Lemire, Kaser, Kurz, "Faster
// remainder by direct computation", 2019, theorem 1 with F = 128): with
// c = ceil(2^128 / sets), n % sets = ((c * n) mod 2^128) * sets / 2^128,
// exact for every 64-bit n. Four multiplications instead of a 64-bit DIV.
class TlbSetIndex {
 public:
  constexpr TlbSetIndex() = default;
  // `sets` >= 1.
  constexpr explicit TlbSetIndex(u32 sets) : sets_(sets), pow2_((sets & (sets - 1)) == 0) {
    if (pow2_) {
      mask_ = sets - 1;
    } else {
      const U128 c = ~U128{0} / sets + 1;  // ceil(2^128 / sets): sets is not a power of two
      magic_low_ = static_cast<u64>(c);
      magic_high_ = static_cast<u64>(c >> 64);
    }
  }

  constexpr u32 sets() const { return sets_; }
  constexpr bool power_of_two() const { return pow2_; }
  constexpr u64 mask() const { return mask_; }  // sets - 1, when power_of_two()
  // page_number % sets().
  constexpr u32 of(u64 page_number) const {
    if (pow2_) [[likely]] return static_cast<u32>(page_number & mask_);
    const U128 fraction = ((U128{magic_high_} << 64) | magic_low_) * page_number;  // mod 2^128
    const U128 high = U128{static_cast<u64>(fraction >> 64)} * sets_ +
                      ((U128{static_cast<u64>(fraction)} * sets_) >> 64);
    return static_cast<u32>(high >> 64);
  }

 private:
  using U128 = unsigned __int128;  // GCC and Clang
  u64 mask_ = 0;
  u64 magic_low_ = 0;
  u64 magic_high_ = 0;
  u32 sets_ = 1;
  bool pow2_ = true;
};

// The whole TLB of one CPU. Within one level no two arrays may hold the same
// page size (an insert must know where a translation goes).
struct TlbGeometry {
  std::string name;
  // The first-level data TLB; it also serves fetches when l1i is empty.
  std::vector<TlbArrayGeometry> l1d;
  // An optional separate first-level instruction TLB.
  std::vector<TlbArrayGeometry> l1i;
  // An optional second level (STLB), shared by data accesses and fetches; it
  // may hold only some page sizes.
  std::vector<TlbArrayGeometry> l2;
  // The replacement policy of every array, and the seed of the generator the
  // Random policy draws from (each Tlb has its own, started from this seed).
  TlbReplacement replacement = TlbReplacement::Lru;
  u64 seed = 0;

  u32 entries() const;
  bool operator==(const TlbGeometry&) const = default;
};

// Limits a geometry must stay within.
inline constexpr u32 kMaxTlbArraysPerLevel = 3;
inline constexpr u32 kMaxTlbWays = 256;  // a way number fits in 8 bits
inline constexpr u32 kMaxTlbEntries = u32{1} << 20;

// An empty string when `geometry` is usable, otherwise what is wrong with it.
std::string validate(const TlbGeometry& geometry);

// The presets.
//   tiny:    4 entries, fully associative, every page size; no L2. Small
//            enough that scenarios see evictions.
//   skylake: L1 dTLB 64 entries 4-way (4 KiB), 32 4-way (2 MiB), 4 fully
//            associative (1 GiB); L1 iTLB 128 8-way (4 KiB) and 8 fully
//            associative (2 MiB); STLB 1536 12-way shared by 4 KiB and
//            2 MiB, 16 4-way (1 GiB).
//   zen2:    L1 dTLB 64 fully associative, every size; L1 iTLB 64 fully
//            associative, every size; L2 12-way for 4 KiB and 2 MiB with
//            171 sets (2052 entries: Zen 2's 2048-entry 12-way L2 is skewed,
//            and 2048 is not a multiple of 12), no 1 GiB entries (the hardware
//            "smashes" them into 2 MiB ones; here they live in L1 only).
TlbGeometry tiny_tlb_geometry();
TlbGeometry skylake_tlb_geometry();
TlbGeometry zen2_tlb_geometry();

// The preset names, in the order error messages list them.
const std::vector<std::string_view>& tlb_geometry_names();

// A preset by name, or an error that lists the known names. The name may be
// followed by a replacement policy and a seed: "NAME[:POLICY[:SEED]]", e.g.
// "tiny:fifo" or "skylake:random:42" (the preset's policy is LRU, its seed 0).
struct NamedTlbGeometry {
  TlbGeometry geometry;  // only meaningful when ok()
  std::string error;     // empty when found
  bool ok() const { return error.empty(); }
};
NamedTlbGeometry tlb_geometry_named(std::string_view name);

}  // namespace pagelab::hw
