// A deliberately simple reference model of a physical frame allocator, for
// differential tests (unit/allocator_differential_test.cpp).
//
// It shares no code with src/mm/phys beyond the interface's vocabulary
// (Pfn, Status, FrameRequest, FrameState, FrameOwner): the managed frames and
// the free frames are sorted runs in a std::map, the live allocations another
// std::map, and every query walks them. It is meant for tables of a few
// thousand frames, where walking is cheap enough and obviously right.
//
// For each of the three policies it predicts what every call must answer:
//  - FreeStack: exact. Last freed is first reused; add_free_range hands out
//    its lowest frame first.
//  - Bitmap: exact. First fit: the lowest start that is a multiple of the
//    alignment (in absolute frame numbers) with count free frames below both
//    the limit and the table's end.
//  - Buddy: the status exactly, and the rules any correct choice obeys (see
//    check_buddy_choice), since which of several equal blocks a buddy pops
//    depends on its list order.
//
// Buddy reasoning the model relies on. Call a "maximal block" a naturally
// aligned block of 2^k free frames (k <= kMaxOrder) whose parent block of
// 2^(k+1) frames is not entirely free (or k == kMaxOrder). With eager
// coalescing the buddy's free lists hold exactly the maximal blocks:
//  - no two free-list blocks are free buddies of one order (a free merges
//    until its buddy is not a free block of its order; a split leaves each
//    upper half's buddy, the lower half, in use), so by induction on k every
//    entirely free aligned 2^k block lies inside one free-list block: its
//    two halves each lie inside one, and if both were exactly the halves
//    they would be free buddies of one order;
//  - hence a list block is maximal (a free parent would lie inside another,
//    disjoint, list block).
// Consequences the model predicts: allocate(2^k below limit L) succeeds iff
// some entirely free aligned 2^k block ends at or below L (and at or below
// the table's end); free_blocks() counts the maximal blocks by order, which
// is also what the stack and the bitmap report; a free frame heads a Free
// record iff it heads its maximal block, and is Interior otherwise.
#pragma once

#include <array>
#include <bit>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "mm/base/status.hpp"
#include "mm/phys/frame.hpp"
#include "mm/phys/frame_allocator.hpp"

namespace pagelab::test {

// A broken precondition of the model itself: a bug in the test driving it.
[[noreturn]] inline void model_failure(const char* what, mm::u64 value) {
  std::fprintf(stderr, "reference model: %s (%llu)\n", what, static_cast<unsigned long long>(value));
  std::abort();
}

inline void model_require(bool cond, const char* what, mm::u64 value = 0) {
  if (!cond) [[unlikely]] {
    model_failure(what, value);
  }
}

// A set of frame numbers kept as sorted, disjoint, non-adjacent runs
// [first, end).
class FrameRunSet {
 public:
  using u64 = mm::u64;

  struct Run {
    u64 first;
    u64 end;
  };

  std::optional<Run> run_containing(u64 pfn) const {
    auto it = runs_.upper_bound(pfn);
    if (it == runs_.begin()) {
      return std::nullopt;
    }
    --it;
    if (pfn < it->second) {
      return Run{it->first, it->second};
    }
    return std::nullopt;
  }

  bool contains(u64 pfn) const { return run_containing(pfn).has_value(); }

  // Every frame of [first, first + count) is in the set.
  bool contains_all(u64 first, u64 count) const {
    const std::optional<Run> run = run_containing(first);
    return run && count <= run->end - first;
  }

  // Some frame of [first, first + count) is in the set.
  bool contains_any(u64 first, u64 count) const {
    auto it = runs_.lower_bound(first);
    if (it != runs_.end() && it->first - first < count) {
      return true;
    }
    if (it == runs_.begin()) {
      return false;
    }
    --it;
    return it->second > first;
  }

  // Precondition: no frame of the run is in the set.
  void insert(u64 first, u64 count) {
    model_require(count > 0 && !contains_any(first, count), "insert of frames already in the set", first);
    u64 start = first;
    u64 end = first + count;
    if (auto next = runs_.find(end); next != runs_.end()) {
      end = next->second;
      runs_.erase(next);
    }
    if (auto prev = runs_.lower_bound(start); prev != runs_.begin()) {
      --prev;
      if (prev->second == start) {
        start = prev->first;
        runs_.erase(prev);
      }
    }
    runs_[start] = end;
    total_ += count;
  }

