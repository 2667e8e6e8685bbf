// Multi-threaded stress of PhysicalMemory's per-CPU frame caches over a buddy
// allocator, meant to run clean under ThreadSanitizer.
//
// Four threads, each bound to its own CPU, allocate and free single frames
// through their caches, hold a varying number of frames, hoard until the pool
// runs dry, and hand frames to each other through a mailbox (so frames are
// freed on another CPU than the one they came from). The pool is small, so
// frames move between caches and the allocator all the time.
//
// "No frame has two owners" is checked three independent ways on every
// acquire and release: a test-side holder registry (one atomic per frame);
// the frame's owner_data word, exchanged through std::atomic_ref to a tag
// (thread, sequence number) on acquire (must find 0) and back to 0 before the
// free (must find its own tag); and the tag written into the frame's memory,
// which must be intact when the frame is freed. One thread drains every cache
// now and then and checks stats(). At the end everything is freed and
// drained, and the buddy must look exactly like a freshly seeded one.
//
// A second test keeps an emergency reserve: ordinary allocations never leave
// the allocator with fewer than `reserve` free frames, and an Emergency
// allocation still succeeds when ordinary ones get ENOMEM.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "mm/phys/buddy_allocator.hpp"
#include "mm/phys/physical_memory.hpp"
#include "support/frame_pool.hpp"
#include "support/rng.hpp"
#include "support/sanitized.hpp"

namespace {

using mm::AllocFlags;
using mm::FrameCount;
using mm::FrameOwner;
using mm::PhysAddr;
using mm::Pfn;
using mm::Status;
using mm::u32;
using mm::u64;
using pagelab::HostPlatform;
using Pmm = mm::PhysicalMemory<HostPlatform>;

using pagelab::test::kSanitized;

constexpr u32 kThreads = 4;
constexpr u64 kOpsPerThread = kSanitized ? 100'000 : 400'000;
constexpr FrameCount kPoolFrames = 512;
constexpr Pfn kPoolBase(0x301);  // unaligned: blocks of every order at the edges
constexpr u64 kWordsPerFrame = mm::kPageSize / sizeof(u64);

// Small batches and a low high mark: refills and drains all the time.
constexpr mm::PhysicalMemoryConfig kConfig{.cache_batch = 8, .cache_high = 24, .poison_freed = true};

std::string err(Status s) { return mm::errno_name(s); }

using pagelab::test::Rng;

// A frame one thread holds, with the tag it wrote everywhere.
struct Held {
  PhysAddr address;
  u64 tag;
};

// Frames in transit from one thread to another.
class Mailbox {
 public:
  void post(Held held, u32 from) {
    std::lock_guard<std::mutex> guard(lock_);
    letters_.push_back({held, from});
  }
  // A frame posted by another thread, if any: (frame, sender).
  bool take(u32 to, Held& held, u32& from) {
    std::lock_guard<std::mutex> guard(lock_);
    for (usize i = 0; i < letters_.size(); ++i) {
      if (letters_[i].from != to) {
        held = letters_[i].held;
        from = letters_[i].from;
        letters_[i] = letters_.back();
        letters_.pop_back();
        return true;
      }
    }
    return false;
  }
  std::vector<std::pair<Held, u32>> take_all() {
    std::lock_guard<std::mutex> guard(lock_);
    std::vector<std::pair<Held, u32>> all;
    for (const Letter& l : letters_) {
      all.emplace_back(l.held, l.from);
    }
    letters_.clear();
    return all;
  }

 private:
  using usize = mm::usize;
  struct Letter {
    Held held;
    u32 from;
  };
  std::mutex lock_;
  std::vector<Letter> letters_;
};

// One private world: a pool, a buddy seeded with all of it, the physical
// memory manager over them, and the checks of ownership.
class CacheStress {
 public:
  explicit CacheStress(const mm::PhysicalMemoryConfig& config)
      : pool_(kPoolFrames, kPoolBase, kThreads, /*with_ram=*/true),
        buddy_(pool_.table()),
        seeded_(buddy_.add_free_range(kPoolBase, kPoolFrames)),
        pmm_(pool_.platform(), pool_.table(), buddy_, config),
        holders_(kPoolFrames) {}

