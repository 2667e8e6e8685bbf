// Fundamental types of the memory-management core: fixed-width integers and
// strong address types, so that a physical address, a virtual address and a
// frame number cannot be confused at compile time.
#pragma once

#include <compare>
#include <cstddef>
#include <cstdint>

namespace mm {

using u8 = std::uint8_t;
using u16 = std::uint16_t;
using u32 = std::uint32_t;
using u64 = std::uint64_t;
using usize = std::size_t;

inline constexpr u64 kPageShift = 12;
inline constexpr u64 kPageSize = u64{1} << kPageShift;
inline constexpr u64 kPageMask = kPageSize - 1;

// x86-64 allows at most 52 physical address bits (SDM vol. 3A, 4.1.4).
inline constexpr u64 kMaxPhysAddrBits = 52;
inline constexpr u64 kMaxPhysAddr = u64{1} << kMaxPhysAddrBits;

// A count of 4 KiB frames (or pages). Plain integer: counts are added and
// compared far more than they are confused with addresses.
using FrameCount = u64;

constexpr bool is_power_of_two(u64 v) { return v != 0 && (v & (v - 1)) == 0; }
constexpr u64 align_down(u64 v, u64 alignment) { return v & ~(alignment - 1); }
constexpr u64 align_up(u64 v, u64 alignment) { return (v + alignment - 1) & ~(alignment - 1); }

class PhysAddr {
 public:
  constexpr PhysAddr() = default;
  constexpr explicit PhysAddr(u64 value) : value_(value) {}

  constexpr u64 value() const { return value_; }
  constexpr bool is_page_aligned() const { return (value_ & kPageMask) == 0; }
  constexpr PhysAddr operator+(u64 offset) const { return PhysAddr(value_ + offset); }
  constexpr auto operator<=>(const PhysAddr&) const = default;

 private:
  u64 value_ = 0;
};

class VirtAddr {
 public:
  constexpr VirtAddr() = default;
  constexpr explicit VirtAddr(u64 value) : value_(value) {}

  constexpr u64 value() const { return value_; }
  constexpr bool is_page_aligned() const { return (value_ & kPageMask) == 0; }
  // Canonical for 4-level paging: bits 63..47 all equal (SDM vol. 1, 3.3.7.1).
  constexpr bool is_canonical() const {
    const u64 top = value_ >> 47;
    return top == 0 || top == 0x1FFFF;
  }
  constexpr VirtAddr operator+(u64 offset) const { return VirtAddr(value_ + offset); }
  constexpr VirtAddr operator-(u64 offset) const { return VirtAddr(value_ - offset); }
  constexpr auto operator<=>(const VirtAddr&) const = default;

 private:
  u64 value_ = 0;
};

// A physical frame number: the physical address shifted right by 12.
class Pfn {
 public:
  constexpr Pfn() = default;
  constexpr explicit Pfn(u64 value) : value_(value) {}

  static constexpr Pfn containing(PhysAddr address) { return Pfn(address.value() >> kPageShift); }
  static constexpr Pfn max() { return Pfn(kMaxPhysAddr >> kPageShift); }

  constexpr u64 value() const { return value_; }
  constexpr PhysAddr address() const { return PhysAddr(value_ << kPageShift); }
  constexpr bool is_aligned(FrameCount frames) const { return (value_ & (frames - 1)) == 0; }

  constexpr Pfn operator+(FrameCount n) const { return Pfn(value_ + n); }
  constexpr Pfn operator-(FrameCount n) const { return Pfn(value_ - n); }
  constexpr FrameCount operator-(Pfn other) const { return value_ - other.value_; }
  constexpr auto operator<=>(const Pfn&) const = default;

 private:
  u64 value_ = 0;
};

}  // namespace mm
