// A randomized differential test of AddressSpace (map, alloc, unmap,
// protect, pin, unpin, fork, destroy, faults, kernel reads and writes)
// against the page-level reference model in emu/model/vm_model.hpp.
//
// One stream per seed drives up to three live spaces (a root space and
// forked children, which may fork again and may be destroyed) over a small
// VmWorld. Every Status and every FaultOutcome is checked against the
// model's prediction, every value read against the model's value, and after
// every operation the outstanding commitments against the model's.
//
// ENOMEM: now and then a balloon of frames taken straight from the physical
// allocator leaves only a few for a while (pressure()), and the pool is
// small enough that the spaces sometimes fill it themselves. ENOMEM is
// accepted only while fewer frames are available than the operation's worst
// case (plus kSlack); the sweeps tie that figure to the model, since they
// check that every frame in use is a model store, a page table, a region
// slab, the zero frame or the balloon. After an ENOMEM the model resyncs
// what the contract lets change (a Replace whose populate failed loses the
// old mapping; a pin's populate may have got part way; a fork may leave
// pages write-protected) from an independent page walk, and the space is
// checked in full, so "ENOMEM changed nothing else" is verified.
//
// Every kSweepEvery operations, and at the end, a sweep checks each space
// against the model with the reference walker (support/reference_walker.hpp)
// and raw reads of the page tables: permissions exactly as the model says
// (present, writable, user, NX, copy-on-write, parked for PROT_NONE), frames
// shared exactly where the model shares a store (so, after fork, until
// someone writes) with a reference count equal to its holders, every word
// of every mapped frame (the slots hold the model's values, every other
// word is zero: never poison, never another space's data), the zero frame
// still all zeros, the regions page for page, and the frames in use by
// owner. At the end every space is destroyed and nothing may be left:
// frames, commitments, regions.
#include <gtest/gtest.h>

#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <deque>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "support/rng.hpp"
#include "support/sanitized.hpp"
#include "emu/model/vm_model.hpp"
#include "support/vm_world.hpp"

namespace {

using mm::Access;
using mm::AccessMode;
using mm::FaultOutcome;
using mm::MapRequest;
using mm::Prot;
using mm::Status;
using mm::VirtAddr;
using pagelab::test::Rng;
using pagelab::test::Space;
using pagelab::test::VmWorld;
using Model = pagelab::model::VmModel;
using u64 = std::uint64_t;

constexpr u64 K4 = 4096;
constexpr u64 kAddressMask = 0x000FFFFFFFFFF000ull;
constexpr u64 kPteCopyOnWrite = u64{1} << 9;  // the software bits pagelab uses (pte.hpp), read raw here
constexpr u64 kPteParked = u64{1} << 10;
constexpr u64 kPteFrameMask = 0x000FFFFFFFFFF000;  // bits 12..51: the frame of a 4 KiB leaf

// The pool: small enough that three spaces with their windows mostly
// populated would not fit, so ENOMEM happens now and then.
constexpr mm::FrameCount kFrames = 3072;
constexpr int kMaxSpaces = 3;
constexpr u64 kSweepEvery = 500;
// ENOMEM is tolerated when fewer than (the operation's worst case + this)
// frames are available to ordinary allocations.
constexpr u64 kSlack = 4;
// The chance, per thousand operations, that a pressure window opens (see
// pressure()).
constexpr u64 kBalloonPerMille = 3;

// Where the stream maps. Pages outside these are mapped only by alloc
// falling past a full window, and are swept all the same.
struct Window {
  u64 base;
  u64 pages;
};
constexpr Window kWindows[] = {
    {Model::kUserStart, 384},           // the first user pages: below them is EINVAL
    {(u64{1} << 39) - 128 * K4, 256},   // across a 512 GiB, 1 GiB and 2 MiB boundary at once
    {Model::kUserEnd - 128 * K4, 128},  // the last user pages: past them is EINVAL
};

mm::RegionKind region_kind(Model::Kind kind) {
  switch (kind) {
    case Model::Kind::Anonymous: return mm::RegionKind::Anonymous;
    case Model::Kind::Stack: return mm::RegionKind::Stack;
    case Model::Kind::Guard: return mm::RegionKind::Guard;
    case Model::Kind::Device: return mm::RegionKind::Physical;  // (not generated here)
  }
  return mm::RegionKind::Anonymous;
}
mm::ForkPolicy fork_policy(Model::Sharing sharing) {
  return sharing == Model::Sharing::Shared ? mm::ForkPolicy::Shared : mm::ForkPolicy::Private;
}
const char* kind_name(Model::Kind kind) {
  return kind == Model::Kind::Anonymous ? "anon" : kind == Model::Kind::Stack ? "stack" : kind == Model::Kind::Guard ? "guard" : "device";
}

std::string format(const char* f, ...) __attribute__((format(printf, 1, 2)));
std::string format(const char* f, ...) {
  char buffer[512];
  va_list args;
  va_start(args, f);
  std::vsnprintf(buffer, sizeof buffer, f, args);
  va_end(args);
  return buffer;
}

// A region as the implementation reports it, copied out.
struct RegionView {
  u64 base = 0;
  u64 end = 0;
  Prot prot = Prot::None;
  mm::RegionKind kind = mm::RegionKind::Anonymous;
  mm::ForkPolicy fork = mm::ForkPolicy::Private;
  std::uint32_t pins = 0;
};

struct StreamConfig {
  u64 seed;
  u64 ops;
};

class Differential {
 public:
  explicit Differential(const StreamConfig& config) : config_(config), rng_(config.seed) {
    spaces_.reserve(kMaxSpaces + 1);  // a Live& stays valid across a fork's push_back
  }
  ~Differential() {
    // After a failure, leave the world as its destructor expects.
    for (Live& s : spaces_) s.space->destroy();
    deflate();
  }