  Status seeded() const { return seeded_; }
  Pmm& pmm() { return pmm_; }
  mm::BuddyAllocator& buddy() { return buddy_; }
  mm::FrameTable& table() { return pool_.table(); }
  Mailbox& mailbox() { return mailbox_; }
  bool failed() const { return failed_.load(std::memory_order_relaxed); }

  // Takes ownership of a frame just allocated by `thread`. Returns false
  // (after a test failure) if someone else already owns it.
  bool acquire(u32 thread, PhysAddr address, bool zeroed, Held& held) {
    const Pfn pfn = Pfn::containing(address);
    if (!expect(address.is_page_aligned() && table().contains(pfn), "frame outside the pool", address.value())) {
      return false;
    }
    const u32 previous = holder(pfn).exchange(thread + 1, std::memory_order_acq_rel);
    if (!expect(previous == 0, "frame handed out while another thread holds it", pfn.value(), previous)) {
      return false;
    }
    held = {address, make_tag(thread)};
    const u64 old = owner_word(pfn).exchange(held.tag, std::memory_order_acq_rel);
    if (!expect(old == 0, "owner_data not 0 on acquire", pfn.value(), old)) {
      return false;
    }
    u64* words = memory(pfn);
    for (const u64 at : {u64{0}, kWordsPerFrame - 1}) {
      // Freed frames are poisoned; a zeroed allocation is zero; nothing else
      // may be found in a frame nobody owns.
      const bool clean = words[at] == 0 || (!zeroed && words[at] == mm::kPoisonPattern);
      if (!expect(clean, "frame memory neither zero nor poison on acquire", pfn.value(), words[at])) {
        return false;
      }
    }
    words[0] = held.tag;
    words[kWordsPerFrame - 1] = held.tag;
    return true;
  }

  // Gives up ownership before the frame is freed (or passed on).
  bool release(u32 thread, const Held& held) {
    const Pfn pfn = Pfn::containing(held.address);
    const u64* words = memory(pfn);
    if (!expect(words[0] == held.tag && words[kWordsPerFrame - 1] == held.tag,
                "someone else wrote into a held frame", pfn.value(), words[0])) {
      return false;
    }
    const u64 old = owner_word(pfn).exchange(0, std::memory_order_acq_rel);
    if (!expect(old == held.tag, "owner_data changed while the frame was held", pfn.value(), old)) {
      return false;
    }
    const u32 previous = holder(pfn).exchange(0, std::memory_order_acq_rel);
    return expect(previous == thread + 1, "holder registry changed while the frame was held", pfn.value(), previous);
  }

  // Moves a frame `from` one thread to `to` without freeing it.
  bool transfer(u32 from, u32 to, Held& held) {
    const Pfn pfn = Pfn::containing(held.address);
    const u32 previous = holder(pfn).exchange(to + 1, std::memory_order_acq_rel);
    if (!expect(previous == from + 1, "mailed frame held by a third thread", pfn.value(), previous)) {
      return false;
    }
    u64* words = memory(pfn);
    if (!expect(words[0] == held.tag, "someone wrote into a mailed frame", pfn.value(), words[0])) {
      return false;
    }
    const u64 tag = make_tag(to);
    const u64 old = owner_word(pfn).exchange(tag, std::memory_order_acq_rel);
    if (!expect(old == held.tag, "owner_data of a mailed frame changed", pfn.value(), old)) {
      return false;
    }
    words[0] = tag;
    words[kWordsPerFrame - 1] = tag;
    held.tag = tag;
    return true;
  }

  bool free(u32 thread, const Held& held) {
    if (!release(thread, held)) {
      return false;
    }
    const Status freed = pmm_.free_frame(held.address);
    return expect(freed == Status::Ok, "free_frame of a held frame failed", held.address.value(),
                  static_cast<u64>(freed));
  }

