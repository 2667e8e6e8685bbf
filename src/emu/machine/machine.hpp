// Machine: the emulated x86-64 computer. RAM (Boost.Interprocess), the
// physical memory manager and the VM system of the core running on it
// through EmuPlatform, the named address spaces of a scenario, and one
// simulated CPU per host thread: control registers, a TLB of the chosen
// geometry, optional paging-structure caches, and the page walker of
// emu/hw/page_walk.hpp reading the page tables out of RAM.
//
// A machine can run many times (restart(), for RunWorkspace): what is built
// for its shape (the RAM mapping, the frame records' storage, the CPUs with
// their TLB arrays, the oracle's tables) stays; what a run changes is put
// back (see restart() for how), so that a restarted machine and a new one
// behave alike in everything a run can observe.
//
// An access (access()) is what one instruction's memory operand does: a TLB
// lookup, on a miss a page walk (whose loads and A/D updates are scheduling
// points), on a fault the #PF delivered to the core's fault handler
// (AddressSpace::handle_fault) and the access retried, and finally the 8-byte
// load or store. Every step is a trace event.
#pragma once

#include <array>
#include <atomic>
#include <csetjmp>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
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

// mm::panic's hook that fails the run of a core panic (machine/core_panic.cpp).
void install_core_panic_hook();

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

// The parts of a configuration that decide what a machine's storage is
// built for (its RAM, its frame records, its CPUs' TLB arrays). A restart
// into another shape swaps those parts for ones that fit (Machine::restart);
// the rest of a configuration (PCID, paging-structure caches, the
// allocator, the shootdown policy, the schedule, the injections) is set up
// anew for every run anyway.
struct MachineShape {
  std::uint32_t cpus = 1;
  std::uint64_t ram_bytes = 0;
  std::string tlb_preset;

  static MachineShape of(const MachineConfig& config) { return {config.cpus, config.ram_bytes, config.tlb_preset}; }
  bool operator==(const MachineShape&) const = default;
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
  // A machine ready for a run of `config` that emits to `trace`.
  static std::unique_ptr<Machine> create(const MachineConfig& config, Trace& trace, std::string& error,
                                         Failure* failure = nullptr);
  ~Machine();
  Machine(const Machine&) = delete;
  Machine& operator=(const Machine&) = delete;

  // Whether restart() can take a run of `config`: both on an anonymous RAM
  // (a named RAM is for `pagelab inspect`: each run gets a machine of its own).
  bool can_restart(const MachineConfig& config) const;
  // Makes a machine that ran (or not) ready for a run of `config`, of any
  // shape, that emits to `trace`: as create() leaves a new machine, in
  // everything a run can observe. Between the calls the machine may have run
  // anything, passed or failed, and need not have been cleaned up: restart()
  // ends the last run first (end_run()).
  //
  // What stays: the RAM mapping, whose frames keep what the last run wrote
  // (the core zeroes or overwrites every frame it hands out before anyone
  // reads it), but for the device window, which the core never hands out
  // (its pages that were touched, each noted by ram_at(), are zeroed), and
  // the header's space records (cleared); the frame records' storage; the
  // CPUs, each TLB emptied as a new one is (hw::Tlb::reset()); the oracle's
  // tables (Oracle::reset()). For another shape, the RAM is exchanged for a
  // kept one of the new size (RAMs of other sizes are kept, clean, at most
  // kKeptRams) or a new one, and CPUs of another TLB preset are set aside
  // for a later run and taken back from there. Rebuilt in place: the frame
  // table, the allocator (seeded again from the memory map), the physical
  // memory manager, the VM system, the injector, the scheduler, the CPUs'
  // registers and paging-structure caches.
  //
  // False, with `error` and `failure`, where create() would fail for
  // `config` too (nothing is changed then) or a new RAM cannot be mapped
  // (the machine can then only be destroyed).
  bool restart(const MachineConfig& config, Trace& trace, std::string& error, Failure* failure = nullptr);
  // Ends the run: every space destroyed, the core's objects shut down and
  // gone, and nothing told of it (no trace event, no oracle check, no
  // injector count: the run's verdict is in). The machine can then only be
  // restarted or destroyed. restart() and the destructor call it.
  void end_run();
  // Points the machine at another trace (RunWorkspace keeps a machine
  // pointed at a trace of its own between runs, never at a finished run's).
  void set_trace(Trace& trace) { trace_ = &trace; }

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
  // Whether the calling CPU is inside a run_guarded of this machine's run.
  bool can_escape() const { return !ending_ && escape_[cpu_context.cpu] != nullptr; }
  // The core's own assertion failed on the calling CPU (core_panic.cpp, mm::panic's
  // hook, when can_escape()): the panic becomes the run's violation ("panic:
  // MESSAGE"), the run is abandoned as for a deadlock and this CPU leaves
  // through its run_guarded. So explore, fuzz and its shrinker report a
  // panic reached by some schedule like any other failure, instead of the
  // whole process aborting on it.
  [[noreturn]] void core_panicked(std::string message);
  // Tells the oracle that an operation on `space` has returned.
  void operation_returned(const char* operation, const std::string& space);

