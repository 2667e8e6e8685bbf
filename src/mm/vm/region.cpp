#include "mm/vm/region.hpp"

namespace mm {

const char* region_kind_name(RegionKind kind) {
  switch (kind) {
    case RegionKind::Anonymous: return "anon";
    case RegionKind::Stack: return "stack";
    case RegionKind::Physical: return "phys";
    case RegionKind::Guard: return "guard";
  }
  return "?";
}

}  // namespace mm
