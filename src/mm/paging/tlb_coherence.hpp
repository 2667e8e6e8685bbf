// TlbCoherence: keeps every CPU's TLB honest after the page tables change
// (Linux's arch/x86/mm/tlb.c, Zircon's mp_sync_exec + PendingTlbInvalidation,
// PatchworkOS's per-CPU shootdown queue).
//
// Shootdown. A TlbBatch hands over what one operation changed: up to
// kMaxPages pages, or "everything of this space", or "everything everywhere"
// (a top-level entry or a global mapping changed). The initiator
//   1. bumps the space's generation (tlb_context.hpp says why first),
//   2. posts a request to each target's queue: the CPUs in the space's active
//      mask (every online CPU for `everywhere` and the Broadcast policy),
//   3. sends one IPI to each target,
//   4. invalidates its own TLB if it runs the space,
//   5. waits until every target has acknowledged, answering requests posted
//      to itself meanwhile (two CPUs may shoot at each other, each holding its
//      own space's lock with interrupts off),
// and only then does the batch free frames and page tables.
//
// Requests. Each CPU has a queue of kQueueDepth requests, each a pointer to
// the initiator's Flush (which lives until the acknowledgement). A full queue
// degrades to one full flush of everything. Acknowledgement is per CPU and
// by sequence number: a target's `done` reaches the number the initiator got
// when posting.
//
// PCIDs. With PCIDs on, each CPU keeps kPcidSlots PCIDs (1..kPcidSlots) for
// the spaces it ran last, each remembering the space's generation it holds.
// Switching to a space reuses its slot without a flush when the generation is
// current, and flushes the PCID when it is not; a space with no slot takes
// the least recently loaded one and flushes it. So a CPU that switched away
// is never sent a shootdown, yet never uses what one would have removed.
//
// A CPU that is not online (not started, or finished) receives nothing; it
// flushes everything when it goes offline.
//
// Teardown (lazy TLB). A CPU may still have a space loaded when the space is
// destroyed (it switched to kernel work without loading another CR3, as
// Linux's lazy TLB mode does). The teardown's last shootdown carries
// `leave`: every CPU running the space loads the idle root (the kernel's own
// tables, no user half) under PCID 0 before it acknowledges, so the space's
// root is freed only when no CR3 points at it. A CPU that tries to load a
// dying space loads the idle root instead (TlbContext::dying).
#pragma once

#include "mm/base/panic.hpp"
#include "mm/paging/shootdown_policy.hpp"
#include "mm/paging/tlb_context.hpp"
#include "mm/platform/platform.hpp"

namespace mm {

// Told, before each reference a TLB batch drops, which space's removed
// translation held it (the emulator's oracle checks that no TLB can still
// reach the frame through that space); and each time a space's page stops
// sharing a copy-on-write frame, which space and page, the frame it shared
// and the frame it has now: the same frame when it took it in place (the
// oracle checks that no TLB can reach it through any other space), a copy
// otherwise. Where two spaces unshare, unmap or fork at once, which of them
// copies is decided here, by an order of refcounts no lock imposes: the
// fuzzer's reference model learns it from this call. Unset: one untaken
// branch each.
struct ReferenceObserver {
  void (*dropping)(void* context, const TlbContext* space, PhysAddr frame) = nullptr;
  void (*unshared)(void* context, const TlbContext* space, VirtAddr page, PhysAddr from, PhysAddr to) = nullptr;
  void* context = nullptr;
};

struct TlbCoherenceConfig {
  ShootdownPolicy policy = ShootdownPolicy::Batched;
  u32 flush_threshold = 32;  // pages above which a request is a full flush of the space
  bool pcid = false;         // CR4.PCIDE is set on every CPU
  ReferenceObserver observer{};
};

struct ShootdownStats {
  u64 shootdowns = 0;         // flushes that involved at least one other CPU
  u64 local_flushes = 0;      // flushes no other CPU had to see
  u64 ipis = 0;               // IPIs sent
  u64 pages_invalidated = 0;  // INVLPGs, on every CPU
  u64 full_flushes = 0;       // PCID or whole-TLB flushes, on every CPU
  u64 queue_overflows = 0;    // requests that found a full queue
};

template <Platform P>
class TlbCoherence {
 public:
  static constexpr u32 kMaxPages = 32;
  static constexpr u32 kQueueDepth = 16;
  static constexpr u32 kPcidSlots = 6;

  // One shootdown, as the targets see it.
  struct Flush {
    const TlbContext* context = nullptr;  // null with `everywhere`
    const u64* pages = nullptr;
    u32 count = 0;
    bool full = false;        // the whole space
    bool everywhere = false;  // every translation of every space, globals too
    bool leave = false;       // CPUs running `context` load the idle root (teardown)
    u64 generation = 0;
  };