  void run() {
    free_at_start_ = world_.free_frames();
    total_frames_ = world_.pmm().stats().total;
    add_space(nullptr);
    if (failed_) return;
    for (op_ = 0; op_ < config_.ops && !failed_; ++op_) {
      pressure();
      step();
      if (failed_) break;
      const u64 committed = world_.pmm().stats().committed;
      if (committed != model_.commitments()) {
        fail(format("commitments: the implementation has %" PRIu64 ", the model %" PRIu64, committed,
                    model_.commitments()));
        break;
      }
      if ((op_ + 1) % kSweepEvery == 0) sweep();
    }
    if (!failed_) sweep();
    deflate();
    if (!failed_) finish();
  }

  void print_summary() const {
    std::printf("seed %" PRIu64 ": %" PRIu64 " ops, %" PRIu64 " sweeps, max spaces %d, forks %" PRIu64 " (%" PRIu64
                " ENOMEM), destroys %" PRIu64 ", balloons %" PRIu64 "\n",
                config_.seed, op_, sweeps_, max_spaces_, forks_, fork_enomem_, destroys_, balloons_);
    std::printf("  ENOMEM tolerated: %" PRIu64 " (fork %" PRIu64 ", map %" PRIu64 ", pin %" PRIu64 ", fault %" PRIu64
                ", kernel access %" PRIu64 ", other %" PRIu64 ")\n  statuses:",
                enomem_, fork_enomem_, map_enomem_, pin_enomem_, fault_enomem_, kernel_enomem_,
                enomem_ - fork_enomem_ - map_enomem_ - pin_enomem_ - fault_enomem_ - kernel_enomem_);
    static const char* kStatus[] = {"OK", "EINVAL", "ENOMEM", "EBUSY", "EEXIST", "ENOENT", "EFAULT"};
    for (int i = 0; i < 7; ++i) std::printf(" %s=%" PRIu64, kStatus[i], statuses_[i]);
    std::printf("\n  user accesses to stores shared with another space: %" PRIu64 " shared, %" PRIu64
                " copy-on-write; copy-on-write takeovers %" PRIu64 "; Replace+populate ENOMEM that lost a mapping %"
                PRIu64 "\n  faults:",
                shared_store_accesses_, cow_store_accesses_, cow_takeovers_, replace_losses_);
    for (unsigned i = 0; i < mm::kFaultOutcomeCount; ++i) {
      std::printf(" %s=%" PRIu64, mm::fault_outcome_name(static_cast<FaultOutcome>(i)), outcomes_[i]);
    }
    std::printf("\n");
  }

  bool failed() const { return failed_; }
  u64 status_count(Status s) const { return statuses_[static_cast<int>(s)]; }
  u64 outcome_count(FaultOutcome o) const { return outcomes_[static_cast<int>(o)]; }
  u64 shared_store_accesses() const { return shared_store_accesses_; }
  u64 cow_takeovers() const { return cow_takeovers_; }

 private:
  struct Live {
    Model::SpaceId id;
    std::unique_ptr<Space> space;
  };

  // ---- failure reporting ---------------------------------------------------

  void note(std::string what) {
    trace_.push_back(format("#%" PRIu64 " ", op_) + what);
    if (trace_.size() > 24) trace_.pop_front();
  }
  void fail(const std::string& what) {
    if (failed_) return;
    failed_ = true;
    std::string trace;
    for (const std::string& line : trace_) trace += "\n    " + line;
    ADD_FAILURE() << "seed " << config_.seed << ", op " << op_ << ": " << what << "\n  last operations:" << trace;
  }
  void count(Status s) { ++statuses_[static_cast<int>(s) < 7 ? static_cast<int>(s) : 0]; }

  // ---- choices -------------------------------------------------------------

  Live& any_space() { return spaces_[rng_.below(spaces_.size())]; }

  u64 window_page() {
    const Window& w = kWindows[rng_.below(std::size(kWindows))];
    return w.base + rng_.below(w.pages) * K4;
  }
  // A page of the space's map, or of a window; near an existing page
  // `near` percent of the time (so edges and neighbours get hit).
  u64 pick_address(const Live& s, u64 near = 50) {
    const Model::Pages& pages = model_.pages(s.id);
    if (!pages.empty() && rng_.percent(near)) {
      const auto it = std::next(pages.begin(), static_cast<long>(rng_.below(pages.size())));
      const u64 shift = rng_.below(5);  // -2 .. +2 pages
      return it->first + shift * K4 - 2 * K4;
    }
    return window_page();
  }
  u64 pick_pages() {
    const u64 r = rng_.below(100);
    return r < 60 ? rng_.range(1, 4) : r < 90 ? rng_.range(5, 16) : r < 99 ? rng_.range(17, 64) : rng_.range(65, 200);
  }
  Prot pick_prot() {
    static constexpr Prot kProts[] = {Prot::ReadWrite, Prot::ReadWrite, Prot::ReadWrite, Prot::Read,
                                      Prot::Read,      Prot::None,      Prot::ReadExec,  Prot::All};
    return kProts[rng_.below(std::size(kProts))];
  }
  // Now and then, an argument every call must refuse with EINVAL.
  void maybe_break(u64& address, u64& length) {
    if (!rng_.percent(3)) return;
    switch (rng_.below(5)) {
      case 0: address += 8; break;                                // misaligned
      case 1: length = 0; break;                                  // empty
      case 2: length = length + 100; break;                       // a partial page
      case 3: address = 0x1000; break;                            // below user space
      default: address = Model::kUserEnd - K4; length = 2 * K4;  // past user space
    }
  }

  // Whether ENOMEM is plausible for an operation that may need `demand`
  // frames: the physical allocator has fewer than that (plus slack) left
  // for ordinary allocations.
  bool scarce(u64 demand) {
    const mm::PhysicalMemoryStats s = world_.pmm().stats();
    const u64 available = s.free > s.committed ? s.free - s.committed : 0;
    return available < demand + kSlack;
  }

  // ---- memory pressure -------------------------------------------------------

