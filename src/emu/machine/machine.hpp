// Machine: the emulated x86-64 computer. RAM (Boost.Interprocess), the
// physical memory manager and the VM system of the core running on it
// through EmuPlatform, the named address spaces of a scenario, and one
// simulated CPU per host thread: control registers, a TLB of the chosen
// geometry, optional paging-structure caches, and the page walker of
// emu/hw/page_walk.hpp reading the page tables out of RAM.
//
// An access (access()) is what one instruction's memory operand does: a TLB
// lookup, on a miss a page walk (whose loads and A/D updates are scheduling
// points), on a fault the #PF delivered to the core's fault handler
// (AddressSpace::handle_fault) and the access retried, and finally the 8-byte
// load or store. Every step is a trace event.
#pragma once

#include <atomic>
#include <csetjmp>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "emu/hw/page_walk.hpp"
#include "emu/hw/tlb.hpp"
#include "emu/machine/device_window.hpp"
#include "emu/machine/emu_platform.hpp"
#include "emu/machine/fault_injection.hpp"
#include "emu/machine/lock_checker.hpp"
#include "emu/machine/oracle.hpp"
#include "emu/model/history.hpp"
#include "emu/ram/ram.hpp"
#include "emu/sched/scheduler.hpp"
#include "emu/trace/trace.hpp"
#include "mm/phys/bitmap_allocator.hpp"
#include "mm/phys/buddy_allocator.hpp"
#include "mm/phys/free_stack_allocator.hpp"
#include "mm/phys/physical_memory.hpp"
#include "mm/vm/address_space.hpp"

namespace pagelab::emu {

enum class AllocatorKind : std::uint8_t { Buddy, Stack, Bitmap };

struct MachineConfig {
  std::uint32_t cpus = 1;
  std::uint64_t ram_bytes = std::uint64_t{64} << 20;
  std::string tlb_preset = "skylake";
  bool pcid = false;
  bool psc = false;
  AllocatorKind allocator = AllocatorKind::Buddy;
  std::uint32_t flush_threshold = 32;
  mm::ShootdownPolicy shootdown = mm::ShootdownPolicy::Batched;
  RamSpec ram;
  Scheduler::Options schedule;
  InjectionSpec inject;  // --inject (fault_injection.hpp), seeded with schedule.seed
};

using EmuSpace = mm::AddressSpace<EmuPlatform>;
using EmuMemory = mm::PhysicalMemory<EmuPlatform>;
using EmuVm = mm::VmSystem<EmuPlatform>;

struct EmuCpu {
  std::uint32_t id = 0;
  hw::ControlRegisters cr;
  hw::Tlb tlb;
  std::unique_ptr<hw::PagingStructureCache> psc;
  mm::AccessMode mode = mm::AccessMode::User;
  std::string space;          // the address space whose CR3 it runs, "" before any `use`
  std::uint64_t faults = 0;   // #PF taken (resolved or not)
  // The shootdown interrupt is raised (EmuPlatform::send_ipi) and not yet
  // taken; it is taken at the next access boundary or interruptible wait.
  std::atomic<bool> ipi_pending{false};

  explicit EmuCpu(const hw::TlbGeometry& geometry) : tlb(geometry) {}
};

struct AccessOutcome {
  enum class Kind : std::uint8_t { Ok, Segv, NoSpace } kind = Kind::Ok;
  std::uint64_t value = 0;  // for a read
};

class Machine {
 public:
  // What a failed create() could not do: build the machine the scenario
  // describes (an unknown TLB preset, too little RAM), or get the host's
  // memory for its RAM (a `--ram file:PATH` that cannot be made).
  enum class Failure : std::uint8_t { Machine, HostRam };
  static std::unique_ptr<Machine> create(const MachineConfig& config, Trace& trace, std::string& error,
                                         Failure* failure = nullptr);
  ~Machine();
  Machine(const Machine&) = delete;
  Machine& operator=(const Machine&) = delete;

  // Address spaces by name.
  mm::Status create_space(const std::string& name);
  mm::Status fork_space(const std::string& parent, const std::string& child);
  EmuSpace* space(const std::string& name);
  // Destroys every space (for the leak check at the end).
  void destroy_spaces();

  // On the calling thread's CPU: load a space's page tables (a CR3 write),
  // choose user or kernel accesses, and make one 8-byte access.
  mm::Status use_space(const std::string& name);
  void set_mode(mm::AccessMode mode) { current().mode = mode; }
  AccessOutcome access(mm::VirtAddr address, hw::AccessKind kind, std::uint64_t value = 0);

