// Whole address-space operations (mm::AddressSpace): fork, protect, and a
// populated map + unmap, each under the space's lock with its regions, page
// tables, frames and TLB batch.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <vector>

#include "vm_world.hpp"

namespace pagelab::bench {
namespace {

// Forks timed between two pauses of the timer: enough that the pause's own
// cost is spread thin, few enough that the parents' pages and the frames
// fork commits for them (one per page) fit in the pool's free half.
constexpr mm::u64 kForkPagesPerPause = 4096;
constexpr mm::u64 kMaxForksPerPause = 256;

// One AddressSpace::fork per iteration, of a space with `pages` touched
// private anonymous pages (one read-write region at kVmBase, every page
// write-faulted in: a frame of its own, writable) into a fresh, initialized,
// empty child. Timed: the whole fork: counting the frames to share, the
// commitment of one frame each, the child's region copies, and the walk that
// write-protects each parent leaf (pte::kCopyOnWrite, a TLB request: a full
// flush past 32 pages), takes a frame reference and stores the child's leaf,
// creating the child's page tables on the way (zeroed frames).
//
// A parent forks only once between pauses, so there are several parent and
// child pairs (forks_per_pause = 4096 / pages, between 1 and 256), forked one
// per iteration. When all have forked, the timer pauses while, for each
// pair, the child is destroyed (its references and commitments go), every
// parent page is written again (the frame is unshared, so the write takes it
// back writable without a copy: every fork starts from the same all-writable
// parent, as one would after the parent ran), and a new child is created and
// initialized (its root table). None of that is timed.
void BM_Fork(benchmark::State& state) {
  VmWorld world;
  if (!world.ok()) {
    state.SkipWithError(world.error().c_str());
    return;
  }
  const auto pages = static_cast<mm::u64>(state.range(0));
  const mm::u64 per_pause = std::clamp<mm::u64>(kForkPagesPerPause / pages, 1, kMaxForksPerPause);
  std::vector<SpacePtr> parents;
  std::vector<SpacePtr> children;
  for (mm::u64 i = 0; i < per_pause; ++i) {
    parents.push_back(world.new_space());
    children.push_back(world.new_space());
    if (parents.back() == nullptr || children.back() == nullptr) {
      state.SkipWithError("AddressSpace::init failed");
      return;
    }
    const mm::Status mapped = map_anonymous(*parents.back(), kVmBase, pages, /*populate=*/true);
    if (mapped != mm::Status::Ok) {
      state.SkipWithError(failure("mapping a parent's region", mapped).c_str());
      return;
    }
  }
  mm::u64 next = 0;
  for (auto _ : state) {
    if (next == per_pause) [[unlikely]] {
      state.PauseTiming();
      bool rewritten = true;
      for (mm::u64 i = 0; i < per_pause; ++i) {
        children[i].reset();
        for (mm::u64 page = 0; page < pages; ++page) {
          rewritten = rewritten && parents[i]->handle_fault(kVmBase + page * mm::kPageSize, mm::Access::Write,
                                                            mm::AccessMode::User) == mm::FaultOutcome::MapBacking;
        }
        children[i] = world.new_space();
        rewritten = rewritten && children[i] != nullptr;
      }
      next = 0;
      state.ResumeTiming();
      if (!rewritten) [[unlikely]] {
        state.SkipWithError("resetting the parents and children failed");
        break;
      }
    }
    const mm::Status forked = parents[next]->fork(*children[next]);
    if (forked != mm::Status::Ok) [[unlikely]] {
      state.SkipWithError(failure("fork", forked).c_str());
      break;
    }
    ++next;
  }
  state.SetItemsProcessed(state.iterations() * static_cast<benchmark::IterationCount>(pages));
  state.counters["forks_per_pause"] = static_cast<double>(per_pause);
}
BENCHMARK(BM_Fork)->Arg(1)->Arg(1000)->Arg(4000);

// A fresh, initialized space of `world`; null, with the benchmark skipped
// and the reason given, when the world or the space could not be made.
SpacePtr ready_space(benchmark::State& state, VmWorld& world) {
  if (!world.ok()) {
    state.SkipWithError(world.error().c_str());
    return nullptr;
  }
  SpacePtr space = world.new_space();
  if (space == nullptr) state.SkipWithError("AddressSpace::init failed");
  return space;
}

// One AddressSpace::protect of `pages` populated pages per iteration,
// alternating Prot::Read and Prot::ReadWrite so every call rewrites every
// leaf (and requests its invalidation: INVLPG one by one up to 32 pages, a
// full flush past that). The range is exactly one region (at kVmBase, every
// page write-faulted in), so no region is split or merged: this is the
// page-table walk and the leaf rewrite, plus the fixed cost of the call
// (lock, coverage check, two spare region objects reserved and returned).
void BM_Protect(benchmark::State& state) {
  VmWorld world;
  const auto pages = static_cast<mm::u64>(state.range(0));
  SpacePtr space = ready_space(state, world);
  if (space == nullptr) return;
  const mm::Status mapped = map_anonymous(*space, kVmBase, pages, /*populate=*/true);
  if (mapped != mm::Status::Ok) {
    state.SkipWithError(failure("mapping the region", mapped).c_str());
    return;
  }
  bool writable = true;
  for (auto _ : state) {
    writable = !writable;
    const mm::Status changed =
        space->protect(kVmBase, pages * mm::kPageSize, writable ? mm::Prot::ReadWrite : mm::Prot::Read);
    if (changed != mm::Status::Ok) [[unlikely]] {
      state.SkipWithError(failure("protect", changed).c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * static_cast<benchmark::IterationCount>(pages));
}
BENCHMARK(BM_Protect)->Arg(1)->Arg(64)->Arg(1000);

// The timed loop of both map-and-unmap benchmarks below: a populated
// private anonymous region of `pages` pages at `va` mapped, then unmapped.
void map_populate_unmap_loop(benchmark::State& state, HostSpace& space, mm::VirtAddr va, mm::u64 pages) {
  for (auto _ : state) {
    const mm::Status mapped = map_anonymous(space, va, pages, /*populate=*/true);
    if (mapped != mm::Status::Ok) [[unlikely]] {
      state.SkipWithError(failure("map", mapped).c_str());
      break;
    }
    const mm::Status unmapped = space.unmap(va, pages * mm::kPageSize);
    if (unmapped != mm::Status::Ok) [[unlikely]] {
      state.SkipWithError(failure("unmap", unmapped).c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * static_cast<benchmark::IterationCount>(pages));
}

// One AddressSpace::map with populate of `pages` private anonymous
// read-write pages, then AddressSpace::unmap of them, per iteration: the
// address-space-level counterpart of BM_Map_Unmap. map takes a region object
// from the slab and inserts it; populate write-faults every page (a frame
// from CPU 0's cache, zeroed, and its leaf); unmap takes two spare region
// objects, removes the region, clears the leaves into a TLB batch, and the
// batch's flush frees the frames back to the cache. A read-only neighbour
// region at kVmBase (its page maps the shared zero frame) keeps the page
// table alive and, having another protection, never merges with the region.
void BM_AddressSpace_MapPopulateUnmap(benchmark::State& state) {
  const auto pages = static_cast<mm::u64>(state.range(0));
  if (pages == 0 || pages >= mm::kEntriesPerTable) {
    state.SkipWithError("page count out of range: the region and its neighbour must share one page table");
    return;
  }
  VmWorld world;
  SpacePtr space = ready_space(state, world);
  if (space == nullptr) return;
  const mm::Status neighbour = space->map(mm::MapRequest{
      .address = kVmBase, .length = mm::kPageSize, .prot = mm::Prot::Read, .populate = true});
  if (neighbour != mm::Status::Ok) {
    state.SkipWithError(failure("mapping the neighbour", neighbour).c_str());
    return;
  }
  map_populate_unmap_loop(state, *space, kVmBase + mm::kPageSize, pages);
}
BENCHMARK(BM_AddressSpace_MapPopulateUnmap)->Arg(1)->Arg(64);

// The same map with populate and unmap, with nothing else in the space, at
// an address whose top-level slot is otherwise empty (kTablesBase, 3 TiB):
// each iteration's first fault allocates and zeroes a page-directory-pointer
// table, a page directory and a page table (three frames from CPU 0's
// cache), and the unmap finds them empty and gives them back through the
// TLB batch, after its shootdown. This is map and unmap as a program that
// maps a fresh area and later unmaps all of it pays: regions, frames, page
// tables allocated and reclaimed. The counter table_frames_after says the
// tables went (1: the root alone).
void BM_AddressSpace_MapUnmapTables(benchmark::State& state) {
  VmWorld world;
  const auto pages = static_cast<mm::u64>(state.range(0));
  SpacePtr space = ready_space(state, world);
  if (space == nullptr) return;
  constexpr mm::VirtAddr kTablesBase{mm::u64{3} << 40};
  map_populate_unmap_loop(state, *space, kTablesBase, pages);
  state.counters["table_frames_after"] = static_cast<double>(space->stats().table_frames);
}
BENCHMARK(BM_AddressSpace_MapUnmapTables)->Arg(1)->Arg(64);

}  // namespace
}  // namespace pagelab::bench