  // Now and then, for a while, a balloon of frames taken straight from the
  // physical allocator leaves only a few for the spaces: every operation
  // that needs memory may then run out.
  void pressure() {
    if (!balloon_.empty()) {
      if (--balloon_ops_ == 0) deflate();
      return;
    }
    if (rng_.below(1000) >= kBalloonPerMille) return;
    const mm::PhysicalMemoryStats s = world_.pmm().stats();
    const u64 available = s.free > s.committed ? s.free - s.committed : 0;
    const u64 leave = rng_.range(0, 40);
    note(format("balloon: leave %" PRIu64 " of %" PRIu64 " frames", leave, available));
    for (u64 n = available > leave ? available - leave : 0; n > 0; --n) {
      const mm::Result<mm::PhysAddr> frame = world_.pmm().allocate_frame(mm::FrameOwner::Kernel);
      if (!frame.ok()) break;
      balloon_.push_back(frame.value());
    }
    balloon_ops_ = rng_.range(10, 60);
    ++balloons_;
  }
  void deflate() {
    for (const mm::PhysAddr frame : balloon_) {
      const Status freed = world_.pmm().free_frame(frame);
      if (freed != Status::Ok) fail(format("balloon frame: %s", mm::errno_name(freed)));
    }
    balloon_.clear();
  }

  // ---- the stream ----------------------------------------------------------

  void step() {
    const u64 r = rng_.below(100);
    if (r < 20) return do_map();
    if (r < 25) return do_alloc();
    if (r < 34) return do_unmap();
    if (r < 43) return do_protect();
    if (r < 46) return do_pin();
    if (r < 49) return do_unpin();
    if (r < 51) return do_fork();
    if (r < 52) return do_destroy();
    if (r < 65) return do_user(Access::Read);
    if (r < 80) return do_user(Access::Write);
    if (r < 83) return do_user(Access::Execute);
    if (r < 85) return do_spurious();
    if (r < 92) return do_peek();
    return do_poke();
  }

  MapRequest request(const Model::MapArgs& a) const {
    MapRequest r;
    r.address = VirtAddr(a.address);
    r.length = a.length;
    r.prot = a.prot;
    r.kind = region_kind(a.kind);
    r.fork = fork_policy(a.sharing);
    r.fixed = a.replace ? mm::MapFixed::Replace : mm::MapFixed::FailIfExists;
    r.populate = a.populate;
    return r;
  }
  Model::MapArgs pick_map(const Live& s) {
    Model::MapArgs a;
    a.address = pick_address(s, 30);
    a.length = pick_pages() * K4;
    a.prot = pick_prot();
    a.kind = rng_.percent(15) ? Model::Kind::Stack : Model::Kind::Anonymous;
    a.sharing = rng_.percent(25) ? Model::Sharing::Shared : Model::Sharing::Private;
    a.replace = rng_.percent(40);
    a.populate = rng_.percent(25);
    maybe_break(a.address, a.length);
    if (rng_.percent(1)) a.kind = Model::Kind::Guard;  // not a kind a caller may ask for
    return a;
  }
  std::string describe(const char* what, const Model::MapArgs& a) const {
    return format("%s %#" PRIx64 "+%#" PRIx64 " %s %s %s%s%s", what, a.address, a.length, mm::prot_name(a.prot),
                  kind_name(a.kind), a.sharing == Model::Sharing::Shared ? "shared" : "private",
                  a.replace ? " replace" : "", a.populate ? " populate" : "");
  }

  void do_map() {
    Live& s = any_space();
    const Model::MapArgs a = pick_map(s);
    note(format("space %d: ", s.id) + describe("map", a));
    const Status expected = model_.check_map(s.id, a);
    const bool may_run_out = scarce((a.populate ? a.length / K4 : 0) + 8);
    const Status got = s.space->map(request(a));
    count(got);
    if (got == expected) {
      if (got == Status::Ok) model_.map(s.id, a);
      return;
    }
    if (got == Status::OutOfMemory && expected == Status::Ok && may_run_out) return map_ran_out(s, a);
    fail(format("map: %s, the model says %s", mm::errno_name(got), mm::errno_name(expected)));
  }

  // A map that ran out of memory changed nothing, except that a Replace
  // whose populate ran out has lost the old mapping (the documented
  // exception).
  void map_ran_out(Live& s, const Model::MapArgs& a) {
    ++enomem_;
    ++map_enomem_;
    const u64 lo = a.kind == Model::Kind::Stack ? a.address - K4 : a.address;
    const u64 hi = a.address + a.length;
    if (a.replace && a.populate && regions_in(s, lo, hi).empty()) {
      replace_losses_ += model_.pages(s.id).lower_bound(lo) != model_.pages(s.id).lower_bound(hi) ? 1 : 0;
      model_.unmap(s.id, lo, hi);
    }
    verify_space(s, "after a map that ran out of memory");
  }

  void do_alloc() {
    Live& s = any_space();
    Model::MapArgs a = pick_map(s);
    a.replace = false;
    if (rng_.percent(20)) a.address = rng_.percent(50) ? 0 : rng_.next();  // no hint, or a wild one
    if (rng_.percent(2)) a.length = rng_.percent(50) ? Model::kUserEnd : Model::kUserEnd - Model::kUserStart;
    note(format("space %d: ", s.id) + describe("alloc", a));
    const mm::Result<u64> expected = model_.check_alloc(s.id, a);
    const bool may_run_out = scarce((a.populate ? a.length / K4 : 0) + 8);
    MapRequest r = request(a);
    const mm::Result<VirtAddr> got = s.space->alloc(r);
    count(got.status());
    if (got.status() == expected.status()) {
      if (got.ok()) {
        if (got.value().value() != expected.value()) {
          return fail(format("alloc placed at %#" PRIx64 ", the model at %#" PRIx64, got.value().value(),
                             expected.value()));
        }
        Model::MapArgs placed = a;
        placed.address = expected.value();
        model_.map(s.id, placed);
      }
      return;
    }
    if (got.status() == Status::OutOfMemory && expected.ok() && may_run_out) {
      Model::MapArgs placed = a;
      placed.address = expected.value();
      return map_ran_out(s, placed);
    }
    fail(format("alloc: %s, the model says %s", mm::errno_name(got.status()), mm::errno_name(expected.status())));
  }

