// Randomized differential test of the three frame allocators against the
// reference model (support/reference_model.hpp).
//
// One random operation stream drives an allocator and the model side by side
// and every answer is compared: the status of each call, the frame returned
// (exactly for the stack and the bitmap; by the buddy rules otherwise), the
// Frame record of each block handed out, and, every few hundred operations
// and at the end, the whole table frame by frame, free_frames() and
// free_blocks(). A call that fails must change nothing, which a snapshot of
// the whole table proves (for every failure on a small table, every eighth
// on a large one). Operations: allocations of every shape (and malformed
// ones), frees of live allocations (whole, or any sub-run for the bitmap),
// deliberately bad frees, batch allocation and freeing (with defects
// injected), and donations of frames, good and bad.
//
// A failure names the allocator, the pool, the seed and the operation index:
// the stream is a pure function of the seed, so it replays exactly.
#include <gtest/gtest.h>

#include <bit>
#include <optional>
#include <ostream>
#include <set>
#include <sstream>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "mm/phys/bitmap_allocator.hpp"
#include "mm/phys/buddy_allocator.hpp"
#include "mm/phys/free_stack_allocator.hpp"
#include "support/frame_pool.hpp"
#include "support/rng.hpp"
#include "support/sanitized.hpp"
#include "support/reference_model.hpp"
#include "support/snapshot.hpp"

