#include "emu/machine/lock_checker.hpp"

#include <fmt/format.h>

#include <string_view>

#include "emu/machine/emu_platform.hpp"
#include "emu/machine/machine.hpp"
#include "mm/base/panic.hpp"

namespace pagelab::emu {

namespace {

constexpr std::uint64_t bit(std::uint32_t node) { return std::uint64_t{1} << node; }

// A source file as the report names it: from the repository's src/ or test/
// on ("src/mm/vm/address_space_map.hpp"), whatever the checkout's path.
std::string_view short_file(const char* file) {
  const std::string_view path(file);
  for (const std::string_view top : {"/src/", "/test/"}) {
    const std::size_t at = path.rfind(top);
    if (at != std::string_view::npos) return path.substr(at + 1);
  }
  return path;
}

std::string site_text(const mm::LockSite& site) {
  return site.file == nullptr ? std::string("an unknown place") : fmt::format("{}:{}", short_file(site.file), site.line);
}

}  // namespace

std::string lock_node_name(std::uint32_t node) {
  static constexpr const char* kNesting[] = {"", " (inner)", " (inner 2)", " (inner 3)"};
  static_assert(std::size(kNesting) == mm::kLockNestingLevels);
  return fmt::format("{}{}", mm::lock_class_name(node_class(node)), kNesting[static_cast<std::uint32_t>(node_nesting(node))]);
}

LockChecker::LockChecker(Machine& machine, std::uint32_t cpus)
    : machine_(machine), cpus_(cpus), deterministic_(machine.config().schedule.deterministic),
      per_cpu_(new CpuLocks[cpus]) {}

LockChecker::~LockChecker() = default;

LockChecker::CpuLocks& LockChecker::mine() { return per_cpu_[cpu_context.cpu]; }

void LockChecker::name(EmuSpinLock& lock) {
  if (lock.serial_.load(std::memory_order_relaxed) != 0) [[likely]] {
    return;
  }
  const std::uint32_t serial = serials_[static_cast<std::uint32_t>(lock.class_)].fetch_add(1, std::memory_order_relaxed) + 1;
  std::uint32_t none = 0;
  lock.serial_.compare_exchange_strong(none, serial, std::memory_order_relaxed);
}

LockChecker::Held LockChecker::entry_for(const EmuSpinLock& lock, const mm::LockSite& site) const {
  return Held{&lock,          lock_node(lock.class_, site.nesting), lock.serial(), site, machine_.scheduler().steps(),
              !cpu_context.scheduled};
}

namespace {

// "zone lock #1": a lock by its class and its number in the run.
std::string lock_name(mm::LockClass lock_class, std::uint32_t serial) {
  return fmt::format("{} lock #{}", mm::lock_class_name(lock_class), serial);
}

// "address-space lock #2", "address-space lock #3 (inner)": as taken, with its nesting.
std::string held_name(std::uint32_t node, std::uint32_t serial) {
  const std::string name = lock_node_name(node);
  const std::size_t paren = name.find(" (");
  if (paren == std::string::npos) return fmt::format("{} lock #{}", name, serial);
  return fmt::format("{} lock #{}{}", name.substr(0, paren), serial, name.substr(paren));
}

}  // namespace

bool LockChecker::check_acquire(const EmuSpinLock& lock, const mm::LockSite& site, std::uint32_t& inversion) {
  CpuLocks& me = mine();
  const std::uint32_t node = lock_node(lock.class_, site.nesting);
  inversion = kNone;
  for (std::uint32_t i = 0; i < me.depth; ++i) {
    const Held& held = me.held[i];
    if (held.lock == &lock) [[unlikely]] {
      report("deadlock",
             fmt::format("cpu {} takes {} at {} while it holds it already (taken at {}, {}): a spinlock is not "
                         "recursive, so the CPU would wait for itself",
                         cpu_context.cpu, held_name(node, lock.serial()), site_text(site), site_text(held.site),
                         held.setup ? "in the set-up" : fmt::format("step {}", held.step)),
             /*abandons=*/true);
      return true;
    }
  }
  for (std::uint32_t i = 0; i < me.depth; ++i) {
    const Held& held = me.held[i];
    if (held.node == node) [[unlikely]] {
      if (inversion == kNone) inversion = i;  // two of one class, unannotated
      continue;
    }
    if ((after_[held.node].load(std::memory_order_acquire) & bit(node)) != 0) [[likely]] {
      continue;
    }
    // An order not seen before in this run: does it close a cycle?
    std::lock_guard<std::mutex> guard(mutex_);
    if ((after_[held.node].load(std::memory_order_relaxed) & bit(node)) != 0) continue;
    const bool cycle = reaches(node, held.node);
    if (sighting_count_ < kMaxSightings) {
      sightings_[sighting_count_++] = Sighting{held.node, node, cpu_context.cpu, held, entry_for(lock, site)};
    }
    after_[held.node].fetch_or(bit(node), std::memory_order_release);
    if (cycle && inversion == kNone) inversion = i;
  }
  return false;
}

bool LockChecker::reaches(std::uint32_t from, std::uint32_t to) const {
  std::uint64_t seen = bit(from);
  std::uint64_t frontier = seen;
  while (frontier != 0) {
    const std::uint32_t node = static_cast<std::uint32_t>(__builtin_ctzll(frontier));
    frontier &= frontier - 1;
    const std::uint64_t next = after_[node].load(std::memory_order_acquire) & ~seen;
    seen |= next;
    frontier |= next;
  }
  return (seen & bit(to)) != 0;
}

const LockChecker::Sighting* LockChecker::sighting(std::uint32_t from, std::uint32_t to) const {
  for (std::uint32_t i = 0; i < sighting_count_; ++i) {
    if (sightings_[i].from == from && sightings_[i].to == to) return &sightings_[i];
  }
  return nullptr;
}

std::string LockChecker::describe_sighting(const Sighting& s) const {
  return fmt::format("cpu {} took {} at {} while holding {} (taken at {}), {}", s.cpu, held_name(s.to, s.taken.serial),
                     site_text(s.taken.site), held_name(s.from, s.held.serial), site_text(s.held.site),
                     s.taken.setup ? "in the set-up" : fmt::format("at step {}", s.taken.step));
}

void LockChecker::report_inversion(const EmuSpinLock& lock, const mm::LockSite& site, std::uint32_t held_index) {
  const CpuLocks& me = mine();
  const Held& held = me.held[held_index];
  const std::uint32_t node = lock_node(lock.class_, site.nesting);
  const std::string taking = fmt::format("cpu {} takes {} at {} while holding {} (taken at {}, {})", cpu_context.cpu,
                                         held_name(node, lock.serial()), site_text(site), held_name(held.node, held.serial),
                                         site_text(held.site), held.setup ? "in the set-up" : fmt::format("step {}", held.step));
  if (held.node == node) {
    report("lock-order",
           taking + ": two locks of one class held at once need a LockNesting annotation on the inner acquisition "
                    "(mm/base/lock_class.hpp) to say which comes first",
           /*abandons=*/false);
    return;
  }
  // The path node -> ... -> held.node the graph already had, edge by edge.
  std::string seen;
  {
    std::lock_guard<std::mutex> guard(mutex_);
    std::uint32_t parent[kLockNodes];
    std::uint64_t visited = bit(node);
    std::uint64_t frontier = visited;
    while (frontier != 0 && (visited & bit(held.node)) == 0) {
      const std::uint32_t at = static_cast<std::uint32_t>(__builtin_ctzll(frontier));
      frontier &= frontier - 1;
      std::uint64_t next = after_[at].load(std::memory_order_acquire) & ~visited;
      visited |= next;
      frontier |= next;
      for (; next != 0; next &= next - 1) parent[__builtin_ctzll(next)] = at;
    }
    std::uint32_t path[kLockNodes];
    std::uint32_t length = 0;
    if ((visited & bit(held.node)) != 0) {
      for (std::uint32_t at = held.node; at != node && length < kLockNodes; at = parent[at]) path[length++] = at;
    }
    for (std::uint32_t k = length; k > 0; --k) {
      const std::uint32_t to = path[k - 1];
      const std::uint32_t from = k == length ? node : path[k];
      const Sighting* s = sighting(from, to);
      if (!seen.empty()) seen += "; and ";
      seen += s != nullptr ? describe_sighting(*s)
                           : fmt::format("{} was taken while holding {} (where: not kept)", lock_node_name(to), lock_node_name(from));
    }
  }
  report("lock-order", fmt::format("{}, but the opposite order was seen first: {}", taking, seen), /*abandons=*/false);
}

LockChecker::Wait LockChecker::begin_wait(const EmuSpinLock& lock, const mm::LockSite& site) {
  CpuLocks& me = mine();
  const Wait outer{me.waiting_for.load(std::memory_order_relaxed), me.waiting_site};
  me.waiting_site = site;
  me.waiting_for.store(&lock, std::memory_order_release);
  me.wait_epoch.fetch_add(1, std::memory_order_acq_rel);
  return outer;
}

void LockChecker::end_wait(const Wait& outer) {
  CpuLocks& me = mine();
  me.waiting_site = outer.site;
  me.waiting_for.store(outer.lock, std::memory_order_release);
  me.wait_epoch.fetch_add(1, std::memory_order_acq_rel);
  me.suspected_cycle = 0;
}

std::uint32_t LockChecker::wait_cycle(const EmuSpinLock& lock, WaitLink* chain) const {
  const std::uint32_t self = cpu_context.cpu;
  const EmuSpinLock* waited = &lock;
  std::uint32_t cpu = self;
  for (std::uint32_t n = 0; n < cpus_;) {
    const std::uint32_t holder = waited->owner();
    if (holder >= cpus_) return 0;  // free (EmuSpinLock::kNoOwner) by now
    chain[n++] = WaitLink{cpu, waited, holder};
    if (holder == self) return n;
    waited = per_cpu_[holder].waiting_for.load(std::memory_order_acquire);
    if (waited == nullptr) return 0;
    cpu = holder;
  }
  return 0;
}

std::string LockChecker::describe_holder(const EmuSpinLock& lock) const {
  const std::uint32_t holder = lock.owner();
  if (holder >= cpus_) return "free";
  if (!deterministic_) return fmt::format("held by cpu {}", holder);
  // Deterministic runs: every other CPU is parked, its stack can be read.
  const CpuLocks& theirs = per_cpu_[holder];
  for (std::uint32_t i = 0; i < theirs.depth; ++i) {
    const Held& h = theirs.held[i];
    if (h.lock == &lock) {
      return fmt::format("held by cpu {} (taken at {}, {})", holder, site_text(h.site),
                         h.setup ? "in the set-up" : fmt::format("step {}", h.step));
    }
  }
  return fmt::format("held by cpu {}", holder);
}

bool LockChecker::check_deadlock(const EmuSpinLock& lock) {
  WaitLink chain[mm::kMaxCpus];
  const std::uint32_t length = wait_cycle(lock, chain);
  CpuLocks& me = mine();
  if (length == 0) {
    me.suspected_cycle = 0;
    return false;
  }
  if (!deterministic_) {
    // Parallel: the same cycle, with no CPU of it having started or stopped
    // a wait, at two looks in a row.
    std::uint64_t signature = 0x9E3779B97F4A7C15ull;
    for (std::uint32_t i = 0; i < length; ++i) {
      signature = (signature ^ chain[i].cpu) * 0x100000001B3ull;
      signature = (signature ^ per_cpu_[chain[i].cpu].wait_epoch.load(std::memory_order_acquire)) * 0x100000001B3ull;
      signature = (signature ^ reinterpret_cast<std::uintptr_t>(chain[i].lock)) * 0x100000001B3ull;
    }
    signature |= 1;
    if (me.suspected_cycle != signature) {
      me.suspected_cycle = signature;
      return false;
    }
  }
  std::string message;
  for (std::uint32_t i = 0; i < length; ++i) {
    const WaitLink& link = chain[i];
    if (i > 0) message += ", and ";
    message += fmt::format("cpu {} waits for {}", link.cpu, lock_name(link.lock->class_, link.lock->serial()));
    if (deterministic_ && per_cpu_[link.cpu].waiting_site.file != nullptr) {
      message += " at " + site_text(per_cpu_[link.cpu].waiting_site);
    }
    message += ", " + describe_holder(*link.lock);
  }
  report("deadlock", message, /*abandons=*/true);
  return true;
}

void LockChecker::report_stuck() {
  std::string message = "every CPU has waited for a long time and none can go on: ";
  bool first = true;
  for (std::uint32_t cpu = 0; cpu < cpus_; ++cpu) {
    if (deterministic_ && machine_.scheduler().exited(cpu)) continue;
    if (!first) message += "; ";
    first = false;
    const EmuSpinLock* waited = per_cpu_[cpu].waiting_for.load(std::memory_order_acquire);
    if (waited == nullptr) {
      message += fmt::format("cpu {} for something other than a lock (a shootdown's acknowledgement, a barrier)", cpu);
    } else {
      message += fmt::format("cpu {} for {}, {}", cpu, lock_name(waited->class_, waited->serial()), describe_holder(*waited));
    }
  }
  report("deadlock", message, /*abandons=*/true);
}

void LockChecker::acquired(EmuSpinLock& lock, const mm::LockSite& site) {
  CpuLocks& me = mine();
  if (me.depth == kMaxHeld) [[unlikely]] {
    MM_PANIC("lock checker: a CPU holds more locks at once than LockChecker::kMaxHeld", me.depth);
  }
  me.held[me.depth++] = entry_for(lock, site);
  lock.owner_.store(cpu_context.cpu, std::memory_order_release);
}

void LockChecker::releasing(EmuSpinLock& lock) {
  CpuLocks& me = mine();
  std::uint32_t at = me.depth;
  while (at > 0 && me.held[at - 1].lock != &lock) --at;
  if (at == 0) [[unlikely]] {
    report("lock-release",
           fmt::format("cpu {} releases {}, which it does not hold ({})", cpu_context.cpu,
                       lock_name(lock.class_, lock.serial()), describe_holder(lock)),
           /*abandons=*/false);
    return;
  }
  if (at != me.depth) [[unlikely]] {
    const Held& released = me.held[at - 1];
    const Held& inner = me.held[me.depth - 1];
    report("lock-release",
           fmt::format("cpu {} releases {} (taken at {}) while it still holds {} (taken at {}), taken after it: locks "
                       "are released in the reverse order (the kernel's SpinLock restores, on release, the interrupt "
                       "flag saved when that lock was taken, so the inner one would be held with interrupts on)",
                       cpu_context.cpu, held_name(released.node, released.serial), site_text(released.site),
                       held_name(inner.node, inner.serial), site_text(inner.site)),
           /*abandons=*/false);
  }
  for (std::uint32_t i = at; i < me.depth; ++i) me.held[i - 1] = me.held[i];
  --me.depth;
  lock.owner_.store(EmuSpinLock::kNoOwner, std::memory_order_release);
}

void LockChecker::report(const char* invariant, std::string message, bool abandons) {
  {
    std::lock_guard<std::mutex> guard(report_mutex_);
    if (!violation_) {
      violation_ = Violation{invariant, std::move(message), cpu_context.cpu, machine_.scheduler().steps(),
                             Violation::Source::LockChecker};
      reported_.store(true, std::memory_order_release);
    }
  }
  if (abandons) machine_.abandon();
  machine_.scheduler().stop();
}

std::optional<Violation> LockChecker::violation() const {
  std::lock_guard<std::mutex> guard(report_mutex_);
  return violation_;
}

LockOrders LockChecker::orders() const {
  LockOrders orders;
  for (std::uint32_t a = 0; a < kLockNodes; ++a) orders.after[a] = after_[a].load(std::memory_order_acquire);
  return orders;
}

}  // namespace pagelab::emu
