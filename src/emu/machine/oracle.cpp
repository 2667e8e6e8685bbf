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

}  // namespace

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
    cpu.tlb.for_each([&](const hw::TlbEntry& e, hw::TlbLevel) {
      if (!stale && e.frame < end && first < e.frame + e.bytes() && (e.global || usable(e.pcid))) stale = e;
    });
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
    cpu.tlb.for_each([&](const hw::TlbEntry& e, hw::TlbLevel) {
      if (!stale && !e.global && e.frame <= frame && frame < e.frame + e.bytes() && of_space(e.pcid)) stale = e;
    });
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

void Oracle::operation_returned(const char* operation, std::uint64_t root, const mm::TlbContext& context) {
  const auto& coherence = machine_.vm().coherence();
  for (std::uint32_t c = 0; c < machine_.cpu_count(); ++c) {
    std::string problem;
    hw::TlbEntry bad;
    machine_.cpu(c).tlb.for_each([&](const hw::TlbEntry& e, hw::TlbLevel) {
      if (!problem.empty() || e.global || coherence.usable_context(c, mm::Pcid{e.pcid}) != &context) return;
      problem = excess(e, fresh_walk(machine_, root, e.page), e.page);
      bad = e;
    });
    if (!problem.empty()) {
      report("O2", fmt::format("{} returned while cpu {} can still use its translation of {:#x} (pcid {}): {}", operation, c,
                               bad.page, bad.pcid, problem));
      return;
    }
  }
}

void Oracle::tlb_hit(std::uint64_t va, const hw::TlbEntry& entry, std::uint64_t root, const mm::TlbContext* context) {
  const std::string problem = excess(entry, fresh_walk(machine_, root, va), va);
  if (problem.empty()) return;
  const std::uint32_t c = cpu_context.cpu;
  const bool pending = (context != nullptr && context->pending.load() != 0) ||
                       machine_.vm().coherence().request_pending(c) ||
                       machine_.cpu(c).ipi_pending.load(std::memory_order_acquire);
  if (pending) return;  // a shootdown is on its way
  report("O4", fmt::format("cpu {} hit a stale TLB entry for {:#x} with no shootdown pending: {}", c, va, problem));
}

}  // namespace pagelab::emu
