// The oracle: the invariants of TLB coherence, checked while the machine runs
// in deterministic mode (one CPU steps at a time, so every other CPU's TLB
// and the core's per-CPU state can be read as they stand).
//
//   O1  no frame is freed while a CPU could still use a translation to it
//       without invalidating first: an entry of the PCID it runs, or of a PCID
//       it may load without a flush (TlbCoherence::usable_context says which);
//   O2  when a map, unmap, protect or fork returns, no CPU can use, in that
//       sense, more rights (or another frame) than the page tables grant;
//   O3  no page-table frame is freed while a paging-structure cache entry
//       under such a PCID points at it;
//   O4  a TLB hit agrees with a fresh walk of the page tables, unless a
//       shootdown of the space is under way or one is queued for the CPU;
//   O5  no reference a removed translation held is dropped while a CPU can
//       still use, in the sense of O1, a translation of that space to the
//       frame (or, for a page table, a paging-structure cache entry to it):
//       the TLB batch drops references after its shootdown, not before, so
//       that another sharer's last drop cannot free a frame this space's
//       CPUs still reach;
//   O6  no copy-on-write frame is taken in place by one space (a write that
//       makes it that space's own without copying) while a CPU can still
//       use, in the sense of O1, a translation of another space to it: the
//       other sharers' removed translations, whose shootdown is under way,
//       would read the new owner's data;
//   and no frame is handed out twice. (No leak at the end is the runner's
//   check.)
//
// Each is judged for every 4 KiB page a TLB entry covers, a 2 MiB or 1 GiB
// entry included: O1 by the entry's whole physical range, O2 by walking the
// tables over its whole virtual range (a split large page leaves an entry
// that is right at its base and wrong elsewhere), O4 on the page the hit
// uses. (O3 is about paging-structure caches, which hold no leaves.)
//
// The first violation is kept (with the CPU, address, frame and step) and
// stops the scheduler; the runner turns it into the failure report.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "emu/hw/tlb.hpp"
#include "mm/base/types.hpp"
#include "mm/paging/tlb_context.hpp"

namespace pagelab::emu {

class Machine;

// A broken invariant, from the oracle or the lock checker (lock_checker.hpp),
// which also reports the core's own assertions (Machine::core_panicked).
struct Violation {
  enum class Source : std::uint8_t { Oracle, LockChecker };
  std::string invariant;  // "O1" ... "O6", "double-alloc"; "lock-order", "deadlock", "lock-release"; "panic"
  std::string message;
  std::uint32_t cpu = 0;  // the CPU whose step broke it
  std::uint64_t step = 0;
  Source source = Source::Oracle;

  // How a failure report states it: "oracle: O1 violated: MESSAGE", or
  // "deadlock: MESSAGE" for the lock checker's, "panic: MESSAGE" for the core's.
  std::string headline() const {
    return source == Source::Oracle ? "oracle: " + invariant + " violated: " + message : invariant + ": " + message;
  }
};

class Oracle {
 public:
  Oracle(Machine& machine, std::uint64_t frames) : machine_(machine), allocated_(frames, false) {}

  // As constructed for a machine of `frames` frames, for another run of the
  // same machine (Machine::restart): no frame allocated, no violation, no
  // TLB copy (their storage is kept).
  void reset(std::uint64_t frames);

  // From the physical memory manager's observer.
  void frames_allocated(std::uint64_t first, std::uint64_t count);
  void frames_freed(std::uint64_t first, std::uint64_t count);
  // When an operation on the space with `root`/`context` has returned.
  void operation_returned(const char* operation, std::uint64_t root, const mm::TlbContext& context);
  // A TLB batch of the space behind `context` is about to drop a reference to `frame`.
  void reference_dropped(const mm::TlbContext* context, std::uint64_t frame);
  // The space behind `context` is about to take the copy-on-write `frame` as its own.
  void frame_taken(const mm::TlbContext* context, std::uint64_t frame);
  // A TLB hit of `entry` for `va` on the calling CPU, whose tables are at `root`.
  void tlb_hit(std::uint64_t va, const hw::TlbEntry& entry, std::uint64_t root, const mm::TlbContext* context);

  std::optional<Violation> violation() const;

 private:
  void report(const char* invariant, std::string message);
  // CPU `c`'s valid TLB entries, copied at the TLB's current version: a scan
  // of every way (thousands in the large presets) only when the TLB changed
  // since the last check, which in a deterministic run is one or two CPUs'.
  const std::vector<hw::TlbEntry>& entries(std::uint32_t c);

  struct TlbCopy {
    std::uint64_t version = ~std::uint64_t{0};
    std::vector<hw::TlbEntry> entries;
  };
  std::vector<TlbCopy> copies_;  // by CPU; used by the one CPU that steps (deterministic runs only)

  Machine& machine_;
  std::vector<bool> allocated_;  // by frame number, as the allocator's callers see it
  mutable std::mutex mutex_;
  std::optional<Violation> violation_;
};

}  // namespace pagelab::emu
