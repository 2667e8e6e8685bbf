// mm::PhysicalMemory over the hosted platform: the per-CPU frame cache fast
// path that every single-frame allocation of the core goes through.
#include <benchmark/benchmark.h>

#include <optional>

#include "fragmented_pool.hpp"
#include "mm/phys/physical_memory.hpp"

namespace pagelab::bench {
namespace {

using HostPhysicalMemory = mm::PhysicalMemory<HostPlatform>;

// One PhysicalMemory for every run of BM_PerCpuCache_AllocFree, single- and
// multi-threaded: the threads of a run must share it, and building it once
// (a function-local static, so its construction is thread-safe) spares a
// barrier between thread 0's setup and the others. Its backing buddy
// allocator went through the fragmented-pool recipe before the
// PhysicalMemory was put in front of it. Between runs only the per-CPU
// caches carry over (at most cache_high frames each), which changes nothing
// a pair measures.
struct PerCpuWorld {
  PerCpuWorld() {
    if (buddy.ok()) {
      memory.emplace(buddy.pool.platform(), buddy.pool.table(), buddy.allocator, mm::PhysicalMemoryConfig{});
    }
  }

  BuddyPool buddy;
  std::optional<HostPhysicalMemory> memory;
};

PerCpuWorld& per_cpu_world() {
  static PerCpuWorld world;
  return world;
}

// One allocate_frame + free_frame pair per iteration on the calling thread's
// CPU. After the first refill the pair never leaves this CPU's cache: the
// frame freed is the frame allocated next. Time is CPU time per pair per
// thread; with N threads each binds itself to CPU thread_index(), so their
// caches (and cache locks) are disjoint and the per-thread cost should not
// grow with N.
void BM_PerCpuCache_AllocFree(benchmark::State& state) {
  PerCpuWorld& world = per_cpu_world();
  if (!world.memory) {
    state.SkipWithError(world.buddy.error().c_str());
    return;
  }
  if (static_cast<mm::u32>(state.threads()) > world.buddy.pool.platform().cpu_count()) {
    state.SkipWithError("more benchmark threads than the platform has CPUs");
    return;
  }
  HostPlatform::bind_current_thread(static_cast<mm::CpuId>(state.thread_index()));
  HostPhysicalMemory& memory = *world.memory;
  for (auto _ : state) {
    mm::Result<mm::PhysAddr> frame = memory.allocate_frame(mm::FrameOwner::Anonymous);
    benchmark::DoNotOptimize(frame);
    if (!frame.ok()) [[unlikely]] {
      state.SkipWithError(failure("allocate_frame", frame.status()).c_str());
      break;
    }
    const mm::Status freed = memory.free_frame(frame.value());
    if (freed != mm::Status::Ok) [[unlikely]] {
      state.SkipWithError(failure("free_frame", freed).c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PerCpuCache_AllocFree);
BENCHMARK(BM_PerCpuCache_AllocFree)->ThreadRange(1, static_cast<int>(kPoolCpus));

}  // namespace
}  // namespace pagelab::bench
