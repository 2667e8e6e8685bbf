// The x86-64 page-table entry (SDM vol. 3A, 4.5, tables 4-15 to 4-20), the
// page sizes and the four levels of 4-level paging.
#pragma once

#include "mm/base/types.hpp"

namespace mm {

enum class PageSize : u8 { Size4K, Size2M, Size1G };

constexpr u64 page_bytes(PageSize size) {
  return size == PageSize::Size4K ? u64{1} << 12 : size == PageSize::Size2M ? u64{1} << 21 : u64{1} << 30;
}
constexpr const char* page_size_name(PageSize size) {
  return size == PageSize::Size4K ? "4K" : size == PageSize::Size2M ? "2M" : "1G";
}

// Levels as the SDM counts them: 4 = PML4, 3 = PDPT, 2 = PD, 1 = PT.
inline constexpr int kLevels = 4;
inline constexpr u64 kEntriesPerTable = 512;

constexpr u64 table_index(VirtAddr va, int level) { return (va.value() >> (12 + 9 * (level - 1))) & 511; }
// Bytes one entry at `level` covers: 4 KiB at level 1 ... 512 GiB at level 4.
constexpr u64 level_span(int level) { return u64{1} << (12 + 9 * (level - 1)); }
// The level whose leaf entries map pages of this size.
constexpr int leaf_level(PageSize size) { return size == PageSize::Size4K ? 1 : size == PageSize::Size2M ? 2 : 3; }
constexpr PageSize size_at_level(int level) {
  return level == 1 ? PageSize::Size4K : level == 2 ? PageSize::Size2M : PageSize::Size1G;
}

namespace pte {
inline constexpr u64 kPresent = u64{1} << 0;
inline constexpr u64 kWritable = u64{1} << 1;
inline constexpr u64 kUser = u64{1} << 2;
inline constexpr u64 kWriteThrough = u64{1} << 3;
inline constexpr u64 kCacheDisable = u64{1} << 4;
inline constexpr u64 kAccessed = u64{1} << 5;
inline constexpr u64 kDirty = u64{1} << 6;
inline constexpr u64 kHuge = u64{1} << 7;        // PS: a 2 MiB or 1 GiB leaf in a PD or PDPT
inline constexpr u64 kGlobal = u64{1} << 8;
inline constexpr u64 kPatLarge = u64{1} << 12;   // PAT bit of a 2 MiB or 1 GiB leaf
inline constexpr u64 kNoExecute = u64{1} << 63;
// Bits 9-11 are the software's. pagelab uses two:
inline constexpr u64 kCopyOnWrite = u64{1} << 9;  // read-only because the frame is shared copy-on-write
inline constexpr u64 kParked = u64{1} << 10;      // with P = 0: a PROT_NONE page that keeps its frame

// Frame address bits: 51..12 of a table pointer or 4 KiB leaf; a large leaf
// is aligned further (bits 20..13 or 29..13 reserved, SDM table 4-17/4-15).
inline constexpr u64 kAddressMask = 0x000FFFFFFFFFF000;
// The attribute bits a leaf carries, whatever its size.
inline constexpr u64 kLeafAttributes = kPresent | kWritable | kUser | kWriteThrough | kCacheDisable | kAccessed |
                                       kDirty | kGlobal | kNoExecute | kCopyOnWrite | kParked;
}  // namespace pte

// One entry, as a value. Stores go through the platform (Platform::pte_store).
class Pte {
 public:
  constexpr Pte() = default;
  constexpr explicit Pte(u64 raw) : raw_(raw) {}

  // A leaf mapping `frame` with `attributes` (pte::k* bits) at `size`.
  // With pte::kParked in `attributes` the leaf is parked: not present (any
  // access faults) but still holding its frame, for PROT_NONE.
  static constexpr Pte leaf(PhysAddr frame, u64 attributes, PageSize size) {
    u64 raw = (frame.value() & pte::kAddressMask) | (attributes & pte::kLeafAttributes);
    raw = (attributes & pte::kParked) ? raw & ~pte::kPresent : raw | pte::kPresent;
    if (size != PageSize::Size4K) raw |= pte::kHuge;
    return Pte(raw);
  }
  // A pointer to a lower table. Intermediate entries are maximally
  // permissive; the leaf decides (permissions AND across levels).
  static constexpr Pte table(PhysAddr table_frame) {
    return Pte((table_frame.value() & pte::kAddressMask) | pte::kPresent | pte::kWritable | pte::kUser);
  }

  constexpr u64 raw() const { return raw_; }
  constexpr bool present() const { return raw_ & pte::kPresent; }
  constexpr bool writable() const { return raw_ & pte::kWritable; }
  constexpr bool user() const { return raw_ & pte::kUser; }
  constexpr bool huge() const { return raw_ & pte::kHuge; }
  constexpr bool no_execute() const { return raw_ & pte::kNoExecute; }
  constexpr bool copy_on_write() const { return raw_ & pte::kCopyOnWrite; }
  constexpr bool parked() const { return !present() && (raw_ & pte::kParked); }
  // Present, or parked: either way the entry holds a frame.
  constexpr bool mapped() const { return present() || parked(); }
  constexpr bool has(u64 bits) const { return (raw_ & bits) == bits; }
  // Is this entry a leaf at `level` (a 4 KiB PTE, or a PS entry in a PD/PDPT),
  // present or parked?
  constexpr bool is_leaf(int level) const { return mapped() && (level == 1 || huge()); }
  // The frame or table it points to. For a large leaf, the PAT bit is excluded.
  constexpr PhysAddr address(int level = 1) const {
    const u64 mask = level == 1 ? pte::kAddressMask : pte::kAddressMask & ~(level_span(level) - 1);
    return PhysAddr(raw_ & mask);
  }
  constexpr u64 attributes() const { return raw_ & pte::kLeafAttributes; }
  constexpr Pte with(u64 bits) const { return Pte(raw_ | bits); }
  constexpr Pte without(u64 bits) const { return Pte(raw_ & ~bits); }
  constexpr bool operator==(const Pte&) const = default;

 private:
  u64 raw_ = 0;
};

}  // namespace mm