  // The figures stats() reports must agree with each other whenever it is
  // called; `reserve` is the floor on the allocator's own free frames.
  bool check_stats(FrameCount reserve) {
    const mm::PhysicalMemoryStats s = pmm_.stats();
    FrameCount cached = 0;
    for (u32 cpu = 0; cpu < s.cpu_count; ++cpu) {
      cached += s.per_cpu[cpu].cached;
    }
    // free = allocator free + cached; the allocator's part and free_by_order
    // were read together under the zone lock, so they must match exactly.
    const FrameCount allocator_free = s.free - s.cached;
    return expect(s.total == kPoolFrames, "stats().total", s.total) &&
           expect(s.cpu_count == kThreads, "stats().cpu_count", s.cpu_count) &&
           expect(cached == s.cached, "stats().cached is not the sum of the caches", s.cached, cached) &&
           expect(s.cached <= s.free && s.free <= s.total, "stats().free out of range", s.free, s.cached) &&
           expect(s.free_by_order.frames_at_or_above(0) == allocator_free,
                  "free_by_order disagrees with the allocator's free count", allocator_free) &&
           expect(allocator_free >= reserve, "ordinary allocations took the emergency reserve", allocator_free,
                  reserve);
  }

  // Everything freed and drained: the buddy must look freshly seeded.
  void expect_fully_coalesced() {
    pmm_.drain_all_caches();
    const mm::PhysicalMemoryStats s = pmm_.stats();
    EXPECT_EQ(s.free, s.total);
    EXPECT_EQ(s.cached, 0u);
    EXPECT_EQ(buddy_.free_frames(), kPoolFrames);

    pagelab::test::FramePool fresh_pool(kPoolFrames, kPoolBase);
    mm::BuddyAllocator fresh(fresh_pool.table());
    ASSERT_EQ(fresh.add_free_range(kPoolBase, kPoolFrames), Status::Ok);
    const mm::FreeBlockCounts got = buddy_.free_blocks();
    const mm::FreeBlockCounts want = fresh.free_blocks();
    for (u32 k = 0; k <= mm::kMaxOrder; ++k) {
      EXPECT_EQ(got.blocks[k], want.blocks[k]) << "free blocks of order " << k;
    }
    for (Pfn pfn = kPoolBase; pfn < kPoolBase + kPoolFrames; pfn = pfn + 1) {
      const mm::Frame& mine = table()[pfn];
      const mm::Frame& theirs = fresh_pool.table()[pfn];
      ASSERT_EQ(mine.state, theirs.state) << "frame 0x" << std::hex << pfn.value();
      if (mine.state == mm::FrameState::Free) {  // an Interior frame's order is stale
        ASSERT_EQ(mine.order, theirs.order) << "frame 0x" << std::hex << pfn.value();
      }
      ASSERT_EQ(holder(pfn).load(), 0u) << "frame 0x" << std::hex << pfn.value();
      ASSERT_EQ(owner_word(pfn).load(), 0u) << "frame 0x" << std::hex << pfn.value();
    }
  }

 private:
  bool expect(bool ok, const char* what, u64 a, u64 b = 0) {
    if (!ok) [[unlikely]] {
      // Only the first failure is reported: after it every thread stops.
      if (!failed_.exchange(true)) {
        ADD_FAILURE() << what << " (0x" << std::hex << a << ", 0x" << b << ")";
      }
    }
    return ok;
  }

  u64 make_tag(u32 thread) {
    return (u64{thread + 1} << 48) | (sequence_.fetch_add(1, std::memory_order_relaxed) & 0xFFFF'FFFF'FFFFull);
  }

  std::atomic<u32>& holder(Pfn pfn) { return holders_[pfn - kPoolBase]; }
  std::atomic_ref<u64> owner_word(Pfn pfn) { return std::atomic_ref<u64>(table()[pfn].owner_data); }
  u64* memory(Pfn pfn) { return reinterpret_cast<u64*>(pool_.ram(pfn)); }

