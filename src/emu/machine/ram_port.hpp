// The emulated MMU's view of the machine's RAM (hw::PhysicalPort), in the two
// forms the emulator walks page tables with.
#pragma once

#include <atomic>
#include <cstdint>

#include "emu/machine/machine.hpp"

namespace pagelab::emu {

// A CPU's walk (demand or speculative): every load and A/D update is a
// scheduling point, and an address beyond RAM reads as zeros.
struct RamPort {
  Machine& machine;

  std::uint64_t* word(std::uint64_t physical) const {
    if (physical + 8 > machine.ram_bytes()) return nullptr;
    return reinterpret_cast<std::uint64_t*>(machine.ram_at(physical));
  }
  std::uint64_t load(std::uint64_t physical) {
    machine.point();
    std::uint64_t* w = word(physical);
    return w ? std::atomic_ref<std::uint64_t>(*w).load(std::memory_order_acquire) : 0;
  }
  bool compare_exchange(std::uint64_t physical, std::uint64_t& expected, std::uint64_t desired) {
    machine.point();
    std::uint64_t* w = word(physical);
    if (w == nullptr) return false;
    return std::atomic_ref<std::uint64_t>(*w).compare_exchange_strong(expected, desired, std::memory_order_acq_rel);
  }
};

// The oracle's look: no scheduling point, and the walk's A/D updates are not
// written (they report success and change nothing).
struct PeekPort {
  Machine& machine;

  std::uint64_t load(std::uint64_t physical) const {
    if (physical + 8 > machine.ram_bytes()) return 0;
    return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(machine.ram_at(physical)))
        .load(std::memory_order_acquire);
  }
  bool compare_exchange(std::uint64_t, std::uint64_t&, std::uint64_t) const { return true; }
};

}  // namespace pagelab::emu
