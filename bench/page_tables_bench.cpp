// The page-table mapper (mm::PageTables) on its own: mapping and unmapping
// 4 KiB pages, with no address space, region or frame allocation around it.
#include <benchmark/benchmark.h>

#include "vm_world.hpp"

namespace pagelab::bench {
namespace {

// One map + unmap round trip of `pages` 4 KiB pages per iteration:
// PageTables::map of the pages to consecutive frames (user, read-write),
// then PageTables::unmap of the same range into a TlbBatch and the batch's
// flush (one INVLPG request per page up to 32 pages, a full flush past that;
// HostPlatform only counts them). The frames are a run allocated once,
// outside the loop (one 512-frame block): mapping at this level takes frames, it does not allocate
// them.
//
// A neighbour page, mapped once before the loop at the first slot of the same
// page table, keeps the page table (and the PD and PDPT above it) alive, so
// no iteration allocates, zeroes or frees a page-table page: this is the
// steady-state cost of changing leaves in existing tables.
void BM_Map_Unmap(benchmark::State& state) {
  VmWorld world;
  if (!world.ok()) {
    state.SkipWithError(world.error().c_str());
    return;
  }
  const auto pages = static_cast<mm::u64>(state.range(0));
  if (pages == 0 || pages >= mm::kEntriesPerTable) {
    state.SkipWithError("page count out of range: the run and its neighbour must share one page table");
    return;
  }
  const mm::u64 attributes = mm::leaf_attributes(mm::Prot::ReadWrite, /*user=*/true);
  // One buddy block (a power of two) large enough for any run this benchmark maps.
  constexpr mm::FrameCount kRunFrames = mm::kEntriesPerTable;
  const mm::Result<mm::PhysAddr> frames = world.memory().allocate_run(
      mm::FrameRequest{.count = kRunFrames, .alignment = 1, .owner = mm::FrameOwner::Anonymous});
  if (!frames.ok()) {
    state.SkipWithError(failure("allocate_run", frames.status()).c_str());
    return;
  }
  HostTables tables(world.platform(), world.memory());
  mm::Status status = tables.create();
  const mm::VirtAddr neighbour = kVmBase;
  const mm::VirtAddr va = kVmBase + mm::kPageSize;
  if (status == mm::Status::Ok) {
    status = tables.map(neighbour, frames.value(), 1, mm::PageSize::Size4K, attributes);
  }
  if (status != mm::Status::Ok) {
    state.SkipWithError(failure("setting up the page tables", status).c_str());
  } else {
    for (auto _ : state) {
      const mm::Status mapped = tables.map(va, frames.value(), pages, mm::PageSize::Size4K, attributes);
      if (mapped != mm::Status::Ok) [[unlikely]] {
        state.SkipWithError(failure("map", mapped).c_str());
        break;
      }
      HostBatch batch(world.platform(), world.memory());
      const mm::Status unmapped = tables.unmap(va, pages * mm::kPageSize, batch, [](mm::VirtAddr, mm::Pte, mm::PageSize) {});
      batch.flush();
      if (unmapped != mm::Status::Ok) [[unlikely]] {
        state.SkipWithError(failure("unmap", unmapped).c_str());
        break;
      }
    }
    state.SetItemsProcessed(state.iterations() * static_cast<benchmark::IterationCount>(pages));
    state.counters["table_frames"] = static_cast<double>(tables.table_frames());
  }
  HostBatch teardown(world.platform(), world.memory());
  if (tables.root().value() != 0) {
    const mm::Status unmapped = tables.unmap(mm::VirtAddr(0), mm::kUserSpaceEnd, teardown, [](mm::VirtAddr, mm::Pte, mm::PageSize) {});
    MM_ASSERT(unmapped == mm::Status::Ok);
    tables.destroy(teardown);
  }
  teardown.flush();
  (void)world.memory().free_run(frames.value(), kRunFrames);
}
BENCHMARK(BM_Map_Unmap)->Arg(1)->Arg(64)->Arg(511);

}  // namespace
}  // namespace pagelab::bench
