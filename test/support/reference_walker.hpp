// An independent page walker for tests: translates a virtual address by
// reading the page-table bytes the way the SDM (vol. 3A, 4.5) says the
// hardware does, without any of the mapper's code. Permissions combine across
// levels: R/W and U/S are ANDed, XD is ORed. Reserved bits in a present entry
// are reported, not ignored.
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>

namespace pagelab::test {

struct WalkResult {
  bool present = false;
  bool reserved_bit = false;  // a present entry had a reserved bit set: the walk would #PF with RSVD
  std::uint64_t physical = 0;
  std::uint64_t page_bytes = 0;
  bool writable = false;
  bool user = false;
  bool no_execute = false;
  std::uint64_t leaf = 0;     // the raw leaf entry
};

// `read_entry(physical_address)` returns the 8 bytes at that physical address.
inline WalkResult reference_walk(std::uint64_t cr3_root, std::uint64_t va,
                                 const std::function<std::uint64_t(std::uint64_t)>& read_entry,
                                 int max_phys_bits = 52) {
  WalkResult r;
  const std::uint64_t phys_mask = ((std::uint64_t{1} << max_phys_bits) - 1) & ~std::uint64_t{0xFFF};
  std::uint64_t table = cr3_root & phys_mask;
  bool writable = true, user = true, nx = false;
  for (int level = 4; level >= 1; --level) {
    const int shift = 12 + 9 * (level - 1);
    const std::uint64_t index = (va >> shift) & 511;
    const std::uint64_t entry = read_entry(table + index * 8);
    if (!(entry & 1)) {
      return r;
    }
    // Bits 51:max_phys_bits must be zero in any present entry.
    if (entry & ~phys_mask & 0x000FFFFFFFFFF000) {
      r.reserved_bit = true;
      return r;
    }
    writable = writable && (entry & 2);
    user = user && (entry & 4);
    nx = nx || (entry >> 63);
    const bool ps = entry & 0x80;
    if (level == 4 && ps) {
      r.reserved_bit = true;  // PS is reserved in a PML4E
      return r;
    }
    if (level == 1 || ps) {
      const std::uint64_t span = std::uint64_t{1} << shift;
      std::uint64_t frame = entry & phys_mask & ~(span - 1);
      if (level > 1) {
        // Bits shift-1 .. 13 of a large leaf are reserved (bit 12 is PAT).
        const std::uint64_t reserved = (span - 1) & ~std::uint64_t{0x1FFF};
        if (entry & reserved) {
          r.reserved_bit = true;
          return r;
        }
      }
      r.present = true;
      r.physical = frame + (va & (span - 1));
      r.page_bytes = span;
      r.writable = writable;
      r.user = user;
      r.no_execute = nx;
      r.leaf = entry;
      return r;
    }
    table = entry & phys_mask;
  }
  return r;
}

}  // namespace pagelab::test
