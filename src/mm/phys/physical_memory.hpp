// PhysicalMemory: the physical memory manager the rest of the core calls.
//
// It puts, in front of one FrameAllocator chosen at boot (buddy, bitmap or
// free stack):
//  - the zone lock, which serializes every call into the allocator;
//  - per-CPU frame caches for single frames (cpu_frame_cache.hpp);
//  - the emergency reserve and the pressure watermarks (pressure.hpp);
//  - zeroing on request and poisoning on free, through the platform's direct map;
//  - statistics.
//
// Lock order: a cache's steal_lock, then zone_lock_ (LockClass::CpuFrameCache,
// then LockClass::Zone: base/lock_class.hpp). A CPU's own cache needs no
// lock on its fast path (cpu_frame_cache.hpp says how others reach it).
// A frame in a CPU cache is Allocated in the allocator's eyes, with refcount
// 0 and owner Free (frame.hpp); it returns to the allocator only on drain.
// Frame::state is written under the zone lock alone.
#pragma once

#include "mm/base/span.hpp"

#include "mm/base/status.hpp"
#include "mm/base/thread_annotations.hpp"
#include "mm/phys/cpu_frame_cache.hpp"
#include "mm/phys/frame_allocator.hpp"
#include "mm/phys/pressure.hpp"
#include "mm/platform/platform.hpp"

namespace mm {

enum class AllocFlags : u8 {
  None = 0,
  Zero = 1 << 0,       // the frames are zero-filled before they are returned
  Emergency = 1 << 1,  // may take frames from the emergency reserve
  Committed = 1 << 2,  // may draw on a commitment made with commit(), and uses one up if it does
};
constexpr AllocFlags operator|(AllocFlags a, AllocFlags b) {
  return static_cast<AllocFlags>(static_cast<u8>(a) | static_cast<u8>(b));
}
constexpr bool has(AllocFlags set, AllocFlags flag) {
  return (static_cast<u8>(set) & static_cast<u8>(flag)) != 0;
}

// Freed frames are filled with this 64-bit pattern when poisoning is on, so a
// use after free reads something unmistakable.
inline constexpr u64 kPoisonPattern = 0xDEADF4A3DEADF4A3ull;

// Told of every allocation handed to a caller and every free a caller makes
// (the emulator traces them). Called with no PhysicalMemory lock held.
struct FrameObserver {
  void (*notify)(void* context, bool allocated, PhysAddr first, FrameCount count, FrameOwner owner) = nullptr;
  void* context = nullptr;
};

// Fault injection (the emulator's `--inject alloc-fail@N`; tests): asked
// before each allocation a caller makes (allocate_frame, allocate_run,
// allocate_batch), before any lock is taken or anything changes; true makes
// that call fail with ENOMEM (allocate_batch: return 0) exactly as if memory
// had run out. Allocations with AllocFlags::Committed are never asked: a
// commitment is a promise. Cache refills and drains are not allocations of
// a caller and are never asked either. Unset (null): one untaken branch.
struct FrameFailHook {
  bool (*should_fail)(void* context, FrameCount count, FrameOwner owner) = nullptr;
  void* context = nullptr;
};

struct PhysicalMemoryConfig {
  Watermarks watermarks{};
  u32 cache_batch = 16;   // frames moved per refill or drain
  u32 cache_high = 64;    // a cache above this many frames drains one batch
  bool poison_freed = false;
  FrameObserver observer{};
  FrameFailHook fail_hook{};
};

struct PhysicalMemoryStats {
  FrameCount total = 0;     // frames given to the allocator
  FrameCount committed = 0; // frames promised by commit() and not yet drawn
  FrameCount free = 0;      // free in the allocator plus cached
  FrameCount cached = 0;    // free frames parked in per-CPU caches
  FrameCount reserved = 0;  // frames of the table never given to the allocator
  FrameCount reserve = 0;   // the emergency reserve's size
  Pressure pressure = Pressure::Normal;
  FreeBlockCounts free_by_order;  // the allocator's free blocks (caches excluded)
  u64 allocations = 0;            // successful calls that reached the allocator
  u64 emergency_allocations = 0;
  u64 failed_allocations = 0;
  u64 full_drains = 0;
  u32 cpu_count = 0;
  FrameCacheStats per_cpu[kMaxCpus];
};

template <Platform P>
class PhysicalMemory {
  using Lock = typename P::SpinLock;