  // Precondition: every frame of the run is in the set.
  void erase(u64 first, u64 count) {
    const std::optional<Run> run = run_containing(first);
    model_require(count > 0 && run && count <= run->end - first, "erase of frames not in the set", first);
    runs_.erase(run->first);
    if (run->first < first) {
      runs_[run->first] = first;
    }
    if (first + count < run->end) {
      runs_[first + count] = run->end;
    }
    total_ -= count;
  }

  u64 size() const { return total_; }
  const std::map<u64, u64>& runs() const { return runs_; }

 private:
  std::map<u64, u64> runs_;  // first -> end
  u64 total_ = 0;
};

enum class AllocatorPolicy : mm::u8 { FreeStack, Bitmap, Buddy };

inline const char* policy_name(AllocatorPolicy policy) {
  switch (policy) {
    case AllocatorPolicy::FreeStack: return "stack";
    case AllocatorPolicy::Bitmap: return "bitmap";
    case AllocatorPolicy::Buddy: return "buddy";
  }
  return "?";
}

// What the model says an allocate() must answer. `frame` is set when the
// policy determines the exact frame (stack, bitmap).
struct AllocPrediction {
  mm::Status status = mm::Status::Ok;
  std::optional<mm::Pfn> frame;
};

// What the model says one Frame record must hold. Unset fields are left to
// the allocator (a buddy's Interior frames keep whatever they held).
struct ExpectedFrame {
  mm::FrameState state = mm::FrameState::Reserved;
  std::optional<mm::u8> order;
  std::optional<mm::FrameOwner> owner;
  std::optional<mm::u32> refcount;
};

struct LiveAllocation {
  mm::FrameCount count = 0;
  mm::FrameOwner owner = mm::FrameOwner::Kernel;
};

// A naturally aligned block of 2^order frames.
struct ModelBlock {
  mm::u64 first = 0;
  mm::u32 order = 0;
};

class ReferenceModel {
 public:
  using u32 = mm::u32;
  using u64 = mm::u64;
  using Pfn = mm::Pfn;
  using FrameCount = mm::FrameCount;
  using Status = mm::Status;

  static constexpr u32 kMaxOrder = 18;  // 2^18 frames: 1 GiB
  static_assert(kMaxOrder == mm::kMaxOrder, "the model and the interface disagree on the largest block");

  ReferenceModel(AllocatorPolicy policy, Pfn table_base, FrameCount table_size)
      : policy_(policy), table_base_(table_base.value()), table_end_(table_base.value() + table_size) {}

  AllocatorPolicy policy() const { return policy_; }
  u64 table_base() const { return table_base_; }
  u64 table_end() const { return table_end_; }

  // ---------------------------------------------------------------- state

  bool in_table(u64 pfn) const { return pfn >= table_base_ && pfn < table_end_; }
  bool is_managed(u64 pfn) const { return managed_.contains(pfn); }
  bool is_free(u64 pfn) const { return free_.contains(pfn); }
  bool is_allocated(u64 pfn) const { return is_managed(pfn) && !is_free(pfn); }
  FrameCount free_frames() const { return free_.size(); }
  FrameCount managed_frames() const { return managed_.size(); }
  const FrameRunSet& free_runs() const { return free_; }
  const FrameRunSet& managed_runs() const { return managed_; }
  const std::map<u64, LiveAllocation>& live() const { return live_; }

  // The live allocation that contains `pfn`, as (first frame, record).
  std::optional<std::pair<u64, LiveAllocation>> allocation_containing(u64 pfn) const {
    auto it = live_.upper_bound(pfn);
    if (it == live_.begin()) {
      return std::nullopt;
    }
    --it;
    if (pfn - it->first < it->second.count) {
      return *it;
    }
    return std::nullopt;
  }

  // The largest naturally aligned, entirely free block containing `pfn`
  // (precondition: pfn is free), found by growing from order 0: a block of
  // order k+1 can be free only if its half of order k is.
  ModelBlock maximal_block_containing(u64 pfn) const {
    const std::optional<FrameRunSet::Run> run = free_.run_containing(pfn);
    model_require(run.has_value(), "maximal block of a frame that is not free", pfn);
    return maximal_block_in(pfn, *run);
  }

  // Calls f(block) for every maximal free block, in ascending address order,
  // until f returns false.
  template <typename F>
  void for_each_maximal_block(F&& f) const {
    for (const auto& [first, end] : free_.runs()) {
      const FrameRunSet::Run run{first, end};
      u64 pfn = first;
      while (pfn < end) {
        const ModelBlock block = maximal_block_in(pfn, run);
        // A maximal block cannot reach back into the one before it.
        model_require(block.first == pfn, "maximal blocks overlap", pfn);
        if (!f(block)) {
          return;
        }
        pfn = block.first + (u64{1} << block.order);
      }
    }
  }

