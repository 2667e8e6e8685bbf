// The bitmap allocator (mm::BitmapAllocator): contiguous runs, first fit.
#include <benchmark/benchmark.h>

#include "fragmented_pool.hpp"

namespace pagelab::bench {
namespace {

// One allocate + free pair of a run of the argument's frame count per
// iteration. The argument is a power of two and the run is asked for
// naturally aligned (alignment = count), as a large-page backing or a buddy
// of the same order would be, with no address limit. First fit walks the
// fragmented three quarters of the pool before it finds room for the large
// runs; the free then gives the run back where it was found, so every
// iteration repeats the same search.
void BM_Bitmap_AllocContig(benchmark::State& state) {
  BitmapPool world;
  if (!world.ok()) {
    state.SkipWithError(world.error().c_str());
    return;
  }
  const auto frames = static_cast<mm::FrameCount>(state.range(0));
  if (!mm::is_power_of_two(frames)) {
    state.SkipWithError("frame count must be a power of two");
    return;
  }
  const mm::FrameRequest request{.count = frames, .alignment = frames, .owner = mm::FrameOwner::Anonymous};
  mm::BitmapAllocator& bitmap = world.allocator;
  for (auto _ : state) {
    mm::Result<mm::Pfn> run = bitmap.allocate(request);
    benchmark::DoNotOptimize(run);
    if (!run.ok()) [[unlikely]] {
      state.SkipWithError(failure("allocate", run.status()).c_str());
      break;
    }
    const mm::Status freed = bitmap.free(run.value(), frames);
    if (freed != mm::Status::Ok) [[unlikely]] {
      state.SkipWithError(failure("free", freed).c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Bitmap_AllocContig)->Arg(1)->Arg(8)->Arg(64)->Arg(512);

}  // namespace
}  // namespace pagelab::bench