  void do_unmap() {
    Live& s = any_space();
    u64 address = pick_address(s), length = pick_pages() * K4;
    maybe_break(address, length);
    note(format("space %d: unmap %#" PRIx64 "+%#" PRIx64, s.id, address, length));
    const Status expected = model_.check_unmap(s.id, address, length);
    const bool may_run_out = scarce(2);
    const Status got = s.space->unmap(VirtAddr(address), length);
    count(got);
    if (got == expected) {
      if (got == Status::Ok) model_.unmap(s.id, address, address + length);
      return;
    }
    if (got == Status::OutOfMemory && expected == Status::Ok && may_run_out) {
      ++enomem_;
      return verify_space(s, "after an unmap that ran out of memory");
    }
    fail(format("unmap: %s, the model says %s", mm::errno_name(got), mm::errno_name(expected)));
  }

  // The implementation's regions overlapping [lo, hi), clipped to it.
  std::vector<RegionView> regions_in(Live& s, u64 lo, u64 hi) {
    std::vector<RegionView> out;
    s.space->for_each_region([&](const mm::Region& r) {
      if (r.end().value() <= lo || r.base.value() >= hi) return;
      out.push_back(RegionView{std::max(r.base.value(), lo), std::min(r.end().value(), hi), r.prot, r.kind, r.fork,
                               r.pins});
    });
    return out;
  }
  void do_protect() {
    Live& s = any_space();
    u64 address = pick_address(s), length = pick_pages() * K4;
    maybe_break(address, length);
    const Prot prot = pick_prot();
    note(format("space %d: protect %#" PRIx64 "+%#" PRIx64 " %s", s.id, address, length, mm::prot_name(prot)));
    const Status expected = model_.check_protect(s.id, address, length);
    const bool may_run_out = scarce(2);
    const Status got = s.space->protect(VirtAddr(address), length, prot);
    count(got);
    if (got == expected) {
      if (got == Status::Ok) model_.protect(s.id, address, length, prot);
      return;
    }
    if (got == Status::OutOfMemory && expected == Status::Ok && may_run_out) {
      ++enomem_;
      return verify_space(s, "after a protect that ran out of memory");
    }
    fail(format("protect: %s, the model says %s", mm::errno_name(got), mm::errno_name(expected)));
  }

  void do_pin() {
    Live& s = any_space();
    u64 address = pick_address(s), length = rng_.range(1, 8) * K4;
    maybe_break(address, length);
    note(format("space %d: pin %#" PRIx64 "+%#" PRIx64, s.id, address, length));
    const Status expected = model_.check_pin(s.id, address, length);
    const bool may_run_out = scarce(length / K4 + 8);
    const Status got = s.space->pin(VirtAddr(address), length);
    count(got);
    if (got == expected) {
      if (got == Status::Ok) model_.pin(s.id, address, length);
      return;
    }
    if (got == Status::OutOfMemory && expected == Status::Ok && may_run_out) {
      // Nothing is pinned, but populate got some way: in address order,
      // each page it reached now has a frame of its own.
      ++enomem_;
      ++pin_enomem_;
      for (u64 va = address; va < address + length; va += K4) {
        if (!model_.populate_access(s.id, va) || !model_.needs_unshare(s.id, va)) continue;
        const u64 leaf = raw_leaf(*s.space, va);
        const bool own = (leaf & 1) != 0 && (leaf & kPteCopyOnWrite) == 0 &&
                         (leaf & kPteFrameMask) != world_.vm().zero_frame().value();
        if (!own) break;
        model_.unshare(s.id, va);
      }
      return verify_space(s, "after a pin that ran out of memory");
    }
    fail(format("pin: %s, the model says %s", mm::errno_name(got), mm::errno_name(expected)));
  }

  void do_unpin() {
    Live& s = any_space();
    u64 address = pick_address(s), length = rng_.range(1, 8) * K4;
    if (rng_.percent(70)) {  // mostly where something is pinned
      std::vector<u64> pinned;
      for (const auto& [va, page] : model_.pages(s.id)) {
        if (page.pins > 0) pinned.push_back(va);
      }
      if (!pinned.empty()) address = pinned[rng_.below(pinned.size())] - rng_.below(3) * K4;
    }
    maybe_break(address, length);
    note(format("space %d: unpin %#" PRIx64 "+%#" PRIx64, s.id, address, length));
    const Status expected = model_.check_unpin(s.id, address, length);
    const bool may_run_out = scarce(2);
    const Status got = s.space->unpin(VirtAddr(address), length);
    count(got);
    if (got == expected) {
      if (got == Status::Ok) model_.unpin(s.id, address, length);
      return;
    }
    if (got == Status::OutOfMemory && expected == Status::Ok && may_run_out) {
      ++enomem_;
      return verify_space(s, "after an unpin that ran out of memory");
    }
    fail(format("unpin: %s, the model says %s", mm::errno_name(got), mm::errno_name(expected)));
  }