  std::array<FrameCount, kMaxOrder + 1> free_block_counts() const {
    std::array<FrameCount, kMaxOrder + 1> counts{};
    for_each_maximal_block([&](const ModelBlock& block) {
      ++counts[block.order];
      return true;
    });
    return counts;
  }

  // Some entirely free, naturally aligned block of 2^order frames ends at or
  // below `limit`. Worked out on the runs directly (not from maximal
  // blocks), so it checks the reasoning above as well as the buddy.
  bool has_free_aligned_block(u32 order, u64 limit) const {
    const u64 size = u64{1} << order;
    for (const auto& [first, end] : free_.runs()) {
      const std::optional<u64> start = align_up(first, size);
      const u64 cap = end < limit ? end : limit;
      if (start && *start <= cap && cap - *start >= size) {
        return true;
      }
    }
    return false;
  }

  // The smallest order >= `order` among maximal blocks whose lowest 2^order
  // frames end at or below `limit`: the list a buddy must take from.
  std::optional<u32> smallest_fitting_maximal_order(u32 order, u64 limit) const {
    std::optional<u32> best;
    for_each_maximal_block([&](const ModelBlock& block) {
      if (block.order >= order && block.first + (u64{1} << order) <= limit &&
          (!best || block.order < *best)) {
        best = block.order;
      }
      return !(best && *best == order);  // nothing beats an exact fit
    });
    return best;
  }

  // The lowest multiple of `alignment` (a power of two) that starts `count`
  // free frames ending at or below `limit`: first fit.
  std::optional<u64> lowest_fit(FrameCount count, FrameCount alignment, u64 limit) const {
    for (const auto& [first, end] : free_.runs()) {
      if (first >= limit) {
        break;
      }
      // Within one run the lowest aligned start has the most room.
      const std::optional<u64> start = align_up(first, alignment);
      const u64 cap = end < limit ? end : limit;
      if (start && *start <= cap && cap - *start >= count) {
        return start;
      }
    }
    return std::nullopt;
  }

  // What table[pfn] must hold.
  ExpectedFrame expected_frame(u64 pfn) const {
    ExpectedFrame e;
    if (!is_managed(pfn)) {
      e.state = mm::FrameState::Reserved;
      e.owner = mm::FrameOwner::Reserved;
      e.refcount = 0;
      return e;
    }
    if (is_free(pfn)) {
      u32 order = 0;
      if (policy_ == AllocatorPolicy::Buddy) {
        const ModelBlock block = maximal_block_containing(pfn);
        if (block.first != pfn) {
          e.state = mm::FrameState::Interior;
          return e;
        }
        order = block.order;
      }
      e.state = mm::FrameState::Free;
      e.order = static_cast<mm::u8>(order);
      e.owner = mm::FrameOwner::Free;
      e.refcount = 0;
      return e;
    }
    const auto live = allocation_containing(pfn);
    model_require(live.has_value(), "allocated frame outside every live allocation", pfn);
    if (policy_ == AllocatorPolicy::Buddy && live->first != pfn) {
      e.state = mm::FrameState::Interior;
      return e;
    }
    e.state = mm::FrameState::Allocated;
    // The bitmap owns the frames of a run one by one, each of order 0.
    e.order = static_cast<mm::u8>(policy_ == AllocatorPolicy::Buddy ? std::countr_zero(live->second.count) : 0);
    e.owner = live->second.owner;
    e.refcount = 1;
    return e;
  }

  // The frames a free stack hands out next, top first.
  const std::vector<u64>& stack() const { return stack_; }

  // ------------------------------------------------------------- donation

  Status predict_add_free_range(Pfn first, FrameCount count) const {
    if (count == 0) {
      return Status::InvalidArgument;
    }
    if (!in_table(first.value()) || count > table_end_ - first.value()) {
      return Status::BadAddress;
    }
    if (managed_.contains_any(first.value(), count)) {
      return Status::BadAddress;
    }
    return Status::Ok;
  }

  void apply_add_free_range(Pfn first, FrameCount count) {
    model_require(predict_add_free_range(first, count) == Status::Ok, "bad donation applied", first.value());
    managed_.insert(first.value(), count);
    free_.insert(first.value(), count);
    if (policy_ == AllocatorPolicy::FreeStack) {
      for (u64 i = count; i-- > 0;) {
        stack_.push_back(first.value() + i);
      }
    }
  }

