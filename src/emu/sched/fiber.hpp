// Fiber: an execution context with a stack of its own, resumed only when
// another context on the same host thread switches to it. The deterministic
// scheduler runs each simulated CPU as one (scheduler.hpp): a switch saves
// six registers and the stack pointer, where a hand-over between threads is
// a futex wake-up and a sleep.
//
// Contract:
//  - Every fiber of a group runs on the host thread that created it, and only
//    there. Nothing preempts a fiber: it runs until it calls switch_to() or
//    exit_to().
//  - A fiber's entry must not return; it ends with exit_to(), after which the
//    fiber may be destroyed (by another context: never the running one).
//  - Only what the System V ABI asks a callee to keep survives a switch
//    (rbx, rbp, r12-r15, rsp). The x87 control word and MXCSR are not saved:
//    the emulator never changes them.
//  - thread_local variables are the thread's, shared by all its fibers: state
//    that belongs to one fiber must be saved and restored around switches by
//    its owner (the scheduler does this for the CPU context).
//  - ASan and TSan are told about every switch (start/finish_switch_fiber,
//    __tsan_switch_to_fiber), so both work unchanged over fibers.
#pragma once

#include <cstddef>

// Which sanitizer watches this build (GCC says so with __SANITIZE_*__,
// Clang with __has_feature).
#if defined(__SANITIZE_ADDRESS__)
#define PAGELAB_FIBER_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#define PAGELAB_FIBER_TSAN 1
#endif
#if defined(__has_feature)
#if __has_feature(address_sanitizer) && !defined(PAGELAB_FIBER_ASAN)
#define PAGELAB_FIBER_ASAN 1
#endif
#if __has_feature(thread_sanitizer) && !defined(PAGELAB_FIBER_TSAN)
#define PAGELAB_FIBER_TSAN 1
#endif
#endif

namespace pagelab::emu {

class Fiber {
 public:
  using Entry = void (*)(void* argument);

  // A stack this deep holds the deepest path of a simulated CPU (a page
  // fault through the core, under a scheduling point) many times over; only
  // the pages touched are ever backed by memory. Sanitizers make frames
  // several times larger.
#if defined(PAGELAB_FIBER_ASAN) || defined(PAGELAB_FIBER_TSAN)
  static constexpr std::size_t kDefaultStackBytes = std::size_t{1} << 20;
#else
  static constexpr std::size_t kDefaultStackBytes = std::size_t{256} << 10;
#endif

  // The calling thread's own context (its own stack): the fiber that starts
  // the others and that they switch back to.
  Fiber();
  // A fiber that runs entry(argument) on a fresh stack of stack_bytes
  // (rounded up to pages, with an inaccessible guard page below it, so an
  // overflow faults instead of corrupting) when first switched to.
  Fiber(Entry entry, void* argument, std::size_t stack_bytes = kDefaultStackBytes);
  ~Fiber();
  Fiber(const Fiber&) = delete;
  Fiber& operator=(const Fiber&) = delete;

  // Suspends the running context, which must be `from`, and resumes `to`.
  // Returns when some context switches back to `from`.
  static void switch_to(Fiber& from, Fiber& to);
  // As switch_to, but `from` has ended: it is never resumed, and its stack
  // may be freed once another context runs.
  [[noreturn]] static void exit_to(Fiber& from, Fiber& to);

 private:
  static void start(Fiber* self, Fiber* from) noexcept;

  void* stack_pointer_ = nullptr;  // saved rsp while suspended
  Entry entry_ = nullptr;
  void* argument_ = nullptr;
  std::byte* mapping_ = nullptr;  // guard page + stack; null for a thread's own context
  std::size_t mapping_bytes_ = 0;
  // For the sanitizers: the usable stack (learned at the first switch away
  // from a thread's own context), ASan's fake stack while suspended, TSan's
  // fiber.
  const void* stack_bottom_ = nullptr;
  std::size_t stack_bytes_ = 0;
  void* tsan_fiber_ = nullptr;
};

}  // namespace pagelab::emu