  // A new space: the root (parent == null) or a fork of `parent`.
  void add_space(Live* parent) {
    auto space = std::make_unique<Space>(world_.vm());
    const bool may_run_out = scarce(1);
    const Status init = space->init();
    if (init != Status::Ok) {
      if (init == Status::OutOfMemory && may_run_out && parent != nullptr) {
        ++enomem_;
        return;
      }
      return fail(format("init: %s", mm::errno_name(init)));
    }
    if (parent == nullptr) {
      spaces_.push_back(Live{model_.create_space(), std::move(space)});
      return;
    }
    ++forks_;
    const u64 demand = model_.fork_commitments(parent->id) + model_.fork_copies(parent->id) +
                       model_.untouched_shared_pages(parent->id).size() +
                       count_tables(*parent->space) +
                       world_.vm().live_regions() / mm::ObjectPool<mm::Region, pagelab::HostPlatform>::kPerSlab + 4;
    const bool fork_may_run_out = scarce(demand);
    const Status got = parent->space->fork(*space);
    count(got);
    if (got == Status::Ok) {
      const Model::SpaceId child = model_.create_space();
      model_.fork(parent->id, child);
      spaces_.push_back(Live{child, std::move(space)});
      max_spaces_ = std::max(max_spaces_, static_cast<int>(spaces_.size()));
      verify_fork(*parent, spaces_.back());
      return;
    }
    space->destroy();
    if (got != Status::OutOfMemory || !fork_may_run_out) {
      return fail(format("fork: %s, the model says OK", mm::errno_name(got)));
    }
    // Out of memory part way: some of the parent's Shared pages may have
    // been populated, and some of its private pages left write-protected,
    // now held by the parent alone.
    ++enomem_;
    ++fork_enomem_;
    for (const u64 va : model_.untouched_shared_pages(parent->id)) {
      if (raw_leaf(*parent->space, va) & 1) model_.populate(parent->id, va);
    }
    for (const auto& [va, page] : model_.pages(parent->id)) {
      if (page.backing != Model::Backing::Store || page.sharing != Model::Sharing::Private || page.cow) continue;
      if (raw_leaf(*parent->space, va) & kPteCopyOnWrite) model_.mark_copy_on_write(parent->id, va);
    }
    verify_space(*parent, "after a fork that ran out of memory");
  }

  void do_fork() {
    if (spaces_.size() >= kMaxSpaces) return do_destroy();
    Live& parent = any_space();
    note(format("space %d: fork", parent.id));
    add_space(&parent);
  }

  void do_destroy() {
    if (spaces_.size() < 2) return do_fork();
    const size_t index = 1 + rng_.below(spaces_.size() - 1);
    note(format("space %d: destroy", spaces_[index].id));
    spaces_[index].space->destroy();
    model_.destroy_space(spaces_[index].id);
    spaces_.erase(spaces_.begin() + static_cast<long>(index));
    ++destroys_;
  }

  // ---- accesses ------------------------------------------------------------

  u64 pick_access_address(const Live& s, bool slot_only) {
    u64 page;
    const Model::Pages& pages = model_.pages(s.id);
    if (!pages.empty() && rng_.percent(75)) {
      page = std::next(pages.begin(), static_cast<long>(rng_.below(pages.size())))->first;
    } else {
      page = window_page();
    }
    if (rng_.percent(1)) {  // outside user space: below it, the kernel half, non-canonical
      static constexpr u64 kWild[] = {0x1000, 0xFFFF800000001000ull, 0x0000800000000000ull, 0x8000000000000000ull};
      return kWild[rng_.below(std::size(kWild))];
    }
    if (slot_only || rng_.percent(70)) return page + Model::kSlotOffset[rng_.below(Model::kSlots)];
    return page + rng_.below(K4 / 8) * 8;
  }

  bool walker_allows(Live& s, u64 va, Access access) {
    const pagelab::test::WalkResult w = world_.walk(*s.space, va);
    if (!w.present || w.reserved_bit || !w.user) return false;
    return access == Access::Read || (access == Access::Write && w.writable) ||
           (access == Access::Execute && !w.no_execute);
  }

  // A user-mode access: the hardware (the reference walker) decides whether
  // it faults; handle_fault runs only if it does; the data moves through the
  // frame the walker finds.
  void do_user(Access access) {
    Live& s = any_space();
    const u64 va = pick_access_address(s, access == Access::Write);
    note(format("space %d: user %s %#" PRIx64, s.id, mm::access_name(access), va));
    const bool model_allows = model_.allows(s.id, va, access);
    if (walker_allows(s, va, access) != model_allows) {
      return fail(format("the page tables %s the access, the model %s", model_allows ? "refuse" : "allow",
                         model_allows ? "allows it" : "refuses it"));
    }
    if (const Model::Page* p = model_.page(s.id, va);
        p != nullptr && p->backing == Model::Backing::Store && model_.store(p->store).holders > 1) {
      ++(p->sharing == Model::Sharing::Shared ? shared_store_accesses_ : cow_store_accesses_);
    }
    if (!model_allows) {
      const FaultOutcome expected = model_.predict_fault(s.id, va, access, /*user=*/true);
      const Model::Page* target = model_.page(s.id, va);
      if (expected == FaultOutcome::MapBacking && target != nullptr && target->backing == Model::Backing::Store) {
        ++cow_takeovers_;
      }
      const bool may_run_out = scarce(4);
      const FaultOutcome got = s.space->handle_fault(VirtAddr(va), access, AccessMode::User);
      ++outcomes_[static_cast<int>(got)];
      if (got == FaultOutcome::OutOfMemory && mm::resolved(expected) && may_run_out) {
        ++enomem_;
        ++fault_enomem_;
        return verify_page_now(s, va, "after a fault that ran out of memory");
      }
      if (got != expected) {
        return fail(format("fault: %s, the model says %s", mm::fault_outcome_name(got),
                           mm::fault_outcome_name(expected)));
      }
      if (!mm::resolved(got)) return;
      model_.fault(s.id, va, access);
      if (!walker_allows(s, va, access)) return fail("a resolved fault left the access refused");
    }
    const pagelab::test::WalkResult w = world_.walk(*s.space, va);
    if (access != Access::Write) {
      const u64 v = world_.load(w.physical);
      if (v != model_.value(s.id, va)) {
        return fail(format("user read %#" PRIx64 ", the model has %#" PRIx64 "%s", v, model_.value(s.id, va),
                           v == mm::kPoisonPattern ? " (the poison pattern: a freed frame)" : ""));
      }
      return;
    }
    const u64 v = fresh_value();
    if (rng_.percent(50)) {
      std::memcpy(world_.pool().platform().direct_map(mm::PhysAddr(w.physical)), &v, 8);
    } else {
      const Status written = s.space->write_u64(VirtAddr(va), v);  // allowed now: no fault, cannot fail
      if (written != Status::Ok) return fail(format("write_u64 of a writable page: %s", mm::errno_name(written)));
    }
    model_.write(s.id, va, v);
  }

