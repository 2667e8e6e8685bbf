#include "emu/machine/fault_injection.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>

#include "emu/machine/machine.hpp"
#include "emu/machine/ram_port.hpp"
#include "emu/scenario/ast.hpp"

namespace pagelab::emu {

namespace {

constexpr std::string_view kKinds = "alloc-fail@N (N >= 1), ipi-delay:K (0 <= K <= 10000), spec-fill:P or evict:P (0 <= P <= 1)";

// Digits only, no sign, no base prefix, no overflow.
std::optional<std::uint64_t> parse_count(std::string_view text) {
  if (text.empty() || text.size() > 19 || !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// A probability written as DIGITS[.DIGITS] or .DIGITS, with an optional
// exponent e[+-]DIGITS (InjectionSpec::text() writes the shortest form that
// reads back to the same double, 1e-05 for 0.00001), in [0, 1].
std::optional<double> parse_probability(std::string_view text) {
  const std::size_t e = text.find_first_of("eE");
  const std::string_view mantissa = text.substr(0, e);
  std::string_view exponent = e == std::string_view::npos ? std::string_view{} : text.substr(e + 1);
  const std::size_t dot = mantissa.find('.');
  const std::string_view whole = mantissa.substr(0, dot);
  const std::string_view fraction = dot == std::string_view::npos ? std::string_view{} : mantissa.substr(dot + 1);
  const auto digits = [](std::string_view s) { return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }); };
  if (!exponent.empty() && (exponent[0] == '-' || exponent[0] == '+')) exponent.remove_prefix(1);
  if (text.empty() || text.size() > 32 || !digits(whole) || !digits(fraction) || (whole.empty() && fraction.empty()) ||
      (e != std::string_view::npos && (exponent.empty() || exponent.size() > 4 || !digits(exponent)))) {
    return std::nullopt;
  }
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || !(value >= 0.0 && value <= 1.0)) return std::nullopt;
  return value;
}

bool add_one(std::string_view item, std::string_view argument, InjectionSpec& spec, std::string& error) {
  const auto fail = [&](std::string_view why) {
    error = item == argument ? fmt::format("--inject '{}': {}", argument, why)
                             : fmt::format("--inject '{}': '{}': {}", argument, item, why);
    return false;
  };
  if (item.rfind("alloc-fail@", 0) == 0) {
    const std::optional<std::uint64_t> n = parse_count(item.substr(11));
    if (!n || *n == 0) return fail("alloc-fail@N takes a whole number N >= 1 (the Nth allocation of the run fails)");
    const auto at = std::lower_bound(spec.alloc_fail.begin(), spec.alloc_fail.end(), *n);
    if (at == spec.alloc_fail.end() || *at != *n) spec.alloc_fail.insert(at, *n);
    return true;
  }
  if (item.rfind("ipi-delay:", 0) == 0) {
    const std::optional<std::uint64_t> k = parse_count(item.substr(10));
    if (!k || *k > InjectionSpec::kMaxIpiDelay) return fail("ipi-delay:K takes a whole number K from 0 to 10000");
    if (spec.ipi_delay) return fail("ipi-delay is given twice");
    spec.ipi_delay = static_cast<std::uint32_t>(*k);
    return true;
  }
  for (const auto& [prefix, field] : {std::pair{std::string_view("spec-fill:"), &spec.spec_fill},
                                      std::pair{std::string_view("evict:"), &spec.evict}}) {
    if (item.rfind(prefix, 0) != 0) continue;
    const std::string_view name = prefix.substr(0, prefix.size() - 1);
    const std::optional<double> p = parse_probability(item.substr(prefix.size()));
    if (!p) return fail(fmt::format("{}:P takes a probability P from 0 to 1, such as 0.25", name));
    if (*field) return fail(fmt::format("{} is given twice", name));
    *field = *p;
    return true;
  }
  return fail(fmt::format("unknown injection (expected {})", kKinds));
}

}  // namespace