namespace {

using mm::BitmapAllocator;
using mm::BuddyAllocator;
using mm::FrameCount;
using mm::FrameOwner;
using mm::FrameRequest;
using mm::FrameState;
using mm::FreeStackAllocator;
using mm::Pfn;
using mm::Status;
using mm::u32;
using mm::u64;
using pagelab::test::AllocatorPolicy;
using pagelab::test::AllocPrediction;
using pagelab::test::ExpectedFrame;
using pagelab::test::ReferenceModel;

// Sanitizers slow the model's map walks several-fold: run a shorter
// stream there. Release runs the full count: 4 pools x 4 seeds x 25,000 =
// 400,000 operations per allocator (160,000 under a sanitizer).
using pagelab::test::kSanitized;

constexpr u64 kOpsPerSeed = kSanitized ? 10'000 : 25'000;
constexpr u64 kSeeds[] = {1, 2, 3, 0x5eed'cafe};
constexpr u64 kFullCheckEvery = 512;

std::string err(Status s) { return mm::errno_name(s); }

using pagelab::test::Rng;

// ---------------------------------------------------------------- pools

struct Donation {
  u64 offset;  // from the table's base
  u64 count;
};

struct PoolShape {
  const char* name;
  u64 base;
  u64 frames;
  std::vector<Donation> donations;
};

const std::vector<PoolShape>& pool_shapes() {
  static const std::vector<PoolShape> shapes = {
      // Aligned base, one range: the textbook case.
      {"aligned4096", 0x100, 4096, {{0, 4096}}},
      // Odd size at an unaligned base: blocks of every order at the edges.
      {"odd3001", 0x1003, 3001, {{0, 3001}}},
      // Two ranges with a hole between, reserved frames at both ends; the
      // stream donates parts of the reserved frames as it goes.
      {"holes", 0x7F0, 4096, {{3, 1500}, {1800, 2200}}},
      // Tiny and fragmented: the allocator is out of memory most of the time.
      {"tiny", 0x40, 96, {{0, 40}, {48, 40}}},
  };
  return shapes;
}

// ------------------------------------------------------------ the harness

template <typename A>
constexpr AllocatorPolicy policy_of() {
  if constexpr (std::is_same_v<A, FreeStackAllocator>) {
    return AllocatorPolicy::FreeStack;
  } else if constexpr (std::is_same_v<A, BitmapAllocator>) {
    return AllocatorPolicy::Bitmap;
  } else {
    return AllocatorPolicy::Buddy;
  }
}

template <typename A>
A make_allocator(mm::FrameTable& table, std::vector<u64>& words) {
  if constexpr (std::is_same_v<A, BitmapAllocator>) {
    return A(table, words);
  } else {
    return A(table);
  }
}

// The operation index of the checks after the random stream.
constexpr u64 kCleanup = ~u64{0};

// Where a failure happened; printed only when an assertion fails.
struct Where {
  const char* allocator;
  const char* pool;
  u64 seed;
  u64 op;
  const char* what;
};

std::ostream& operator<<(std::ostream& os, const Where& w) {
  os << "[" << w.allocator << " on " << w.pool << ", seed " << w.seed;
  if (w.op == kCleanup) {
    os << ", cleanup";
  } else {
    os << ", op " << w.op;
  }
  return os << ": " << w.what << "]";
}

struct RequestText {
  const FrameRequest& r;
};

std::ostream& operator<<(std::ostream& os, const RequestText& t) {
  return os << " request{count " << t.r.count << ", alignment " << t.r.alignment << ", limit 0x" << std::hex
            << t.r.limit.value() << std::dec << "}";
}

constexpr FrameOwner kOwners[] = {FrameOwner::Anonymous, FrameOwner::CowShared, FrameOwner::Shared,
                                  FrameOwner::PageTable, FrameOwner::Kernel};

template <typename A>
class DifferentialRun {
  static constexpr AllocatorPolicy kPolicy = policy_of<A>();
  static constexpr bool kStack = kPolicy == AllocatorPolicy::FreeStack;
  static constexpr bool kBitmap = kPolicy == AllocatorPolicy::Bitmap;
  static constexpr bool kBuddy = kPolicy == AllocatorPolicy::Buddy;

 public:
  DifferentialRun(const PoolShape& shape, u64 seed)
      : shape_(shape),
        seed_(seed),
        pool_(shape.frames, Pfn(shape.base)),
        words_(BitmapAllocator::words_for(shape.frames)),
        allocator_(make_allocator<A>(pool_.table(), words_)),
        model_(kPolicy, Pfn(shape.base), shape.frames),
        rng_(seed * 0x100000001B3ull + shape.base) {}

  // Runs `ops` random operations; returns how many ran (fewer on a failure).
  u64 run(u64 ops) {
    seed_pool();
    if (::testing::Test::HasFatalFailure()) {
      return 0;
    }
    compare_all("after seeding");
    for (op_ = 0; op_ < ops && !::testing::Test::HasFatalFailure(); ++op_) {
      step();
      if (op_ % kFullCheckEvery == kFullCheckEvery - 1 && !::testing::Test::HasFatalFailure()) {
        compare_all("periodic full comparison");
      }
    }
    const u64 done = op_;
    if (::testing::Test::HasFatalFailure()) {
      return done;
    }
    compare_all("final state");
    if (!::testing::Test::HasFatalFailure()) {
      release_everything();
    }
    if (!::testing::Test::HasFatalFailure()) {
      compare_all("after freeing every live allocation");
    }
    if (!::testing::Test::HasFatalFailure()) {
      compare_with_fresh_allocator();
    }
    if (!::testing::Test::HasFatalFailure()) {
      take_everything();
    }
    return done;
  }

 private:
  Where where(const char* what) const { return {allocator_.name(), shape_.name, seed_, op_, what}; }

  mm::FrameTable& table() { return pool_.table(); }
  u64 base() const { return shape_.base; }
  u64 end() const { return shape_.base + shape_.frames; }
  bool in_table(Pfn pfn) const { return pfn.value() >= base() && pfn.value() < end(); }
  FrameOwner random_owner() { return kOwners[rng_.below(std::size(kOwners))]; }
  Pfn random_table_pfn() { return Pfn(base() + rng_.below(shape_.frames)); }

  Pfn random_outside_pfn() {
    switch (rng_.below(4)) {
      case 0: return Pfn(base() - 1 - rng_.below(base() < 64 ? base() : 64));
      case 1: return Pfn(end() + rng_.below(64));
      case 2: return Pfn(u64{1} << (32 + rng_.below(8)));
      default: return Pfn(~u64{0} >> 12);
    }
  }

  // Whether a call predicted to fail is checked against a full snapshot.
  bool snapshot_this_failure() { return shape_.frames <= 256 || (failures_++ % 8) == 0; }

  pagelab::test::AllocatorSnapshot take_snapshot() { return pagelab::test::snapshot(table(), allocator_); }

  void expect_unchanged(const std::optional<pagelab::test::AllocatorSnapshot>& before, const char* what) {
    if (before) {
      ASSERT_TRUE(take_snapshot() == *before) << where(what) << " a failed call changed the allocator's state";
    }
  }

  // ------------------------------------------------------------ seeding

  void seed_pool() {
    // Bad donations first: nothing is managed yet, so each is rejected for
    // its shape alone.
    donate(Pfn(base()), 0, "seed: zero count");
    donate(Pfn(base() - 1), 2, "seed: starts below the table");
    donate(Pfn(end() - 1), 2, "seed: crosses the table's end");
    for (const Donation& d : shape_.donations) {
      donate(Pfn(base() + d.offset), d.count, "seed: donation");
    }
    // Donating a managed frame again is EFAULT.
    const Donation& first = shape_.donations.front();
    donate(Pfn(base() + first.offset + first.count / 2), 1, "seed: donation of a managed frame");
  }

  void donate(Pfn first, FrameCount count, const char* what) {
    const Status want = model_.predict_add_free_range(first, count);
    std::optional<pagelab::test::AllocatorSnapshot> before;
    if (want != Status::Ok && snapshot_this_failure()) {
      before = take_snapshot();
    }
    const Status got = allocator_.add_free_range(first, count);
    ASSERT_EQ(err(got), err(want)) << where(what) << " add_free_range(0x" << std::hex << first.value() << std::dec
                                   << ", " << count << ")";
    if (got == Status::Ok) {
      model_.apply_add_free_range(first, count);
    } else {
      expect_unchanged(before, what);
    }
  }

  // -------------------------------------------------------------- steps

  void step() {
    if (phase_left_ == 0) {
      filling_ = !filling_;
      phase_left_ = rng_.range(200, 3000);
    }
    --phase_left_;
    const u64 r = rng_.below(100);
    const u64 alloc_weight = filling_ ? 48 : 20;
    const u64 free_weight = filling_ ? 24 : 52;
    if (r < alloc_weight) {
      try_allocate(normal_request(), "allocate");
    } else if (r < alloc_weight + free_weight) {
      free_live();
    } else if (r < 84) {
      bad_free();
    } else if (r < 90) {
      try_allocate(odd_request(), "odd or malformed request");
    } else if (r < 94) {
      allocate_batch();
    } else if (r < 98) {
      free_batch();
    } else {
      donate_random();
    }
  }

  FrameRequest normal_request() {
    FrameRequest request{.owner = random_owner()};
    if constexpr (kStack) {
      // The only shape a stack serves; any limit at or above the table's end.
      request.limit = rng_.percent(80) ? Pfn::max() : Pfn(end() + rng_.below(3));
    } else if constexpr (kBitmap) {
      const u64 r = rng_.below(100);
      request.count = r < 50 ? rng_.range(1, 4) : r < 80 ? rng_.range(1, 16) : r < 95 ? rng_.range(1, 64)
                                                                                    : rng_.range(1, 300);
      request.alignment = rng_.percent(50) ? 1 : u64{1} << rng_.below(10);
      const u64 l = rng_.below(100);
      request.limit = l < 60   ? Pfn::max()
                      : l < 75 ? Pfn(end() + rng_.below(64) - 32)
                               : Pfn(base() + rng_.below(shape_.frames + 32));
    } else {
      const u64 r = rng_.below(100);
      const u32 order = static_cast<u32>(r < 40   ? 0
                                         : r < 65 ? rng_.range(1, 2)
                                         : r < 85 ? rng_.range(3, 5)
                                         : r < 97 ? rng_.range(6, 8)
                                                  : rng_.range(9, 10));
      request.count = u64{1} << order;
      request.alignment = rng_.percent(70) ? 1 : u64{1} << rng_.below(order + 1);
      request.limit = rng_.percent(75) ? Pfn::max() : Pfn(base() + rng_.below(shape_.frames + 64));
    }
    if (!kStack && rng_.percent(15)) {
      tighten_limit(request);
    }
    return request;
  }

  // A limit at, or one frame either side of, the end of the lowest run that
  // fits: where an off-by-one in a limit check shows.
  void tighten_limit(FrameRequest& request) {
    const u64 alignment = kBuddy ? request.count : request.alignment;
    if (const auto at = model_.lowest_fit(request.count, alignment, Pfn::max().value())) {
      request.limit = Pfn(*at + request.count + rng_.range(0, 2) - 1);
    }
  }

  // Shapes at and past the edges of what each allocator accepts.
  FrameRequest odd_request() {
    FrameRequest request{.owner = random_owner()};
    switch (rng_.below(14)) {
      case 0: request.count = 0; break;
      case 1: request.alignment = 0; break;
      case 2: request.alignment = rng_.percent(50) ? 3 : 24; break;
      case 3:  // a limit below the count
        request.count = u64{1} << rng_.below(4);
        request.limit = Pfn(request.count - 1);
        break;
      case 4: request.limit = Pfn(end()); break;      // exactly the table's end
      case 5: request.limit = Pfn(end() - 1); break;  // just below it
      case 6: request.count = rng_.range(2, 6); break;
      case 7: request.count = u64{1} << (mm::kMaxOrder + 1 + rng_.below(3)); break;
      case 8: request.alignment = 2; break;  // more than one frame's alignment
      case 9: request.alignment = u64{1} << rng_.range(20, 63); break;
      case 10: request.limit = Pfn(base()); break;  // nothing lies below the table
      case 11: request.count = u64{1} << mm::kMaxOrder; break;
      case 12: request.count = u64{1} << 62; break;  // more than any limit allows
      default:
        request.count = u64{1} << rng_.below(6);
        request.alignment = request.count << 1;  // alignment above the block size
        break;
    }
    return request;
  }

  void try_allocate(const FrameRequest& request, const char* what) {
    AllocPrediction want = model_.predict_allocate(request);
    std::optional<pagelab::test::AllocatorSnapshot> before;
    if (want.status != Status::Ok && snapshot_this_failure()) {
      before = take_snapshot();
    }
    Result got = call_allocate(request, want);
    ASSERT_EQ(err(got.status()), err(want.status)) << where(what) << RequestText{request};
    if (!got.ok()) {
      expect_unchanged(before, what);
      return;
    }
    accept_allocation(request, got.value(), want, what);
  }

  using Result = mm::Result<Pfn>;

  // Calls allocate(), or sometimes the allocator's direct path for the
  // same request, adjusting `want` for the direct path's own checks.
  Result call_allocate(const FrameRequest& request, AllocPrediction& want) {
    if constexpr (kStack) {
      const bool canonical = request.count == 1 && request.alignment == 1 && request.limit >= Pfn(end());
      if (canonical && rng_.percent(30)) {
        return allocator_.allocate_one(request.owner);
      }
    } else if constexpr (kBuddy) {
      const bool plain = std::has_single_bit(request.count) && request.alignment == 1 && request.limit == Pfn::max();
      if (plain && rng_.percent(30)) {
        const u32 order = static_cast<u32>(std::countr_zero(request.count));
        if (order > mm::kMaxOrder) {
          want = {Status::InvalidArgument, std::nullopt};
        }
        return allocator_.allocate_order(order, request.owner);
      }
    }
    return allocator_.allocate(request);
  }

  void accept_allocation(const FrameRequest& request, Pfn got, const AllocPrediction& want, const char* what) {
    if (want.frame) {
      ASSERT_EQ(got.value(), want.frame->value()) << where(what) << RequestText{request};
    } else {
      const std::string why = model_.check_buddy_choice(request, got);
      ASSERT_TRUE(why.empty()) << where(what) << RequestText{request} << " returned 0x" << std::hex << got.value()
                               << std::dec << ": " << why;
    }
    const mm::Frame& head = table()[got];
    ASSERT_EQ(head.state, FrameState::Allocated) << where(what);
    ASSERT_EQ(head.owner, request.owner) << where(what);
    ASSERT_EQ(head.refcount.load(), 1u) << where(what);
    ASSERT_EQ(head.order, kBuddy ? std::countr_zero(request.count) : 0) << where(what);
    model_.apply_allocate(got, request.count, request.owner);
  }

  // A random live allocation, as (first frame, frame count).
  std::optional<std::pair<u64, u64>> random_live() {
    const auto& live = model_.live();
    if (live.empty()) {
      return std::nullopt;
    }
    auto it = live.lower_bound(random_table_pfn().value());
    if (it == live.end()) {
      it = live.begin();
    }
    return std::pair{it->first, it->second.count};
  }

  void free_live() {
    const auto live = random_live();
    if (!live) {
      try_allocate(normal_request(), "allocate (nothing to free)");
      return;
    }
    auto [first, count] = *live;
    if constexpr (kBitmap) {
      // The bitmap frees any sub-run of an allocation.
      if (count > 1 && rng_.percent(50)) {
        const u64 a = rng_.below(count);
        const u64 b = rng_.range(a + 1, count);
        first += a;
        count = b - a;
      }
    }
    call_free(Pfn(first), count, "free of a live allocation");
    last_freed_ = {first, count};
  }

  // Frees through free(), or sometimes the direct path, and compares with
  // the model; applies a success to the model.
  void call_free(Pfn first, FrameCount count, const char* what) {
    Status want = model_.predict_free(first, count);
    std::optional<pagelab::test::AllocatorSnapshot> before;
    if (want != Status::Ok && snapshot_this_failure()) {
      before = take_snapshot();
    }
    Status got;
    if (kStack && count == 1 && rng_.percent(30)) {
      got = direct_free_one(first);
    } else if (kBuddy && std::has_single_bit(count) && rng_.percent(30)) {
      got = direct_free_order(first, static_cast<u32>(std::countr_zero(count)));
    } else {
      got = allocator_.free(first, count);
    }
    ASSERT_EQ(err(got), err(want)) << where(what) << " free(0x" << std::hex << first.value() << std::dec << ", "
                                   << count << ")" << (in_table(first) ? around(first.value()) : "");
    if (got == Status::Ok) {
      model_.apply_free(first, count);
    } else {
      expect_unchanged(before, what);
    }
  }

  Status direct_free_one(Pfn pfn) {
    if constexpr (kStack) {
      return allocator_.free_one(pfn);
    } else {
      return allocator_.free(pfn, 1);
    }
  }

  Status direct_free_order(Pfn pfn, u32 order) {
    if constexpr (kBuddy) {
      return allocator_.free_order(pfn, order);
    } else {
      return allocator_.free(pfn, FrameCount{1} << order);
    }
  }

  FrameCount random_free_count() {
    if constexpr (kStack) {
      return 1;
    } else if constexpr (kBitmap) {
      return rng_.range(1, 16);
    } else {
      return u64{1} << rng_.below(5);
    }
  }

  // The frames around `pfn` as the table and the model see them, for a
  // failure message.
  std::string around(u64 pfn) {
    std::ostringstream out;
    out << "\n  frame: table state/order | model";
    const u64 from = pfn > base() + 4 ? pfn - 4 : base();
    for (u64 p = from; p < end() && p < from + 9; ++p) {
      const mm::Frame& f = table()[Pfn(p)];
      out << "\n  0x" << std::hex << p << std::dec << ": " << mm::frame_state_name(f.state) << "/" << int{f.order}
          << " | " << (!model_.is_managed(p) ? "reserved" : model_.is_free(p) ? "free" : "allocated");
    }
    return out.str();
  }

  void bad_free() {
    switch (rng_.below(7)) {
      case 0:  // double free of what was just freed
        if (last_freed_) {
          call_free(Pfn(last_freed_->first), last_freed_->second, "double free of the last freed");
          return;
        }
        break;
      case 1:  // any frame of the table, whatever it holds
        call_free(random_table_pfn(), random_free_count(), "free of a random frame");
        return;
      case 2:  // outside the table
        call_free(random_outside_pfn(), random_free_count(), "free outside the table");
        return;
      case 3:  // a bitmap run that crosses the table's end; any count elsewhere
        call_free(Pfn(end() - 1 - rng_.below(4)), rng_.range(5, 40), "free across the table's end");
        return;
      case 4:  // a live allocation with the wrong count
        if (const auto live = random_live()) {
          call_free(Pfn(live->first), wrong_count(live->second), "free with a wrong count");
          return;
        }
        break;
      case 5:  // inside a live allocation, or running past its end
        if (const auto live = random_live()) {
          const u64 offset = live->second > 1 ? rng_.range(1, live->second - 1) : 0;
          call_free(Pfn(live->first + offset), kBitmap ? live->second : (kStack ? 1 : live->second),
                    "free inside or past a live allocation");
          return;
        }
        break;
      default:  // a reserved frame inside the table (a hole), if there is one
        if (const auto hole = random_reserved_pfn()) {
          call_free(*hole, random_free_count(), "free of a reserved frame");
          return;
        }
        break;
    }
    call_free(random_table_pfn(), random_free_count(), "free of a random frame");
  }

  FrameCount wrong_count(FrameCount count) {
    if constexpr (kStack) {
      return rng_.percent(50) ? 0 : rng_.range(2, 4);
    } else if constexpr (kBitmap) {
      return 0;
    } else {
      switch (rng_.below(5)) {
        case 0: return count * 2;
        case 1: return count > 1 ? count / 2 : 3;
        case 2: return count + 1 == 2 ? 3 : count + 1;
        case 3: return 0;
        default: return FrameCount{1} << (mm::kMaxOrder + 1);
      }
    }
  }

  std::optional<Pfn> random_reserved_pfn() {
    for (int tries = 0; tries < 8; ++tries) {
      const Pfn pfn = random_table_pfn();
      if (!model_.is_managed(pfn.value())) {
        return pfn;
      }
    }
    return std::nullopt;
  }

  // ------------------------------------------------------------- batches

  void allocate_batch() {
    const u64 n = rng_.range(0, 48);
    const FrameOwner owner = random_owner();
    constexpr u64 kSentinel = ~u64{0};
    std::vector<Pfn> out(n + 2, Pfn(kSentinel));
    const FrameCount got = allocator_.allocate_batch({out.data(), n}, owner);
    ASSERT_LE(got, n) << where("allocate_batch");
    ASSERT_EQ(out[n].value(), kSentinel) << where("allocate_batch wrote past its span");
    const FrameRequest single{.owner = owner};
    for (FrameCount i = 0; i < got; ++i) {
      const AllocPrediction want = model_.predict_allocate(single);
      ASSERT_EQ(err(want.status), err(Status::Ok)) << where("allocate_batch") << " got " << got << " of " << n
                                                   << " frames but the model has only " << i;
      accept_allocation(single, out[i], want, "allocate_batch");
      if (::testing::Test::HasFatalFailure()) {
        return;
      }
    }
    if (got < n) {
      ASSERT_EQ(err(model_.predict_allocate(single).status), err(Status::OutOfMemory))
          << where("allocate_batch") << " stopped at " << got << " of " << n << " with frames still free";
    }
  }

  void free_batch() {
    std::vector<Pfn> frames;
    std::set<u64> chosen;
    const u64 want_n = rng_.range(0, 24);
    for (u64 tries = 0; tries < want_n * 3 && frames.size() < want_n; ++tries) {
      const auto live = random_live();
      if (!live) {
        break;
      }
      if (!kBitmap && live->second != 1) {
        continue;  // stack and buddy batches name single-frame blocks
      }
      const u64 pfn = live->first + rng_.below(live->second);
      if (chosen.insert(pfn).second) {
        frames.push_back(Pfn(pfn));
      }
    }
    if (rng_.percent(40)) {
      inject_defect(frames);
    }
    const Status want = model_.predict_free_batch(frames);
    std::optional<pagelab::test::AllocatorSnapshot> before;
    if (want != Status::Ok) {
      before = take_snapshot();  // failed batches untag frames: always check
    }
    const Status got = allocator_.free_batch(frames);
    ASSERT_EQ(err(got), err(want)) << where("free_batch") << " of " << frames.size() << " frames";
    if (got == Status::Ok) {
      model_.apply_free_batch(frames);
    } else {
      expect_unchanged(before, "free_batch");
    }
  }

  void inject_defect(std::vector<Pfn>& frames) {
    const auto at = [&] { return frames.begin() + static_cast<std::ptrdiff_t>(rng_.below(frames.size() + 1)); };
    switch (rng_.below(5)) {
      case 0:
        if (!frames.empty()) {
          frames.insert(at(), frames[rng_.below(frames.size())]);  // named twice
          return;
        }
        break;
      case 1: frames.insert(at(), random_outside_pfn()); return;
      case 2:
        if (const auto hole = random_reserved_pfn()) {
          frames.insert(at(), *hole);
          return;
        }
        break;
      case 3:
        if (const auto live = random_live()) {
          frames.insert(at(), Pfn(live->first));  // for the buddy often a larger block
          return;
        }
        break;
      default: break;
    }
    frames.insert(at(), random_table_pfn());
  }

  // ----------------------------------------------------------- donations

  void donate_random() {
    switch (rng_.below(5)) {
      case 0: donate(random_table_pfn(), 0, "donation of zero frames"); return;
      case 1: donate(random_table_pfn(), rng_.range(1, 16), "donation of random frames"); return;
      case 2: donate(Pfn(end() - rng_.range(1, 4)), rng_.range(5, 9), "donation across the table's end"); return;
      case 3: donate(random_outside_pfn(), rng_.range(1, 4), "donation outside the table"); return;
      default:
        // Reserved frames inside the table, which the allocator must accept.
        if (const auto hole = random_reserved_pfn()) {
          u64 count = 1;
          const u64 most = rng_.range(1, 16);
          while (count < most && hole->value() + count < end() && !model_.is_managed(hole->value() + count)) {
            ++count;
          }
          donate(*hole, count, "donation of reserved frames");
        }
        return;
    }
  }

  // ----------------------------------------------------------- checking

  void compare_all(const char* what) {
    ASSERT_EQ(allocator_.free_frames(), model_.free_frames()) << where(what) << " free_frames()";
    ASSERT_EQ(allocator_.managed_frames(), model_.managed_frames()) << where(what) << " managed_frames()";
    const mm::FreeBlockCounts got = allocator_.free_blocks();
    const auto want = model_.free_block_counts();
    for (u32 k = 0; k <= mm::kMaxOrder; ++k) {
      ASSERT_EQ(got.blocks[k], want[k]) << where(what) << " free_blocks() of order " << k;
    }
    for (u64 pfn = base(); pfn < end(); ++pfn) {
      const ExpectedFrame e = model_.expected_frame(pfn);
      const mm::Frame& f = table()[Pfn(pfn)];
      ASSERT_EQ(mm::frame_state_name(f.state), std::string(mm::frame_state_name(e.state)))
          << where(what) << " state of frame 0x" << std::hex << pfn;
      if (e.order) {
        ASSERT_EQ(f.order, *e.order) << where(what) << " order of frame 0x" << std::hex << pfn;
      }
      if (e.owner) {
        ASSERT_EQ(mm::frame_owner_name(f.owner), std::string(mm::frame_owner_name(*e.owner)))
            << where(what) << " owner of frame 0x" << std::hex << pfn;
      }
      if (e.refcount) {
        ASSERT_EQ(f.refcount.load(), *e.refcount) << where(what) << " refcount of frame 0x" << std::hex << pfn;
      }
    }
  }

  void release_everything() {
    op_ = kCleanup;
    std::vector<std::pair<u64, u64>> live;
    for (const auto& [first, allocation] : model_.live()) {
      live.emplace_back(first, allocation.count);
    }
    // A random order, so merges happen in every direction.
    for (u64 i = live.size(); i > 1; --i) {
      std::swap(live[i - 1], live[rng_.below(i)]);
    }
    for (const auto& [first, count] : live) {
      call_free(Pfn(first), count, "release of a live allocation");
      if (::testing::Test::HasFatalFailure()) {
        return;
      }
    }
    ASSERT_EQ(model_.free_frames(), model_.managed_frames());
  }

  // With everything free, the allocator must look exactly like one freshly
  // seeded with the same frames: for the buddy, full coalescing.
  void compare_with_fresh_allocator() {
    pagelab::test::FramePool fresh_pool(shape_.frames, Pfn(shape_.base));
    std::vector<u64> fresh_words(BitmapAllocator::words_for(shape_.frames));
    A fresh = make_allocator<A>(fresh_pool.table(), fresh_words);
    for (const auto& [first, run_end] : model_.managed_runs().runs()) {
      ASSERT_EQ(fresh.add_free_range(Pfn(first), run_end - first), Status::Ok);
    }
    const mm::FreeBlockCounts got = allocator_.free_blocks();
    const mm::FreeBlockCounts want = fresh.free_blocks();
    for (u32 k = 0; k <= mm::kMaxOrder; ++k) {
      ASSERT_EQ(got.blocks[k], want.blocks[k]) << where("fresh comparison") << " free_blocks() of order " << k;
    }
    for (u64 pfn = base(); pfn < end(); ++pfn) {
      const mm::Frame& mine = table()[Pfn(pfn)];
      const mm::Frame& theirs = fresh_pool.table()[Pfn(pfn)];
      ASSERT_EQ(mine.state, theirs.state) << where("fresh comparison") << " frame 0x" << std::hex << pfn;
      if (mine.state == FrameState::Free) {
        ASSERT_EQ(mine.order, theirs.order) << where("fresh comparison") << " frame 0x" << std::hex << pfn;
      }
    }
  }

  // Single frames until the allocator runs dry: the stack's whole LIFO
  // order and the bitmap's first fit, one last time.
  void take_everything() {
    const FrameRequest single{.owner = FrameOwner::Kernel};
    while (true) {
      if (::testing::Test::HasFatalFailure()) {
        return;
      }
      const AllocPrediction want = model_.predict_allocate(single);
      const Result got = allocator_.allocate(single);
      ASSERT_EQ(err(got.status()), err(want.status)) << where("taking every frame");
      if (!got.ok()) {
        break;
      }
      accept_allocation(single, got.value(), want, "taking every frame");
    }
    ASSERT_EQ(allocator_.free_frames(), 0u) << where("taking every frame");
  }

  const PoolShape& shape_;
  const u64 seed_;
  pagelab::test::FramePool pool_;
  std::vector<u64> words_;
  A allocator_;
  ReferenceModel model_;
  Rng rng_;

  u64 op_ = 0;
  u64 failures_ = 0;
  u64 phase_left_ = 0;
  bool filling_ = false;
  std::optional<std::pair<u64, u64>> last_freed_;
};

// ----------------------------------------------------------------- tests

struct Case {
  AllocatorPolicy policy;
  u32 pool;
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << pagelab::test::policy_name(c.policy) << " on " << pool_shapes()[c.pool].name;
}

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  return std::string(pagelab::test::policy_name(info.param.policy)) + "_" + pool_shapes()[info.param.pool].name;
}

template <typename A>
u64 run_all_seeds(const PoolShape& shape) {
  u64 ops = 0;
  for (const u64 seed : kSeeds) {
    DifferentialRun<A> run(shape, seed);
    ops += run.run(kOpsPerSeed);
    if (::testing::Test::HasFatalFailure()) {
      break;
    }
  }
  return ops;
}

class AllocatorDifferential : public ::testing::TestWithParam<Case> {};

TEST_P(AllocatorDifferential, AgreesWithTheReferenceModelOnEveryAnswer) {
  const PoolShape& shape = pool_shapes()[GetParam().pool];
  u64 ops = 0;
  switch (GetParam().policy) {
    case AllocatorPolicy::FreeStack: ops = run_all_seeds<FreeStackAllocator>(shape); break;
    case AllocatorPolicy::Bitmap: ops = run_all_seeds<BitmapAllocator>(shape); break;
    case AllocatorPolicy::Buddy: ops = run_all_seeds<BuddyAllocator>(shape); break;
  }
  if (!HasFatalFailure()) {
    EXPECT_EQ(ops, kOpsPerSeed * std::size(kSeeds));
  }
  RecordProperty("operations", std::to_string(ops));
}

std::vector<Case> all_cases() {
  std::vector<Case> cases;
  for (const AllocatorPolicy policy : {AllocatorPolicy::FreeStack, AllocatorPolicy::Bitmap, AllocatorPolicy::Buddy}) {
    for (u32 pool = 0; pool < pool_shapes().size(); ++pool) {
      cases.push_back({policy, pool});
    }
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(AllPoolsAllAllocators, AllocatorDifferential, ::testing::ValuesIn(all_cases()), case_name);

}  // namespace
