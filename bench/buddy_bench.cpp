// The buddy allocator (mm::BuddyAllocator) on its direct order-based paths.
#include <benchmark/benchmark.h>

#include <vector>

#include "fragmented_pool.hpp"

namespace pagelab::bench {
namespace {

// One allocate_order + free_order pair of the argument's order per
// iteration: the hot path. The block freed is the block allocated next, so
// after the first iteration the pair pops and pushes one free-list head at
// that order; no split or merge happens in steady state (order 9 costs what
// order 0 does). BM_Buddy_MixedSteadyState is the cold path.
void BM_Buddy_AllocFree(benchmark::State& state) {
  BuddyPool world;
  if (!world.ok()) {
    state.SkipWithError(world.error().c_str());
    return;
  }
  const auto order = static_cast<mm::u32>(state.range(0));
  mm::BuddyAllocator& buddy = world.allocator;
  for (auto _ : state) {
    mm::Result<mm::Pfn> block = buddy.allocate_order(order, mm::FrameOwner::Anonymous);
    benchmark::DoNotOptimize(block);
    if (!block.ok()) [[unlikely]] {
      state.SkipWithError(failure("allocate_order", block.status()).c_str());
      break;
    }
    const mm::Status freed = buddy.free_order(block.value(), order);
    if (freed != mm::Status::Ok) [[unlikely]] {
      state.SkipWithError(failure("free_order", freed).c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Buddy_AllocFree)->Arg(0)->Arg(3)->Arg(9);

// The cold path: the fragmented pool's own workload, continued. Each
// iteration frees one live block picked at random (so frees come in random
// order and merge with whatever neighbours happen to be free) and allocates
// one block of an order drawn from OrderMix (so allocations split whatever
// block the free lists offer). The allocated share stays near 50%, and the
// free lists hold every order: this is the split-and-merge cost of a
// long-running allocator, per free + allocate pair. The picks and orders
// are drawn before the loop (a ring of kDraws), so the timed loop holds the
// allocator's calls and a vector swap-remove only; an untimed warm-up brings
// the pool to its steady state first.
void BM_Buddy_MixedSteadyState(benchmark::State& state) {
  BuddyPool world;
  if (!world.ok()) {
    state.SkipWithError(world.error().c_str());
    return;
  }
  constexpr mm::usize kDraws = mm::usize{1} << 16;
  constexpr mm::usize kWarmupPairs = mm::usize{1} << 21;
  std::vector<mm::u32> orders(kDraws);
  std::vector<mm::u64> picks(kDraws);
  for (mm::usize i = 0; i < kDraws; ++i) {
    orders[i] = OrderMix::draw(world.rng);
    picks[i] = world.rng();
  }
  mm::BuddyAllocator& buddy = world.allocator;
  std::vector<LiveBlock>& live = world.live;
  mm::usize next = 0;
  // One pair: false (the benchmark skipped) when a call failed.
  const auto pair = [&] {
    const mm::usize at = picks[next] % live.size();
    const LiveBlock victim = live[at];
    live[at] = live.back();
    live.pop_back();
    const mm::Status freed = buddy.free_order(victim.first, victim.order);
    if (freed != mm::Status::Ok) [[unlikely]] {
      state.SkipWithError(failure("free_order", freed).c_str());
      return false;
    }
    const mm::u32 order = orders[next];
    mm::Result<mm::Pfn> block = buddy.allocate_order(order, mm::FrameOwner::Anonymous);
    benchmark::DoNotOptimize(block);
    if (!block.ok()) [[unlikely]] {
      state.SkipWithError(failure("allocate_order", block.status()).c_str());
      return false;
    }
    live.push_back(LiveBlock{block.value(), order});
    next = (next + 1) % kDraws;
    return true;
  };
  const auto free_blocks = [&buddy] {
    const mm::FreeBlockCounts counts = buddy.free_blocks();
    mm::FrameCount total = 0;
    for (const mm::FrameCount blocks : counts.blocks) total += blocks;
    return static_cast<double>(total);
  };
  // Untimed warm-up: the recipe's pool has many small holes, which random
  // frees first merge back (917 free blocks fall to 168 over the first two
  // million pairs, then wander between about 80 and 170); the timing starts
  // once that has settled.
  for (mm::usize i = 0; i < kWarmupPairs; ++i) {
    if (!pair()) return;
  }
  const double free_blocks_before = free_blocks();
  for (auto _ : state) {
    if (!pair()) [[unlikely]] break;
  }
  state.SetItemsProcessed(state.iterations());
  // Free blocks of every order when the timing started and when it ended:
  // of one magnitude in steady state.
  state.counters["free_blocks_before"] = free_blocks_before;
  state.counters["free_blocks_after"] = free_blocks();
}
BENCHMARK(BM_Buddy_MixedSteadyState);

}  // namespace
}  // namespace pagelab::bench