  // A fault the page tables already allow (a stale TLB entry): Complete.
  void do_spurious() {
    Live& s = any_space();
    const u64 va = pick_access_address(s, false);
    const Access access = static_cast<Access>(rng_.below(3));
    if (!model_.allows(s.id, va, access)) return;
    note(format("space %d: spurious %s fault %#" PRIx64, s.id, mm::access_name(access), va));
    const FaultOutcome got = s.space->handle_fault(VirtAddr(va), access, AccessMode::User);
    ++outcomes_[static_cast<int>(got)];
    if (got != FaultOutcome::Complete) {
      fail(format("a fault the page tables allow: %s, the model says complete", mm::fault_outcome_name(got)));
    }
  }

  void do_peek() {
    Live& s = any_space();
    u64 va = pick_access_address(s, false);
    if (rng_.percent(2)) va += 4;
    note(format("space %d: peek %#" PRIx64, s.id, va));
    const Status expected = model_.check_kernel(s.id, va, Access::Read);
    const bool may_run_out = scarce(4);
    const mm::Result<u64> got = s.space->read_u64(VirtAddr(va));
    count(got.status());
    if (got.status() == Status::OutOfMemory && expected == Status::Ok && may_run_out) {
      ++enomem_;
      ++kernel_enomem_;
      return verify_page_now(s, va, "after a peek that ran out of memory");
    }
    if (got.status() != expected) {
      return fail(format("read_u64: %s, the model says %s", mm::errno_name(got.status()), mm::errno_name(expected)));
    }
    if (!got.ok()) return;
    model_.fault(s.id, va, Access::Read);
    if (got.value() != model_.value(s.id, va)) {
      fail(format("read_u64 returned %#" PRIx64 ", the model has %#" PRIx64, got.value(), model_.value(s.id, va)));
    }
  }

  void do_poke() {
    Live& s = any_space();
    u64 va = pick_access_address(s, true);
    if (rng_.percent(2)) va += 4;
    const u64 v = fresh_value();
    note(format("space %d: poke %#" PRIx64, s.id, va));
    const Status expected = model_.check_kernel(s.id, va, Access::Write);
    const bool may_run_out = scarce(4);
    const Status got = s.space->write_u64(VirtAddr(va), v);
    count(got);
    if (got == Status::OutOfMemory && expected == Status::Ok && may_run_out) {
      ++enomem_;
      ++kernel_enomem_;
      return verify_page_now(s, va, "after a poke that ran out of memory");
    }
    if (got != expected) {
      return fail(format("write_u64: %s, the model says %s", mm::errno_name(got), mm::errno_name(expected)));
    }
    if (got != Status::Ok) return;
    model_.fault(s.id, va, Access::Write);
    model_.write(s.id, va, v);
  }

  u64 fresh_value() {
    u64 v;
    do {
      v = rng_.next();
    } while (v == 0 || v == mm::kPoisonPattern);
    return v;
  }

  // ---- checks against the page tables --------------------------------------

  // The raw level-1 entry for `va` (0 when a table on the way is missing):
  // what the walker does not report for a non-present (parked) entry.
  u64 raw_leaf(Space& space, u64 va) {
    u64 table = space.root().value();
    for (int level = 4; level >= 2; --level) {
      const u64 entry = world_.load(table + ((va >> (12 + 9 * (level - 1))) & 511) * 8);
      if (!(entry & 1) || (entry & 0x80)) return 0;
      table = entry & kAddressMask;
    }
    return world_.load(table + ((va >> 12) & 511) * 8);
  }

  // Page-table frames of a space, by reading the tables.
  u64 count_tables(Space& space) { return count_below(space.root().value(), 4); }
  u64 count_below(u64 table, int level) {
    u64 n = 1;
    if (level == 1) return n;
    for (u64 i = 0; i < 512; ++i) {
      const u64 entry = world_.load(table + i * 8);
      if ((entry & 1) && !(entry & 0x80)) n += count_below(entry & kAddressMask, level - 1);
    }
    return n;
  }

  // Which frame each store lives in, gathered over one sweep.
  struct FrameMap {
    std::map<u64, u64> frame_of_store;
    std::map<u64, u64> store_of_frame;
  };

