#include "emu/sched/scheduler.hpp"

#include <algorithm>
#include <cstring>
#include <mutex>
#include <thread>

#include "emu/sched/fiber.hpp"
#include "mm/base/panic.hpp"

namespace pagelab::emu {

namespace {
std::mutex start_mutex;  // guards the entry phase of every scheduler (rare, short)
}  // namespace

// A deterministic run_cpus: one fiber per CPU, and the calling thread's own
// context (the host) to come back to. Indices cpus_ and up mean the host.
struct Scheduler::Fibers {
  struct Start {
    Scheduler* scheduler;
    std::uint32_t cpu;
  };

  Fibers(Scheduler& scheduler, const std::function<void(std::uint32_t)>& run, Carried carry)
      : body(run), carried(carry), count(scheduler.cpus_), saved((count + std::size_t{1}) * carry.bytes) {
    for (std::uint32_t cpu = 0; cpu < count; ++cpu) {
      if (carried.bytes != 0) std::memcpy(slot(cpu), carried.initial, carried.bytes);
      starts.push_back(Start{&scheduler, cpu});
    }
    // After the loop: `starts` no longer moves.
    for (std::uint32_t cpu = 0; cpu < count; ++cpu) {
      cpus.push_back(std::make_unique<Fiber>(&Fibers::cpu_main, &starts[cpu]));
    }
  }

  Fiber& fiber(std::uint32_t index) { return index < count ? *cpus[index] : host; }
  std::byte* slot(std::uint32_t index) { return saved.data() + std::size_t{std::min(index, count)} * carried.bytes; }

  // A CPU's fiber: its body, then on to whoever exit() chose.
  static void cpu_main(void* argument) {
    const Start start = *static_cast<Start*>(argument);
    Fibers& self = *start.scheduler->fibers_;
    self.body(start.cpu);
    if (start.scheduler->runnable_[start.cpu]) {
      MM_PANIC("Scheduler::run_cpus: a CPU's body returned without calling exit(cpu)", start.cpu);
    }
    if (self.carried.bytes != 0) std::memcpy(self.carried.object, self.slot(self.exit_to), self.carried.bytes);
    Fiber::exit_to(self.fiber(start.cpu), self.fiber(self.exit_to));
  }

