// AddressSpace: one user address space: its page tables, its ordered set of
// regions, and the operations on them (PatchworkOS vmm_map / vmm_unmap /
// vmm_protect / vmm_alloc, with their error codes), the fault handler, fork
// and teardown.
//
// Layout (vm/layout.hpp): user space is [4 MiB, 2^47); the upper half of the
// page tables is the kernel's, shared with every space.
//
// Physical (device) regions map 2 MiB pages wherever alignment allows;
// anonymous memory is mapped in 4 KiB pages.
//
// Frames: anonymous memory is demand-zero. A never-written page maps the
// system's shared zero frame read-only; the first write gives it a zeroed
// frame of its own. Fork makes private anonymous pages copy-on-write in both
// spaces (pte::kCopyOnWrite, read-only) and commits one frame per shared
// frame, so the copy a later write needs cannot fail for lack of memory
// (SerenityOS's committed pages). The accounting invariant: the commitments
// outstanding equal the sum, over frames shared copy-on-write, of their
// mapcount minus one (Frame::mapcount: mappings, not references; a removed
// mapping's reference lingers until its shootdown). A write to a
// copy-on-write page copies only if the frame is still shared; its last user
// takes it writable once no other reference is left (break_cow_locked).
//
// References: a mapping's reference on its frame is dropped by the TLB batch
// after the flush that removed the mapping from every TLB, never when the
// entry changes (tlb_batch.hpp; docs/TLB_COHERENCE.md, "Reference drops").
// This holds for every path that removes a mapping: the copy-on-write copy,
// unmap, a Replace map, fork's undo, and teardown.
//
// Pins: a pinned page keeps the frame it has. Pinning gives every page of
// the range a frame of its own (no zero frame, no copy-on-write sharing),
// and fork copies a pinned page for the child instead of sharing it (Linux
// after CVE-2020-29374): a write by either space can then never move the
// pinned page to another frame.
//
// Every operation either succeeds or returns a Status and changes nothing,
// with one documented exception (a Replace map whose populate runs out of
// memory loses the old mapping). Objects it may need (regions, commitments)
// are obtained before anything is changed.
//
// Locking: lock_ guards the regions and the page tables; it is taken before
// VmSystem's lock, PhysicalMemory's locks and the TLB's per-CPU locks
// (base/lock_class.hpp has the whole order). Methods named ...Locked need it.
#pragma once

#include "mm/paging/page_tables.hpp"
#include "mm/vm/fault.hpp"
#include "mm/vm/layout.hpp"
#include "mm/vm/region_set.hpp"
#include "mm/vm/vm_system.hpp"

namespace mm {

enum class MapFixed : u8 {
  FailIfExists,  // EEXIST if anything is mapped in the range
  Replace,       // unmap whatever is there first (EBUSY if any of it is pinned)
};

struct MapRequest {
  VirtAddr address{};  // for alloc(), a hint
  u64 length = 0;
  Prot prot = Prot::ReadWrite;
  RegionKind kind = RegionKind::Anonymous;  // Anonymous, Stack or Physical
  ForkPolicy fork = ForkPolicy::Private;
  PhysAddr physical{};  // Physical regions: the first frame
  MapFixed fixed = MapFixed::FailIfExists;
  bool populate = false;  // fault every page in now
};

struct AddressSpaceStats {
  u64 regions = 0;
  u64 mapped_pages = 0;     // leaves, present or parked (PROT_NONE)
  u64 zero_pages = 0;       // of which map the shared zero frame
  u64 cow_pages = 0;        // of which are copy-on-write
  u64 table_frames = 0;
};

template <Platform P>
class AddressSpace {
 public:
  explicit AddressSpace(VmSystem<P>& vm)
      : vm_(vm), tables_(vm.platform(), vm.memory(), &vm.coherence()), target_(tables_.tlb_target()) {}
  ~AddressSpace() { MM_ASSERT(!live_); }
  AddressSpace(const AddressSpace&) = delete;
  AddressSpace& operator=(const AddressSpace&) = delete;

  // Creates the page tables (sharing the system's kernel half). ENOMEM.
  Status init() {
    MM_TRY(tables_.create(vm_.kernel_half()));
    live_ = true;
    vm_.count_space(true);
    return Status::Ok;
  }

  // Unmaps everything and frees every frame and page table the space owns.
  // A CPU may still have the space loaded (lazy TLB): the teardown's
  // shootdown makes it load the idle root first. Afterwards every operation
  // answers ENOENT (faults: Segv), and activate() loads the idle root.
  void destroy() MM_EXCLUDES(lock_);

