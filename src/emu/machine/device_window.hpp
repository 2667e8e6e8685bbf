// The device window: the top of the emulated machine's RAM, which its frame
// allocator never hands out; device memory for `map ... phys=` to name.
// One definition for the three that need it: the machine (which keeps the
// window from the allocator), the scenario parser (which rejects a phys=
// range outside it, so a run never maps RAM the allocator owns or RAM that
// is not there) and the kernel's scenario compiler (which turns phys= into
// an offset into it).
#pragma once

#include <cstdint>

namespace pagelab::emu {

// A quarter of RAM, at most 4 MiB, in whole 2 MiB blocks (so 2 MiB device
// pages fit); none below 8 MiB of RAM.
constexpr std::uint64_t device_window_bytes(std::uint64_t ram_bytes) {
  constexpr std::uint64_t k2M = std::uint64_t{2} << 20;
  const std::uint64_t quarter = (ram_bytes / 4) & ~(k2M - 1);
  return quarter < (std::uint64_t{4} << 20) ? quarter : std::uint64_t{4} << 20;
}

// Its first byte: the window is [device_window_start, ram_bytes).
constexpr std::uint64_t device_window_start(std::uint64_t ram_bytes) { return ram_bytes - device_window_bytes(ram_bytes); }

static_assert(device_window_bytes(16u << 20) == 4u << 20 && device_window_start(16u << 20) == 12u << 20);
static_assert(device_window_bytes(8u << 20) == 2u << 20 && device_window_bytes(7u << 20) == 0);

}  // namespace pagelab::emu