 public:
  // `allocator` must already hold its frames (MemoryMap::seed). The
  // configuration is trusted (it comes from the kernel or the emulator's
  // option parser, which validate it).
  PhysicalMemory(P& platform, FrameTable& table, FrameAllocator& allocator,
                 const PhysicalMemoryConfig& config)
      : platform_(platform), table_(table), allocator_(allocator), config_(config) {
    zone_free_.store(allocator.free_frames(), MemoryOrder::Relaxed);
    MM_ASSERT(config.cache_batch > 0 && config.cache_batch <= config.cache_high);
    MM_ASSERT(config.cache_high + config.cache_batch <= CpuFrameCache<Lock>::kSlots);
  }

  PhysicalMemory(const PhysicalMemory&) = delete;
  PhysicalMemory& operator=(const PhysicalMemory&) = delete;

  // One frame, through this CPU's cache. ENOMEM when even a drain of every
  // cache leaves nothing above the reserve and the commitments. With
  // AllocFlags::Emergency the cache is bypassed and the reserve may be used.
  // With AllocFlags::Committed the frame uses up one commitment, if any is
  // outstanding: while one is, the call cannot fail.
  Result<PhysAddr> allocate_frame(FrameOwner owner, AllocFlags flags = AllocFlags::None)
      MM_EXCLUDES(zone_lock_) {
    if (injected_failure(1, owner, flags)) [[unlikely]] {
      return Status::OutOfMemory;
    }
    Result<Pfn> pfn = has(flags, AllocFlags::Emergency) ? allocate_from_zone(FrameRequest{.owner = owner}, flags)
                                                        : allocate_cached(owner, flags);
    if (!pfn.ok()) {
      return pfn.status();
    }
    return finish_allocation(pfn.value(), 1, flags, owner);
  }

  // Returns one frame obtained from allocate_frame (or any single allocated
  // frame) to this CPU's cache. EINVAL for a misaligned address or a frame
  // that heads a larger block, EFAULT for one outside managed RAM or
  // reserved, ENOENT for one that is not allocated (a double free), EBUSY for
  // one still referenced elsewhere (refcount > 1). Nothing changes on error.
  // The caller holds the only reference: check_single has seen the count at
  // 1, and it is cleared with a plain store, not a compare-and-swap, so two
  // CPUs freeing one frame at the same instant (a bug of theirs) are not
  // told apart; a later second free is still ENOENT. Shared frames go
  // through put_frame.
  Status free_frame(PhysAddr address) MM_EXCLUDES(zone_lock_) {
    const Result<Pfn> checked = check_single(address);
    if (!checked.ok()) {
      return checked.status();
    }
    table_[checked.value()].refcount.store(0, MemoryOrder::Relaxed);
    release_unreferenced(checked.value());
    return Status::Ok;
  }

  // Drops one reference to a single allocated frame; the last one frees it,
  // as free_frame would. Returns whether it freed. How the TLB batch lets go
  // of a removed mapping's frame, and of a page table, once no TLB can reach
  // either. Dropping a reference nobody holds is a broken invariant.
  bool put_frame(PhysAddr address) MM_EXCLUDES(zone_lock_) {
    const Pfn pfn = Pfn::containing(address);
    Frame& frame = table_[pfn];
    const u32 before = frame.refcount.fetch_sub(1, MemoryOrder::AcqRel);
    MM_ASSERT(before >= 1);
    if (before != 1) {
      return false;
    }
    MM_ASSERT(frame.state == FrameState::Allocated && frame.order == 0);
    MM_ASSERT(frame.mapcount.load(MemoryOrder::Relaxed) == 0);  // every mapping left before its reference
    release_unreferenced(pfn);
    return true;
  }

  // A contiguous run straight from the allocator (no cache): DMA buffers,
  // large-page backing, page-table pages in bulk.
  Result<PhysAddr> allocate_run(const FrameRequest& request, AllocFlags flags = AllocFlags::None)
      MM_EXCLUDES(zone_lock_) {
    if (injected_failure(request.count, request.owner, flags)) [[unlikely]] {
      return Status::OutOfMemory;
    }
    const Result<Pfn> pfn = allocate_from_zone(request, flags);
    if (!pfn.ok()) {
      return pfn.status();
    }
    return finish_allocation(pfn.value(), request.count, flags, request.owner);
  }

