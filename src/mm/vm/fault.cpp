#include "mm/vm/fault.hpp"

namespace mm {

const char* fault_outcome_name(FaultOutcome outcome) {
  switch (outcome) {
    case FaultOutcome::Complete: return "complete";
    case FaultOutcome::MapBackingReadOnly: return "map-backing-readonly";
    case FaultOutcome::MapBacking: return "map-backing";
    case FaultOutcome::CopyBacking: return "copy-backing";
    case FaultOutcome::Segv: return "segv";
    case FaultOutcome::OutOfMemory: return "out-of-memory";
  }
  return "?";
}

const char* access_name(Access access) {
  switch (access) {
    case Access::Read: return "read";
    case Access::Write: return "write";
    case Access::Execute: return "exec";
  }
  return "?";
}

}  // namespace mm
