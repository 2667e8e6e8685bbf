// A private physical-memory world for one test: a frame table, the RAM its
// frames stand for, and a HostPlatform over that RAM. Never shared between
// tests.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "emu/host_platform.hpp"
#include "mm/phys/frame_table.hpp"

namespace pagelab::test {

class FramePool {
 public:
  // `frames` frames starting at frame number `base`, on `cpus` CPUs.
  // Frame contents are backed only when `with_ram` (poisoning, zeroing).
  explicit FramePool(mm::FrameCount frames, mm::Pfn base = mm::Pfn(0x100), mm::u32 cpus = 1,
                     bool with_ram = false)
      : storage_(frames),
        ram_(with_ram ? static_cast<std::byte*>(std::aligned_alloc(mm::kPageSize, frames * mm::kPageSize)) : nullptr),
        table_(base, storage_),
        platform_(std::span<std::byte>(ram_.get(), with_ram ? frames * mm::kPageSize : 0), base.address(), cpus) {
    if (ram_) {
      std::memset(ram_.get(), 0, frames * mm::kPageSize);  // RAM starts as zeros, so tests are repeatable
    }
  }

  mm::FrameTable& table() { return table_; }
  HostPlatform& platform() { return platform_; }
  mm::Pfn base() const { return table_.base(); }
  mm::Pfn end() const { return table_.end(); }
  std::byte* ram(mm::Pfn pfn) { return platform_.direct_map(pfn.address()); }

 private:
  struct FreeRam {
    void operator()(std::byte* p) const { std::free(p); }
  };

  std::vector<mm::Frame> storage_;
  std::unique_ptr<std::byte, FreeRam> ram_;  // page-aligned, as a direct map is
  mm::FrameTable table_;
  HostPlatform platform_;
};

}  // namespace pagelab::test
