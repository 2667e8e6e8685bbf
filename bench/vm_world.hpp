// A private virtual-memory world for one run of a VM benchmark: frames with
// real RAM behind them, a buddy allocator put through the fragmented-pool
// recipe, mm::PhysicalMemory in front of it, and an mm::VmSystem (the shared
// zero frame and the region slabs). The VM core zeroes and copies frames, so
// unlike the allocator benchmarks' Pool (pool.hpp) this platform has RAM.
//
//   - RAM: kVmPoolFrames frames = 128 MiB, one buffer for the whole process
//     (vm_ram()), allocated 2 MiB aligned (std::aligned_alloc), advised to
//     use transparent huge pages as a kernel's direct map would, and written
//     once before any benchmark runs so no host page fault lands in a timed
//     part. Its contents carry over between runs and mean nothing: every frame
//     the core reads was zeroed (AllocFlags::Zero) or written first.
//   - Frames: a fresh frame table and BuddyAllocator per run (like Pool),
//     fragmented with kPoolSeed (fragmented_pool.hpp): about 50% of the
//     frames stay allocated in scattered blocks, so about 64 MiB is free and
//     the frames the core is handed are spread over the whole 128 MiB.
//   - PhysicalMemory: the default configuration (no reserve, no poisoning:
//     what the kernel runs with, minus its reserve), one CPU, the benchmark
//     thread bound to CPU 0. Single frames go through CPU 0's frame cache.
//
// Spaces come from new_space() and are destroyed (AddressSpace::destroy) when
// their SpacePtr goes; declare them after the world, so they go first.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "emu/host_platform.hpp"
#include "fragmented_pool.hpp"
#include "mm/paging/page_tables.hpp"
#include "mm/phys/buddy_allocator.hpp"
#include "mm/phys/frame_table.hpp"
#include "mm/phys/physical_memory.hpp"
#include "mm/vm/address_space.hpp"
#include "mm/vm/vm_system.hpp"

namespace pagelab::bench {

using HostMemory = mm::PhysicalMemory<HostPlatform>;
using HostVm = mm::VmSystem<HostPlatform>;
using HostSpace = mm::AddressSpace<HostPlatform>;
using HostTables = mm::PageTables<HostPlatform>;
using HostBatch = mm::TlbBatch<HostPlatform>;

// 32768 frames = 128 MiB of RAM, half of it free after the recipe.
inline constexpr mm::FrameCount kVmPoolFrames = 32768;
// The RAM's alignment: a 2 MiB huge page, so the whole buffer can be THP-backed.
inline constexpr mm::usize kVmRamAlignment = mm::usize{2} << 20;

// The process's RAM for every VmWorld, allocated and touched on first use.
inline std::span<std::byte> vm_ram() {
  struct Ram {
    Ram() : bytes(static_cast<std::byte*>(std::aligned_alloc(kVmRamAlignment, kVmPoolFrames * mm::kPageSize))) {
      if (bytes != nullptr) {
        // Best effort: without THP the buffer is simply 4 KiB-backed.
        (void)::madvise(bytes, kVmPoolFrames * mm::kPageSize, MADV_HUGEPAGE);
        std::memset(bytes, 0, kVmPoolFrames * mm::kPageSize);  // every host page present before timing
      }
    }
    ~Ram() { std::free(bytes); }
    std::byte* bytes;
  };
  static Ram ram;
  return ram.bytes == nullptr ? std::span<std::byte>() : std::span<std::byte>(ram.bytes, kVmPoolFrames * mm::kPageSize);
}

// AddressSpace::destroy, then delete: a space's destructor asserts it was destroyed.
struct SpaceDestroyer {
  void operator()(HostSpace* space) const {
    space->destroy();
    delete space;
  }
};
using SpacePtr = std::unique_ptr<HostSpace, SpaceDestroyer>;

class VmWorld {
 public:
  explicit VmWorld(mm::u64 seed = kPoolSeed)
      : ram_(vm_ram()),
        frames_(kVmPoolFrames),
        table_(kPoolBase, frames_),
        platform_(ram_, kPoolBase.address(), /*cpus=*/1),
        buddy_(table_),
        rng_(seed) {
    HostPlatform::bind_current_thread(0);
    if (ram_.empty()) {
      status_ = mm::Status::OutOfMemory;
      what_ = "allocating the RAM";
      return;
    }
    status_ = buddy_.add_free_range(table_.base(), table_.size());
    if (status_ == mm::Status::Ok) {
      status_ = fragment(BuddyOps{buddy_}, table_.size(), rng_, live_);
    }
    if (status_ != mm::Status::Ok) {
      what_ = "building the fragmented pool";
      return;
    }
    memory_.emplace(platform_, table_, buddy_, mm::PhysicalMemoryConfig{});
    vm_.emplace(platform_, *memory_);
    status_ = vm_->init();
    if (status_ != mm::Status::Ok) {
      what_ = "VmSystem::init";
      vm_.reset();
    }
  }
  ~VmWorld() {
    if (vm_) {
      vm_->shutdown();
    }
  }
  VmWorld(const VmWorld&) = delete;
  VmWorld& operator=(const VmWorld&) = delete;

  bool ok() const { return status_ == mm::Status::Ok; }
  std::string error() const { return failure(what_, status_); }

  HostPlatform& platform() { return platform_; }
  HostMemory& memory() { return *memory_; }
  HostVm& vm() { return *vm_; }

  // A fresh, initialized space, or null when its root table could not be allocated.
  SpacePtr new_space() {
    SpacePtr space(new HostSpace(*vm_));
    if (space->init() != mm::Status::Ok) {
      delete space.release();  // never initialized: nothing to destroy
    }
    return space;
  }

 private:
  std::span<std::byte> ram_;
  std::vector<mm::Frame> frames_;
  mm::FrameTable table_;
  HostPlatform platform_;
  mm::BuddyAllocator buddy_;
  std::mt19937_64 rng_;
  std::vector<LiveBlock> live_;  // left allocated: the world is thrown away whole
  std::optional<HostMemory> memory_;
  std::optional<HostVm> vm_;
  mm::Status status_ = mm::Status::Ok;
  const char* what_ = "";
};

// A private anonymous read-write region of `pages` pages at `address`,
// optionally populated (every page write-faulted in: a zeroed frame of its own).
inline mm::Status map_anonymous(HostSpace& space, mm::VirtAddr address, mm::u64 pages, bool populate) {
  return space.map(mm::MapRequest{.address = address,
                                  .length = pages * mm::kPageSize,
                                  .prot = mm::Prot::ReadWrite,
                                  .kind = mm::RegionKind::Anonymous,
                                  .fork = mm::ForkPolicy::Private,
                                  .populate = populate});
}

// The first address of the user-space page table the benchmarks work in:
// 1 GiB, so a run of up to 512 pages from here shares one page table (and
// the PD and PDPT above it).
inline constexpr mm::VirtAddr kVmBase{mm::u64{1} << 30};

}  // namespace pagelab::bench
