#include "mm/phys/pressure.hpp"

namespace mm {

const char* pressure_name(Pressure pressure) {
  switch (pressure) {
    case Pressure::Normal: return "normal";
    case Pressure::Warning: return "warning";
    case Pressure::Emergency: return "emergency";
  }
  return "?";
}

}  // namespace mm