  // Returns a run from allocate_run. The allocator validates it (see
  // FrameAllocator::free); poisoning happens while the zone lock still hides
  // the freed frames from every other allocation.
  Status free_run(PhysAddr first, FrameCount count) MM_EXCLUDES(zone_lock_) {
    if (!first.is_page_aligned()) {
      return Status::InvalidArgument;
    }
    const Pfn pfn = Pfn::containing(first);
    {
      ZoneGuard zone(*this);
      MM_TRY(allocator_.free(pfn, count));
      poison(pfn, count);
    }
    notify(false, first, count, FrameOwner::Free);
    return Status::Ok;
  }

  // Up to out.size() single frames under one zone lock, bypassing the caches.
  // Returns how many it got; never dips into the reserve.
  FrameCount allocate_batch(Span<PhysAddr> out, FrameOwner owner) MM_EXCLUDES(zone_lock_) {
    if (injected_failure(out.size(), owner, AllocFlags::None)) [[unlikely]] {
      return 0;
    }
    Pfn pfns[64];
    FrameCount total = 0;
    ZoneGuard zone(*this);
    while (total < out.size()) {
      FrameCount want = out.size() - total;
      want = want < 64 ? want : 64;
      const FrameCount room = room_locked(AllocFlags::None);
      want = want < room ? want : room;
      const FrameCount got = want == 0 ? 0 : allocator_.allocate_batch({pfns, want}, owner);
      for (FrameCount i = 0; i < got; ++i) {
        out[total + i] = pfns[i].address();
      }
      total += got;
      allocations_ += got;
      if (got < want || want == 0) {
        break;
      }
    }
    return total;
  }

  // Frees single frames under one zone lock: all validated first, all or nothing.
  Status free_batch(Span<const PhysAddr> frames) MM_EXCLUDES(zone_lock_) {
    Pfn pfns[64];
    for (usize done = 0; done < frames.size();) {
      const usize n = frames.size() - done < 64 ? frames.size() - done : 64;
      for (usize i = 0; i < n; ++i) {
        if (!frames[done + i].is_page_aligned()) {
          return Status::InvalidArgument;
        }
        pfns[i] = Pfn::containing(frames[done + i]);
      }
      ZoneGuard zone(*this);
      MM_TRY(allocator_.free_batch({pfns, n}));
      done += n;
    }
    return Status::Ok;
  }

  // Gives every frame in every CPU's cache back to the allocator. Called on
  // allocation failure, and by whoever reclaims under pressure. Another
  // CPU's cache is stolen (cpu_frame_cache.hpp): a synchronize_cpus() for
  // each that holds frames. Frames a CPU caches while the drain runs may
  // stay cached.
  void drain_all_caches() MM_EXCLUDES(zone_lock_) {
    const CpuId self = platform_.current_cpu();
    for (u32 cpu = 0; cpu < platform_.cpu_count(); ++cpu) {
      if (cpu == self) {
        with_own_cache([&](CpuFrameCache<Lock>& cache) {
          if (!cache.empty()) drain_cached(cache, cache.count());
          return true;
        });
        continue;
      }
      CpuFrameCache<Lock>& cache = caches_[cpu];
      LockGuard guard(cache.steal_lock);
      if (cache.stats().cached == 0) continue;  // nothing to steal (as of the owner's last operation)
      cache.stop_owner(platform_);
      if (!cache.empty()) drain_cached(cache, cache.count());
      cache.release_owner();
    }
    LockGuard guard(zone_lock_);
    ++full_drains_;
  }

  // Promises `frames` frames to later AllocFlags::Committed allocations, so
  // those cannot fail (SerenityOS's committed pages: a fork commits a frame
  // for every page it makes copy-on-write). ENOMEM when the frames above the
  // reserve and the existing commitments, caches drained, are too few.
  Status commit(FrameCount frames) MM_EXCLUDES(zone_lock_) {
    for (int attempt = 0; attempt < 2; ++attempt) {
      {
        ZoneGuard zone(*this);
        if (frames <= room_locked(AllocFlags::None)) {
          committed_ += frames;
          return Status::Ok;
        }
      }
      if (attempt == 0) {
        drain_all_caches();
      }
    }
    return Status::OutOfMemory;
  }

