// RegionSet: the regions of one address space, ordered by address, with
// O(log n) lookup (an AVL tree keyed by base), and the free-range search.
// It holds pointers; the regions' storage belongs to the address space.
#pragma once

#include "mm/vm/avl_tree.hpp"
#include "mm/vm/region.hpp"

namespace mm {

class RegionSet {
 public:
  bool empty() const { return tree_.empty(); }
  usize size() const { return tree_.size(); }

  void insert(Region* region) { tree_.insert(region); }
  void erase(Region* region) { tree_.erase(region); }

  // The region containing `va`, or null.
  Region* find(VirtAddr va) const {
    Region* r = tree_.find_le(va.value());
    return r != nullptr && r->contains(va) ? r : nullptr;
  }

  // The first region that ends after `va` (it may contain `va`), or null.
  Region* first_ending_after(VirtAddr va) const {
    Region* r = tree_.find_le(va.value());
    if (r != nullptr && r->end() > va) return r;
    return tree_.find_ge(va.value());
  }

  Region* first() const { return tree_.first(); }
  Region* next(const Region* r) const { return tree_.next(r); }
  Region* prev(const Region* r) const { return tree_.prev(r); }

  // The lowest free, `alignment`-aligned range of `size` bytes within
  // [lo, hi) at or above `hint`; if none, the lowest at or above `lo`
  // (Redox find_free_near). Returns false when no gap is large enough.
  bool find_free(u64 size, u64 alignment, VirtAddr hint, VirtAddr lo, VirtAddr hi, VirtAddr& out) const {
    const VirtAddr start = hint < lo || hint >= hi ? lo : hint;
    if (gap_from(start, size, alignment, hi, out)) return true;
    return start != lo && gap_from(lo, size, alignment, hi, out);
  }

  bool check() const { return tree_.check(); }

 private:
  bool gap_from(VirtAddr from, u64 size, u64 alignment, VirtAddr hi, VirtAddr& out) const {
    u64 candidate = align_up(from.value(), alignment);
    for (const Region* r = first_ending_after(VirtAddr(candidate)); ; r = next(r)) {
      const u64 gap_end = r != nullptr && r->base < hi ? r->base.value() : hi.value();
      if (candidate <= gap_end && gap_end - candidate >= size) {
        out = VirtAddr(candidate);
        return true;
      }
      if (r == nullptr || r->base >= hi) return false;
      candidate = align_up(r->end().value(), alignment);
      if (candidate >= hi.value()) return false;
    }
  }

  AvlTree<Region, RegionKey> tree_;
};

}  // namespace mm