  // The calling CPU takes part in shootdowns from now on / no more (its
  // program starts / ended).
  void cpu_online();
  void cpu_offline();
  // Takes a pending shootdown interrupt on the calling CPU, if interrupts
  // are on (it holds no spinlock).
  void take_interrupts();
  // A wait in which interrupts are taken (a barrier, a spinlock wait from
  // a context that held no other lock, the core's relax()).
  void interruptible_wait();
  // The oracle (deterministic runs only; null otherwise).
  Oracle* oracle() { return oracle_.get(); }
  // The history the reference model's judge replays (deterministic runs
  // that asked for it; null otherwise).
  model::History* history() { return history_; }
  void set_history(model::History* history) { history_ = history; }
  // The lock checker (every run).
  LockChecker& locks() { return *locks_; }
  const LockChecker& locks() const { return *locks_; }
  // The first violation the oracle or the lock checker found (the earlier
  // step's, when both did).
  std::optional<Violation> violation() const;

  // Abandoning a run (a deadlock: some CPU would wait for ever). After
  // abandon(), every CPU that waits for a lock or in the core's relax()
  // escapes: it leaves through the innermost run_guarded of its own, skipping
  // whatever the core was in the middle of (the locks it held stay held). The
  // machine is then only good for its trace and its report: its destructor
  // throws the core's objects away without tearing them down.
  void abandon() { abandoned_.store(true, std::memory_order_release); }
  bool abandoned() const { return abandoned_.load(std::memory_order_acquire); }
  // Runs f() on the calling CPU (a simulated CPU's program, the set-up, the
  // final checks). False when the CPU escaped from it.
  template <typename F>
  bool run_guarded(F&& f) {
    const std::uint32_t cpu = cpu_context.cpu;
    std::jmp_buf here;
    std::jmp_buf* const outer = escape_[cpu];
    escape_[cpu] = &here;
    // setjmp returns again, with 1, when escape() jumps back here: `cpu` and
    // `outer` are not changed in between, so they survive the jump.
    if (setjmp(here) != 0) {
      escape_[cpu] = outer;
      return false;
    }
    f();
    escape_[cpu] = outer;
    return true;
  }
  // Leaves for the calling CPU's run_guarded (a longjmp: frames in between
  // are dropped without their destructors, as a fiber's stack is when it is
  // thrown away). With none, panics with the lock checker's report.
  [[noreturn]] void escape();
  // Tells the oracle that an operation on `space` has returned.
  void operation_returned(const char* operation, const std::string& space);

  // For EmuPlatform and the runner.
  void point(Wait wait = Wait::Progress);
  void emit(EventKind kind, std::uint64_t a = 0, std::uint64_t b = 0, std::uint64_t c = 0, std::uint64_t d = 0,
            std::string_view text = {});
  EmuCpu& cpu(std::uint32_t id) { return *cpus_[id]; }
  EmuCpu& current() { return *cpus_[cpu_context.cpu]; }
  std::uint32_t cpu_count() const { return static_cast<std::uint32_t>(cpus_.size()); }
  std::byte* ram_at(std::uint64_t physical) const;
  std::uint64_t ram_bytes() const { return ram_->bytes(); }
  Scheduler& scheduler() { return *scheduler_; }
  Trace& trace() { return trace_; }
  EmuMemory& memory() { return *memory_; }
  EmuVm& vm() { return *vm_; }
  FaultInjector& injector() { return *injector_; }
  const MachineConfig& config() const { return config_; }
  std::uint64_t free_frames();  // caches drained

 private:
  Machine(const MachineConfig& config, Trace& trace);

  struct Space {
    std::unique_ptr<EmuSpace> space;
  };

  const MachineConfig config_;
  Trace& trace_;
  std::unique_ptr<Ram> ram_;
  EmuPlatform platform_;
  std::vector<mm::Frame> frame_records_;
  std::unique_ptr<mm::FrameTable> table_;
  std::vector<std::uint64_t> bitmap_words_;
  std::unique_ptr<mm::BuddyAllocator> buddy_;
  std::unique_ptr<mm::BitmapAllocator> bitmap_;
  std::unique_ptr<mm::FreeStackAllocator> stack_;
  mm::FrameAllocator* allocator_ = nullptr;
  std::unique_ptr<EmuMemory> memory_;
  std::unique_ptr<EmuVm> vm_;
  std::unique_ptr<FaultInjector> injector_;  // always there: it counts allocations even with nothing to inject
  std::vector<std::unique_ptr<EmuCpu>> cpus_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<Oracle> oracle_;
  model::History* history_ = nullptr;
  std::unique_ptr<LockChecker> locks_;
  std::atomic<bool> abandoned_{false};
  std::jmp_buf* escape_[mm::kMaxCpus] = {};  // each CPU's innermost run_guarded
  std::mutex spaces_mutex_;  // CPUs fork and switch spaces concurrently in parallel mode
  std::map<std::string, Space> spaces_;
  std::atomic<std::uint64_t> step_{0};
};

}  // namespace pagelab::emu
