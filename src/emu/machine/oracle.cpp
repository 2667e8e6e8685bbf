#include "emu/machine/oracle.hpp"

#include <fmt/format.h>

#include "emu/machine/machine.hpp"
#include "emu/machine/ram_port.hpp"

namespace pagelab::emu {

namespace {

// What the page tables at `root` say of `va` now.
hw::WalkResult fresh_walk(Machine& machine, std::uint64_t root, std::uint64_t va) {
  PeekPort port{machine};
  const hw::ControlRegisters cr = hw::ControlRegisters::long_mode(root);
  return hw::walk(port, cr, va, hw::Access{hw::AccessKind::Read, hw::Mode::Supervisor});
}

// Empty when the entry grants nothing the walk does not; else what it grants too much.
std::string excess(const hw::TlbEntry& entry, const hw::WalkResult& walk, std::uint64_t va) {
  if (!walk.ok()) return "the page is not mapped any more";
  if (entry.translate(va) != walk.physical) {
    return fmt::format("it maps frame {:#x}, the page tables map {:#x}", entry.translate(va) & ~std::uint64_t{0xFFF},
                       walk.physical & ~std::uint64_t{0xFFF});
  }
  if (entry.rights.writable && !walk.rights.writable) return "it allows writes the page tables forbid";
  if (entry.rights.user && !walk.rights.user) return "it allows user accesses the page tables forbid";
  if (!entry.rights.no_execute && walk.rights.no_execute) return "it allows execution the page tables forbid";
  return {};
}

// Where an entry grants more than the page tables: what (empty: nowhere),
// and the 4 KiB page it is about.
struct Excess {
  std::string problem;
  std::uint64_t va = 0;
};

// The first 4 KiB page of `entry`'s range on which it grants what the page
// tables at `root` do not. A 4 KiB entry is one walk, as it always was. A
// larger one is judged page by page over its whole range: a protect or unmap
// of any 4 KiB page inside it splits the large page and leaves the entry
// wrong there while its base page is still right. The walks go from page to
// page of the tables (a 2 MiB page still intact costs one walk, a split one
// at most 512), and a hole anywhere in the range is a violation.
Excess excess_over_range(Machine& machine, std::uint64_t root, const hw::TlbEntry& entry) {
  if (entry.size == hw::PageSize::Size4K) [[likely]] {
    return Excess{excess(entry, fresh_walk(machine, root, entry.page), entry.page), entry.page};
  }
  // By offset, not by address: a range may end at the top of the address space.
  for (std::uint64_t offset = 0; offset < entry.bytes();) {
    const std::uint64_t va = entry.page + offset;
    const hw::WalkResult walk = fresh_walk(machine, root, va);
    std::string problem = excess(entry, walk, va);
    if (!problem.empty()) return Excess{std::move(problem), va};
    // On to the next page of the tables: the one just walked agrees with the
    // entry over all of it (both map it linearly, and they agree at va).
    const std::uint64_t span = hw::bytes_of(walk.size);
    offset += span - (va & (span - 1));
  }
  return {};
}

// How a report names a 2 MiB or 1 GiB entry, which covers more than the page
// it is about: "2 MiB entry for 0x40000000".
std::string large_entry(const hw::TlbEntry& entry) {
  return fmt::format("{} entry for {:#x}", entry.size == hw::PageSize::Size2M ? "2 MiB" : "1 GiB", entry.page);
}

}  // namespace

void Oracle::reset(std::uint64_t frames) {
  allocated_.assign(frames, false);
  for (TlbCopy& copy : copies_) {
    copy.version = ~std::uint64_t{0};
    copy.entries.clear();
  }
  std::lock_guard<std::mutex> guard(mutex_);
  violation_.reset();
}

const std::vector<hw::TlbEntry>& Oracle::entries(std::uint32_t c) {
  if (copies_.size() < machine_.cpu_count()) copies_.resize(machine_.cpu_count());
  const hw::Tlb& tlb = machine_.cpu(c).tlb;
  TlbCopy& copy = copies_[c];
  if (copy.version != tlb.version()) {
    copy.entries.clear();
    tlb.for_each([&](const hw::TlbEntry& e, hw::TlbLevel) { copy.entries.push_back(e); });
    copy.version = tlb.version();
  }
  return copy.entries;
}

void Oracle::report(const char* invariant, std::string message) {
  std::lock_guard<std::mutex> guard(mutex_);
  if (violation_) return;
  violation_ = Violation{invariant, std::move(message), cpu_context.cpu, machine_.scheduler().steps()};
  machine_.emit(EventKind::Note, 0, 0, 0, 0, fmt::format("oracle: {} violated", invariant));
  machine_.scheduler().stop();
}

std::optional<Violation> Oracle::violation() const {
  std::lock_guard<std::mutex> guard(mutex_);
  return violation_;
}

void Oracle::frames_allocated(std::uint64_t first, std::uint64_t count) {
  const std::uint64_t pfn = first / mm::kPageSize;
  for (std::uint64_t i = 0; i < count; ++i) {
    if (allocated_[pfn + i]) {
      report("double-alloc", fmt::format("frame {:#x} was handed out twice", (pfn + i) * mm::kPageSize));
      return;
    }
    allocated_[pfn + i] = true;
  }
}

void Oracle::frames_freed(std::uint64_t first, std::uint64_t count) {
  const std::uint64_t pfn = first / mm::kPageSize;
  for (std::uint64_t i = 0; i < count; ++i) allocated_[pfn + i] = false;
  const std::uint64_t end = first + count * mm::kPageSize;
  const auto& coherence = machine_.vm().coherence();
  for (std::uint32_t c = 0; c < machine_.cpu_count(); ++c) {
    EmuCpu& cpu = machine_.cpu(c);
    const auto usable = [&](hw::Pcid pcid) { return coherence.usable_context(c, mm::Pcid{pcid}) != nullptr; };
    std::optional<hw::TlbEntry> stale;
    // (Over the entry's whole range: a large entry reaches every frame it covers.)
    for (const hw::TlbEntry& e : entries(c)) {
      if (!stale && e.frame < end && first < e.frame + e.bytes() && (e.global || usable(e.pcid))) stale = e;
    }
    if (stale) {
      report("O1", fmt::format("frame {:#x} was freed while cpu {} can still reach it through {:#x} (pcid {}, {})",
                               std::max(first, stale->frame), c, stale->page, stale->pcid,
                               stale->rights.writable ? "writable" : "read-only"));
      return;
    }
    if (cpu.psc) {  // (any frame: a cached entry pointing at it makes it a table to that CPU)
      std::optional<hw::PagingStructureCache::Entry> cached;
      cpu.psc->for_each([&](const hw::PagingStructureCache::Entry& e) {
        if (!cached && e.table >= first && e.table < end && usable(e.pcid)) cached = e;
      });
      if (cached) {
        report("O3", fmt::format("page-table frame {:#x} was freed while cpu {}'s paging-structure cache points at it "
                                 "(level {} entry for {:#x}, pcid {})",
                                 cached->table, c, cached->level, cached->va_base, cached->pcid));
        return;
      }
    }
  }
}

void Oracle::reference_dropped(const mm::TlbContext* context, std::uint64_t frame) {
  if (context == nullptr) return;
  const auto& coherence = machine_.vm().coherence();
  for (std::uint32_t c = 0; c < machine_.cpu_count(); ++c) {
    EmuCpu& cpu = machine_.cpu(c);
    const auto of_space = [&](hw::Pcid pcid) { return coherence.usable_context(c, mm::Pcid{pcid}) == context; };
    std::optional<hw::TlbEntry> stale;
    for (const hw::TlbEntry& e : entries(c)) {
      if (!stale && !e.global && e.frame <= frame && frame < e.frame + e.bytes() && of_space(e.pcid)) stale = e;
    }
    if (stale) {
      report("O5", fmt::format("a reference to frame {:#x} was dropped while cpu {} can still reach it through {:#x} "
                               "(pcid {}, {}) in the space that held it",
                               frame, c, stale->page, stale->pcid, stale->rights.writable ? "writable" : "read-only"));
      return;
    }
    if (cpu.psc) {
      std::optional<hw::PagingStructureCache::Entry> cached;
      cpu.psc->for_each([&](const hw::PagingStructureCache::Entry& e) {
        if (!cached && e.table == frame && of_space(e.pcid)) cached = e;
      });
      if (cached) {
        report("O5", fmt::format("page table {:#x} left its tree while cpu {}'s paging-structure cache points at it "
                                 "(level {} entry for {:#x}, pcid {})",
                                 frame, c, cached->level, cached->va_base, cached->pcid));
        return;
      }
    }
  }
}

void Oracle::frame_taken(const mm::TlbContext* context, std::uint64_t frame) {
  const auto& coherence = machine_.vm().coherence();
  for (std::uint32_t c = 0; c < machine_.cpu_count(); ++c) {
    std::optional<hw::TlbEntry> other;
    for (const hw::TlbEntry& e : entries(c)) {
      if (other || e.global || frame < e.frame || frame >= e.frame + e.bytes()) continue;
      const mm::TlbContext* space = coherence.usable_context(c, mm::Pcid{e.pcid});
      if (space != nullptr && space != context) other = e;
    }
    if (other) {
      report("O6", fmt::format("frame {:#x} was taken in place by one space while cpu {} can still reach it through {:#x} "
                               "(pcid {}, {}) of another space that shared it",
                               frame, c, other->page, other->pcid, other->rights.writable ? "writable" : "read-only"));
      return;
    }
  }
}

void Oracle::operation_returned(const char* operation, std::uint64_t root, const mm::TlbContext& context) {
  const auto& coherence = machine_.vm().coherence();
  for (std::uint32_t c = 0; c < machine_.cpu_count(); ++c) {
    Excess found;
    hw::TlbEntry bad;
    for (const hw::TlbEntry& e : entries(c)) {
      if (!found.problem.empty() || e.global || coherence.usable_context(c, mm::Pcid{e.pcid}) != &context) continue;
      found = excess_over_range(machine_, root, e);
      bad = e;
    }
    if (!found.problem.empty()) {
      report("O2", fmt::format("{} returned while cpu {} can still use its translation of {:#x} ({}pcid {}): {}",
                               operation, c, found.va, bad.size == hw::PageSize::Size4K ? "" : large_entry(bad) + ", ",
                               bad.pcid, found.problem));
      return;
    }
  }
}

// A hit uses one 4 KiB page of its entry, the one at `va`: that page is the
// one judged, so every page of a large entry is judged when it is used (the
// rest of the entry is O2's).
void Oracle::tlb_hit(std::uint64_t va, const hw::TlbEntry& entry, std::uint64_t root, const mm::TlbContext* context) {
  const std::string problem = excess(entry, fresh_walk(machine_, root, va), va);
  if (problem.empty()) return;
  const std::uint32_t c = cpu_context.cpu;
  const bool pending = (context != nullptr && context->pending.load() != 0) ||
                       machine_.vm().coherence().request_pending(c) ||
                       machine_.cpu(c).ipi_pending.load(std::memory_order_acquire);
  if (pending) return;  // a shootdown is on its way
  report("O4", fmt::format("cpu {} hit a stale TLB entry for {:#x}{} with no shootdown pending: {}", c, va,
                           entry.size == hw::PageSize::Size4K ? "" : " (its " + large_entry(entry) + ")", problem));
}

}  // namespace pagelab::emu