  // Gives back commitments that will not be drawn on.
  void uncommit(FrameCount frames) MM_EXCLUDES(zone_lock_) {
    ZoneGuard zone(*this);
    MM_ASSERT(frames <= committed_);
    committed_ -= frames;
  }

  // Lock-free: reads the allocator's free count as of its last change.
  Pressure pressure() const { return pressure_for(zone_free_.load(MemoryOrder::Relaxed), config_.watermarks); }

  // A snapshot. Each CPU cache's figures are as of its owner's last
  // operation (exact at quiescence) and the zone's are read under its lock,
  // so the figures are each exact but not taken at one instant. (Each cache's
  // steal lock is taken only to exclude its owner's slow path; in the
  // emulator it also keeps this call's scheduling points where they were.)
  PhysicalMemoryStats stats() MM_EXCLUDES(zone_lock_) {
    PhysicalMemoryStats s;
    s.cpu_count = platform_.cpu_count();
    for (u32 cpu = 0; cpu < s.cpu_count; ++cpu) {
      LockGuard guard(caches_[cpu].steal_lock);
      s.per_cpu[cpu] = caches_[cpu].stats();
      s.cached += s.per_cpu[cpu].cached;
    }
    LockGuard guard(zone_lock_);
    s.total = allocator_.managed_frames();
    s.free = allocator_.free_frames() + s.cached;
    s.reserved = table_.size() - s.total;
    s.reserve = config_.watermarks.reserve;
    s.committed = committed_;
    s.pressure = pressure_for(allocator_.free_frames(), config_.watermarks);
    s.free_by_order = allocator_.free_blocks();
    s.allocations = allocations_;
    s.emergency_allocations = emergency_allocations_;
    s.failed_allocations = failed_allocations_;
    s.full_drains = full_drains_;
    return s;
  }

  FrameTable& frames() { return table_; }
  FrameAllocator& allocator() { return allocator_; }

 private:
  // The zone lock, held for a scope. On release it publishes the allocator's
  // free count for the lock-free readers (pressure(), free_frame's reserve check).
  class [[nodiscard]] MM_SCOPED_CAPABILITY ZoneGuard {
   public:
    explicit ZoneGuard(PhysicalMemory& memory, const char* file = __builtin_FILE(), u32 line = __builtin_LINE())
        MM_ACQUIRE(memory.zone_lock_)
        : memory_(memory) {
      acquire(memory_.zone_lock_, LockSite{file, line, LockNesting::Outer});
    }
    ~ZoneGuard() MM_RELEASE() {
      memory_.zone_free_.store(memory_.allocator_.free_frames(), MemoryOrder::Relaxed);
      memory_.zone_committed_.store(memory_.committed_, MemoryOrder::Relaxed);
      memory_.zone_lock_.unlock();
    }
    ZoneGuard(const ZoneGuard&) = delete;
    ZoneGuard& operator=(const ZoneGuard&) = delete;

   private:
    PhysicalMemory& memory_;
  };

  // Frames an allocation with these flags may take from the allocator.
  FrameCount room_locked(AllocFlags flags) const MM_REQUIRES(zone_lock_) {
    const FrameCount free = allocator_.free_frames();
    const bool draws_commitment = has(flags, AllocFlags::Committed) && committed_ > 0;
    const FrameCount kept = has(flags, AllocFlags::Emergency) ? committed_
                            : draws_commitment               ? config_.watermarks.reserve
                                                             : config_.watermarks.reserve + committed_;
    return free > kept ? free - kept : 0;
  }

