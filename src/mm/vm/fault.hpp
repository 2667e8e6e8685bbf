// The page-fault vocabulary: what was attempted, and what the core did
// about it (MOS's vmfault_result_t, with Redox's PfError for the failures).
#pragma once

#include "mm/base/types.hpp"

namespace mm {

enum class Access : u8 { Read, Write, Execute };
enum class AccessMode : u8 { User, Kernel };

enum class FaultOutcome : u8 {
  Complete,            // nothing to do: the page tables already allow it (a stale TLB entry)
  MapBackingReadOnly,  // mapped the backing read-only: the shared zero frame, on a read
  MapBacking,          // mapped the backing writable: a new zeroed frame, the region's
                       // device frame, or a copy-on-write frame its only user may now own
  CopyBacking,         // copied a frame shared copy-on-write, and mapped the copy
  Segv,                // no region, a guard page, or an access the region forbids
  OutOfMemory,         // no frame for the backing or for a page table
};

inline constexpr u32 kFaultOutcomeCount = 6;

constexpr bool resolved(FaultOutcome outcome) {
  return outcome != FaultOutcome::Segv && outcome != FaultOutcome::OutOfMemory;
}

const char* fault_outcome_name(FaultOutcome outcome);
const char* access_name(Access access);

}  // namespace mm
