// The free stack (mm::FreeStackAllocator): single frames in O(1), and the
// batch calls that move many frames per call.
#include <benchmark/benchmark.h>

#include <array>

#include "fragmented_pool.hpp"

namespace pagelab::bench {
namespace {

// One allocate_one + free_one pair per iteration, on the non-virtual O(1)
// paths. The stack is LIFO, so the pair reuses the same (cache-hot) frame:
// this is the floor of the allocator's cost, not a cold-miss figure.
void BM_FreeStack_AllocFree(benchmark::State& state) {
  FreeStackPool world;
  if (!world.ok()) {
    state.SkipWithError(world.error().c_str());
    return;
  }
  mm::FreeStackAllocator& stack = world.allocator;
  for (auto _ : state) {
    mm::Result<mm::Pfn> frame = stack.allocate_one(mm::FrameOwner::Anonymous);
    benchmark::DoNotOptimize(frame);
    if (!frame.ok()) [[unlikely]] {
      state.SkipWithError(failure("allocate_one", frame.status()).c_str());
      break;
    }
    const mm::Status freed = stack.free_one(frame.value());
    if (freed != mm::Status::Ok) [[unlikely]] {
      state.SkipWithError(failure("free_one", freed).c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_FreeStack_AllocFree);

// allocate_batch of N frames, then free_batch of the same N, per iteration.
// Items are frames: N per iteration.
void BM_FreeStack_Batch(benchmark::State& state) {
  FreeStackPool world;
  if (!world.ok()) {
    state.SkipWithError(world.error().c_str());
    return;
  }
  constexpr mm::usize kMaxBatch = 64;
  const auto batch = static_cast<mm::usize>(state.range(0));
  if (batch == 0 || batch > kMaxBatch) {
    state.SkipWithError("batch size out of range");
    return;
  }
  std::array<mm::Pfn, kMaxBatch> frames{};
  const std::span<mm::Pfn> out(frames.data(), batch);
  mm::FreeStackAllocator& stack = world.allocator;
  for (auto _ : state) {
    const mm::FrameCount got = stack.allocate_batch(out, mm::FrameOwner::Anonymous);
    benchmark::DoNotOptimize(frames);
    if (got != batch) [[unlikely]] {
      state.SkipWithError("allocate_batch came back short");
      break;
    }
    const mm::Status freed = stack.free_batch(out);
    if (freed != mm::Status::Ok) [[unlikely]] {
      state.SkipWithError(failure("free_batch", freed).c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * static_cast<benchmark::IterationCount>(batch));
}
BENCHMARK(BM_FreeStack_Batch)->Arg(64);

}  // namespace
}  // namespace pagelab::bench
