// TlbBatch: one operation's TLB invalidations and the reference drops that
// must wait for them (Linux's mmu_gather, Redox's Flusher, Zircon's
// PendingTlbInvalidation).
//
// A change that may leave a stale translation records the page here. The
// reference that a removed translation held on its frame is handed over
// here too, never dropped on the spot: flush() first invalidates, then drops
// those references, and a frame whose last reference goes is freed. The order
// is the whole point, and it is about references, not only frees: a frame
// shared by two spaces must keep the reference of the first space's removed
// entry until that space's CPUs have flushed it, or the second space, dropping
// the last reference after flushing only its own CPUs, frees a frame the
// first space's CPUs can still reach (see docs/TLB_COHERENCE.md, "Reference
// drops"). A page table that leaves its tree is handed over the same way.
//
// Up to kMaxPages pages are invalidated one by one (INVLPG); past that, or
// past the flush threshold, the batch does a full flush instead. A change to
// a top-level entry or a global mapping makes it a flush of everything on
// every CPU. When the list of pending drops fills up, the batch flushes early
// and starts again, so it never needs memory of its own.
//
// With a TlbCoherence (every address space has one), flush() is a
// shootdown: every CPU that may hold the space's translations invalidates
// and acknowledges before any reference is dropped. Without one (page-table
// unit tests, the kernel's boot tables) it acts on the calling CPU only.
// Destroying a batch that still holds work is a bug, caught by an assertion.
#pragma once

#include "mm/paging/pte.hpp"
#include "mm/paging/tlb_coherence.hpp"
#include "mm/phys/physical_memory.hpp"
#include "mm/platform/platform.hpp"

namespace mm {

struct TlbBatchStats {
  u64 flushes = 0;
  u64 pages_invalidated = 0;
  u64 full_flushes = 0;
  u64 references_dropped = 0;
  u64 frames_freed = 0;  // of which were the frame's last
};

// Where a batch's shootdown goes: the machine's coherence and the space's context.
template <Platform P>
struct TlbTarget {
  TlbCoherence<P>* coherence = nullptr;
  TlbContext* context = nullptr;
};

template <Platform P>
class [[nodiscard]] TlbBatch {
 public:
  static constexpr u32 kMaxPages = 32;
  static constexpr u32 kMaxDeferredReleases = 64;

  // `flush_threshold`: pages above which a flush is a full flush (at most kMaxPages).
  TlbBatch(P& platform, PhysicalMemory<P>& memory, TlbTarget<P> target = {}, u32 flush_threshold = kMaxPages)
      : platform_(platform), memory_(memory), target_(target),
        threshold_(flush_threshold < kMaxPages ? flush_threshold : kMaxPages) {}
  ~TlbBatch() { MM_ASSERT(empty()); }
  TlbBatch(const TlbBatch&) = delete;
  TlbBatch& operator=(const TlbBatch&) = delete;

  // The translation of the page containing `address` (any size) may be stale.
  void invalidate(VirtAddr address, bool global = false) {
    note_pending();
    global_ = global_ || global;
    if (full_) {
      return;
    }
    if (page_count_ == threshold_) {
      full_ = true;
      return;
    }
    pages_[page_count_++] = align_down(address.value(), kPageSize);
  }

  // Everything may be stale (a top-level entry changed, or the caller knows
  // a full flush is cheaper).
  void invalidate_all(bool global = false) {
    note_pending();
    full_ = true;
    global_ = global_ || global;
  }

  // A top-level entry changed: every translation on every CPU may be stale
  // (and any paging-structure cache entry below it).
  void invalidate_everywhere() {
    invalidate_all(true);
  }

  // The space is being torn down: the flush also makes every CPU that still
  // runs it load the idle root (TlbCoherence, "Teardown"), before the root
  // this batch retires is freed.
  void leave_space() {
    invalidate_everywhere();
    leave_ = true;
  }

  // After the flush, drops one reference to the single frame at `frame`: the
  // reference a removed translation held (the frame is freed if it was the
  // last), or a retired page table's place in its tree.
  void release_after_flush(PhysAddr frame) {
    if (release_count_ == kMaxDeferredReleases) {
      flush();
    }
    releases_[release_count_++] = frame.value();
  }

  bool empty() const { return page_count_ == 0 && !full_ && release_count_ == 0; }

  // Invalidates, then drops the references. Leaves the batch empty and reusable.
  void flush() {
    const bool invalidates = full_ || page_count_ > 0;
    const bool drop_first =
        target_.coherence != nullptr && target_.coherence->policy() == ShootdownPolicy::UnsafeFreeBeforeAck;
    if (drop_first) drop_deferred();
    if (invalidates) {
      if (target_.coherence != nullptr) {
        target_.coherence->shootdown(target_.context, pages_, page_count_, full_, global_, leave_);
      } else {
        flush_locally();
      }
      ++stats_.flushes;
      if (full_) {
        ++stats_.full_flushes;
      } else {
        stats_.pages_invalidated += page_count_;
      }
    }
    drop_deferred();
    if (pending_) {
      target_.context->pending.fetch_sub(1);
      pending_ = false;
    }
    page_count_ = 0;
    full_ = false;
    global_ = false;
    leave_ = false;
  }

  const TlbBatchStats& stats() const { return stats_; }

 private:
  // Raw integers below, not VirtAddr/PhysAddr: those zero-initialize, and a
  // batch is built on every fault and map; only the used prefix is ever read.

  // The context's pending count rises with the first invalidation, before
  // any other CPU can run (the caller stored the entry a moment ago and made
  // no scheduling point since), and falls once the shootdown is acknowledged.
  void note_pending() {
    if (!pending_ && target_.context != nullptr) {
      target_.context->pending.fetch_add(1);
      pending_ = true;
    }
  }

  void flush_locally() {
    if (full_) {
      if (global_) {
        platform_.flush_all();
      } else {
        platform_.flush_pcid(Pcid{});
      }
    } else {
      for (u32 i = 0; i < page_count_; ++i) {
        platform_.invalidate_page(VirtAddr(pages_[i]));
      }
    }
  }

  void drop_deferred() {
    for (u32 i = 0; i < release_count_; ++i) {
      if (target_.coherence != nullptr) target_.coherence->note_reference_drop(target_.context, PhysAddr(releases_[i]));
      stats_.frames_freed += memory_.put_frame(PhysAddr(releases_[i])) ? 1 : 0;
    }
    stats_.references_dropped += release_count_;
    release_count_ = 0;
  }

  P& platform_;
  PhysicalMemory<P>& memory_;
  TlbTarget<P> target_;
  u32 threshold_;
  u64 pages_[kMaxPages];
  u32 page_count_ = 0;
  bool full_ = false;
  bool global_ = false;
  bool leave_ = false;
  bool pending_ = false;
  u64 releases_[kMaxDeferredReleases];
  u32 release_count_ = 0;
  TlbBatchStats stats_;
};

}  // namespace mm