  TlbCoherence(P& platform, TlbCoherenceConfig config) : platform_(platform), config_(config) {
    if (config_.flush_threshold > kMaxPages) config_.flush_threshold = kMaxPages;
  }
  TlbCoherence(const TlbCoherence&) = delete;
  TlbCoherence& operator=(const TlbCoherence&) = delete;

  const TlbCoherenceConfig& config() const { return config_; }
  // A TLB batch of `space` is about to drop a reference to `frame` (ReferenceObserver).
  void note_reference_drop(const TlbContext* space, PhysAddr frame) const {
    if (config_.observer.dropping != nullptr) config_.observer.dropping(config_.observer.context, space, frame);
  }
  // `space`'s `page` shared `from` copy-on-write and now has `to` (ReferenceObserver).
  void note_unshared(const TlbContext* space, VirtAddr page, PhysAddr from, PhysAddr to) const {
    if (config_.observer.unshared != nullptr) config_.observer.unshared(config_.observer.context, space, page, from, to);
  }
  ShootdownPolicy policy() const { return config_.policy; }

  // The calling CPU starts (or stops) taking part: it may be sent requests
  // from now on. Going offline leaves its space and flushes its whole TLB.
  void cpu_online() {
    PerCpu& me = mine();
    LockGuard guard(me.lock);
    me.online = true;
    set_bit(online_, platform_.current_cpu());
  }
  void cpu_offline() {
    const CpuId self = platform_.current_cpu();
    PerCpu& me = cpus_[self];
    LockGuard guard(me.lock);
    clear_bit(online_, self);
    if (me.current != nullptr) clear_bit(me.current->active, self);
    me.current = nullptr;
    me.online = false;
    platform_.flush_all();
    for (Slot& slot : me.slots) slot = Slot{};
    me.count = 0;
    me.overflow = false;
    me.done.store(me.posted, MemoryOrder::Release);
  }

  // The tables a CPU loads when it runs no user space: the kernel's own
  // (VmSystem sets them at init). Teardown makes CPUs leave to them.
  void set_idle_root(PhysAddr root) { idle_root_ = root; }
  PhysAddr idle_root() const { return idle_root_; }

  // Loads `context` (whose page tables are at `root`) on the calling CPU.
  // False, with the idle root loaded instead, when the space is being torn
  // down (TlbContext::dying).
  [[nodiscard]] bool switch_to(TlbContext& context, PhysAddr root) {
    const CpuId self = platform_.current_cpu();
    PerCpu& me = cpus_[self];
    LockGuard guard(me.lock);
    // The space's shootdowns reach this CPU from here on: before its
    // generation is read (tlb_context.hpp says why).
    set_bit(context.active, self);
    if (context.dying.load() != 0) {
      if (me.current != &context) clear_bit(context.active, self);
      leave_locked(me, self);
      return false;
    }
    const u64 generation = context.generation.load();
    // The PCID and whether its entries must go. The bookkeeping (current,
    // slots, the previous space's active bit) changes only after the CR3
    // load: until then this CPU's entries are still the previous space's,
    // which still sends it its shootdowns (as it must, with them cached).
    u32 index = kNoSlot;
    bool flush = true;
    if (config_.pcid) {
      index = find_slot(me, &context);
      if (index != kNoSlot) {
        flush = me.slots[index].generation != generation && config_.policy != ShootdownPolicy::UnsafeActiveOnly;
      }
    }
    const bool new_slot = config_.pcid && index == kNoSlot;
    if (new_slot) index = me.next_victim;
    platform_.load_address_space(root, config_.pcid ? pcid_of(index) : Pcid{0}, flush ? CrFlush::Yes : CrFlush::No);
    if (me.current != &context && me.current != nullptr) clear_bit(me.current->active, self);
    me.current = &context;
    me.slot = index;
    if (config_.pcid) {
      if (new_slot) {
        me.next_victim = (me.next_victim + 1) % kPcidSlots;
        me.slots[index].context = &context;
      }
      me.slots[index].generation = generation;
    }
    return true;
  }

  // The calling CPU stops running its space and loads the idle root under PCID 0.
  void switch_to_kernel() {
    const CpuId self = platform_.current_cpu();
    PerCpu& me = cpus_[self];
    LockGuard guard(me.lock);
    leave_locked(me, self);
  }

