// Atomic<T>: the core's atomics, on the compiler's __atomic builtins.
//
// Not std::atomic: libstdc++'s <atomic> drags in <string> and the C library
// (for atomic wait), which a freestanding kernel does not have. The builtins
// compile to the same instructions, and ThreadSanitizer understands them.
#pragma once

#include <type_traits>

namespace mm {

enum class MemoryOrder : int {
  Relaxed = __ATOMIC_RELAXED,
  Acquire = __ATOMIC_ACQUIRE,
  Release = __ATOMIC_RELEASE,
  AcqRel = __ATOMIC_ACQ_REL,
  SeqCst = __ATOMIC_SEQ_CST,
};

template <typename T>
class Atomic {
  static_assert(std::is_integral_v<T> || std::is_pointer_v<T>);

 public:
  constexpr Atomic() = default;
  constexpr explicit Atomic(T value) : value_(value) {}
  Atomic(const Atomic&) = delete;
  Atomic& operator=(const Atomic&) = delete;

  T load(MemoryOrder order = MemoryOrder::SeqCst) const {
    return __atomic_load_n(&value_, static_cast<int>(order));
  }
  void store(T value, MemoryOrder order = MemoryOrder::SeqCst) {
    __atomic_store_n(&value_, value, static_cast<int>(order));
  }
  T exchange(T value, MemoryOrder order = MemoryOrder::SeqCst) {
    return __atomic_exchange_n(&value_, value, static_cast<int>(order));
  }
  // On failure `expected` receives the current value.
  bool compare_exchange_strong(T& expected, T desired, MemoryOrder order = MemoryOrder::SeqCst) {
    return __atomic_compare_exchange_n(&value_, &expected, desired, false, static_cast<int>(order),
                                       failure_order(order));
  }
  T fetch_add(T delta, MemoryOrder order = MemoryOrder::SeqCst) {
    return __atomic_fetch_add(&value_, delta, static_cast<int>(order));
  }
  T fetch_sub(T delta, MemoryOrder order = MemoryOrder::SeqCst) {
    return __atomic_fetch_sub(&value_, delta, static_cast<int>(order));
  }
  T fetch_or(T bits, MemoryOrder order = MemoryOrder::SeqCst) {
    return __atomic_fetch_or(&value_, bits, static_cast<int>(order));
  }
  T fetch_and(T bits, MemoryOrder order = MemoryOrder::SeqCst) {
    return __atomic_fetch_and(&value_, bits, static_cast<int>(order));
  }

 private:
  // A failed CAS only loads: it may not have release semantics.
  static constexpr int failure_order(MemoryOrder order) {
    switch (order) {
      case MemoryOrder::Release: return __ATOMIC_RELAXED;
      case MemoryOrder::AcqRel: return __ATOMIC_ACQUIRE;
      default: return static_cast<int>(order);
    }
  }

  T value_{};
};

}  // namespace mm