  const std::function<void(std::uint32_t)>& body;
  const Carried carried;
  const std::uint32_t count;  // CPUs
  Fiber host;
  std::vector<Start> starts;
  std::vector<std::unique_ptr<Fiber>> cpus;
  std::vector<std::byte> saved;  // carried bytes of each CPU, then of the host
  std::uint32_t exit_to = 0;     // set by exit(): the next CPU, or the host when none is left
};

std::optional<Strategy> Strategy::parse(const std::string& text, std::string& error) {
  if (text == "random") {
    return Strategy{Kind::Random, 0};
  }
  if (text.rfind("pct:", 0) == 0) {
    const std::string digits = text.substr(4);
    if (!digits.empty() && digits.size() <= 3 && std::all_of(digits.begin(), digits.end(), ::isdigit)) {
      const auto depth = static_cast<std::uint32_t>(std::stoul(digits));
      if (depth >= 1) return Strategy{Kind::Pct, depth};
    }
  }
  error = "unknown strategy '" + text + "': expected 'random' or 'pct:D' with a depth D from 1 to 999";
  return std::nullopt;
}

std::string Strategy::name() const {
  return kind == Kind::Random ? "random" : "pct:" + std::to_string(depth);
}

Scheduler::Scheduler(std::uint32_t cpus, Options options)
    : cpus_(cpus), options_(std::move(options)), runnable_(cpus, true), spinning_(cpus, false),
      rng_state_(options_.seed ^ 0x6A09E667F3BCC909ull) {
  if (options_.strategy.kind == Strategy::Kind::Pct) {
    // Distinct initial priorities d .. d+n-1 in a random order; change
    // points at d-1 random steps, where the running CPU drops to 1 .. d-1.
    const std::uint64_t d = options_.strategy.depth;
    priority_.resize(cpus);
    for (std::uint32_t i = 0; i < cpus; ++i) priority_[i] = d + i;
    for (std::uint32_t i = cpus; i > 1; --i) std::swap(priority_[i - 1], priority_[next_random() % i]);
    const std::uint64_t horizon = options_.pct_horizon > 0 ? options_.pct_horizon : 1;
    for (std::uint64_t i = 1; i < d; ++i) change_points_.push_back(1 + next_random() % horizon);
  }
}

Scheduler::~Scheduler() = default;

void Scheduler::run_cpus_carrying(const std::function<void(std::uint32_t)>& body, Carried carried) {
  if (!options_.deterministic) {
    std::vector<std::thread> threads;
    for (std::uint32_t cpu = 0; cpu < cpus_; ++cpu) threads.emplace_back([&body, cpu] { body(cpu); });
    for (auto& t : threads) t.join();
    return;
  }
  if (fibers_ || entered_ != 0) MM_PANIC("Scheduler::run_cpus: the CPUs of this scheduler already ran", entered_);
  fibers_ = std::make_unique<Fibers>(*this, body, carried);
  // Each CPU's enter() comes back here until the last one enters and the run
  // begins; the host is resumed again when the last CPU exits.
  for (std::uint32_t cpu = 0; cpu < cpus_; ++cpu) switch_fiber(cpus_, cpu);
  if (turn_.load(std::memory_order_relaxed) != kNobody) MM_PANIC("Scheduler::run_cpus: resumed before every CPU exited", 0);
  fibers_.reset();
}

// Switches the host thread from one CPU's fiber (or the host, index cpus_)
// to another's, carrying the caller's thread_local along.
void Scheduler::switch_fiber(std::uint32_t from, std::uint32_t to) {
  Fibers& f = *fibers_;
  if (f.carried.bytes != 0) {
    std::memcpy(f.slot(from), f.carried.object, f.carried.bytes);
    std::memcpy(f.carried.object, f.slot(to), f.carried.bytes);
  }
  Fiber::switch_to(f.fiber(from), f.fiber(to));
}

std::uint64_t Scheduler::next_random() {
  std::uint64_t z = (rng_state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

void Scheduler::enter(std::uint32_t cpu) {
  if (!options_.deterministic) return;
  if (fibers_) {
    if (++entered_ < cpus_) {
      switch_fiber(cpu, cpus_);  // the host starts the next CPU
      return;
    }
    const std::uint32_t first = options_.replay && options_.replay->empty() ? 0 : choose(kNobody, Wait::Progress);
    turn_.store(first, std::memory_order_release);
    if (first != cpu) switch_fiber(cpu, first);
    return;
  }
  {
    std::lock_guard<std::mutex> guard(start_mutex);
    if (++entered_ == cpus_) {
      // Everyone is here: the first choice starts the run.
      const std::uint32_t first = options_.replay && options_.replay->empty() ? 0 : choose(kNobody, Wait::Progress);
      turn_.store(first, std::memory_order_release);
      turn_.notify_all();
    }
  }
  wait_for_turn(cpu);
}

void Scheduler::point(std::uint32_t cpu, Wait wait) {
  if (!options_.deterministic) return;
  spinning_[cpu] = wait == Wait::Spinning;
  const std::uint32_t next = choose(cpu, wait);
  if (next == cpu) return;
  if (fibers_) {
    turn_.store(next, std::memory_order_release);
    switch_fiber(cpu, next);
    return;
  }
  hand_over(cpu, next);
  wait_for_turn(cpu);
}

void Scheduler::exit(std::uint32_t cpu) {
  if (!options_.deterministic) return;
  runnable_[cpu] = false;
  spinning_[cpu] = false;
  if (std::none_of(runnable_.begin(), runnable_.end(), [](bool r) { return r; })) {
    turn_.store(kNobody, std::memory_order_release);
    if (fibers_) fibers_->exit_to = cpus_;  // back to the host
    return;
  }
  const std::uint32_t next = choose(cpu, Wait::Progress);
  if (fibers_) {
    // The switch waits for the body to return (Fibers::cpu_main).
    turn_.store(next, std::memory_order_release);
    fibers_->exit_to = next;
    return;
  }
  hand_over(cpu, next);
}

// Turns keep passing after a stop, one CPU at a time as before, so that every
// thread can reach its next check of stopped() and leave in order.
void Scheduler::stop() { stopped_.store(true, std::memory_order_release); }

void Scheduler::hand_over(std::uint32_t, std::uint32_t to) {
  turn_.store(to, std::memory_order_release);
  turn_.notify_all();
}

void Scheduler::wait_for_turn(std::uint32_t cpu) {
  // A short spin first: a turn often comes back within a few hundred
  // nanoseconds, far less than a futex sleep and wake-up costs.
  for (int spin = 0; spin < 256; ++spin) {
    if (turn_.load(std::memory_order_acquire) == cpu) return;
    __builtin_ia32_pause();
  }
  for (std::uint32_t seen = turn_.load(std::memory_order_acquire); seen != cpu;
       seen = turn_.load(std::memory_order_acquire)) {
    turn_.wait(seen, std::memory_order_acquire);
  }
}

std::uint32_t Scheduler::choose(std::uint32_t current, Wait) {
  // Only the CPU holding the turn gets here, and the turn's hand-over orders
  // it after the previous holder: no read-modify-write needed.
  const std::uint64_t step = step_.load(std::memory_order_relaxed);
  step_.store(step + 1, std::memory_order_relaxed);
  if (options_.replay && !replay_diverged()) {
    const auto& replay = *options_.replay;
    if (step < replay.size() && replay[step] < cpus_ && runnable_[replay[step]] &&
        !(options_.replay_hint && spinning_[replay[step]])) {
      schedule_.push_back(replay[step]);
      return replay[step];
    }
    if (!options_.replay_hint) {
      // The run no longer follows the recording: stop it, and let the CPUs
      // leave under the strategy below.
      replay_diverged_.store(true, std::memory_order_release);
      stop();
    }
  }
  candidates_.clear();
  for (std::uint32_t c = 0; c < cpus_; ++c) {
    if (runnable_[c] && !spinning_[c]) candidates_.push_back(c);
  }
  if (candidates_.empty()) {
    if (++all_spinning_for_ > options_.deadlock_steps && !deadlocked()) {
      deadlocked_.store(true, std::memory_order_release);
      stop();
    }
    // Every CPU waits: each must get to look again at what it waits for (a
    // lock, an acknowledgement), so they take turns in CPU order. Choosing by
    // priority here would let PCT's top CPU spin forever on a condition only
    // a lower one can see is already true.
    std::uint32_t next = current == kNobody ? 0 : (current + 1) % cpus_;
    while (!runnable_[next]) next = (next + 1) % cpus_;
    schedule_.push_back(next);
    return next;
  }
  all_spinning_for_ = 0;
  if (options_.strategy.kind == Strategy::Kind::Pct && current != kNobody) {
    for (std::size_t i = 0; i < change_points_.size(); ++i) {
      if (change_points_[i] == step) priority_[current] = change_points_.size() - i;  // below every initial priority
    }
  }
  const std::uint32_t next = options_.strategy.kind == Strategy::Kind::Pct ? choose_pct(candidates_) : choose_random(candidates_);
  schedule_.push_back(next);
  return next;
}

std::uint32_t Scheduler::choose_random(const std::vector<std::uint32_t>& candidates) {
  return candidates[next_random() % candidates.size()];
}

std::uint32_t Scheduler::choose_pct(const std::vector<std::uint32_t>& candidates) {
  std::uint32_t best = candidates.front();
  for (const std::uint32_t c : candidates) {
    if (priority_[c] > priority_[best]) best = c;
  }
  return best;
}

}  // namespace pagelab::emu