std::string InjectionSpec::text() const {
  std::string out;
  const auto add = [&](const std::string& item) { out += (out.empty() ? "" : ",") + item; };
  for (const std::uint64_t n : alloc_fail) add(fmt::format("alloc-fail@{}", n));
  if (ipi_delay) add(fmt::format("ipi-delay:{}", *ipi_delay));
  if (spec_fill) add(fmt::format("spec-fill:{}", *spec_fill));
  if (evict) add(fmt::format("evict:{}", *evict));
  return out;
}

bool add_injection(std::string_view argument, InjectionSpec& spec, std::string& error) {
  if (argument.empty()) {
    error = fmt::format("--inject '': expected {}", kKinds);
    return false;
  }
  InjectionSpec updated = spec;  // nothing changes on error
  std::size_t start = 0;
  for (;;) {
    const std::size_t comma = argument.find(',', start);
    const std::string_view item = argument.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    if (!add_one(item, argument, updated, error)) return false;
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  spec = std::move(updated);
  return true;
}

// --- FaultInjector -----------------------------------------------------------

FaultInjector::FaultInjector(Machine& machine, const InjectionSpec& spec, std::uint64_t seed, std::uint32_t cpus)
    : machine_(machine), spec_(spec), ipi_delay_(spec.ipi_delay.value_or(0)),
      boundary_work_(spec.spec_fill.value_or(0) > 0 || spec.evict.value_or(0) > 0), cpus_(cpus) {
  for (std::uint32_t c = 0; c < cpus; ++c) {
    // Distinct streams per CPU and per seed; unrelated to the scheduler's.
    cpus_[c].random = (seed ^ 0x243F6A8885A308D3ull) * 0x9E3779B97F4A7C15ull + (std::uint64_t{c} + 1) * 0xD1B54A32D192ED03ull;
  }
}

mm::FrameFailHook FaultInjector::fail_hook() { return mm::FrameFailHook{&FaultInjector::should_fail, this}; }

bool FaultInjector::should_fail(void* context, mm::FrameCount count, mm::FrameOwner owner) {
  auto* self = static_cast<FaultInjector*>(context);
  if (!self->counting_.load(std::memory_order_relaxed)) return false;
  const std::uint64_t n = self->allocations_.fetch_add(1, std::memory_order_relaxed) + 1;
  if (!std::binary_search(self->spec_.alloc_fail.begin(), self->spec_.alloc_fail.end(), n)) return false;
  self->failures_.fetch_add(1, std::memory_order_relaxed);
  self->machine_.emit(EventKind::Inject, n, count, static_cast<std::uint64_t>(owner), 0, "alloc-fail");
  return true;
}

bool FaultInjector::hold_interrupt_slow(EmuCpu& cpu) {
  PerCpu& state = cpus_[cpu.id];
  if (!state.delay_armed) {
    state.delay_armed = true;
    state.delay_left = ipi_delay_;
    machine_.emit(EventKind::Inject, ipi_delay_, 0, 0, 0, "ipi-delay");
  }
  if (state.delay_left > 0) {
    --state.delay_left;
    return true;
  }
  state.delay_armed = false;  // taken now: the next interrupt waits again
  return false;
}

std::uint64_t FaultInjector::next(PerCpu& state) {
  std::uint64_t z = (state.random += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

bool FaultInjector::chance(PerCpu& state, double p) {
  if (p <= 0) return false;
  return static_cast<double>(next(state) >> 11) * 0x1.0p-53 < p;
}

void FaultInjector::at_access_boundary_slow(EmuCpu& cpu) {
  PerCpu& state = cpus_[cpu.id];
  if (spec_.evict && chance(state, *spec_.evict)) evict_one(cpu, state);
  if (spec_.spec_fill && chance(state, *spec_.spec_fill)) speculative_fill(cpu, state);
}

void FaultInjector::evict_one(EmuCpu& cpu, PerCpu& state) {
  const std::uint64_t random = next(state);
  const std::uint64_t valid = cpu.tlb.valid_entries();
  if (valid == 0) return;
  // Which entry evict_random takes: the (random % valid)-th valid one in
  // for_each's order (the order it counts in; fault_injection_test pins it).
  std::uint64_t pick = random % valid;
  hw::TlbEntry victim;
  hw::TlbLevel level = hw::TlbLevel::Miss;
  cpu.tlb.for_each([&](const hw::TlbEntry& e, hw::TlbLevel at) {
    if (pick-- == 0) {
      victim = e;
      level = at;
    }
  });
  if (!cpu.tlb.evict_random(random)) return;
  machine_.emit(EventKind::Inject, victim.page, level == hw::TlbLevel::L1 ? 1 : 2, victim.pcid, 0, "evict");
}

void FaultInjector::present_leaves(std::uint64_t root, std::vector<std::uint64_t>& out) const {
  const auto load = [&](std::uint64_t physical) -> std::uint64_t {
    if (physical + 8 > machine_.ram_bytes()) return 0;
    return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(machine_.ram_at(physical)))
        .load(std::memory_order_acquire);
  };
  // Depth first, levels 4 .. 1; a PS entry at level 3 or 2 is a leaf.
  const auto visit = [&](auto& self, std::uint64_t table, int level, std::uint64_t base) -> void {
    for (std::uint64_t i = 0; i < 512; ++i) {
      const std::uint64_t entry = load(table + i * 8);
      if (!(entry & hw::entry::kP)) continue;
      std::uint64_t va = base + i * hw::span_of_level(level);
      if (level == 4 && i >= 256) va |= 0xFFFF000000000000ull;  // the upper half, sign-extended
      if (level == 1 || (level < 4 && (entry & hw::entry::kPS))) {
        out.push_back(va);
      } else {
        self(self, entry & hw::entry::kAddress, level - 1, va);
      }
    }
  };
  visit(visit, root, 4, 0);
}

void FaultInjector::speculative_fill(EmuCpu& cpu, PerCpu& state) {
  const std::uint64_t root = cpu.cr.root();
  if (root == 0) return;  // no space loaded yet
  state.leaves.clear();
  present_leaves(root, state.leaves);
  if (state.leaves.empty()) return;
  const std::uint64_t va = state.leaves[next(state) % state.leaves.size()];
  machine_.emit(EventKind::Inject, va, 0, 0, 0, "spec-fill");
  // The present entry may be gone by the time the walk reads it (its loads
  // are scheduling points): then the walk faults and nothing is cached,
  // which is what a processor does.
  RamPort port{machine_};  // a speculative walk is a demand walk's
  const hw::Access access{hw::AccessKind::Read, cpu.mode == mm::AccessMode::User ? hw::Mode::User : hw::Mode::Supervisor};
  const hw::WalkResult walk = hw::walk(port, cpu.cr, va, access, cpu.psc.get());
  for (std::uint8_t i = 0; i < walk.step_count; ++i) {
    machine_.emit(EventKind::Walk, va, walk.steps[i].level, walk.steps[i].entry_address, walk.steps[i].entry);
  }
  if (walk.ok()) cpu.tlb.insert(hw::TlbEntry::from_walk(walk, cpu.cr.pcid()), hw::AccessKind::Read);
}

// --- OperationAudit ----------------------------------------------------------

namespace {

// The space a statement works on ("" for none), and a fork's child.
std::pair<std::string, std::string> spaces_of(Machine& machine, const scenario::Statement& s) {
  if (const auto* x = s.as<scenario::SpaceStmt>()) return {x->name, ""};
  if (const auto* x = s.as<scenario::MapStmt>()) return {x->space, ""};
  if (const auto* x = s.as<scenario::UnmapStmt>()) return {x->space, ""};
  if (const auto* x = s.as<scenario::ProtectStmt>()) return {x->space, ""};
  if (const auto* x = s.as<scenario::ForkStmt>()) return {x->parent, x->child};
  if (const auto* x = s.as<scenario::PinStmt>()) return {x->space, ""};
  if (const auto* x = s.as<scenario::PokeStmt>()) return {x->space, ""};
  if (s.is<scenario::ReadStmt>() || s.is<scenario::WriteStmt>() || s.is<scenario::ExecStmt>()) return {machine.current().space, ""};
  return {"", ""};
}

}  // namespace

OperationAudit::Snapshot OperationAudit::take(const std::string& name) const {
  Snapshot snap;
  snap.space = name;
  snap.frames_in_use = machine_.injector().frames_in_use();
  snap.committed = machine_.memory().stats().committed;
  EmuSpace* space = name.empty() ? nullptr : machine_.space(name);
  snap.exists = space != nullptr;
  if (space != nullptr) {
    space->for_each_region([&](const mm::Region& r) {
      snap.regions.push_back(RegionView{r.base.value(), r.size, r.prot, r.kind, r.fork, r.pins});
    });
    snap.stats = space->stats();
  }
  return snap;
}

void OperationAudit::before(const scenario::Statement& statement) {
  before_.reset();
  if (!enabled_ || statement.is<scenario::RepeatStmt>() || statement.is<scenario::BarrierStmt>() ||
      statement.is<scenario::UseStmt>() || statement.is<scenario::ModeStmt>()) {
    return;
  }
  auto [space, child] = spaces_of(machine_, statement);
  before_ = take(space);
  before_->child = std::move(child);
}

std::optional<std::string> OperationAudit::after(const scenario::Statement& statement, bool failed) {
  if (!before_ || !failed) return std::nullopt;
  const Snapshot& was = *before_;
  const Snapshot now = take(was.space);
  const std::string_view keyword = scenario::keyword_of(statement);
  const auto problem = [&](std::string_view what) {
    return fmt::format("{} failed and left something half-done: {}", keyword, what);
  };
  if (statement.is<scenario::SpaceStmt>()) {
    if (!was.exists && now.exists) return problem(fmt::format("space '{}' exists", was.space));
    return std::nullopt;
  }
  if (!was.child.empty() && machine_.space(was.child) != nullptr) {
    return problem(fmt::format("the child space '{}' exists", was.child));
  }
  if (now.committed != was.committed) {
    return problem(fmt::format("{} frames committed, {} before", now.committed, was.committed));
  }
  if (now.exists != was.exists || now.regions != was.regions) {
    return problem(fmt::format("the regions of '{}' changed ({} before, {} now)", was.space, was.regions.size(), now.regions.size()));
  }
  if (statement.is<scenario::ForkStmt>() || statement.is<scenario::PinStmt>()) return std::nullopt;  // may populate
  if (now.stats.mapped_pages != was.stats.mapped_pages || now.stats.zero_pages != was.stats.zero_pages ||
      now.stats.cow_pages != was.stats.cow_pages) {
    return problem(fmt::format("'{}' maps {} pages ({} zero, {} copy-on-write), {} ({} zero, {} copy-on-write) before", was.space,
                               now.stats.mapped_pages, now.stats.zero_pages, now.stats.cow_pages, was.stats.mapped_pages,
                               was.stats.zero_pages, was.stats.cow_pages));
  }
  const std::int64_t tables = static_cast<std::int64_t>(now.stats.table_frames) - static_cast<std::int64_t>(was.stats.table_frames);
  if (now.frames_in_use - was.frames_in_use != tables) {
    return problem(fmt::format("{} frames in use, {} before ({} more page tables)", now.frames_in_use, was.frames_in_use, tables));
  }
  return std::nullopt;
}

std::optional<std::string> audit_after_run(Machine& machine, std::uint64_t free_at_start) {
  machine.destroy_spaces();
  std::string found;
  const std::uint64_t free_now = machine.free_frames();
  if (free_now < free_at_start) found += fmt::format("{} frames leaked", free_at_start - free_now);
  const mm::FrameCount committed = machine.memory().stats().committed;
  if (committed != 0) found += fmt::format("{}{} frames still committed", found.empty() ? "" : ", ", committed);
  const std::uint64_t regions = machine.vm().live_regions();
  if (regions != 0) found += fmt::format("{}{} region objects leaked", found.empty() ? "" : ", ", regions);
  if (found.empty()) return std::nullopt;
  return found + " after every space was destroyed (--inject " + machine.injector().spec().text() + ")";
}

}  // namespace pagelab::emu
