// Fragmentation: how much free memory is still usable for 2 MiB (order-9,
// 512-frame, naturally aligned) requests after a long random mix of
// allocations and frees, per allocator. Same request stream for both.
#include <benchmark/benchmark.h>

#include <memory>

#include "fragmented_pool.hpp"

namespace pagelab::bench {
namespace {

// The workload's own seed (the pool's is kPoolSeed): change either and the
// results are not comparable with earlier ones.
constexpr mm::u64 kWorkloadSeed = 0xf2a6'0009'5eedull;
// Operations per workload: about a hundred times the blocks alive at any
// moment, so every early allocation has been freed and replaced many times.
constexpr mm::u64 kWorkloadOps = 200'000;
// The workload steers the allocated share toward this value.
constexpr double kTargetShare = 0.5;

struct WorkloadResult {
  mm::u64 failed_allocations = 0;  // ENOMEM answers (fragmentation or a full pool)
  mm::u64 failed_order9 = 0;       // ... of which order-9 requests
  mm::Status status = mm::Status::Ok;
};

// kWorkloadOps steps on a fragmented pool. Each step allocates with
// probability 0.5 + 2 * (kTargetShare - allocated share), clamped to [0, 1]
// (so the allocated share stays near one half), a size drawn from OrderMix;
// otherwise it frees one live block picked uniformly at random.
template <typename Ops, typename World>
WorkloadResult run_workload(World& world) {
  Ops ops{world.allocator};
  std::mt19937_64 rng(kWorkloadSeed);
  const auto managed = static_cast<double>(world.allocator.managed_frames());
  WorkloadResult result;
  for (mm::u64 step = 0; step < kWorkloadOps; ++step) {
    const double share = static_cast<double>(world.allocator.managed_frames() - world.allocator.free_frames()) / managed;
    const double p_alloc = 0.5 + 2.0 * (kTargetShare - share);
    if (world.live.empty() || draw_unit(rng) < p_alloc) {
      const mm::u32 order = OrderMix::draw(rng);
      mm::Result<mm::Pfn> block = ops.allocate(order);
      benchmark::DoNotOptimize(block);
      if (block.ok()) {
        world.live.push_back(LiveBlock{block.value(), order});
      } else if (block.status() == mm::Status::OutOfMemory) {
        ++result.failed_allocations;
        result.failed_order9 += order == 9 ? 1 : 0;
      } else {
        result.status = block.status();
        return result;
      }
    } else {
      const mm::usize pick = draw_below(rng, world.live.size());
      const LiveBlock block = world.live[pick];
      world.live[pick] = world.live.back();
      world.live.pop_back();
      const mm::Status freed = ops.free(block.first, block.order);
      if (freed != mm::Status::Ok) {
        result.status = freed;
        return result;
      }
    }
  }
  return result;
}

// One iteration = one whole workload on a freshly built fragmented pool
// (the build is not timed). Counters, from the end state (identical every
// iteration: everything is seeded):
//   order9_usable  frames in free blocks of order >= 9 / free frames
//   free_frames    free frames at the end
//   failed_allocs  ENOMEM answers during the workload
//   failed_order9  ... of which for order-9 requests
// Items are workload operations (allocations and frees).
template <typename World, typename Ops>
void BM_Fragmentation_Order9Usable(benchmark::State& state) {
  WorkloadResult last;
  double usable = 0;
  double free_frames = 0;
  for (auto _ : state) {
    state.PauseTiming();
    auto world = std::make_unique<World>();
    if (!world->ok()) {
      state.SkipWithError(world->error().c_str());
      break;
    }
    state.ResumeTiming();
    last = run_workload<Ops>(*world);
    state.PauseTiming();
    if (last.status != mm::Status::Ok) {
      state.SkipWithError(failure("the workload", last.status).c_str());
      break;
    }
    const mm::FrameCount free = world->allocator.free_frames();
    const mm::FrameCount large = world->allocator.free_blocks().frames_at_or_above(9);
    usable = free == 0 ? 0.0 : static_cast<double>(large) / static_cast<double>(free);
    free_frames = static_cast<double>(free);
    world.reset();
    state.ResumeTiming();
  }
  state.counters["order9_usable"] = usable;
  state.counters["free_frames"] = free_frames;
  state.counters["failed_allocs"] = static_cast<double>(last.failed_allocations);
  state.counters["failed_order9"] = static_cast<double>(last.failed_order9);
  state.SetItemsProcessed(state.iterations() * static_cast<benchmark::IterationCount>(kWorkloadOps));
}

// Registered by name, so the results read BM_Fragmentation_Order9Usable/buddy
// and .../bitmap. Run for the usual minimum time: every iteration is the
// same seeded workload, so the counters do not depend on how many run.
BENCHMARK_TEMPLATE(BM_Fragmentation_Order9Usable, BuddyPool, BuddyOps)
    ->Name("BM_Fragmentation_Order9Usable/buddy")
    ->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_Fragmentation_Order9Usable, BitmapPool, BitmapOps)
    ->Name("BM_Fragmentation_Order9Usable/bitmap")
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace pagelab::bench
