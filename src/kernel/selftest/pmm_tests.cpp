// Self-tests of the physical-memory core on real RAM: the allocators over
// frames of the real memory map, the per-CPU caches used from every CPU at
// once, and the reserve and watermarks.
#include <new>

#include "boot/memory_setup.hpp"
#include "mm/phys/bitmap_allocator.hpp"
#include "mm/phys/buddy_allocator.hpp"
#include "mm/phys/free_stack_allocator.hpp"
#include "selftest/selftest.hpp"
#include "smp/smp.hpp"

namespace kernel {

namespace {

KernelPmm& pmm() { return *kernel_memory.pmm; }

mm::u64* words_of(mm::Pfn pfn) {
  return reinterpret_cast<mm::u64*>(kernel_platform.direct_map(pfn.address()));
}

bool map_and_totals_agree() {
  const mm::MemoryMap& map = kernel_memory.map;
  for (const mm::MemoryRange& r : map.ranges()) {
    KCHECK(r.base.is_page_aligned() && (r.length & mm::kPageMask) == 0);
    KCHECK(r.kind != mm::MemoryKind::Free || r.base.value() >= mm::kLowMemoryEnd);
  }
  const mm::PhysicalMemoryStats s = pmm().stats();
  KCHECK(s.total == map.frames_of(mm::MemoryKind::Free));
  KCHECK(s.free <= s.total);
  KCHECK(!kernel_memory.table->contains(mm::Pfn(0)) ||
         (*kernel_memory.table)[mm::Pfn(0)].state == mm::FrameState::Reserved);
  return true;
}

// A private frame table over frames borrowed from the real PMM.
constexpr mm::FrameCount kPoolFrames = 2048;
constexpr mm::FrameCount kWindowFrames = 8192;
mm::Frame pool_records[kWindowFrames];
mm::u64 pool_bits[mm::BitmapAllocator::words_for(kWindowFrames)];
mm::PhysAddr borrowed[kPoolFrames];
alignas(mm::FrameTable) mm::u8 pool_table_storage[sizeof(mm::FrameTable)];

enum class Kind { Stack, Bitmap, Buddy };

template <typename Allocator>
bool exercise(mm::FrameTable& table, Allocator& allocator, mm::FrameCount donated, Kind kind) {
  const mm::FreeBlockCounts initial = allocator.free_blocks();
  struct Live {
    mm::Pfn pfn;
    mm::FrameCount count;
  };
  static Live live[kPoolFrames];
  mm::usize n = 0;
  for (mm::u32 i = 0;; ++i) {
    const mm::FrameCount count = kind == Kind::Stack ? 1 : mm::FrameCount{1} << (i % 4);
    const mm::Result<mm::Pfn> got = allocator.allocate({.count = count, .alignment = kind == Kind::Buddy ? count : 1});
    if (!got.ok()) {
      KCHECK(got.status() == mm::Status::OutOfMemory);
      if (count == 1) break;
      continue;
    }
    KCHECK(n < kPoolFrames);
    live[n++] = {got.value(), count};
    for (mm::FrameCount f = 0; f < count; ++f) {
      mm::u64* words = words_of(got.value() + f);
      words[0] = (got.value() + f).value();
      words[mm::kPageSize / 8 - 1] = ~(got.value() + f).value();
    }
  }
  mm::FrameCount held = 0;
  for (mm::usize i = 0; i < n; ++i) {
    for (mm::FrameCount f = 0; f < live[i].count; ++f) {
      const mm::u64* words = words_of(live[i].pfn + f);
      KCHECK(words[0] == (live[i].pfn + f).value());  // nobody else got this frame
      KCHECK(words[mm::kPageSize / 8 - 1] == ~(live[i].pfn + f).value());
    }
    held += live[i].count;
  }
  KCHECK(held == donated);
  for (mm::usize i = 0; i < n; ++i) {
    KCHECK(allocator.free(live[i].pfn, live[i].count) == mm::Status::Ok);
  }
  KCHECK(allocator.free(live[0].pfn, live[0].count) == mm::Status::NotFound);  // double free
  KCHECK(allocator.free_frames() == donated);
  const mm::FreeBlockCounts after = allocator.free_blocks();
  for (mm::u32 k = 0; k < mm::kOrderCount; ++k) {
    KCHECK(after.blocks[k] == initial.blocks[k]);
  }
  (void)table;
  return true;
}

bool allocator_over_real_frames(Kind kind) {
  // One contiguous run where the PMM can give it (buddy, bitmap); single
  // frames from a free-stack PMM, which hands out the lowest first.
  mm::FrameCount got = 0;
  const mm::Result<mm::PhysAddr> run = pmm().allocate_run({.count = kPoolFrames, .alignment = 1});
  if (run.ok()) {
    for (mm::FrameCount i = 0; i < kPoolFrames; ++i) borrowed[i] = run.value() + i * mm::kPageSize;
    got = kPoolFrames;
  } else {
    got = pmm().allocate_batch(borrowed, mm::FrameOwner::Kernel);
  }
  KCHECK(got > 0);
  mm::Pfn low = mm::Pfn::containing(borrowed[0]), high = low;
  for (mm::FrameCount i = 0; i < got; ++i) {
    const mm::Pfn p = mm::Pfn::containing(borrowed[i]);
    low = p < low ? p : low;
    high = p > high ? p : high;
  }
  bool ok = high - low < kWindowFrames;
  if (!ok) {
    kprintf("    borrowed frames span %lu frames, more than the test window\n", high - low + 1);
  }
  if (ok) {
    auto* table = new (pool_table_storage) mm::FrameTable(low, {pool_records, high - low + 1});
    alignas(mm::BuddyAllocator) static mm::u8 storage[sizeof(mm::BitmapAllocator) + sizeof(mm::BuddyAllocator)];
    auto seed_and_exercise = [&](auto& allocator) {
      for (mm::FrameCount i = 0; i < got; ++i) {
        if (allocator.add_free_range(mm::Pfn::containing(borrowed[i]), 1) != mm::Status::Ok) return false;
      }
      return exercise(*table, allocator, got, kind);
    };
    switch (kind) {
      case Kind::Stack: ok = seed_and_exercise(*new (storage) mm::FreeStackAllocator(*table)); break;
      case Kind::Bitmap: ok = seed_and_exercise(*new (storage) mm::BitmapAllocator(*table, pool_bits)); break;
      case Kind::Buddy: ok = seed_and_exercise(*new (storage) mm::BuddyAllocator(*table)); break;
    }
  }
  if (run.ok()) {
    KCHECK(pmm().free_run(run.value(), kPoolFrames) == mm::Status::Ok);
  } else {
    KCHECK(pmm().free_batch({borrowed, got}) == mm::Status::Ok);
  }
  return ok;
}

bool stack_over_real_frames() { return allocator_over_real_frames(Kind::Stack); }
bool bitmap_over_real_frames() { return allocator_over_real_frames(Kind::Bitmap); }
bool buddy_over_real_frames() { return allocator_over_real_frames(Kind::Buddy); }

// Every CPU at once: allocate through its cache, claim the frame's metadata
// tag and memory, check nobody else did, free.
struct CacheStress {
  mm::Atomic<mm::u64> violations{0};
  mm::Atomic<mm::u64> out_of_memory{0};
  mm::Atomic<mm::u64> operations{0};
};
CacheStress cache_stress;

void cache_stress_on_this_cpu(void*) {
  constexpr int kIterations = 3000;
  constexpr int kHold = 16;
  const mm::u64 tag = 0xC0DE000000000000ull | (mm::u64{current_cpu_index()} << 32);
  mm::PhysAddr held[kHold];
  int count = 0;
  mm::u64 seed = tag | 1;
  for (int i = 0; i < kIterations; ++i) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    const bool allocate = count == 0 || (count < kHold && (seed >> 33) % 3 != 0);
    if (allocate) {
      const mm::Result<mm::PhysAddr> r = pmm().allocate_frame(mm::FrameOwner::Anonymous);
      if (!r.ok()) {
        cache_stress.out_of_memory.fetch_add(1);
        continue;
      }
      mm::Frame& frame = (*kernel_memory.table)[mm::Pfn::containing(r.value())];
      if (__atomic_exchange_n(&frame.owner_data, tag | static_cast<mm::u64>(i), __ATOMIC_ACQ_REL) != 0) {
        cache_stress.violations.fetch_add(1);
      }
      *words_of(mm::Pfn::containing(r.value())) = tag | static_cast<mm::u64>(i);
      held[count++] = r.value();
    } else {
      const mm::PhysAddr a = held[--count];
      mm::Frame& frame = (*kernel_memory.table)[mm::Pfn::containing(a)];
      const mm::u64 mine = __atomic_exchange_n(&frame.owner_data, 0, __ATOMIC_ACQ_REL);
      if ((mine >> 32) != (tag >> 32) || *words_of(mm::Pfn::containing(a)) != mine) {
        cache_stress.violations.fetch_add(1);
      }
      if (pmm().free_frame(a) != mm::Status::Ok) {
        cache_stress.violations.fetch_add(1);
      }
    }
    cache_stress.operations.fetch_add(1, mm::MemoryOrder::Relaxed);
  }
  while (count > 0) {
    const mm::PhysAddr a = held[--count];
    __atomic_store_n(&(*kernel_memory.table)[mm::Pfn::containing(a)].owner_data, 0, __ATOMIC_RELEASE);
    if (pmm().free_frame(a) != mm::Status::Ok) cache_stress.violations.fetch_add(1);
  }
}

bool per_cpu_caches_from_every_cpu() {
  pmm().drain_all_caches();
  const mm::FrameCount free_before = pmm().stats().free;
  run_on_all_cpus(cache_stress_on_this_cpu, nullptr);
  const mm::PhysicalMemoryStats s = pmm().stats();
  kprintf("    %lu operations on %u CPUs, %lu out of memory, %lu frames cached after\n",
          cache_stress.operations.load(), s.cpu_count, cache_stress.out_of_memory.load(), s.cached);
  KCHECK(cache_stress.violations.load() == 0);
  KCHECK(s.free == free_before);
  pmm().drain_all_caches();
  KCHECK(pmm().stats().cached == 0);
  KCHECK(pmm().stats().free == free_before);
  return true;
}

alignas(KernelPmm) mm::u8 reserve_pmm_storage[sizeof(KernelPmm)];
mm::u64 reserve_bits[mm::BitmapAllocator::words_for(kWindowFrames)];

bool reserve_and_watermarks() {
  constexpr mm::FrameCount kFrames = 512, kReserve = 64;
  const mm::Result<mm::PhysAddr> run = pmm().allocate_run({.count = kFrames, .alignment = 1});
  const bool contiguous = run.ok();
  mm::PhysAddr singles[kFrames];
  mm::Pfn first;
  if (contiguous) {
    first = mm::Pfn::containing(run.value());
  } else {  // a free-stack PMM has no runs: take singles, in any order
    KCHECK(pmm().allocate_batch(singles, mm::FrameOwner::Kernel) == kFrames);
    first = mm::Pfn::containing(singles[0]);
    for (const mm::PhysAddr a : singles) {
      first = mm::Pfn::containing(a) < first ? mm::Pfn::containing(a) : first;
    }
  }
  // Frames outside the window (possible only for singles) are not donated.
  auto* table = new (pool_table_storage) mm::FrameTable(first, {pool_records, kWindowFrames});
  mm::BitmapAllocator bitmap(*table, reserve_bits);
  mm::FrameCount donated = 0;
  for (mm::FrameCount i = 0; i < kFrames; ++i) {
    const mm::Pfn p = contiguous ? first + i : mm::Pfn::containing(singles[i]);
    if (table->contains(p) && bitmap.add_free_range(p, 1) == mm::Status::Ok) ++donated;
  }
  bool ok = donated > kReserve + 64;
  if (!ok) {
    kprintf("    only %lu of %lu borrowed frames fall in the test window\n", donated, kFrames);
  }
  if (ok) {
    mm::PhysicalMemoryConfig config;
    config.watermarks = {.reserve = kReserve, .emergency = 16, .warning = 64};
    auto* private_pmm = new (reserve_pmm_storage) KernelPmm(kernel_platform, *table, bitmap, config);
    static mm::PhysAddr taken[kFrames];
    mm::FrameCount n = 0;
    ok = private_pmm->pressure() == mm::Pressure::Normal;
    while (ok) {
      const mm::Result<mm::PhysAddr> r = private_pmm->allocate_frame(mm::FrameOwner::Anonymous);
      if (!r.ok()) {
        ok = r.status() == mm::Status::OutOfMemory;
        break;
      }
      taken[n++] = r.value();
    }
    ok = ok && n == donated - kReserve && bitmap.free_frames() == kReserve;
    ok = ok && private_pmm->pressure() == mm::Pressure::Emergency;
    for (mm::FrameCount i = 0; ok && i < kReserve; ++i) {
      const mm::Result<mm::PhysAddr> r = private_pmm->allocate_frame(mm::FrameOwner::Kernel, mm::AllocFlags::Emergency);
      ok = r.ok();
      if (ok) taken[n++] = r.value();
    }
    ok = ok && !private_pmm->allocate_frame(mm::FrameOwner::Kernel, mm::AllocFlags::Emergency).ok();
    for (mm::FrameCount i = 0; i < n; ++i) {
      ok = private_pmm->free_frame(taken[i]) == mm::Status::Ok && ok;
    }
    private_pmm->drain_all_caches();
    ok = ok && bitmap.free_frames() == donated && private_pmm->pressure() == mm::Pressure::Normal;
    if (!ok) kprintf("    donated %lu, ordinary allocations got %lu\n", donated, n);
  }
  if (contiguous) {
    KCHECK(pmm().free_run(run.value(), kFrames) == mm::Status::Ok);
  } else {
    KCHECK(pmm().free_batch(singles) == mm::Status::Ok);
  }
  return ok;
}

bool zeroed_frames_are_zero() {
  const mm::Result<mm::PhysAddr> r = pmm().allocate_frame(mm::FrameOwner::Anonymous);
  KCHECK(r.ok());
  __builtin_memset(words_of(mm::Pfn::containing(r.value())), 0xA5, mm::kPageSize);
  KCHECK(pmm().free_frame(r.value()) == mm::Status::Ok);
  const mm::Result<mm::PhysAddr> z = pmm().allocate_frame(mm::FrameOwner::Anonymous, mm::AllocFlags::Zero);
  KCHECK(z.ok() && z.value() == r.value());  // the cache hands back the last freed frame
  const mm::u64* words = words_of(mm::Pfn::containing(z.value()));
  for (mm::u64 i = 0; i < mm::kPageSize / 8; ++i) KCHECK(words[i] == 0);
  KCHECK(pmm().free_frame(z.value()) == mm::Status::Ok);
  KCHECK(pmm().free_frame(z.value()) == mm::Status::NotFound);
  return true;
}

}  // namespace

const SelfTestCase kPmmSelfTests[] = {
    {"pmm: map and totals agree", map_and_totals_agree},
    {"pmm: free stack over real frames", stack_over_real_frames},
    {"pmm: bitmap over real frames", bitmap_over_real_frames},
    {"pmm: buddy over real frames", buddy_over_real_frames},
    {"pmm: per-CPU caches from every CPU", per_cpu_caches_from_every_cpu},
    {"pmm: reserve and watermarks", reserve_and_watermarks},
    {"pmm: zeroed frames are zero", zeroed_frames_are_zero},
};
const mm::usize kPmmSelfTestCount = sizeof(kPmmSelfTests) / sizeof(kPmmSelfTests[0]);

}  // namespace kernel