  // One page of one space against the model. Returns false on a failure.
  bool verify_page(Live& s, u64 va, FrameMap& frames, const char* when) {
    const Model::Page* p = model_.page(s.id, va);
    const pagelab::test::WalkResult w = world_.walk(*s.space, va);
    const u64 raw = raw_leaf(*s.space, va);
    const auto bad = [&](const std::string& what) {
      fail(format("%s: space %d page %#" PRIx64 " (leaf %#" PRIx64 "): ", when, s.id, va, raw) + what);
      return false;
    };
    if (w.reserved_bit) return bad("a reserved bit is set");
    const bool backed = p != nullptr && p->kind != Model::Kind::Guard && p->backing != Model::Backing::None;
    if (!backed) {
      if (raw != 0) return bad(p == nullptr ? "mapped where the model has nothing" : "mapped before any access");
      return true;
    }
    const bool present = p->prot != Prot::None;
    if (w.present != present) return bad(present ? "not present" : "present under PROT_NONE");
    u64 frame = raw & kAddressMask;
    if (present) {
      const bool writable = Model::has(p->prot, Prot::Write) && p->backing == Model::Backing::Store && !p->cow;
      if (!w.user) return bad("not user-accessible");
      if (w.page_bytes != K4) return bad("not a 4 KiB page");
      if (w.writable != writable) {
        return bad(writable ? "read-only, the model says writable" : "writable, the model says read-only");
      }
      if (w.no_execute == Model::has(p->prot, Prot::Exec)) return bad("NX disagrees with the protection");
      frame = w.physical & ~(K4 - 1);
    } else if (!(raw & kPteParked)) {
      return bad("PROT_NONE page neither parked nor empty");
    }
    if (((raw & kPteCopyOnWrite) != 0) != p->cow) return bad(p->cow ? "not copy-on-write" : "copy-on-write");
    if (p->backing == Model::Backing::Zero) {
      if (frame != world_.vm().zero_frame().value()) return bad("not the zero frame");
      return true;
    }
    if (frame == world_.vm().zero_frame().value()) return bad("the zero frame, the model has a store");
    const auto [at, fresh_store] = frames.frame_of_store.emplace(p->store, frame);
    if (at->second != frame) {
      return bad(format("store %" PRIu64 " is in frame %#" PRIx64 " here and %#" PRIx64 " elsewhere", p->store,
                        frame, at->second));
    }
    const auto [by, fresh_frame] = frames.store_of_frame.emplace(frame, p->store);
    if (by->second != p->store) {
      return bad(format("frame %#" PRIx64 " holds stores %" PRIu64 " and %" PRIu64, frame, by->second, p->store));
    }
    if (fresh_store) {  // its content, once per sweep
      const Model::Store& st = model_.store(p->store);
      const auto* words = reinterpret_cast<const u64*>(world_.pool().platform().direct_map(mm::PhysAddr(frame)));
      for (u64 i = 0; i < K4 / 8; ++i) {
        const int slot = Model::slot_of(i * 8);
        const u64 want = slot < 0 ? 0 : st.value[slot];
        if (words[i] != want) {
          return bad(format("word %" PRIu64 " is %#" PRIx64 ", the model has %#" PRIx64 "%s", i, words[i], want,
                            words[i] == mm::kPoisonPattern ? " (the poison pattern)" : ""));
        }
      }
    }
    return true;
  }

  void verify_page_now(Live& s, u64 va, const char* when) {
    FrameMap frames;
    if (!model_.page(s.id, va)) return;  // an unmapped page: handle_fault must not have needed memory
    verify_page(s, va & ~(K4 - 1), frames, when);
  }

  bool verify_regions(Live& s, const char* when) {
    if (!s.space->check_regions()) {
      fail(format("%s: space %d: the region tree fails its check", when, s.id));
      return false;
    }
    const std::vector<RegionView> regions = regions_in(s, 0, ~u64{0});
    const Model::Pages& pages = model_.pages(s.id);
    u64 region_pages = 0;
    for (const RegionView& r : regions) {
      for (u64 va = r.base; va < r.end; va += K4) {
        ++region_pages;
        const Model::Page* p = model_.page(s.id, va);
        if (p == nullptr || region_kind(p->kind) != r.kind || p->prot != r.prot || fork_policy(p->sharing) != r.fork ||
            p->pins != r.pins) {
          const std::string model =
              p == nullptr ? "unmapped"
                           : format("%s %s pins %u", mm::prot_name(p->prot), kind_name(p->kind), p->pins);
          fail(format("%s: space %d: region [%#" PRIx64 ", %#" PRIx64 ") %s %s pins %u disagrees with the model at %#"
                      PRIx64 " (%s)",
                      when, s.id, r.base, r.end, mm::prot_name(r.prot), mm::region_kind_name(r.kind), r.pins, va,
                      model.c_str()));
          return false;
        }
      }
    }
    if (region_pages != pages.size()) {
      fail(format("%s: space %d: regions cover %" PRIu64 " pages, the model maps %zu", when, s.id, region_pages,
                  pages.size()));
      return false;
    }
    return true;
  }

  void verify_space(Live& s, const char* when) {
    if (!verify_regions(s, when)) return;
    FrameMap frames;
    for (const auto& [va, page] : model_.pages(s.id)) {
      if (!verify_page(s, va, frames, when)) return;
    }
  }

  // After a fork: the child's pages are the parent's, frame for frame.
  void verify_fork(Live& parent, Live& child) {
    FrameMap frames;
    if (!verify_regions(child, "after fork")) return;
    for (Live* s : {&parent, &child}) {
      for (const auto& [va, page] : model_.pages(s->id)) {
        if (!verify_page(*s, va, frames, "after fork")) return;
      }
    }
  }