  // For EmuPlatform and the runner.
  void point(Wait wait = Wait::Progress);
  void emit(EventKind kind, std::uint64_t a = 0, std::uint64_t b = 0, std::uint64_t c = 0, std::uint64_t d = 0,
            std::string_view text = {});
  EmuCpu& cpu(std::uint32_t id) { return *cpus_[id]; }
  EmuCpu& current() { return *cpus_[cpu_context.cpu]; }
  std::uint32_t cpu_count() const { return static_cast<std::uint32_t>(cpus_.size()); }
  // The byte at a physical address. Notes a page of the device window as
  // touched (for restart(), which zeroes only those).
  std::byte* ram_at(std::uint64_t physical) const {
    if (physical >= window_start_) [[unlikely]] note_window_page(physical);
    return ram_->frames() + physical;
  }
  std::uint64_t ram_bytes() const { return ram_->bytes(); }
  Scheduler& scheduler() { return *scheduler_; }
  Trace& trace() { return *trace_; }
  EmuMemory& memory() { return *memory_; }
  EmuVm& vm() { return *vm_; }
  FaultInjector& injector() { return *injector_; }
  const MachineConfig& config() const { return config_; }
  std::uint64_t free_frames();  // caches drained

 private:
  Machine(const MachineConfig& config, Trace& trace);

  // RAMs of other sizes kept for later runs (restart()), at most this many;
  // and CPUs of other TLB presets, for at most this many presets.
  static constexpr std::size_t kKeptRams = 3;
  static constexpr std::size_t kKeptPresets = 3;

  // What create() checks of a configuration; the TLB geometry it names.
  static std::optional<hw::TlbGeometry> check(const MachineConfig& config, std::string& error);
  // The storage config_'s shape needs: the RAM (a kept one or a new one),
  // the frame records, the CPUs (set aside or taken back by TLB preset, or
  // new ones of `geometry`), each TLB empty.
  bool fit(const hw::TlbGeometry& geometry, std::string& error, Failure* failure);
  // The CPUs set aside for `preset` (made the most recently used).
  std::vector<std::unique_ptr<EmuCpu>>& spare_cpus(const std::string& preset);
  // The per-run parts, built from config_ (create and restart): the frame
  // table and its allocator, seeded; the physical memory manager; the
  // oracle; the VM system; the injector; the scheduler; the CPUs' registers.
  bool start_run(std::string& error);
  // Zeroes the device window's touched pages and the header's space records.
  void clean_ram();
  void note_window_page(std::uint64_t physical) const;
  // The oracle, unless the run is being ended (end_run(): nobody is told).
  Oracle* judging_oracle() { return ending_ ? nullptr : oracle_.get(); }

  struct Space {
    std::unique_ptr<EmuSpace> space;
  };

  MachineConfig config_;
  Trace* trace_;
  std::unique_ptr<Ram> ram_;
  std::vector<std::unique_ptr<Ram>> kept_rams_;  // clean, of other sizes, least recently used first
  // The device window's first byte, its size in pages, and its pages
  // touched since the last clean_ram() (a bit per 4 KiB page; the window is
  // at most 4 MiB).
  std::uint64_t window_start_ = ~std::uint64_t{0};
  std::uint64_t window_pages_ = 0;
  static constexpr std::size_t kWindowWords = (std::size_t{4} << 20) / 4096 / 64;
  mutable std::array<std::atomic<std::uint64_t>, kWindowWords> window_touched_{};
  EmuPlatform platform_;
  std::vector<mm::Frame> frame_records_;  // as many as the largest RAM yet needed; the table uses a prefix
  // The core's objects of one run, built in place (a run builds them all
  // again: the core has no way to put one back as it was).
  std::optional<mm::FrameTable> table_;
  std::vector<std::uint64_t> bitmap_words_;
  std::optional<mm::BuddyAllocator> buddy_;
  std::optional<mm::BitmapAllocator> bitmap_;
  std::optional<mm::FreeStackAllocator> stack_;
  mm::FrameAllocator* allocator_ = nullptr;
  std::optional<EmuMemory> memory_;
  std::optional<EmuVm> vm_;
  std::unique_ptr<FaultInjector> injector_;  // always there: it counts allocations even with nothing to inject
  std::vector<std::unique_ptr<EmuCpu>> cpus_;
  std::string cpus_preset_;  // the TLB preset cpus_ are built for
  // CPUs set aside by TLB preset (their TLBs empty), least recently used first.
  std::vector<std::pair<std::string, std::vector<std::unique_ptr<EmuCpu>>>> spare_cpus_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<Oracle> oracle_;  // deterministic runs; kept (reset) across runs
  model::History* history_ = nullptr;
  std::unique_ptr<LockChecker> locks_;
  std::atomic<bool> abandoned_{false};
  std::jmp_buf* escape_[mm::kMaxCpus] = {};  // each CPU's innermost run_guarded
  std::mutex spaces_mutex_;  // CPUs fork and switch spaces concurrently in parallel mode
  std::map<std::string, Space> spaces_;
  std::unique_ptr<EmuSpace> dying_;  // the space destroy_spaces() is destroying (kept for a panic's escape)
  std::atomic<std::uint64_t> step_{0};
  // Set while end_run() takes the run down (no CPU runs): nothing is
  // emitted, counted or judged then.
  bool ending_ = false;
};

}  // namespace pagelab::emu
