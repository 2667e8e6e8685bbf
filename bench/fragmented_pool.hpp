// The partly fragmented pool every benchmark runs on, written once.
//
// An empty pool flatters every allocator: the free lists hold one huge block,
// the bitmap's first free bit is the first bit. So before any timing, each
// benchmark's allocator is brought into this state, with a fixed seed so
// that runs are comparable over time and between machines:
//
//   1. Fill.   Draw request sizes from OrderMix (mostly order 0, a tail of
//              orders 1..9) and allocate them one after another until at
//              least 75% of the pool's frames are allocated.
//   2. Punch.  Shuffle the allocated blocks and free them in that random
//              order until at most 50% of the frames are allocated.
//
// Step 2 leaves holes of every size scattered through the first three
// quarters of the pool (the blocks freed at random), while the last quarter,
// never allocated, still holds large blocks: order-9 (2 MiB) and 512-frame
// requests can succeed, but only after walking past the fragmented part
// (bitmap first fit) or by splitting a large block (buddy).
//
// Requests are naturally aligned power-of-two blocks for every allocator
// (the bitmap is asked for count = alignment = 2^order), so the buddy and the
// bitmap see the same request stream. The free stack serves single frames
// only: its fill draws are all order 0.
//
// Randomness comes only from std::mt19937_64, whose output the standard
// fixes; the draws, the shuffle and the index picks below are written out
// rather than taken from <random>'s distributions, whose results differ
// between standard libraries.
#pragma once

#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "mm/base/status.hpp"
#include "mm/phys/bitmap_allocator.hpp"
#include "mm/phys/buddy_allocator.hpp"
#include "mm/phys/free_stack_allocator.hpp"
#include "pool.hpp"

