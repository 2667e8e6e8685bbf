// A private physical-memory world for one benchmark run: the Frame records of
// a frame table, the words of a bitmap allocator, and a HostPlatform. The
// benchmarks never touch frame contents (no zeroing, no poisoning), so the
// platform is given no RAM: its direct map is never called.
//
// Each benchmark builds its own pool (one per run of the benchmark function)
// and throws it away afterwards; nothing is shared between benchmarks except
// the per-CPU world of physical_memory_bench.cpp, which threads must share.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "emu/host_platform.hpp"
#include "mm/base/status.hpp"
#include "mm/phys/bitmap_allocator.hpp"
#include "mm/phys/frame_table.hpp"

namespace pagelab::bench {

// 65536 frames = 256 MiB, the smallest pool the benchmarks run on.
inline constexpr mm::FrameCount kPoolFrames = 65536;
// The pool's first frame: 1 GiB, aligned to the largest buddy order (2^18
// frames) so the pool's natural block structure is the same as a real
// zone's, and order-9 blocks are 2 MiB aligned physically, not only relative
// to the pool.
inline constexpr mm::Pfn kPoolBase{0x40000};
// CPUs of every pool's platform: the most benchmark threads ever started
// (ThreadRange(1, 16)); each thread binds itself to its thread index.
inline constexpr mm::u32 kPoolCpus = 16;

class Pool {
 public:
  explicit Pool(mm::FrameCount frames = kPoolFrames, mm::Pfn base = kPoolBase, mm::u32 cpus = kPoolCpus)
      : frames_(frames),
        bitmap_words_(mm::BitmapAllocator::words_for(frames)),
        table_(base, frames_),
        platform_(std::span<std::byte>(), base.address(), cpus) {}

  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  mm::FrameTable& table() { return table_; }
  HostPlatform& platform() { return platform_; }
  // Storage for one BitmapAllocator over table().
  std::span<mm::u64> bitmap_words() { return bitmap_words_; }
  mm::Pfn base() const { return table_.base(); }
  mm::FrameCount size() const { return table_.size(); }

 private:
  std::vector<mm::Frame> frames_;
  std::vector<mm::u64> bitmap_words_;
  mm::FrameTable table_;
  HostPlatform platform_;
};

// Keeping results alive: the benchmarks pass the Result of each allocation
// (16 bytes) to benchmark::DoNotOptimize, and test each free's Status in a
// branch that skips the benchmark on failure, which keeps the call just as
// well. A Status itself (1 byte) is not passed: for values of at most 8 bytes,
// Google Benchmark 1.7's GCC variant uses an in-out "+m,r" asm operand, and
// GCC 12 with -fsanitize=address then tests a stale copy of the value after
// the asm (the free succeeded, the branch saw garbage).
//
// The message a benchmark skips with when a call fails: what failed and the
// status it returned ("free_order: ENOENT (...)").
inline std::string failure(const char* what, mm::Status status) {
  return std::string(what) + ": " + mm::errno_name(status) + " (" + mm::describe(status) + ")";
}

}  // namespace pagelab::bench
