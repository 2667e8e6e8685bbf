// The buddy allocator (mm::BuddyAllocator) on its direct order-based paths.
#include <benchmark/benchmark.h>

#include "fragmented_pool.hpp"

namespace pagelab::bench {
namespace {

// One allocate_order + free_order pair of the argument's order per
// iteration. Allocation may split a larger block and the free merges it back
// again, so the pair pays for the split/merge chain the fragmented pool
// imposes at that order.
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

}  // namespace
}  // namespace pagelab::bench
