// The deterministic scheduler: exactly one simulated CPU runs at a time. At
// every scheduling point (a memory access, a page-walk load or A/D update, a page-table store
// by the core, a lock acquire or release, an IPI send or delivery, an
// invalidation, a frame allocation or free) the running CPU asks the
// scheduler who goes next; the choice comes from a seeded strategy, so a run
// is a pure function of (scenario, seed, options), and the sequence of
// choices can be recorded and replayed exactly.
//
// Strategies: `random` (uniform over the runnable CPUs) and `pct:D`
// (probabilistic concurrency testing, Burckhardt et al., ASPLOS 2010: random
// distinct priorities, the highest-priority runnable CPU runs, and at D-1
// random steps the running CPU drops below every other).
//
// A CPU that waits for another (spinning on a lock, waiting at a barrier)
// says so with point(cpu, Wait::Spinning): strategies prefer CPUs that can
// make progress, so a spinning CPU never starves the lock's holder. When
// every runnable CPU is spinning for long, the run is deadlocked.
//
// How CPUs run (run_cpus): in deterministic mode each CPU is a fiber
// (fiber.hpp) on the calling thread, and a point that picks another CPU
// switches stacks there and then, for a few nanoseconds; in parallel mode
// (deterministic = false) each CPU is a thread, every call is free and the
// threads run as the host schedules them. Callers may also make their own
// threads and call enter/point/exit from them: in deterministic mode the turn
// then passes between the threads, a spin and a futex hand-over each time
// (tests compare the two; BM_Scheduler_Step_Threads measures the cost).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

namespace pagelab::emu {

struct Strategy {
  enum class Kind : std::uint8_t { Random, Pct };
  Kind kind = Kind::Random;
  std::uint32_t depth = 3;  // PCT's d

  // "random" or "pct:D". Returns nullopt (and a message) for anything else.
  static std::optional<Strategy> parse(const std::string& text, std::string& error);
  std::string name() const;
};

enum class Wait : std::uint8_t { Progress, Spinning };

class Scheduler {
 public:
  struct Options {
    bool deterministic = true;
    std::uint64_t seed = 1;
    Strategy strategy;
    // PCT picks its change points among this many steps (an estimate of the
    // run's length; the first run's length is a good value).
    std::uint64_t pct_horizon = 10'000;
    // When set, the choices are taken from here instead of the strategy.
    std::optional<std::vector<std::uint32_t>> replay;
    // With `replay`: follow it only as a hint. A recorded choice that cannot
    // run (or past the recording's end) falls back to the strategy for that
    // step instead of ending the run: how the fuzzer's shrinker carries a
    // failing schedule over to a smaller case.
    bool replay_hint = false;
    // Consecutive steps in which every runnable CPU spins before the run is
    // declared deadlocked.
    std::uint64_t deadlock_steps = 1'000'000;
  };

  Scheduler(std::uint32_t cpus, Options options);
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;
  ~Scheduler();

  // Runs body(cpu) for every CPU and returns when all have returned; once
  // per scheduler. body calls enter(cpu) first and exit(cpu) last. Deterministic mode: each CPU
  // is a fiber on the calling thread, started in CPU order; the calling
  // thread waits (as a fiber of its own) until the last CPU has exited.
  // Parallel mode: each CPU is a thread, joined before the return.
  //
  // `carried`: a thread_local of the caller that describes the running CPU
  // (emu's cpu_context). In deterministic mode it is saved when a CPU's
  // fiber is switched out and restored when it is switched back in, so each
  // CPU sees its own value, starting from T{}, as on a thread of its own; the
  // caller's value is back in place when run_cpus returns.
  template <typename T>
  void run_cpus(const std::function<void(std::uint32_t)>& body, T& carried) {
    static_assert(std::is_trivially_copyable_v<T> && std::is_default_constructible_v<T>);
    const T initial{};
    run_cpus_carrying(body, Carried{&carried, &initial, sizeof(T)});
  }
  void run_cpus(const std::function<void(std::uint32_t)>& body) { run_cpus_carrying(body, Carried{}); }

  // Each CPU calls this once, first: it returns when the CPU may run.
  void enter(std::uint32_t cpu);
  // A scheduling point. Returns when it is `cpu`'s turn again.
  void point(std::uint32_t cpu, Wait wait = Wait::Progress);
  // The CPU's program has ended: it leaves the rotation. Under run_cpus in
  // deterministic mode the next CPU runs once body has returned.
  void exit(std::uint32_t cpu);

  // Asks the run to stop (a violation was found, a deadlock, a replay that
  // diverged). Turns still pass one CPU at a time; each CPU should check
  // stopped() at its next statement and exit().
  void stop();
  bool stopped() const { return stopped_.load(std::memory_order_acquire); }
  bool deadlocked() const { return deadlocked_.load(std::memory_order_acquire); }
  // A replay asked for a CPU that could not run, or ran out of choices.
  bool replay_diverged() const { return replay_diverged_.load(std::memory_order_acquire); }

  bool deterministic() const { return options_.deterministic; }
  std::uint64_t steps() const { return step_.load(std::memory_order_relaxed); }
  // The CPU chosen at each step, in order (deterministic mode).
  const std::vector<std::uint32_t>& schedule() const { return schedule_; }
  // The CPU that holds the turn (deterministic mode).
  std::uint32_t running() const { return turn_.load(std::memory_order_acquire); }
  // Has `cpu` left the rotation (exit())? Deterministic mode, asked by the
  // CPU holding the turn.
  bool exited(std::uint32_t cpu) const { return !runnable_[cpu]; }

 private:
  struct Carried {
    void* object = nullptr;         // the caller's thread_local
    const void* initial = nullptr;  // T{}
    std::size_t bytes = 0;
  };
  struct Fibers;  // the fibers of a deterministic run_cpus (scheduler.cpp)

  void run_cpus_carrying(const std::function<void(std::uint32_t)>& body, Carried carried);
  void switch_fiber(std::uint32_t from, std::uint32_t to);
  std::uint32_t choose(std::uint32_t current, Wait wait);
  std::uint32_t choose_random(const std::vector<std::uint32_t>& candidates);
  std::uint32_t choose_pct(const std::vector<std::uint32_t>& candidates);
  void hand_over(std::uint32_t from, std::uint32_t to);
  void wait_for_turn(std::uint32_t cpu);
  std::uint64_t next_random();

  const std::uint32_t cpus_;
  Options options_;
  static constexpr std::uint32_t kNobody = ~std::uint32_t{0};
  std::atomic<std::uint32_t> turn_{kNobody};
  std::atomic<bool> stopped_{false};
  std::atomic<bool> deadlocked_{false};
  std::atomic<bool> replay_diverged_{false};
  std::atomic<std::uint64_t> step_{0};
  // Set while run_cpus runs the CPUs as fibers; null when they are threads.
  std::unique_ptr<Fibers> fibers_;

  // Touched only by the CPU holding the turn (or before the run starts).
  std::uint32_t entered_ = 0;
  std::vector<bool> runnable_;
  std::vector<bool> spinning_;
  std::vector<std::uint32_t> schedule_;
  std::vector<std::uint32_t> candidates_;
  std::uint64_t rng_state_;
  std::uint64_t all_spinning_for_ = 0;
  // PCT state.
  std::vector<std::uint64_t> priority_;
  std::vector<std::uint64_t> change_points_;
};

}  // namespace pagelab::emu