  void sweep() {
    ++sweeps_;
    FrameMap frames;
    u64 tables = 0, regions = 0;
    for (Live& s : spaces_) {
      if (!verify_regions(s, "sweep")) return;
      s.space->for_each_region([&](const mm::Region&) { ++regions; });
      for (const Window& w : kWindows) {
        for (u64 i = 0; i < w.pages; ++i) {
          if (!verify_page(s, w.base + i * K4, frames, "sweep")) return;
        }
      }
      for (const auto& [va, page] : model_.pages(s.id)) {
        if (!verify_page(s, va, frames, "sweep")) return;
      }
      tables += count_tables(*s.space);
    }
    const auto* zero = reinterpret_cast<const u64*>(world_.pool().platform().direct_map(world_.vm().zero_frame()));
    for (u64 i = 0; i < K4 / 8; ++i) {
      if (zero[i] != 0) return fail(format("sweep: the zero frame's word %" PRIu64 " is %#" PRIx64, i, zero[i]));
    }
    // Every region object belongs to a live space.
    const u64 live_regions = world_.vm().live_regions();
    if (live_regions != regions) {
      return fail(format("sweep: %" PRIu64 " region objects live, the spaces hold %" PRIu64, live_regions, regions));
    }
    // Every store was seen, in a frame the spaces hold once per holder.
    if (frames.frame_of_store.size() != model_.stores()) {
      return fail(format("sweep: %zu stores mapped, the model has %" PRIu64, frames.frame_of_store.size(),
                         model_.stores()));
    }
    // Between operations no reference drop is pending: references and
    // mappings agree.
    for (const auto& [id, frame] : frames.frame_of_store) {
      const mm::Frame& f = world_.pool().table()[mm::Pfn::containing(mm::PhysAddr(frame))];
      const u64 refs = f.refcount.load(mm::MemoryOrder::Relaxed);
      const u64 maps = f.mapcount.load(mm::MemoryOrder::Relaxed);
      if (refs != model_.store(id).holders || maps != refs) {
        return fail(format("sweep: frame %#" PRIx64 " has %" PRIu64 " references and %" PRIu64
                           " mappings, the model %u holders",
                           frame, refs, maps, model_.store(id).holders));
      }
    }
    // Every frame in use, by owner (the frame table, caches drained): data
    // frames are the model's stores (and the zero frame), page-table frames
    // the tables the walk counted, kernel frames the balloon and the region
    // slabs.
    const u64 used = total_frames_ - world_.free_frames();
    u64 data = 0, table_frames = 0, kernel = 0, other = 0;
    mm::FrameTable& table = world_.pool().table();
    for (mm::Pfn pfn = table.base(); pfn < table.end(); pfn = pfn + 1) {
      const mm::Frame& f = table[pfn];
      if (f.state != mm::FrameState::Allocated) continue;
      switch (f.owner) {
        case mm::FrameOwner::Anonymous:
        case mm::FrameOwner::CowShared:
        case mm::FrameOwner::Shared: ++data; break;
        case mm::FrameOwner::PageTable: ++table_frames; break;
        case mm::FrameOwner::Kernel: ++kernel; break;
        default: ++other; break;
      }
    }
    const u64 per_slab = mm::ObjectPool<mm::Region, pagelab::HostPlatform>::kPerSlab;
    const u64 slabs = kernel - balloon_.size();
    // Page tables: the spaces' and the VM system's idle root.
    if (data != model_.stores() + 1 || table_frames != tables + 1 || other != 0 || used != data + table_frames + kernel ||
        slabs < (live_regions + per_slab - 1) / per_slab || slabs > live_regions) {
      return fail(format("sweep: %" PRIu64 " frames in use: %" PRIu64 " data (the model: %" PRIu64
                         " stores and the zero frame), %" PRIu64 " page tables (%" PRIu64 " in the tables and the idle root), %" PRIu64
                         " kernel (%zu balloon, slabs for %" PRIu64 " regions), %" PRIu64 " other",
                         used, data, model_.stores(), table_frames, tables, kernel, balloon_.size(), live_regions,
                         other));
    }
  }

  void finish() {
    while (!spaces_.empty()) {
      Live& s = spaces_.back();
      s.space->destroy();
      model_.destroy_space(s.id);
      spaces_.pop_back();
    }
    EXPECT_EQ(world_.free_frames(), free_at_start_) << "seed " << config_.seed << ": frames leaked";
    EXPECT_EQ(world_.pmm().stats().committed, 0u) << "seed " << config_.seed << ": commitments leaked";
    EXPECT_EQ(world_.vm().live_regions(), 0u) << "seed " << config_.seed << ": regions leaked";
    EXPECT_EQ(model_.stores(), 0u);
    EXPECT_EQ(model_.commitments(), 0u);
  }

  StreamConfig config_;
  VmWorld world_{kFrames};
  Model model_;
  Rng rng_;
  std::vector<Live> spaces_;
  std::deque<std::string> trace_;
  bool failed_ = false;
  u64 op_ = 0;
  mm::FrameCount free_at_start_ = 0;
  u64 total_frames_ = 0;
  // Counters for the summary.
  u64 statuses_[7] = {};
  u64 outcomes_[mm::kFaultOutcomeCount] = {};
  std::vector<mm::PhysAddr> balloon_;
  u64 balloon_ops_ = 0, balloons_ = 0;
  u64 shared_store_accesses_ = 0, cow_store_accesses_ = 0, cow_takeovers_ = 0, replace_losses_ = 0;
  u64 map_enomem_ = 0, pin_enomem_ = 0, fault_enomem_ = 0, kernel_enomem_ = 0;
  u64 enomem_ = 0, forks_ = 0, fork_enomem_ = 0, destroys_ = 0, sweeps_ = 0;
  int max_spaces_ = 1;
};

constexpr u64 kOpsPerSeed = pagelab::test::kSanitized ? 10000 : 25000;

// One seed's stream, and what it must have reached.
void run_stream(u64 seed) {
  Differential stream({.seed = seed, .ops = kOpsPerSeed});
  stream.run();
  stream.print_summary();
  if (stream.failed()) return;
  EXPECT_GT(stream.status_count(Status::AlreadyExists), 0u);
  EXPECT_GT(stream.status_count(Status::Busy), 0u);
  EXPECT_GT(stream.status_count(Status::NotFound), 0u);
  EXPECT_GT(stream.status_count(Status::InvalidArgument), 0u);
  EXPECT_GT(stream.status_count(Status::BadAddress), 0u);
  EXPECT_GT(stream.outcome_count(FaultOutcome::MapBackingReadOnly), 0u);
  EXPECT_GT(stream.outcome_count(FaultOutcome::MapBacking), 0u);
  EXPECT_GT(stream.outcome_count(FaultOutcome::CopyBacking), 0u);
  EXPECT_GT(stream.outcome_count(FaultOutcome::Complete), 0u);
  EXPECT_GT(stream.outcome_count(FaultOutcome::Segv), 0u);
  EXPECT_GT(stream.shared_store_accesses(), 0u);
  EXPECT_GT(stream.cow_takeovers(), 0u);
}

TEST(AddressSpaceDifferential, Seed1) { run_stream(0x5EED0001); }
TEST(AddressSpaceDifferential, Seed2) { run_stream(0x5EED0002); }
TEST(AddressSpaceDifferential, Seed3) { run_stream(0x5EED0003); }
TEST(AddressSpaceDifferential, Seed4) { run_stream(0x5EED0004); }

}  // namespace
