// The three frame allocators behind one factory, for typed tests that hold
// every allocator to the same contract.
#pragma once

#include <memory>
#include <vector>

#include "mm/phys/bitmap_allocator.hpp"
#include "mm/phys/buddy_allocator.hpp"
#include "mm/phys/free_stack_allocator.hpp"

namespace pagelab::test {

struct StackKind {
  static constexpr const char* kName = "stack";
  struct Instance {
    explicit Instance(mm::FrameTable& table) : allocator(table) {}
    mm::FreeStackAllocator allocator;
  };
};

struct BitmapKind {
  static constexpr const char* kName = "bitmap";
  struct Instance {
    explicit Instance(mm::FrameTable& table)
        : bits(mm::BitmapAllocator::words_for(table.size())), allocator(table, bits) {}
    std::vector<mm::u64> bits;
    mm::BitmapAllocator allocator;
  };
};

struct BuddyKind {
  static constexpr const char* kName = "buddy";
  struct Instance {
    explicit Instance(mm::FrameTable& table) : allocator(table) {}
    mm::BuddyAllocator allocator;
  };
};

}  // namespace pagelab::test