  // The tail of every single-frame free: `pfn`'s last reference is gone
  // (refcount 0). Poisons it and parks it in this CPU's cache, or hands it
  // straight back to the allocator when the reserve is short.
  void release_unreferenced(Pfn pfn) MM_EXCLUDES(zone_lock_) {
    Frame& frame = table_[pfn];
    frame.owner = FrameOwner::Free;
    poison(pfn, 1);
    if (zone_free_.load(MemoryOrder::Relaxed) < config_.watermarks.reserve + zone_committed_.load(MemoryOrder::Relaxed))
        [[unlikely]] {
      // The reserve is short (an emergency allocation took from it): refill
      // it first, rather than let the next ordinary allocation find this
      // frame in the cache.
      {
        ZoneGuard zone(*this);
        frame.refcount.store(1, MemoryOrder::Relaxed);
        const Status freed = allocator_.free(pfn, 1);
        MM_ASSERT(freed == Status::Ok);
      }
      notify(false, pfn.address(), 1, FrameOwner::Free);
      return;
    }
    with_own_cache([&](CpuFrameCache<Lock>& cache) {
      cache.push(pfn);
      if (cache.count() > config_.cache_high) {
        drain_cached(cache, config_.cache_batch);
      }
      return true;
    });
    notify(false, pfn.address(), 1, FrameOwner::Free);
  }

  // Runs f(cache) on this CPU's cache, in a CPU section: on the fast path with
  // no lock (cache.begin()), or under the cache's steal lock while a stealer
  // wants it. Returns what f returns.
  // The section stands where a cache lock would (LockClass::CpuFrameCache),
  // so the emulator checks the lock order through it; the steal lock taken
  // inside it is the second of that class (LockNesting::Inner).
  template <typename F>
  auto with_own_cache(F&& f, const char* file = __builtin_FILE(), u32 line = __builtin_LINE())
      MM_EXCLUDES(zone_lock_) {
    platform_.enter_cpu_section(LockClass::CpuFrameCache, LockSite{file, line, LockNesting::Outer});
    CpuFrameCache<Lock>& cache = caches_[platform_.current_cpu()];
    auto result = [&] {
      if (cache.begin()) [[likely]] {
        auto r = f(cache);
        cache.end();
        return r;
      }
      LockGuard guard(cache.steal_lock, LockNesting::Inner);
      return f(cache);
    }();
    platform_.leave_cpu_section();
    return result;
  }

  Result<Pfn> allocate_cached(FrameOwner owner, AllocFlags flags) MM_EXCLUDES(zone_lock_) {
    const Pfn none(~u64{0});  // no frame: the cache and a refill came up empty
    const Pfn pfn = with_own_cache([&](CpuFrameCache<Lock>& cache) {
      if (cache.empty()) {
        refill_cached(cache);
      }
      if (cache.empty()) {
        return none;
      }
      if (has(flags, AllocFlags::Committed)) {
        ZoneGuard zone(*this);
        committed_ -= committed_ > 0 ? 1 : 0;
      }
      const Pfn taken = cache.pop();
      Frame& frame = table_[taken];
      frame.owner = owner;
      frame.owner_data = 0;
      frame.refcount.store(1, MemoryOrder::Relaxed);
      return taken;
    });
    if (pfn != none) [[likely]] {
      return pfn;
    }
    // Nothing above the reserve: the allocator itself decides, after taking
    // back what other CPUs' caches hold (allocate_from_zone drains on failure).
    return allocate_from_zone(FrameRequest{.owner = owner}, flags);
  }

  // refill_cached and drain_cached: by the owner in its CPU section, or under
  // the cache's steal lock with its owner stopped.
  void refill_cached(CpuFrameCache<Lock>& cache) MM_EXCLUDES(zone_lock_) {
    ZoneGuard zone(*this);
    FrameCount want = room_locked(AllocFlags::None);
    want = want < config_.cache_batch ? want : config_.cache_batch;
    if (want == 0) {
      return;
    }
    Pfn* slots = cache.refill_slots(static_cast<u32>(want));
    const FrameCount got = allocator_.allocate_batch({slots, want}, FrameOwner::Free);
    cache.shrink(static_cast<u32>(want - got));
    for (FrameCount i = 0; i < got; ++i) {
      table_[slots[i]].refcount.store(0, MemoryOrder::Relaxed);  // free, parked
    }
    allocations_ += got;
  }

  void drain_cached(CpuFrameCache<Lock>& cache, u32 n) MM_EXCLUDES(zone_lock_) {
    Pfn out[CpuFrameCache<Lock>::kSlots];
    cache.take_oldest(out, n);
    ZoneGuard zone(*this);
    for (u32 i = 0; i < n; ++i) {
      // Back to what the allocator handed out, so it accepts the frame.
      table_[out[i]].refcount.store(1, MemoryOrder::Relaxed);
      const Status freed = allocator_.free(out[i], 1);
      MM_ASSERT(freed == Status::Ok);
    }
  }

