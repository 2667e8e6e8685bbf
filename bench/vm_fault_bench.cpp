// The page-fault path (AddressSpace::handle_fault): one fault per iteration,
// each on a page no earlier iteration touched.
//
// A fault changes the page it resolves, so its page must be put back (unmapped
// and mapped again, or shared again by a new fork) before it can be timed
// again. That reset costs more than the fault and must not be timed, and
// PauseTiming/ResumeTiming cost a few hundred nanoseconds themselves (they
// read the process CPU clock, a system call), part of which lands inside the
// timed interval. So each benchmark prepares a batch of kFaultBatch fresh
// pages at once, times one fault per iteration, and pauses only when the
// batch is used up: the pause's share of an iteration is its cost divided by
// kFaultBatch (about 1 ns here; see docs/BENCHMARKS.md).
#include <benchmark/benchmark.h>

#include "vm_world.hpp"

namespace pagelab::bench {
namespace {

// Pages faulted between two resets: a page table's worth, less the page that
// keeps the table alive.
constexpr mm::u64 kFaultBatch = mm::kEntriesPerTable - 1;

mm::VirtAddr page_at(mm::VirtAddr first, mm::u64 index) { return first + index * mm::kPageSize; }

// One demand-zero write fault per iteration: handle_fault(va, Write, User) on
// a page of a private anonymous read-write region that nothing maps yet. It
// finds the region, walks the page tables, allocates a frame through CPU 0's
// cache, zeroes it (4 KiB, AllocFlags::Zero), stores the leaf, and counts the
// fault; FaultOutcome::MapBacking is checked every time.
//
// The region is 512 pages, one page table, at kVmBase. Page 0 is faulted in
// before the loop and stays: it keeps the page table alive, so no fault
// allocates a table. The other 511 are the batch. When they are used up, the
// timer pauses while pages 1..511 are unmapped (their frames go back through
// the TLB batch to the cache and the buddy allocator) and mapped again
// untouched (the region merges back into one), then resumes.
//
// The frames come back in LIFO order, so the batch's 2 MiB of frames is
// recycled: the memory a fault zeroes was last written about 511 faults ago
// and is in the L2 or L3 cache, not in L1 and not only in DRAM.
void BM_DemandZeroFault(benchmark::State& state) {
  VmWorld world;
  if (!world.ok()) {
    state.SkipWithError(world.error().c_str());
    return;
  }
  SpacePtr space = world.new_space();
  if (space == nullptr) {
    state.SkipWithError("AddressSpace::init failed");
    return;
  }
  const mm::VirtAddr first = page_at(kVmBase, 1);
  mm::Status status = map_anonymous(*space, kVmBase, kFaultBatch + 1, /*populate=*/false);
  if (status == mm::Status::Ok &&
      space->handle_fault(kVmBase, mm::Access::Write, mm::AccessMode::User) != mm::FaultOutcome::MapBacking) {
    status = mm::Status::OutOfMemory;
  }
  if (status != mm::Status::Ok) {
    state.SkipWithError(failure("mapping the region", status).c_str());
    return;
  }
  mm::u64 next = 0;
  for (auto _ : state) {
    if (next == kFaultBatch) [[unlikely]] {
      state.PauseTiming();
      status = space->unmap(first, kFaultBatch * mm::kPageSize);
      if (status == mm::Status::Ok) {
        status = map_anonymous(*space, first, kFaultBatch, /*populate=*/false);
      }
      next = 0;
      state.ResumeTiming();
      if (status != mm::Status::Ok) {
        state.SkipWithError(failure("resetting the batch", status).c_str());
        break;
      }
    }
    const mm::FaultOutcome outcome = space->handle_fault(page_at(first, next), mm::Access::Write, mm::AccessMode::User);
    if (outcome != mm::FaultOutcome::MapBacking) [[unlikely]] {
      state.SkipWithError((std::string("handle_fault: ") + mm::fault_outcome_name(outcome)).c_str());
      break;
    }
    ++next;
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["batch"] = static_cast<double>(kFaultBatch);
}
BENCHMARK(BM_DemandZeroFault);

// One copy-on-write write fault per iteration: handle_fault(va, Write, User)
// on a page whose frame the space shares with a forked child (refcount 2,
// read-only, pte::kCopyOnWrite in both). It finds the region and the leaf,
// allocates a frame through CPU 0's cache, copies the 4 KiB, stores the new
// writable leaf (an INVLPG request for the old one), drops the old frame's
// reference and gives back the commitment fork made for it;
// FaultOutcome::CopyBacking is checked every time.
//
// The parent's region is 511 populated pages at kVmBase (one page table,
// which the parent's own pages keep alive). The batch is all 511 pages, made
// copy-on-write by one fork into a fresh child. When they are used up, the
// timer pauses while that child is destroyed (its references, and the old
// frames with them, go) and a new child is forked, then resumes.
void BM_CowFault(benchmark::State& state) {
  VmWorld world;
  if (!world.ok()) {
    state.SkipWithError(world.error().c_str());
    return;
  }
  SpacePtr parent = world.new_space();
  SpacePtr child = world.new_space();
  if (parent == nullptr || child == nullptr) {
    state.SkipWithError("AddressSpace::init failed");
    return;
  }
  mm::Status status = map_anonymous(*parent, kVmBase, kFaultBatch, /*populate=*/true);
  if (status == mm::Status::Ok) {
    status = parent->fork(*child);
  }
  if (status != mm::Status::Ok) {
    state.SkipWithError(failure("mapping and forking the region", status).c_str());
    return;
  }
  mm::u64 next = 0;
  for (auto _ : state) {
    if (next == kFaultBatch) [[unlikely]] {
      state.PauseTiming();
      child.reset();
      child = world.new_space();
      status = child == nullptr ? mm::Status::OutOfMemory : parent->fork(*child);
      next = 0;
      state.ResumeTiming();
      if (status != mm::Status::Ok) {
        state.SkipWithError(failure("forking a new child", status).c_str());
        break;
      }
    }
    const mm::FaultOutcome outcome = parent->handle_fault(page_at(kVmBase, next), mm::Access::Write, mm::AccessMode::User);
    if (outcome != mm::FaultOutcome::CopyBacking) [[unlikely]] {
      state.SkipWithError((std::string("handle_fault: ") + mm::fault_outcome_name(outcome)).c_str());
      break;
    }
    ++next;
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["batch"] = static_cast<double>(kFaultBatch);
}
BENCHMARK(BM_CowFault);

}  // namespace
}  // namespace pagelab::bench