  // Maps [address, address + length). EINVAL: a zero or unaligned length or
  // address, a range outside user space, a Physical region with an unaligned
  // frame, a Stack with no room for its guard page. EEXIST: something is
  // already mapped there (MapFixed::FailIfExists). EBUSY: Replace over pinned
  // pages. ENOMEM: no memory for the region or for populate.
  Status map(const MapRequest& request) MM_EXCLUDES(lock_);

  // Like map, at an address the space chooses: the lowest free range at or
  // above request.address (a hint), else the lowest at all. ENOMEM when no
  // range is large enough.
  Result<VirtAddr> alloc(const MapRequest& request) MM_EXCLUDES(lock_);

  // Removes [address, address + length): regions are trimmed or split, their
  // frames released once no TLB can reach them. Unmapping a hole is not an
  // error. EINVAL as for map; EBUSY if any page in the range is pinned.
  Status unmap(VirtAddr address, u64 length) MM_EXCLUDES(lock_);

  // Changes the protection of [address, address + length). EINVAL as for
  // map; ENOENT when part of the range is not mapped (or is a guard page).
  Status protect(VirtAddr address, u64 length, Prot prot) MM_EXCLUDES(lock_);

  // Pins [address, address + length): its pages are populated now and the
  // range cannot be unmapped (EBUSY) until unpinned. ENOENT over a hole,
  // ENOMEM when populating fails (then nothing is pinned).
  Status pin(VirtAddr address, u64 length) MM_EXCLUDES(lock_);
  // EINVAL if part of the range is not pinned.
  Status unpin(VirtAddr address, u64 length) MM_EXCLUDES(lock_);

  // The one fault entry: `address` was accessed (`access`, from `mode`) and
  // the translation did not allow it.
  FaultOutcome handle_fault(VirtAddr address, Access access, AccessMode mode) MM_EXCLUDES(lock_);

  // Makes `child` (initialized, empty) a copy-on-write clone of this space.
  // ENOMEM (commitments or page tables) leaves both spaces as they were,
  // except that some of this space's pages may be left write-protected.
  Status fork(AddressSpace& child) MM_EXCLUDES(lock_);

  // 64-bit reads and writes through the kernel's direct map, resolving
  // faults as a kernel access would (poke and peek in scenarios). EINVAL for
  // an unaligned address; EFAULT where the access is a segmentation fault;
  // ENOMEM when resolving needs memory there is not.
  Status write_u64(VirtAddr address, u64 value) MM_EXCLUDES(lock_);
  Result<u64> read_u64(VirtAddr address) MM_EXCLUDES(lock_);

  PhysAddr root() const { return tables_.root(); }

  // Loads this space on the calling CPU (a CR3 write, with the PCID and
  // flush decision of TlbCoherence::switch_to). ENOENT, with the idle root
  // loaded instead, once the space is being destroyed.
  Status activate() {
    return vm_.coherence().switch_to(*target_.context, tables_.root()) ? Status::Ok : Status::NotFound;
  }
  // What the shootdown protocol knows of this space (for the emulator's oracle).
  const TlbContext& tlb_context() const { return *target_.context; }
  TlbContext& tlb_context() { return *target_.context; }
  Result<Translation> translate(VirtAddr address) MM_EXCLUDES(lock_) {
    LockGuard guard(lock_);
    if (!live_) return Status::NotFound;
    return tables_.query(address);
  }
  // Calls f(const Region&) for each region in address order.
  template <typename F>
  void for_each_region(F&& f) MM_EXCLUDES(lock_) {
    LockGuard guard(lock_);
    for (const Region* r = regions_.first(); r != nullptr; r = regions_.next(r)) f(*r);
  }
  AddressSpaceStats stats() MM_EXCLUDES(lock_);
  bool check_regions() MM_EXCLUDES(lock_) {
    LockGuard guard(lock_);
    return regions_.check();
  }

 private:
  using Lock = typename P::SpinLock;
  using Batch = TlbBatch<P>;

  // Region objects obtained before an operation changes anything.
  class Spares {
   public:
    explicit Spares(VmSystem<P>& vm) : vm_(vm) {}
    ~Spares() {
      for (int i = 0; i < count_; ++i) vm_.free_region(regions_[i]);
    }
    Status reserve(int n) {
      while (count_ < n) {
        regions_[count_++] = MM_TRY(vm_.new_region());
      }
      return Status::Ok;
    }
    Region* take() {
      MM_ASSERT(count_ > 0);
      return regions_[--count_];
    }

   private:
    VmSystem<P>& vm_;
    Region* regions_[6] = {};
    int count_ = 0;
  };

  // Does fork share this region's frames copy-on-write? (Device memory is
  // shared as it is, Shared regions are shared for good, and a pinned
  // region's pages are copied for the child.)
  static bool shares_copy_on_write(const Region& r) {
    return r.kind != RegionKind::Physical && r.kind != RegionKind::Guard && r.fork == ForkPolicy::Private && r.pins == 0;
  }