  pagelab::test::FramePool pool_;
  mm::BuddyAllocator buddy_;
  Status seeded_;
  Pmm pmm_;
  std::vector<std::atomic<u32>> holders_;  // thread + 1 holding each frame, 0 for none
  std::atomic<u64> sequence_{1};
  std::atomic<bool> failed_{false};
  Mailbox mailbox_;
};

struct ThreadTally {
  u64 allocations = 0;
  u64 out_of_memory = 0;
  u64 mailed = 0;
};

// One thread's life: churn with a target number of held frames that changes
// from phase to phase, hoarding until ENOMEM now and then, mailing frames to
// other threads. Thread 0 also drains every cache and checks stats().
void churn(CacheStress& w, u32 thread, u64 seed, FrameCount reserve, bool keep_hoard, ThreadTally& tally) {
  HostPlatform::bind_current_thread(thread);
  Rng rng(seed * 0x100000001B3ull + thread);
  std::vector<Held> held;
  u64 target = 16;
  const auto drop_one = [&]() {
    const u64 i = rng.below(held.size());
    const Held h = held[i];
    held[i] = held.back();
    held.pop_back();
    return w.free(thread, h);
  };
  const auto allocate_one = [&]() {
    const bool zero = rng.percent(5);
    const mm::Result<PhysAddr> got =
        w.pmm().allocate_frame(FrameOwner::Anonymous, zero ? AllocFlags::Zero : AllocFlags::None);
    if (!got.ok()) {
      ++tally.out_of_memory;
      if (got.status() != Status::OutOfMemory) {
        ADD_FAILURE() << "allocate_frame: " << err(got.status());
        return false;
      }
      target = held.size() / 2;  // back off: let the others have some
      return true;
    }
    ++tally.allocations;
    Held h;
    if (!w.acquire(thread, got.value(), zero, h)) {
      return false;
    }
    held.push_back(h);
    return true;
  };

  for (u64 op = 0; op < kOpsPerThread && !w.failed(); ++op) {
    if (op % 2048 == 0) {
      target = rng.percent(80) ? rng.below(48) : rng.below(kPoolFrames / 3);
    }
    if (op % 8192 == 4096 + thread * 1024) {
      // Hoard: allocate until the pool runs dry.
      const u64 before = tally.out_of_memory;
      while (!w.failed() && tally.out_of_memory == before && allocate_one()) {
      }
      target = rng.below(32);  // and give it back
    }
    if (thread == 0 && op % 512 == 0) {
      w.pmm().drain_all_caches();
      if (!w.check_stats(reserve)) {
        break;
      }
    }
    const u64 r = rng.below(100);
    bool ok = true;
    if (r < 2 && !held.empty()) {
      // Mail a frame to whoever takes it next.
      const u64 i = rng.below(held.size());
      w.mailbox().post(held[i], thread);
      held[i] = held.back();
      held.pop_back();
      ++tally.mailed;
    } else if (r < 4) {
      Held h;
      u32 from = 0;
      if (w.mailbox().take(thread, h, from)) {
        ok = w.transfer(from, thread, h);
        held.push_back(h);
      }
    } else if (held.size() < target ? r < 80 : r < 30) {
      ok = allocate_one();
    } else if (!held.empty()) {
      ok = drop_one();
    }
    if (!ok) {
      break;
    }
  }
  if (keep_hoard) {
    // End dry: this thread's last allocation failed for want of memory.
    const u64 before = tally.out_of_memory;
    while (!w.failed() && tally.out_of_memory == before && allocate_one()) {
    }
    // Hand what it holds to the main thread through the mailbox.
    for (const Held& h : held) {
      w.mailbox().post(h, thread);
    }
    return;
  }
  while (!held.empty() && !w.failed()) {
    drop_one();
  }
}

// Runs the threads; returns the tallies.
std::vector<ThreadTally> run_threads(CacheStress& w, u64 seed, FrameCount reserve, bool keep_hoard) {
  std::vector<ThreadTally> tallies(kThreads);
  std::vector<std::thread> threads;
  for (u32 t = 0; t < kThreads; ++t) {
    threads.emplace_back(churn, std::ref(w), t, seed, reserve, keep_hoard, std::ref(tallies[t]));
  }
  for (std::thread& t : threads) {
    t.join();
  }
  HostPlatform::bind_current_thread(0);
  return tallies;
}

// Frees every frame left in the mailbox, from the main thread (CPU 0).
void free_mailbox(CacheStress& w) {
  for (auto [held, from] : w.mailbox().take_all()) {
    ASSERT_TRUE(w.transfer(from, 0, held));
    ASSERT_TRUE(w.free(0, held));
  }
}

TEST(CpuCacheStress, FramesNeverHaveTwoOwnersAndAllCoalesceAtTheEnd) {
  CacheStress w(kConfig);
  ASSERT_EQ(w.seeded(), Status::Ok);
  const std::vector<ThreadTally> tallies = run_threads(w, 1, 0, /*keep_hoard=*/false);
  ASSERT_FALSE(w.failed());
  free_mailbox(w);
  ASSERT_TRUE(w.check_stats(0));

  u64 out_of_memory = 0;
  u64 mailed = 0;
  for (const ThreadTally& t : tallies) {
    EXPECT_GT(t.allocations, 0u);
    out_of_memory += t.out_of_memory;
    mailed += t.mailed;
  }
  EXPECT_GT(out_of_memory, 0u) << "the pool never ran dry";
  EXPECT_GT(mailed, 0u) << "no frame was freed by another thread than its allocator";
  const mm::PhysicalMemoryStats s = w.pmm().stats();
  for (u32 cpu = 0; cpu < kThreads; ++cpu) {
    EXPECT_GT(s.per_cpu[cpu].hits, 0u) << "cpu " << cpu;
    EXPECT_GT(s.per_cpu[cpu].refills, 0u) << "cpu " << cpu;
    EXPECT_GT(s.per_cpu[cpu].drains, 0u) << "cpu " << cpu;
  }
  EXPECT_GT(s.full_drains, 0u);
  w.expect_fully_coalesced();
}

TEST(CpuCacheStress, OrdinaryAllocationsLeaveTheEmergencyReserve) {
  constexpr FrameCount kReserve = 40;
  mm::PhysicalMemoryConfig config = kConfig;
  config.watermarks.reserve = kReserve;
  CacheStress w(config);
  ASSERT_EQ(w.seeded(), Status::Ok);
  // Every thread churns (stats() is checked against the reserve as it goes)
  // and ends by allocating until ENOMEM, keeping what it got.
  const std::vector<ThreadTally> tallies = run_threads(w, 2, kReserve, /*keep_hoard=*/true);
  ASSERT_FALSE(w.failed());
  for (const ThreadTally& t : tallies) {
    EXPECT_GT(t.out_of_memory, 0u);
  }
  ASSERT_TRUE(w.check_stats(kReserve));

  // Alone now, take every ordinary frame there is: then exactly the reserve
  // is left in the allocator, and no cache holds anything.
  std::vector<Held> mine;
  while (true) {
    const mm::Result<PhysAddr> got = w.pmm().allocate_frame(FrameOwner::Kernel);
    if (!got.ok()) {
      ASSERT_EQ(err(got.status()), err(Status::OutOfMemory));
      break;
    }
    Held h;
    ASSERT_TRUE(w.acquire(0, got.value(), false, h));
    mine.push_back(h);
  }
  mm::PhysicalMemoryStats s = w.pmm().stats();
  EXPECT_EQ(s.free, kReserve);
  EXPECT_EQ(s.cached, 0u);
  EXPECT_EQ(w.buddy().free_frames(), kReserve);

  // Ordinary allocations keep failing, on every CPU; emergency ones succeed
  // until the reserve itself is gone.
  for (FrameCount i = 0; i < kReserve; ++i) {
    HostPlatform::bind_current_thread(static_cast<u32>(i % kThreads));
    ASSERT_EQ(err(w.pmm().allocate_frame(FrameOwner::Kernel).status()), err(Status::OutOfMemory)) << i;
    const mm::Result<PhysAddr> got = w.pmm().allocate_frame(FrameOwner::Kernel, AllocFlags::Emergency);
    ASSERT_TRUE(got.ok()) << "emergency allocation " << i << ": " << err(got.status());
    Held h;
    ASSERT_TRUE(w.acquire(0, got.value(), false, h));
    mine.push_back(h);
  }
  HostPlatform::bind_current_thread(0);
  EXPECT_EQ(err(w.pmm().allocate_frame(FrameOwner::Kernel, AllocFlags::Emergency).status()),
            err(Status::OutOfMemory));
  s = w.pmm().stats();
  EXPECT_EQ(s.free, 0u);
  EXPECT_EQ(s.emergency_allocations, kReserve);

  for (const Held& h : mine) {
    ASSERT_TRUE(w.free(0, h));
  }
  free_mailbox(w);
  w.expect_fully_coalesced();
}

}  // namespace
