// How a TLB shootdown is carried out. The first two are correct; every
// `Unsafe...` policy reproduces a classic bug on purpose, so that the
// emulator's oracle can be shown to catch it. Nothing but a scenario that
// asks for one (and a person who passed --allow-unsafe) ever selects them.
#pragma once

#include "mm/base/types.hpp"

namespace mm {

enum class ShootdownPolicy : u8 {
  // IPIs to the CPUs in the space's active mask; the others flush the
  // space's PCID before they use it again (generations).
  Batched,
  // IPIs to every online CPU, whatever it runs. Correct, and wasteful.
  Broadcast,
  // Frames and page tables are freed before the other CPUs acknowledge
  // (the initiator's deferred frees run first).
  UnsafeFreeBeforeAck,
  // With PCIDs: a CPU that ran the space earlier and switched away keeps its
  // translations and loads them again without a flush (generations ignored).
  UnsafeActiveOnly,
  // Page-table entries change without any invalidation at all.
  UnsafeNoFlush,
  // Only the initiating CPU invalidates (Redox's missing remote shootdown).
  UnsafeLocalOnly,
  // The address-space lock is dropped before the shootdown, so a second
  // operation on the range can find nothing to do and return while the
  // first one's flush is still pending (Linux's parallel MADV_DONTNEED).
  UnsafeFlushAfterUnlock,
};

inline constexpr const char* shootdown_policy_name(ShootdownPolicy policy) {
  switch (policy) {
    case ShootdownPolicy::Batched: return "batched";
    case ShootdownPolicy::Broadcast: return "broadcast";
    case ShootdownPolicy::UnsafeFreeBeforeAck: return "unsafe-free-before-ack";
    case ShootdownPolicy::UnsafeActiveOnly: return "unsafe-active-only";
    case ShootdownPolicy::UnsafeNoFlush: return "unsafe-no-flush";
    case ShootdownPolicy::UnsafeLocalOnly: return "unsafe-local-only";
    case ShootdownPolicy::UnsafeFlushAfterUnlock: return "unsafe-flush-after-unlock";
  }
  return "?";
}

inline constexpr bool is_unsafe(ShootdownPolicy policy) {
  return policy != ShootdownPolicy::Batched && policy != ShootdownPolicy::Broadcast;
}

}  // namespace mm