namespace pagelab::bench {

// The seed of the fill-and-punch recipe. Changing it changes every pool:
// results before and after are not comparable.
inline constexpr mm::u64 kPoolSeed = 0x70a6e1ab'00c0ffeeull;
inline constexpr double kFillShare = 0.75;  // step 1 stops at or above this share allocated
inline constexpr double kKeepShare = 0.50;  // step 2 stops at or below this share allocated

// A uniform integer in [0, n), n > 0. The modulo bias is below 2^-40 for the
// small n used here.
inline mm::u64 draw_below(std::mt19937_64& rng, mm::u64 n) { return rng() % n; }

// A uniform double in [0, 1).
inline double draw_unit(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

// Request sizes, weighted to small ones: share of requests per order, in
// thousandths. Mean request is about 15 frames; order 9 is 1% of requests
// but about a third of the allocated frames.
class OrderMix {
 public:
  static constexpr mm::u32 kMaxOrder = 9;
  static constexpr mm::u32 kPerMille[kMaxOrder + 1] = {700, 80, 60, 50, 30, 20, 20, 15, 15, 10};

  static mm::u32 draw(std::mt19937_64& rng) {
    mm::u64 pick = draw_below(rng, 1000);
    for (mm::u32 order = 0; order < kMaxOrder; ++order) {
      if (pick < kPerMille[order]) {
        return order;
      }
      pick -= kPerMille[order];
    }
    return kMaxOrder;
  }
};

// One allocated block: its first frame and log2 of its frame count.
struct LiveBlock {
  mm::Pfn first;
  mm::u32 order = 0;
};

// The same two calls on each allocator, so the recipe and the fragmentation
// workload are written once. kMaxOrder is the largest order it can serve.
struct BuddyOps {
  static constexpr mm::u32 kMaxOrder = OrderMix::kMaxOrder;
  mm::BuddyAllocator& allocator;

  mm::Result<mm::Pfn> allocate(mm::u32 order) { return allocator.allocate_order(order, mm::FrameOwner::Anonymous); }
  mm::Status free(mm::Pfn first, mm::u32 order) { return allocator.free_order(first, order); }
};

struct BitmapOps {
  static constexpr mm::u32 kMaxOrder = OrderMix::kMaxOrder;
  mm::BitmapAllocator& allocator;

  mm::Result<mm::Pfn> allocate(mm::u32 order) {
    const mm::FrameCount frames = mm::FrameCount{1} << order;
    return allocator.allocate(
        mm::FrameRequest{.count = frames, .alignment = frames, .owner = mm::FrameOwner::Anonymous});
  }
  mm::Status free(mm::Pfn first, mm::u32 order) { return allocator.free(first, mm::FrameCount{1} << order); }
};

struct FreeStackOps {
  static constexpr mm::u32 kMaxOrder = 0;
  mm::FreeStackAllocator& allocator;

  mm::Result<mm::Pfn> allocate(mm::u32) { return allocator.allocate_one(mm::FrameOwner::Anonymous); }
  mm::Status free(mm::Pfn first, mm::u32) { return allocator.free_one(first); }
};

// Runs the recipe on an allocator that holds `managed` free frames. `live`
// receives the blocks still allocated at the end (the benchmarks leave them
// allocated: the pool is thrown away whole). Returns the first failure of the
// allocator, or ENOMEM if step 1 could not reach its share.
template <typename Ops>
mm::Status fragment(Ops ops, mm::FrameCount managed, std::mt19937_64& rng, std::vector<LiveBlock>& live) {
  const auto fill_target = static_cast<mm::FrameCount>(kFillShare * static_cast<double>(managed));
  const auto keep_target = static_cast<mm::FrameCount>(kKeepShare * static_cast<double>(managed));
  mm::FrameCount allocated = 0;
  while (allocated < fill_target) {
    const mm::u32 drawn = OrderMix::draw(rng);
    const mm::u32 order = drawn < Ops::kMaxOrder ? drawn : Ops::kMaxOrder;
    const mm::Result<mm::Pfn> block = ops.allocate(order);
    if (!block.ok()) {
      return block.status();
    }
    live.push_back(LiveBlock{block.value(), order});
    allocated += mm::FrameCount{1} << order;
  }
  // Fisher-Yates, so the frees below come in a random order.
  for (mm::usize i = live.size(); i > 1; --i) {
    const mm::usize j = draw_below(rng, i);
    const LiveBlock swap = live[i - 1];
    live[i - 1] = live[j];
    live[j] = swap;
  }
  while (allocated > keep_target && !live.empty()) {
    const LiveBlock block = live.back();
    live.pop_back();
    const mm::Status freed = ops.free(block.first, block.order);
    if (freed != mm::Status::Ok) {
      return freed;
    }
    allocated -= mm::FrameCount{1} << block.order;
  }
  return mm::Status::Ok;
}

// A pool, an allocator over all of it, and the recipe applied. `status` is
// Ok when the pool is ready; a benchmark that finds it otherwise skips with
// error() as its message.
template <typename Allocator, typename Ops>
struct FragmentedPool {
  explicit FragmentedPool(mm::u64 seed = kPoolSeed) : allocator(make_allocator(pool)), rng(seed) {
    status = allocator.add_free_range(pool.base(), pool.size());
    if (status == mm::Status::Ok) {
      status = fragment(Ops{allocator}, pool.size(), rng, live);
    }
  }

  FragmentedPool(const FragmentedPool&) = delete;
  FragmentedPool& operator=(const FragmentedPool&) = delete;

  bool ok() const { return status == mm::Status::Ok; }
  std::string error() const {
    return std::string("building the fragmented pool failed: ") + mm::errno_name(status);
  }

  Pool pool;  // declared first: the allocator is built over it
  Allocator allocator;
  // Left where the recipe stopped: a workload that goes on drawing from it
  // stays a function of the seed.
  std::mt19937_64 rng;
  std::vector<LiveBlock> live;
  mm::Status status = mm::Status::Ok;

 private:
  static Allocator make_allocator(Pool& over) {
    if constexpr (std::is_same_v<Allocator, mm::BitmapAllocator>) {
      return Allocator(over.table(), over.bitmap_words());
    } else {
      return Allocator(over.table());
    }
  }
};

using BuddyPool = FragmentedPool<mm::BuddyAllocator, BuddyOps>;
using BitmapPool = FragmentedPool<mm::BitmapAllocator, BitmapOps>;
using FreeStackPool = FragmentedPool<mm::FreeStackAllocator, FreeStackOps>;

}  // namespace pagelab::bench