  // The space behind `context` is being destroyed: no CPU may run it, and
  // every PCID slot that remembers it forgets it (the PCID is flushed when the
  // slot is next used).
  void retire(TlbContext& context) {
    MM_ASSERT(context.active.load() == 0);
    for (u32 cpu = 0; cpu < platform_.cpu_count(); ++cpu) {
      PerCpu& other = cpus_[cpu];
      LockGuard guard(other.lock);
      for (Slot& slot : other.slots) {
        if (slot.context == &context) slot = Slot{};
      }
    }
  }

  // Invalidates what `flush` says on every CPU that may hold it, and returns
  // when each has acknowledged. `context` is null only with `everywhere`.
  // Shootdowns of one context are serialized by the caller (the address
  // space's lock).
  // With `leave` (teardown), every CPU running `context` also leaves it for
  // the idle root, whatever the policy: an unsafe policy may leave stale
  // translations, never a freed root in CR3.
  void shootdown(TlbContext* context, const u64* pages, u32 count, bool full, bool everywhere, bool leave = false) {
    if (config_.policy == ShootdownPolicy::UnsafeNoFlush && !leave) return;
    Flush flush{context, pages, count, full || count > config_.flush_threshold, everywhere, leave, 0};
    if (context != nullptr) flush.generation = context->generation.fetch_add(1) + 1;
    const CpuId self = platform_.current_cpu();
    CpuSet targets;
    if (config_.policy != ShootdownPolicy::UnsafeLocalOnly || leave) {
      const bool broadcast = everywhere || context == nullptr || config_.policy == ShootdownPolicy::Broadcast;
      targets = CpuSet::from_bits(broadcast ? online_.load() : context->active.load()).without(self);
    }

    u64 ticket[kMaxCpus];
    CpuSet posted;
    targets.for_each([&](CpuId cpu) {
      PerCpu& target = cpus_[cpu];
      LockGuard guard(target.lock);
      if (!target.online) return;
      if (target.count < kQueueDepth && !target.overflow) {
        target.queue[target.count++] = &flush;
      } else {
        target.overflow = true;
        bump(stats_.queue_overflows, 1);
      }
      ticket[cpu] = ++target.posted;
      posted = posted.with(cpu);
    });
    if (!posted.empty()) {
      platform_.send_ipi(posted);
      bump(stats_.ipis, posted.count());
    }
    {
      PerCpu& me = cpus_[self];
      LockGuard guard(me.lock);
      apply_locked(me, flush);
    }
    posted.for_each([&](CpuId cpu) {
      while (cpus_[cpu].done.load(MemoryOrder::Acquire) < ticket[cpu]) {
        handle_ipi();  // a request to this CPU must not wait on this wait
        platform_.relax();
      }
    });
    bump(posted.empty() ? stats_.local_flushes : stats_.shootdowns, 1);
  }

  // The shootdown interrupt's handler (the kernel's vector, the emulator's
  // delivery at an access boundary), and the initiator's own polling.
  void handle_ipi() {
    PerCpu& me = mine();
    LockGuard guard(me.lock);
    if (me.done.load(MemoryOrder::Relaxed) == me.posted) return;
    if (me.overflow) {
      platform_.flush_all();
      bump(me.full_flushes, 1);
    } else {
      for (u32 i = 0; i < me.count; ++i) apply_locked(me, *me.queue[i]);
    }
    me.count = 0;
    me.overflow = false;
    me.done.store(me.posted, MemoryOrder::Release);
  }

  // --- For the emulator's oracle: read while every CPU stands still. ---

  // Has a request been posted to `cpu` that it has not handled?
  bool request_pending(CpuId cpu) const { return cpus_[cpu].done.load(MemoryOrder::Acquire) != cpus_[cpu].posted; }
  // The context whose translations `cpu` may use under `pcid` without
  // flushing first: the one it runs, or one whose slot is current (any slot
  // under UnsafeActiveOnly, which never flushes on reuse). Null if none.
  const TlbContext* usable_context(CpuId cpu, Pcid pcid) const {
    const PerCpu& c = cpus_[cpu];
    if (!config_.pcid) return pcid.value == 0 ? c.current : nullptr;
    if (pcid.value == 0 || pcid.value > kPcidSlots) return nullptr;
    const u32 index = pcid.value - 1u;
    if (index == c.slot) return c.current;
    const Slot& slot = c.slots[index];
    if (slot.context == nullptr) return nullptr;
    const bool current = slot.generation == slot.context->generation.load();
    return current || config_.policy == ShootdownPolicy::UnsafeActiveOnly ? slot.context : nullptr;
  }
  const TlbContext* running(CpuId cpu) const { return cpus_[cpu].current; }