  Result<Pfn> allocate_from_zone(const FrameRequest& request, AllocFlags flags) MM_EXCLUDES(zone_lock_) {
    for (int attempt = 0; attempt < 2; ++attempt) {
      {
        ZoneGuard zone(*this);
        const bool emergency = has(flags, AllocFlags::Emergency);
        if (request.count <= room_locked(flags)) {
          const Result<Pfn> pfn = allocator_.allocate(request);
          if (pfn.ok()) {
            ++allocations_;
            emergency_allocations_ += emergency ? 1 : 0;
            if (has(flags, AllocFlags::Committed)) {
              committed_ -= committed_ >= request.count ? request.count : committed_;
            }
            return pfn;
          }
          if (pfn.status() != Status::OutOfMemory) {
            return pfn.status();
          }
        }
        if (attempt == 1) {
          ++failed_allocations_;
          return Status::OutOfMemory;
        }
      }
      drain_all_caches();
    }
    return Status::OutOfMemory;
  }

  PhysAddr finish_allocation(Pfn pfn, FrameCount count, AllocFlags flags, FrameOwner owner) {
    if (has(flags, AllocFlags::Zero)) {
      for (FrameCount i = 0; i < count; ++i) {
        __builtin_memset(platform_.direct_map((pfn + i).address()), 0, kPageSize);
      }
    }
    notify(true, pfn.address(), count, owner);
    return pfn.address();
  }

  // Does the fail hook (if any) make this allocation fail? (FrameFailHook)
  bool injected_failure(FrameCount count, FrameOwner owner, AllocFlags flags) const {
    return config_.fail_hook.should_fail != nullptr && !has(flags, AllocFlags::Committed) &&
           config_.fail_hook.should_fail(config_.fail_hook.context, count, owner);
  }

  void notify(bool allocated, PhysAddr first, FrameCount count, FrameOwner owner) const {
    if (config_.observer.notify != nullptr) {
      config_.observer.notify(config_.observer.context, allocated, first, count, owner);
    }
  }

  Result<Pfn> check_single(PhysAddr address) const {
    if (!address.is_page_aligned()) {
      return Status::InvalidArgument;
    }
    const Pfn pfn = Pfn::containing(address);
    // The common case inline; check_allocated sorts out the rest.
    if (table_.contains(pfn) && table_[pfn].state == FrameState::Allocated) [[likely]] {
      MM_TRY(allocated_status(table_[pfn], 0));
      return pfn;
    }
    MM_TRY(check_allocated(table_, pfn, 0));
    return pfn;
  }

  void poison(Pfn pfn, FrameCount count) {
    if (!config_.poison_freed) {
      return;
    }
    for (FrameCount i = 0; i < count; ++i) {
      u64* words = reinterpret_cast<u64*>(platform_.direct_map((pfn + i).address()));
      for (u64 w = 0; w < kPageSize / sizeof(u64); ++w) {
        words[w] = kPoisonPattern;
      }
    }
  }

  P& platform_;
  FrameTable& table_;
  FrameAllocator& allocator_ MM_GUARDED_BY(zone_lock_);
  const PhysicalMemoryConfig config_;

  // LockClass::Zone: taken last of the core's locks but the TLB's (under a
  // CPU cache's lock to refill or drain it); nothing of the core under it.
  Lock zone_lock_{LockClass::Zone};
  // The allocator's free count as of the last zone-lock release.
  Atomic<FrameCount> zone_free_{0};
  Atomic<FrameCount> zone_committed_{0};
  FrameCount committed_ MM_GUARDED_BY(zone_lock_) = 0;
  u64 allocations_ MM_GUARDED_BY(zone_lock_) = 0;
  u64 emergency_allocations_ MM_GUARDED_BY(zone_lock_) = 0;
  u64 failed_allocations_ MM_GUARDED_BY(zone_lock_) = 0;
  u64 full_drains_ MM_GUARDED_BY(zone_lock_) = 0;

  CpuFrameCache<Lock> caches_[kMaxCpus];
};

}  // namespace mm
