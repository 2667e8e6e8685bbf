#include "emu/machine/emu_platform.hpp"

#include "emu/host_membarrier.hpp"

#include "emu/machine/machine.hpp"

namespace pagelab::emu {

void EmuSpinLock::lock(const mm::LockSite& site) {
  Machine* const machine = cpu_context.machine;
  if (machine == nullptr) {
    while (locked_.exchange(true, std::memory_order_acquire)) {
    }
    return;
  }
  LockChecker& checker = machine->locks();
  checker.name(*this);
  machine->point();
  std::uint32_t inversion = LockChecker::kNone;
  if (checker.check_acquire(*this, site, inversion)) machine->escape();  // it holds this lock already
  if (locked_.exchange(true, std::memory_order_acquire)) {
    // An inversion found above is reported once the lock is taken: if the
    // wait is a deadlock instead (this CPU's wait closes the cycle, or a
    // later wait of another CPU does), the deadlock is the report.
    const LockChecker::Wait outer = checker.begin_wait(*this, site);
    if (cpu_context.scheduled && checker.check_deadlock(*this)) machine->escape();
    std::uint32_t spins = 0;
    do {
      if (machine->abandoned()) machine->escape();
      if (cpu_context.scheduled) {
        // The holder is parked at a point of its own: let it run. Like the
        // kernel's lock, the wait takes interrupts if none were off before.
        machine->interruptible_wait();
        if (machine->scheduler().deadlocked()) {
          checker.report_stuck();
          machine->escape();
        }
      } else {
        // Parallel mode: the holder runs on its own thread; interrupts are
        // still taken, or a holder waiting for this CPU's acknowledgement
        // would wait forever. Now and then, a look for a cycle of waits.
        machine->take_interrupts();
        if ((++spins & 0xFFF) == 0 && checker.check_deadlock(*this)) machine->escape();
      }
    } while (locked_.exchange(true, std::memory_order_acquire));
    checker.end_wait(outer);
  }
  if (inversion != LockChecker::kNone) checker.report_inversion(*this, site, inversion);
  checker.acquired(*this, site);
  ++cpu_context.locks_held;
  // The reference model's judge: an operation on a space, or a fault in it,
  // takes effect when it takes that space's lock (not a nested child's).
  if (class_ == mm::LockClass::AddressSpace && site.nesting == mm::LockNesting::Outer && machine->history()) {
    machine->history()->space_locked(cpu_context.cpu);
  }
}

bool EmuSpinLock::try_lock() {
  Machine* const machine = cpu_context.machine;
  if (machine == nullptr) return !locked_.exchange(true, std::memory_order_acquire);
  machine->locks().name(*this);
  machine->point();
  if (locked_.exchange(true, std::memory_order_acquire)) return false;
  machine->locks().acquired(*this, mm::LockSite{});
  ++cpu_context.locks_held;
  return true;
}

// The scheduling point comes before the release: nothing the holder did can
// be overtaken between the release and its return (the oracle checks an
// operation's effect the moment it returns).
void EmuSpinLock::unlock() {
  Machine* const machine = cpu_context.machine;
  if (machine == nullptr) {
    locked_.store(false, std::memory_order_release);
    return;
  }
  machine->point();
  machine->locks().releasing(*this);
  --cpu_context.locks_held;
  locked_.store(false, std::memory_order_release);
}

std::byte* EmuPlatform::direct_map(mm::PhysAddr address) const {
  if (address.value() >= machine_.ram_bytes()) [[unlikely]] {
    MM_PANIC("direct_map beyond the machine's RAM", address.value());
  }
  return machine_.ram_at(address.value());
}

mm::u32 EmuPlatform::cpu_count() const { return machine_.cpu_count(); }

void EmuPlatform::invalidate_page(mm::VirtAddr page) {
  EmuCpu& cpu = machine_.current();
  machine_.point();
  machine_.emit(EventKind::Invlpg, page.value());
  cpu.tlb.invalidate_page(page.value(), cpu.cr.pcid());
  if (cpu.psc) cpu.psc->invlpg(cpu.cr.pcid());  // INVLPG drops every PSC entry of the PCID
}

void EmuPlatform::flush_pcid(mm::Pcid pcid) {
  EmuCpu& cpu = machine_.current();
  machine_.point();
  machine_.emit(EventKind::Invpcid, 0, 1, pcid.value);
  cpu.tlb.invpcid(hw::InvpcidType::SingleContext, pcid.value);
  if (cpu.psc) cpu.psc->invpcid(hw::InvpcidType::SingleContext, pcid.value);
}

void EmuPlatform::flush_all() {
  EmuCpu& cpu = machine_.current();
  machine_.point();
  machine_.emit(EventKind::FlushAll);
  cpu.tlb.flush_all();
  if (cpu.psc) cpu.psc->invalidate_all();
}

void EmuPlatform::load_address_space(mm::PhysAddr root, mm::Pcid pcid, mm::CrFlush flush) {
  EmuCpu& cpu = machine_.current();
  machine_.point();
  const bool no_flush = flush == mm::CrFlush::No && cpu.cr.pcide();
  const mm::u64 source = root.value() | (cpu.cr.pcide() ? pcid.value : 0) | (no_flush ? hw::cr3::kNoFlush : 0);
  machine_.emit(EventKind::Cr3Load, root.value(), cpu.cr.pcide() ? pcid.value : 0, no_flush ? 1 : 0);
  cpu.tlb.mov_to_cr3(source, cpu.cr.pcide());
  if (cpu.psc) cpu.psc->mov_to_cr3(source, cpu.cr.pcide());
  cpu.cr.cr3 = hw::cr3_value_of_mov(source);
}

mm::u64 EmuPlatform::pte_load(const mm::u64* entry) {
  return std::atomic_ref<const mm::u64>(*entry).load(std::memory_order_acquire);
}

void EmuPlatform::pte_store(mm::u64* entry, mm::u64 value) {
  machine_.point();
  std::atomic_ref<mm::u64>(*entry).store(value, std::memory_order_release);
}

bool EmuPlatform::pte_compare_exchange(mm::u64* entry, mm::u64& expected, mm::u64 desired) {
  machine_.point();
  return std::atomic_ref<mm::u64>(*entry).compare_exchange_strong(expected, desired, std::memory_order_acq_rel);
}

void EmuPlatform::send_ipi(mm::CpuSet targets) {
  machine_.point();
  machine_.emit(EventKind::IpiSend, targets.bits());
  targets.for_each([&](mm::CpuId cpu) { machine_.cpu(cpu).ipi_pending.store(true, std::memory_order_release); });
}

// The core's wait loops (a shootdown's acknowledgements) come through here:
// a CPU leaves an abandoned run from them too, and one that the scheduler
// finds waiting with every other CPU for long says who waits for what.
void EmuPlatform::relax() {
  if (machine_.abandoned()) machine_.escape();
  machine_.interruptible_wait();
  if (cpu_context.scheduled && machine_.scheduler().deadlocked()) {
    machine_.locks().report_stuck();
    machine_.escape();
  }
}

void EmuPlatform::enter_cpu_section(mm::LockClass lock_class, const mm::LockSite& site) {
  const mm::u32 cpu = cpu_context.cpu;
  std::unique_ptr<EmuSpinLock>& section = sections_[std::size_t{cpu} * mm::kLockClassCount + static_cast<std::size_t>(lock_class)];
  if (!section) section = std::make_unique<EmuSpinLock>(lock_class);
  section->lock(site);
  open_[cpu] = section.get();
}

void EmuPlatform::leave_cpu_section() {
  EmuSpinLock* const section = open_[cpu_context.cpu];
  open_[cpu_context.cpu] = nullptr;
  section->unlock();
}

void EmuPlatform::synchronize_cpus() { host_membarrier(); }

void EmuPlatform::log(mm::LogLevel, const char* text) { machine_.emit(EventKind::Note, 0, 0, 0, 0, text); }

}  // namespace pagelab::emu