  ShootdownStats stats() const {
    ShootdownStats s;
    s.shootdowns = stats_.shootdowns.load(MemoryOrder::Relaxed);
    s.local_flushes = stats_.local_flushes.load(MemoryOrder::Relaxed);
    s.ipis = stats_.ipis.load(MemoryOrder::Relaxed);
    for (const PerCpu& c : cpus_) {
      s.pages_invalidated += c.pages_invalidated.load(MemoryOrder::Relaxed);
      s.full_flushes += c.full_flushes.load(MemoryOrder::Relaxed);
    }
    s.queue_overflows = stats_.queue_overflows.load(MemoryOrder::Relaxed);
    return s;
  }

 private:
  static constexpr u32 kNoSlot = ~u32{0};

  struct Slot {
    const TlbContext* context = nullptr;
    u64 generation = 0;
  };

  // A cache line of its own: neighbours' requests and acknowledgements must
  // not bounce it.
  struct alignas(64) PerCpu {
    // A leaf (LockClass::TlbCpu): taken under the initiator's space lock,
    // one CPU's at a time; nothing is taken under it.
    typename P::SpinLock lock{LockClass::TlbCpu};
    // Guarded by lock.
    const Flush* queue[kQueueDepth] = {};
    u32 count = 0;
    bool overflow = false;
    bool online = false;
    u64 posted = 0;
    Atomic<u64> done{0};  // written under lock, read by waiting initiators
    // Touched by the CPU itself (under lock, so its IPI handler stays out),
    // read by the oracle while every CPU stands still.
    TlbContext* current = nullptr;
    u32 slot = kNoSlot;  // the slot of `current`
    Slot slots[kPcidSlots];
    u32 next_victim = 0;
    // What this CPU invalidated (bumped by it alone; summed by stats()), so
    // a target does not write a counter line its initiator writes too.
    Atomic<u64> pages_invalidated{0};
    Atomic<u64> full_flushes{0};
  };

  // Bumped by initiators.
  struct Counters {
    Atomic<u64> shootdowns{0};
    Atomic<u64> local_flushes{0};
    Atomic<u64> ipis{0};
    Atomic<u64> queue_overflows{0};
  };

  static Pcid pcid_of(u32 slot) { return Pcid{static_cast<u16>(slot + 1)}; }
  static u32 find_slot(const PerCpu& c, const TlbContext* context) {
    for (u32 i = 0; i < kPcidSlots; ++i) {
      if (c.slots[i].context == context) return i;
    }
    return kNoSlot;
  }
  static void set_bit(Atomic<u64>& mask, CpuId cpu) { mask.fetch_or(u64{1} << cpu); }
  static void clear_bit(Atomic<u64>& mask, CpuId cpu) { mask.fetch_and(~(u64{1} << cpu)); }
  static void bump(Atomic<u64>& counter, u64 n) { counter.fetch_add(n, MemoryOrder::Relaxed); }

  PerCpu& mine() { return cpus_[platform_.current_cpu()]; }

  // The calling CPU runs no user space any more: the idle root, PCID 0
  // (loaded first, as in switch_to: until then its entries are its space's).
  void leave_locked(PerCpu& me, CpuId self) {
    platform_.load_address_space(idle_root_, Pcid{0}, CrFlush::Yes);
    if (me.current != nullptr) clear_bit(me.current->active, self);
    me.current = nullptr;
    me.slot = kNoSlot;
  }

  // One request's invalidations on the calling CPU.
  void apply_locked(PerCpu& me, const Flush& flush) {
    if (flush.leave && flush.context == me.current && me.current != nullptr) {
      leave_locked(me, platform_.current_cpu());
    }
    if (flush.everywhere) {
      platform_.flush_all();
      bump(me.full_flushes, 1);
      return;
    }
    if (flush.context != me.current) return;  // not running it: its slot is stale now
    if (flush.full) {
      platform_.flush_pcid(me.slot == kNoSlot ? Pcid{0} : pcid_of(me.slot));
      bump(me.full_flushes, 1);
    } else {
      for (u32 i = 0; i < flush.count; ++i) platform_.invalidate_page(VirtAddr(flush.pages[i]));
      bump(me.pages_invalidated, flush.count);
    }
    if (me.slot != kNoSlot && me.slots[me.slot].generation < flush.generation) {
      me.slots[me.slot].generation = flush.generation;
    }
  }

  P& platform_;
  TlbCoherenceConfig config_;
  PhysAddr idle_root_;
  Atomic<u64> online_{0};
  PerCpu cpus_[kMaxCpus];
  Counters stats_;
};

}  // namespace mm