  static bool range_ok(VirtAddr address, u64 length) {
    return length != 0 && address.is_page_aligned() && (length & kPageMask) == 0 && in_user_space(address, length);
  }

  Batch new_batch() { return Batch(vm_.platform(), vm_.memory(), target_, vm_.coherence().config().flush_threshold); }
  bool flush_after_unlock() const { return vm_.coherence().policy() == ShootdownPolicy::UnsafeFlushAfterUnlock; }

  Status map_locked(const MapRequest& request, Batch& batch) MM_REQUIRES(lock_);
  Status unmap_locked(VirtAddr lo, VirtAddr hi, Batch& batch) MM_REQUIRES(lock_);
  Status protect_locked(VirtAddr lo, VirtAddr hi, Prot prot, Batch& batch) MM_REQUIRES(lock_);
  // Splits regions so that none straddles `lo` or `hi`. Needs two spares.
  void isolate_locked(VirtAddr lo, VirtAddr hi, Spares& spares) MM_REQUIRES(lock_);
  Region* split_locked(Region* region, VirtAddr at, Spares& spares) MM_REQUIRES(lock_);
  void merge_around_locked(Region* region) MM_REQUIRES(lock_);
  // Merges every compatible pair of neighbours from just before `lo` to just past `hi`.
  void merge_range_locked(VirtAddr lo, VirtAddr hi) MM_REQUIRES(lock_);
  // Removes every region in [lo, hi) and releases its pages. Needs two spares,
  // and no large page straddling `lo` or `hi` (split_large_edges_locked).
  void unmap_range_locked(VirtAddr lo, VirtAddr hi, Spares& spares, Batch& batch) MM_REQUIRES(lock_);
  // Splits a device region's large page that straddles `lo` or `hi`, so that
  // what follows can change [lo, hi) alone without needing memory: ENOMEM
  // (when the split needs a page table there is not) comes before anything
  // visible changes.
  Status split_large_edges_locked(VirtAddr lo, VirtAddr hi, Batch& batch) MM_REQUIRES(lock_);
  void remove_region_locked(Region* region, Batch& batch) MM_REQUIRES(lock_);
  // The leaf's mapping of its frame is gone: mapcount falls now (and a
  // copy-on-write sharer's commitment with it), the reference after the flush.
  void release_leaf(const Region& region, Pte leaf, PageSize size, Batch& batch);
  bool covered_locked(VirtAddr lo, VirtAddr hi) const MM_REQUIRES(lock_);
  bool any_pinned_locked(VirtAddr lo, VirtAddr hi) const MM_REQUIRES(lock_);
  // The leaf a region's protection gives `frame` (never writable for the
  // zero frame or a copy-on-write frame; parked for Prot::None).
  Pte leaf_for(const Region& region, PhysAddr frame, u64 keep_bits) const;
  // Unshare::Yes: the page must end with a frame of its own (fault_locked).
  enum class Unshare : u8 { No, Yes };
  FaultOutcome fault_locked(VirtAddr address, Access access, AccessMode mode, Batch& batch,
                            Unshare unshare = Unshare::No) MM_REQUIRES(lock_);
  FaultOutcome map_backing_locked(const Region& region, VirtAddr page, Access access, Unshare unshare, Batch& batch)
      MM_REQUIRES(lock_);
  FaultOutcome break_cow_locked(const Region& region, VirtAddr page, Pte leaf, Batch& batch) MM_REQUIRES(lock_);
  Status populate_locked(VirtAddr lo, VirtAddr hi, Batch& batch, Unshare unshare = Unshare::No) MM_REQUIRES(lock_);
  bool map_large_physical_locked(const Region& region, VirtAddr page) MM_REQUIRES(lock_);
  Result<PhysAddr> kernel_access_locked(VirtAddr address, Access access, Batch& batch) MM_REQUIRES(lock_);

  Frame& frame_of(PhysAddr frame) { return vm_.memory().frames()[Pfn::containing(frame)]; }

  VmSystem<P>& vm_;
  // LockClass::AddressSpace, the outermost of the core's locks: every other
  // (VmSystem's, the physical memory's, the TLB's per-CPU locks) is taken
  // under it. Two spaces' at once only in fork: the child's is Inner.
  Lock lock_{LockClass::AddressSpace};
  PageTables<P> tables_ MM_GUARDED_BY(lock_);
  const TlbTarget<P> target_;  // the coherence and tables_'s context: fixed for life
  RegionSet regions_ MM_GUARDED_BY(lock_);
  bool live_ = false;  // between init() and destroy(); destroy clears it under lock_
};

}  // namespace mm

#include "mm/vm/address_space_fault.hpp"
#include "mm/vm/address_space_fork.hpp"
#include "mm/vm/address_space_map.hpp"