  // ------------------------------------------------------------- allocate

  AllocPrediction predict_allocate(const mm::FrameRequest& request) const {
    // The shape checks every allocator shares.
    if (request.count == 0 || !std::has_single_bit(request.alignment) || request.limit.value() < request.count) {
      return {Status::InvalidArgument, std::nullopt};
    }
    switch (policy_) {
      case AllocatorPolicy::FreeStack:
        if (request.count != 1 || request.alignment != 1 || request.limit.value() < table_end_) {
          return {Status::NotSupported, std::nullopt};
        }
        if (stack_.empty()) {
          return {Status::OutOfMemory, std::nullopt};
        }
        return {Status::Ok, Pfn(stack_.back())};
      case AllocatorPolicy::Bitmap: {
        const std::optional<u64> start = lowest_fit(request.count, request.alignment, request.limit.value());
        return start ? AllocPrediction{Status::Ok, Pfn(*start)} : AllocPrediction{Status::OutOfMemory, std::nullopt};
      }
      case AllocatorPolicy::Buddy: {
        if (!std::has_single_bit(request.count) || request.count > (FrameCount{1} << kMaxOrder)) {
          return {Status::InvalidArgument, std::nullopt};
        }
        if (request.alignment > request.count) {
          return {Status::NotSupported, std::nullopt};
        }
        const u32 order = static_cast<u32>(std::countr_zero(request.count));
        const bool fits = has_free_aligned_block(order, request.limit.value());
        const bool fits_by_blocks = smallest_fitting_maximal_order(order, request.limit.value()).has_value();
        model_require(fits == fits_by_blocks, "the model's two buddy predicates disagree", order);
        return {fits ? Status::Ok : Status::OutOfMemory, std::nullopt};
      }
    }
    return {Status::InvalidArgument, std::nullopt};
  }

  // Why `got` is not an acceptable buddy answer to `request` (whose
  // prediction was Ok), or an empty string if it is: the block is naturally
  // aligned, entirely free (so inside the pool and clear of every live
  // allocation), below the limit, and the lowest part of a maximal block of
  // the smallest order that fits (smallest-fit, split keeping the low half).
  std::string check_buddy_choice(const mm::FrameRequest& request, Pfn got) const {
    const u32 order = static_cast<u32>(std::countr_zero(request.count));
    const u64 size = u64{1} << order;
    const u64 pfn = got.value();
    if ((pfn & (size - 1)) != 0) {
      return "block is not naturally aligned";
    }
    if (!free_.contains_all(pfn, size)) {
      return "block is not entirely free (outside the pool or overlapping a live allocation)";
    }
    if (pfn + size > request.limit.value()) {
      return "block ends above the limit";
    }
    const ModelBlock block = maximal_block_containing(pfn);
    if (block.first != pfn) {
      return "block is not the lowest part of a free block the buddy could hold";
    }
    const std::optional<u32> smallest = smallest_fitting_maximal_order(order, request.limit.value());
    if (!smallest || block.order != *smallest) {
      return "block was split from order " + std::to_string(block.order) + " but order " +
             (smallest ? std::to_string(*smallest) : std::string("none")) + " was the smallest that fits";
    }
    return {};
  }

  // Records a successful allocation of [first, first + count).
  void apply_allocate(Pfn first, FrameCount count, mm::FrameOwner owner) {
    free_.erase(first.value(), count);
    live_[first.value()] = {count, owner};
    if (policy_ == AllocatorPolicy::FreeStack) {
      model_require(!stack_.empty() && stack_.back() == first.value(), "stack allocation not from the top",
                    first.value());
      stack_.pop_back();
    }
  }

  // ----------------------------------------------------------------- free

  Status predict_free(Pfn first, FrameCount count) const {
    const u64 pfn = first.value();
    switch (policy_) {
      case AllocatorPolicy::FreeStack:
        if (count != 1) {
          return Status::InvalidArgument;
        }
        return single_frame_status(pfn);
      case AllocatorPolicy::Bitmap:
        if (count == 0) {
          return Status::InvalidArgument;
        }
        if (!in_table(pfn) || count > table_end_ - pfn) {
          return Status::BadAddress;
        }
        // Frame by frame, in order: the first bad frame decides.
        for (u64 i = 0; i < count; ++i) {
          const Status status = single_frame_status(pfn + i);
          if (status != Status::Ok) {
            return status;
          }
        }
        return Status::Ok;
      case AllocatorPolicy::Buddy:
        if (!std::has_single_bit(count) || count > (FrameCount{1} << kMaxOrder)) {
          return Status::InvalidArgument;
        }
        return buddy_block_status(pfn, static_cast<u32>(std::countr_zero(count)));
    }
    return Status::InvalidArgument;
  }

