// Memory pressure: watermarks over the frames an ordinary allocation may
// still take, and the emergency reserve below them (Redox emergency.rs,
// Linux's min/low watermarks).
//
//   free frames in the allocator
//   |------------------------------------|---------|----------|---------|
//   0                                 reserve   +emergency  +warning
//   [ emergency reserve: only AllocFlags::Emergency ][ ordinary allocations ]
//
// "Available" is free minus the reserve. Ordinary allocations fail with
// ENOMEM when available reaches zero, so they never take the reserve.
#pragma once

#include "mm/base/types.hpp"

namespace mm {

enum class Pressure : u8 {
  Normal,     // available > warning mark
  Warning,    // available <= warning mark: time to reclaim
  Emergency,  // available <= emergency mark: caches are drained, allocation may fail
};

struct Watermarks {
  FrameCount reserve = 0;    // frames only emergency allocations may take
  FrameCount emergency = 0;  // available frames at or below which pressure is Emergency
  FrameCount warning = 0;    // available frames at or below which pressure is Warning
};

constexpr FrameCount available_frames(FrameCount free, const Watermarks& marks) {
  return free > marks.reserve ? free - marks.reserve : 0;
}

constexpr Pressure pressure_for(FrameCount free, const Watermarks& marks) {
  const FrameCount available = available_frames(free, marks);
  if (available <= marks.emergency) {
    return Pressure::Emergency;
  }
  if (available <= marks.warning) {
    return Pressure::Warning;
  }
  return Pressure::Normal;
}

const char* pressure_name(Pressure pressure);

}  // namespace mm
