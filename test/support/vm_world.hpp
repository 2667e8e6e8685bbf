// A private virtual-memory world for one test: RAM, a buddy allocator,
// PhysicalMemory with poisoning on, a VmSystem, and helpers to make spaces
// and to check a space's page tables with the independent walker.
#pragma once

#include <cstring>
#include <memory>

#include "mm/phys/buddy_allocator.hpp"
#include "mm/vm/address_space.hpp"
#include "support/frame_pool.hpp"
#include "support/reference_walker.hpp"

namespace pagelab::test {

using Space = mm::AddressSpace<HostPlatform>;
using Vm = mm::VmSystem<HostPlatform>;
using Pmm = mm::PhysicalMemory<HostPlatform>;

class VmWorld {
 public:
  explicit VmWorld(mm::FrameCount frames = 4096, mm::PhysicalMemoryConfig config = {.poison_freed = true})
      : pool_(frames, mm::Pfn(0x1000), 1, /*with_ram=*/true), buddy_(pool_.table()) {
    HostPlatform::bind_current_thread(0);
    MM_ASSERT(buddy_.add_free_range(pool_.base(), frames) == mm::Status::Ok);
    pmm_ = std::make_unique<Pmm>(pool_.platform(), pool_.table(), buddy_, config);
    vm_ = std::make_unique<Vm>(pool_.platform(), *pmm_);
    MM_ASSERT(vm_->init() == mm::Status::Ok);
  }
  ~VmWorld() { vm_->shutdown(); }

  std::unique_ptr<Space> new_space() {
    auto space = std::make_unique<Space>(*vm_);
    MM_ASSERT(space->init() == mm::Status::Ok);
    return space;
  }

  // Free frames, caches included: the figure a leak check compares.
  mm::FrameCount free_frames() {
    pmm_->drain_all_caches();
    return buddy_.free_frames();
  }

  WalkResult walk(Space& space, mm::u64 va) {
    return reference_walk(space.root().value(), va, [&](mm::u64 pa) {
      mm::u64 v;
      std::memcpy(&v, pool_.platform().direct_map(mm::PhysAddr(pa)), 8);
      return v;
    });
  }
  // The 64-bit value at a physical address.
  mm::u64 load(mm::u64 physical) {
    mm::u64 v;
    std::memcpy(&v, pool_.platform().direct_map(mm::PhysAddr(physical)), 8);
    return v;
  }

  FramePool& pool() { return pool_; }
  Pmm& pmm() { return *pmm_; }
  Vm& vm() { return *vm_; }
  mm::BuddyAllocator& buddy() { return buddy_; }

 private:
  FramePool pool_;
  mm::BuddyAllocator buddy_;
  std::unique_ptr<Pmm> pmm_;
  std::unique_ptr<Vm> vm_;
};

}  // namespace pagelab::test