  // A batch is validated whole before anything is freed: the first bad
  // frame decides, and a frame named a second time is not allocated any more
  // (ENOENT).
  Status predict_free_batch(std::span<const Pfn> frames) const {
    std::set<u64> seen;
    for (const Pfn frame : frames) {
      const u64 pfn = frame.value();
      if (seen.contains(pfn)) {
        return Status::NotFound;
      }
      const Status status =
          policy_ == AllocatorPolicy::Buddy ? buddy_block_status(pfn, 0) : single_frame_status(pfn);
      if (status != Status::Ok) {
        return status;
      }
      seen.insert(pfn);
    }
    return Status::Ok;
  }

  // Records a successful free of [first, first + count). The bitmap may free
  // any run of allocated frames, so live allocations are cut as needed.
  void apply_free(Pfn first, FrameCount count) {
    const u64 begin = first.value();
    const u64 end = begin + count;
    auto it = live_.upper_bound(begin);
    if (it != live_.begin()) {
      --it;
    }
    while (it != live_.end() && it->first < end) {
      const u64 a_first = it->first;
      const u64 a_end = a_first + it->second.count;
      const mm::FrameOwner owner = it->second.owner;
      if (a_end <= begin) {
        ++it;
        continue;
      }
      it = live_.erase(it);
      if (a_first < begin) {
        live_[a_first] = {begin - a_first, owner};
      }
      if (end < a_end) {
        live_[end] = {a_end - end, owner};
      }
    }
    free_.insert(begin, count);
    if (policy_ == AllocatorPolicy::FreeStack) {
      stack_.push_back(begin);
    }
  }

  void apply_free_batch(std::span<const Pfn> frames) {
    for (const Pfn frame : frames) {
      apply_free(frame, 1);
    }
  }

 private:
  // The maximal block containing `pfn`, which lies in the free run `run`.
  static ModelBlock maximal_block_in(u64 pfn, const FrameRunSet::Run& run) {
    u32 order = 0;
    while (order < kMaxOrder) {
      const u64 size = u64{2} << order;
      const u64 first = pfn & ~(size - 1);
      if (first < run.first || run.end - first < size) {
        break;
      }
      ++order;
    }
    return {pfn & ~((u64{1} << order) - 1), order};
  }

  // x rounded up to a multiple of `alignment` (a power of two), if that fits
  // in 64 bits.
  static std::optional<u64> align_up(u64 x, u64 alignment) {
    const u64 rem = x & (alignment - 1);
    if (rem == 0) {
      return x;
    }
    const u64 add = alignment - rem;
    if (add > ~u64{0} - x) {
      return std::nullopt;
    }
    return x + add;
  }

  // The answer to freeing one frame that a stack or a bitmap owns alone.
  Status single_frame_status(u64 pfn) const {
    if (!in_table(pfn) || !is_managed(pfn)) {
      return Status::BadAddress;
    }
    if (is_free(pfn)) {
      return Status::NotFound;
    }
    return Status::Ok;
  }

  // The answer to freeing a buddy block of 2^order frames at `pfn`. Any free
  // frame, a block's head or inside it, is a double free (ENOENT); inside an
  // allocated block, or a head of another order, names no block (EINVAL).
  Status buddy_block_status(u64 pfn, u32 order) const {
    if (!in_table(pfn) || !is_managed(pfn)) {
      return Status::BadAddress;
    }
    if (is_free(pfn)) {
      return Status::NotFound;
    }
    const auto live = allocation_containing(pfn);
    model_require(live.has_value(), "allocated frame outside every live allocation", pfn);
    if (live->first != pfn) {
      return Status::InvalidArgument;
    }
    return live->second.count == (u64{1} << order) ? Status::Ok : Status::InvalidArgument;
  }

  AllocatorPolicy policy_;
  u64 table_base_;
  u64 table_end_;
  FrameRunSet managed_;
  FrameRunSet free_;
  std::map<u64, LiveAllocation> live_;  // first frame -> allocation
  std::vector<u64> stack_;              // FreeStack only: back() is handed out next
};

}  // namespace pagelab::test
