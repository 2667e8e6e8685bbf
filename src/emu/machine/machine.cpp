#include "emu/machine/machine.hpp"

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>

#include "emu/hw/tlb_geometry.hpp"
#include "emu/machine/ram_port.hpp"
#include "mm/phys/memory_map.hpp"

namespace pagelab::emu {

namespace {

mm::Access core_access(hw::AccessKind kind) {
  return kind == hw::AccessKind::Write ? mm::Access::Write : kind == hw::AccessKind::Fetch ? mm::Access::Execute
                                                                                          : mm::Access::Read;
}

// Frees an object's storage without running its destructor. For the core's
// objects of an abandoned run: they are in the middle of an operation, with
// locks held, and their destructors would assert that they were torn down;
// they own nothing but their own storage (the core has no heap), so letting
// their lifetime end this way leaks nothing.
template <typename T>
void discard(std::unique_ptr<T>& object) {
  T* const raw = object.release();
  if (raw == nullptr) return;
  if constexpr (alignof(T) > __STDCPP_DEFAULT_NEW_ALIGNMENT__) {
    ::operator delete(static_cast<void*>(raw), std::align_val_t{alignof(T)});
  } else {
    ::operator delete(static_cast<void*>(raw));
  }
}

}  // namespace

Machine::Machine(const MachineConfig& config, Trace& trace) : config_(config), trace_(&trace), platform_(*this) {
  install_core_panic_hook();
}

Machine::~Machine() { end_run(); }

std::optional<hw::TlbGeometry> Machine::check(const MachineConfig& config, std::string& error) {
  hw::NamedTlbGeometry named = hw::tlb_geometry_named(config.tlb_preset);
  if (!named.ok()) {
    error = named.error;
    return std::nullopt;
  }
  if (config.cpus == 0 || config.cpus > mm::kMaxCpus) {
    error = "a machine has 1 to 64 CPUs";
    return std::nullopt;
  }
  return std::move(named.geometry);
}

std::optional<Violation> Machine::violation() const {
  std::optional<Violation> oracle = oracle_ ? oracle_->violation() : std::nullopt;
  if (!locks_ || !locks_->reported()) return oracle;
  std::optional<Violation> lock = locks_->violation();
  if (oracle && oracle->step <= lock->step) return oracle;
  return lock;
}

void Machine::core_panicked(std::string message) {
  emit(EventKind::Note, 0, 0, 0, 0, "panic");
  // The run's failure reporter: the first report of a run wins, the
  // scheduler stops, and the run is abandoned as for a deadlock.
  locks_->report("panic", std::move(message), /*abandons=*/true);
  escape();
}

void Machine::escape() {
  if (std::jmp_buf* const target = escape_[cpu_context.cpu]) std::longjmp(*target, 1);
  const std::optional<Violation> v = violation();
  std::fprintf(stderr, "pagelab: %s\n", v ? v->headline().c_str() : "a run was abandoned");
  MM_PANIC("a CPU must leave an abandoned run, and nothing called Machine::run_guarded to catch it", cpu_context.cpu);
}

std::unique_ptr<Machine> Machine::create(const MachineConfig& config, Trace& trace, std::string& error, Failure* failure) {
  if (failure != nullptr) *failure = Failure::Machine;
  const std::optional<hw::TlbGeometry> geometry = check(config, error);
  if (!geometry) return nullptr;
  std::unique_ptr<Machine> m(new Machine(config, trace));
  if (!m->fit(*geometry, error, failure) || !m->start_run(error)) return nullptr;
  return m;
}

bool Machine::can_restart(const MachineConfig& config) const {
  return config.ram.kind == RamSpec::Kind::Anonymous && config_.ram.kind == RamSpec::Kind::Anonymous;
}

bool Machine::restart(const MachineConfig& config, Trace& trace, std::string& error, Failure* failure) {
  if (!can_restart(config)) MM_PANIC("Machine::restart: a named RAM is each run's own", config.cpus);
  if (failure != nullptr) *failure = Failure::Machine;
  const std::optional<hw::TlbGeometry> geometry = check(config, error);
  if (!geometry) return false;
  end_run();
  clean_ram();
  step_.store(0, std::memory_order_relaxed);
  config_ = config;
  trace_ = &trace;
  return fit(*geometry, error, failure) && start_run(error);
}

bool Machine::fit(const hw::TlbGeometry& geometry, std::string& error, Failure* failure) {
  const MachineConfig& config = config_;
  if (!ram_ || ram_->bytes() != config.ram_bytes) {
    // A kept RAM of this size (clean), or a new one; this one is kept.
    std::unique_ptr<Ram> ram;
    const auto kept = std::find_if(kept_rams_.begin(), kept_rams_.end(),
                                   [&](const std::unique_ptr<Ram>& r) { return r->bytes() == config.ram_bytes; });
    if (kept != kept_rams_.end()) {
      ram = std::move(*kept);
      kept_rams_.erase(kept);
    } else {
      ram = Ram::create(config.ram, config.ram_bytes, error);
      if (!ram) {
        if (failure != nullptr) *failure = Failure::HostRam;
        return false;
      }
    }
    if (ram_) {
      if (kept_rams_.size() == kKeptRams) kept_rams_.erase(kept_rams_.begin());
      kept_rams_.push_back(std::move(ram_));  // (cleaned by restart())
    }
    ram_ = std::move(ram);
    window_pages_ = device_window_bytes(config.ram_bytes) / mm::kPageSize;
    window_start_ = window_pages_ != 0 ? device_window_start(config.ram_bytes) : ~std::uint64_t{0};
  }
  ram_->header().cpus = config.cpus;
  const std::size_t frames = config.ram_bytes / mm::kPageSize;
  if (frame_records_.size() < frames) frame_records_ = std::vector<mm::Frame>(frames);
  if (cpus_preset_ != config.tlb_preset) {
    if (!cpus_.empty()) {
      std::vector<std::unique_ptr<EmuCpu>>& aside = spare_cpus(cpus_preset_);
      for (std::unique_ptr<EmuCpu>& cpu : cpus_) aside.push_back(std::move(cpu));
      cpus_.clear();
    }
    cpus_preset_ = config.tlb_preset;
  }
  std::vector<std::unique_ptr<EmuCpu>>& spares = spare_cpus(cpus_preset_);
  while (cpus_.size() > config.cpus) {
    spares.push_back(std::move(cpus_.back()));
    cpus_.pop_back();
  }
  while (cpus_.size() < config.cpus) {
    if (spares.empty()) {
      cpus_.push_back(std::make_unique<EmuCpu>(geometry));
    } else {
      cpus_.push_back(std::move(spares.back()));
      spares.pop_back();
    }
  }
  for (std::uint32_t i = 0; i < config.cpus; ++i) {
    cpus_[i]->id = i;
    cpus_[i]->tlb.reset();  // (a new or set-aside CPU's is empty already: a quick look)
  }
  return true;
}

std::vector<std::unique_ptr<EmuCpu>>& Machine::spare_cpus(const std::string& preset) {
  auto it = std::find_if(spare_cpus_.begin(), spare_cpus_.end(), [&](const auto& kept) { return kept.first == preset; });
  if (it == spare_cpus_.end()) {
    if (spare_cpus_.size() == kKeptPresets) spare_cpus_.erase(spare_cpus_.begin());
    spare_cpus_.emplace_back(preset, std::vector<std::unique_ptr<EmuCpu>>{});
    return spare_cpus_.back().second;
  }
  std::rotate(it, it + 1, spare_cpus_.end());  // the most recently used last
  return spare_cpus_.back().second;
}

bool Machine::start_run(std::string& error) {
  const MachineConfig& config = config_;
  // The memory map of a plain PC: RAM from 0, the first MiB kept back; and
  // at the top a device window the allocator never uses, for `phys=`
  // mappings (device_window.hpp).
  mm::MemoryMap map;
  const std::uint64_t window = device_window_bytes(config.ram_bytes);
  const mm::MemoryRange ranges[] = {
      {mm::PhysAddr(0), config.ram_bytes, mm::MemoryKind::Free},
      {mm::PhysAddr(config.ram_bytes - window), window, mm::MemoryKind::Device},
  };
  if (map.ingest(mm::Span<const mm::MemoryRange>(ranges, window != 0 ? 2 : 1)) != mm::Status::Ok) {
    error = "the machine has no usable RAM above 1 MiB: give it more";
    return false;
  }
  const mm::FrameCount frames = config.ram_bytes / mm::kPageSize;
  table_.emplace(mm::Pfn(0), mm::Span<mm::Frame>(frame_records_.data(), frames));
  switch (config.allocator) {
    case AllocatorKind::Buddy:
      allocator_ = &buddy_.emplace(*table_);
      break;
    case AllocatorKind::Stack:
      allocator_ = &stack_.emplace(*table_);
      break;
    case AllocatorKind::Bitmap:
      bitmap_words_.resize(mm::BitmapAllocator::words_for(frames));
      allocator_ = &bitmap_.emplace(*table_, mm::Span<std::uint64_t>(bitmap_words_.data(), bitmap_words_.size()));
      break;
  }
  if (map.seed(*allocator_, *table_) != mm::Status::Ok) {
    error = "seeding the frame allocator failed";
    return false;
  }
  mm::PhysicalMemoryConfig pmm_config;
  pmm_config.poison_freed = true;  // no data may cross owners: a use after free reads poison
  pmm_config.observer.context = this;
  pmm_config.observer.notify = [](void* context, bool allocated, mm::PhysAddr first, mm::FrameCount count,
                                  mm::FrameOwner owner) {
    auto* machine = static_cast<Machine*>(context);
    if (machine->ending_) return;
    machine->injector().frames_changed(allocated, count);
    machine->point();
    machine->emit(allocated ? EventKind::FrameAlloc : EventKind::FrameFree, first.value(), count, 0, 0,
                  allocated ? mm::frame_owner_name(owner) : "");
    if (Oracle* oracle = machine->oracle()) {
      if (allocated) {
        oracle->frames_allocated(first.value(), count);
      } else {
        oracle->frames_freed(first.value(), count);
      }
    }
  };
  injector_ = std::make_unique<FaultInjector>(*this, config.inject, config.schedule.seed, config.cpus);
  pmm_config.fail_hook = injector_->fail_hook();
  memory_.emplace(platform_, *table_, *allocator_, pmm_config);
  if (!config.schedule.deterministic) {
    oracle_.reset();
  } else if (oracle_) {
    oracle_->reset(frames);
  } else {
    oracle_ = std::make_unique<Oracle>(*this, frames);
  }
  mm::ReferenceObserver references;
  if (oracle_) {
    references.context = this;
    references.dropping = [](void* context, const mm::TlbContext* space, mm::PhysAddr frame) {
      if (Oracle* oracle = static_cast<Machine*>(context)->judging_oracle()) oracle->reference_dropped(space, frame.value());
    };
    references.unshared = [](void* context, const mm::TlbContext* space, mm::VirtAddr page, mm::PhysAddr from, mm::PhysAddr to) {
      Machine* machine = static_cast<Machine*>(context);
      if (Oracle* oracle = machine->judging_oracle(); oracle != nullptr && from == to) oracle->frame_taken(space, from.value());
      if (model::History* history = machine->history()) history->unshared(cpu_context.cpu, page.value(), from.value(), to.value());
    };
  }
  vm_.emplace(platform_, *memory_,
              mm::TlbCoherenceConfig{.policy = config.shootdown,
                                     .flush_threshold = config.flush_threshold,
                                     .pcid = config.pcid,
                                     .observer = references});
  for (const std::unique_ptr<EmuCpu>& cpu : cpus_) {
    cpu->cr = hw::ControlRegisters::long_mode(0, (config.pcid ? hw::cr4::kPCIDE : 0) | hw::cr4::kPGE);
    if (!config.psc) {
      cpu->psc.reset();
    } else if (cpu->psc) {
      cpu->psc->reset();
    } else {
      cpu->psc = std::make_unique<hw::PagingStructureCache>();
    }
    cpu->mode = mm::AccessMode::User;
    cpu->space.clear();
    cpu->faults = 0;
    cpu->ipi_pending.store(false, std::memory_order_relaxed);
  }
  scheduler_ = std::make_unique<Scheduler>(config.cpus, config.schedule);
  locks_ = std::make_unique<LockChecker>(*this, config.cpus);  // each run's graph is its own
  abandoned_.store(false, std::memory_order_relaxed);
  for (std::jmp_buf*& target : escape_) target = nullptr;
  cpu_context = CpuContext{this, 0, false};
  if (vm_->init() != mm::Status::Ok) {
    error = "no memory for the zero frame";
    return false;
  }
  injector_->start_counting();  // alloc-fail@N counts from here
  return true;
}

void Machine::end_run() {
  // The core's code runs here as CPU 0 of this machine, outside any schedule.
  const CpuContext caller = cpu_context;
  cpu_context = CpuContext{this, 0, false};
  ending_ = true;
  if (abandoned()) {
    // No teardown: the spaces' and the VM system's locks may be held by CPUs
    // that escaped (a deadlock). The core owns nothing but its own storage
    // and the RAM's frames, which the next run's allocator takes back whole.
    for (auto& [name, space] : spaces_) discard(space.space);
    spaces_.clear();
    discard(dying_);
    std::construct_at(&vm_);  // disengaged in place: the VM system's destructor does not run
  }
  destroy_spaces();
  if (vm_) {
    vm_->shutdown();
    vm_.reset();
  }
  memory_.reset();
  allocator_ = nullptr;
  buddy_.reset();
  bitmap_.reset();
  stack_.reset();
  table_.reset();
  scheduler_.reset();
  injector_.reset();
  ending_ = false;
  // No pointer to this machine outlives it (this thread's, at least).
  cpu_context = caller.machine == this ? CpuContext{} : caller;
}

void Machine::clean_ram() {
  for (std::size_t word = 0; word < kWindowWords; ++word) {
    std::uint64_t bits = window_touched_[word].exchange(0, std::memory_order_relaxed);
    for (; bits != 0; bits &= bits - 1) {
      const std::uint64_t page = word * 64 + static_cast<std::uint64_t>(std::countr_zero(bits));
      std::memset(ram_->frames() + window_start_ + page * mm::kPageSize, 0, mm::kPageSize);
    }
  }
  ram_->forget_spaces();
}

void Machine::note_window_page(std::uint64_t physical) const {
  const std::uint64_t page = (physical - window_start_) / mm::kPageSize;
  if (page >= window_pages_) return;  // beyond the window: beyond RAM
  window_touched_[page / 64].fetch_or(std::uint64_t{1} << (page % 64), std::memory_order_relaxed);
}

void Machine::point(Wait wait) {
  if (cpu_context.scheduled) scheduler_->point(cpu_context.cpu, wait);
}

void Machine::emit(EventKind kind, std::uint64_t a, std::uint64_t b, std::uint64_t c, std::uint64_t d,
                   std::string_view text) {
  if (ending_) [[unlikely]] return;  // end_run(): the run is over
  const std::uint64_t step = step_.fetch_add(1, std::memory_order_relaxed);
  trace_->emit(Event{.step = step, .cpu = cpu_context.cpu, .kind = kind, .a = a, .b = b, .c = c, .d = d, .text = text});
}

std::uint64_t Machine::free_frames() {
  memory_->drain_all_caches();
  return memory_->stats().free;
}

mm::Status Machine::create_space(const std::string& name) {
  {
    std::lock_guard<std::mutex> guard(spaces_mutex_);
    if (spaces_.count(name)) return mm::Status::AlreadyExists;
  }
  // init() allocates page tables: scheduling points, where another CPU (a
  // fiber on this very thread, in a deterministic run) may look a space up.
  // No host lock may be held across them.
  auto space = std::make_unique<EmuSpace>(*vm_);
  MM_TRY(space->init());
  {
    std::lock_guard<std::mutex> guard(spaces_mutex_);
    if (!spaces_.count(name)) {
      ram_->record_space(name, space->root().value());
      spaces_.emplace(name, Space{std::move(space)});
      return mm::Status::Ok;
    }
  }
  space->destroy();  // another CPU created it meanwhile
  return mm::Status::AlreadyExists;
}

mm::Status Machine::fork_space(const std::string& parent, const std::string& child) {
  EmuSpace* from = space(parent);
  if (from == nullptr) return mm::Status::NotFound;
  MM_TRY(create_space(child));
  EmuSpace* to = space(child);
  const mm::Status status = from->fork(*to);
  emit(EventKind::Fork, 0, 0, static_cast<std::uint64_t>(status), 0, parent + "->" + child);
  if (status != mm::Status::Ok) {
    to->destroy();
    std::lock_guard<std::mutex> guard(spaces_mutex_);
    spaces_.erase(child);
  }
  return status;
}

EmuSpace* Machine::space(const std::string& name) {
  std::lock_guard<std::mutex> guard(spaces_mutex_);
  const auto it = spaces_.find(name);
  return it == spaces_.end() ? nullptr : it->second.space.get();
}

// Each space leaves the map before the core destroys it, so no host lock is
// held across the core's code: destroy() has scheduling points, and a core
// panic in it leaves through a longjmp (run_guarded), which would leave the
// lock held and the next run's end_run waiting on it for ever. The space
// being destroyed is kept in dying_, not in a local: the longjmp runs no
// destructor, and end_run discards what an abandoned run left there.
void Machine::destroy_spaces() {
  for (;;) {
    {
      std::lock_guard<std::mutex> guard(spaces_mutex_);
      if (spaces_.empty()) return;
      const auto first = spaces_.begin();
      dying_ = std::move(first->second.space);
      spaces_.erase(first);
    }
    dying_->destroy();
    dying_.reset();
  }
}

mm::Status Machine::use_space(const std::string& name) {
  EmuSpace* s = space(name);
  if (s == nullptr) return mm::Status::NotFound;
  take_interrupts();
  current().space = name;
  // The core picks the PCID and whether the load flushes it (TlbCoherence::switch_to).
  return s->activate();
}

void Machine::cpu_online() { vm_->coherence().cpu_online(); }

void Machine::cpu_offline() {
  take_interrupts();
  current().ipi_pending.store(false, std::memory_order_release);
  vm_->coherence().cpu_offline();
  current().space.clear();
}

void Machine::take_interrupts() {
  EmuCpu& cpu = current();
  if (cpu_context.locks_held != 0 || !cpu.ipi_pending.load(std::memory_order_acquire)) return;
  if (injector_->hold_interrupt(cpu)) return;  // --inject ipi-delay:K
  cpu.ipi_pending.store(false, std::memory_order_release);
  emit(EventKind::IpiReceive);
  vm_->coherence().handle_ipi();
}

void Machine::interruptible_wait() {
  point(Wait::Spinning);
  take_interrupts();
}

void Machine::operation_returned(const char* operation, const std::string& name) {
  if (!oracle_) return;
  EmuSpace* s = space(name);
  if (s != nullptr) oracle_->operation_returned(operation, s->root().value(), s->tlb_context());
}

AccessOutcome Machine::access(mm::VirtAddr address, hw::AccessKind kind, std::uint64_t value) {
  EmuCpu& cpu = current();
  take_interrupts();  // an access boundary
  injector_->at_access_boundary(cpu);  // --inject evict:P, spec-fill:P
  EmuSpace* space = cpu.space.empty() ? nullptr : this->space(cpu.space);
  if (space == nullptr) return AccessOutcome{AccessOutcome::Kind::NoSpace};
  const hw::Access hw_access{kind, cpu.mode == mm::AccessMode::User ? hw::Mode::User : hw::Mode::Supervisor};
  const std::uint64_t va = address.value();
  point();
  emit(EventKind::Access, va, static_cast<std::uint64_t>(kind), cpu.mode == mm::AccessMode::User ? 1 : 0, value);
  // A fault resolved by the core is retried; the core's answers converge
  // within a few rounds (map the zero frame, then a frame of one's own).
  for (int attempt = 0; attempt < 8; ++attempt) {
    const hw::Pcid pcid = cpu.cr.pcid();
    std::uint64_t physical = 0;
    bool translated = false;
    const hw::TlbLookup hit = cpu.tlb.lookup(va, pcid, kind);
    if (hit.hit() && hw::access_violation(hit.entry.rights, cpu.cr, hw_access) == hw::FaultReason::None &&
        (kind != hw::AccessKind::Write || hit.entry.dirty)) {
      emit(EventKind::TlbHit, va, hit.level == hw::TlbLevel::L1 ? 1 : 2, hit.entry.translate(va), pcid);
      if (oracle_ && cpu_context.scheduled) oracle_->tlb_hit(va, hit.entry, cpu.cr.root(), &space->tlb_context());
      physical = hit.entry.translate(va);
      translated = true;
    } else {
      // A miss, or a hit that does not allow the access (the CPU re-walks).
      emit(EventKind::TlbMiss, va, 0, 0, pcid);
      RamPort port{*this};
      const hw::WalkResult walk = hw::walk(port, cpu.cr, va, hw_access, cpu.psc.get());
      for (std::uint8_t i = 0; i < walk.step_count; ++i) {
        emit(EventKind::Walk, va, walk.steps[i].level, walk.steps[i].entry_address, walk.steps[i].entry);
      }
      if (walk.non_canonical()) {
        emit(EventKind::Segv, va, 0);
        if (history_) history_->access(cpu.id, va, static_cast<std::uint8_t>(core_access(kind)), static_cast<std::uint8_t>(cpu.mode), true, 0, 0);
        return AccessOutcome{AccessOutcome::Kind::Segv};
      }
      if (walk.ok()) {
        cpu.tlb.insert(hw::TlbEntry::from_walk(walk, pcid), kind);
        physical = walk.physical;
        translated = true;
      } else {
        // #PF: the faulting translation is dropped (SDM 4.10.4.1), and the
        // core's handler decides.
        ++cpu.faults;
        emit(EventKind::Fault, walk.cr2, walk.error_code);
        cpu.tlb.invalidate_page(va, pcid);
        if (cpu.psc) cpu.psc->invlpg(pcid);
        if (history_) history_->begin_fault(cpu.id, va, static_cast<std::uint8_t>(core_access(kind)), static_cast<std::uint8_t>(cpu.mode));
        const mm::FaultOutcome outcome = space->handle_fault(address, core_access(kind), cpu.mode);
        if (history_) history_->end_fault(cpu.id, static_cast<std::uint8_t>(outcome));
        if (!mm::resolved(outcome)) {
          emit(EventKind::Segv, va, walk.error_code, 0, 0, mm::fault_outcome_name(outcome));
          if (history_) history_->access(cpu.id, va, static_cast<std::uint8_t>(core_access(kind)), static_cast<std::uint8_t>(cpu.mode), true, 0, 0);
          return AccessOutcome{AccessOutcome::Kind::Segv};
        }
        emit(EventKind::FaultResolved, va, 0, 0, 0, mm::fault_outcome_name(outcome));
        continue;
      }
    }
    if (!translated) continue;
    const std::uint8_t judged_access = static_cast<std::uint8_t>(core_access(kind));
    const std::uint8_t judged_mode = static_cast<std::uint8_t>(cpu.mode);
    if (kind == hw::AccessKind::Fetch) {
      if (history_) history_->access(cpu.id, va, judged_access, judged_mode, false, 0, physical);
      return AccessOutcome{};
    }
    point();
    auto& word = *reinterpret_cast<std::uint64_t*>(ram_at(physical & ~std::uint64_t{7}));
    if (kind == hw::AccessKind::Write) {
      std::atomic_ref<std::uint64_t>(word).store(value, std::memory_order_relaxed);
      if (history_) history_->access(cpu.id, va, judged_access, judged_mode, false, value, physical);
      return AccessOutcome{};
    }
    const std::uint64_t read = std::atomic_ref<std::uint64_t>(word).load(std::memory_order_relaxed);
    if (history_) history_->access(cpu.id, va, judged_access, judged_mode, false, read, physical);
    return AccessOutcome{AccessOutcome::Kind::Ok, read};
  }
  emit(EventKind::Note, va, 0, 0, 0, "fault not settled after 8 rounds");
  if (history_) history_->access(cpu.id, va, static_cast<std::uint8_t>(core_access(kind)), static_cast<std::uint8_t>(cpu.mode), true, 0, 0);
  return AccessOutcome{AccessOutcome::Kind::Segv};
}

}  // namespace pagelab::emu
