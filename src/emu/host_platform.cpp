#include "emu/host_platform.hpp"

#include <cstdio>

namespace pagelab {

HostPlatform::HostPlatform(std::span<std::byte> ram, mm::PhysAddr ram_base, u32 cpus)
    : ram_(ram), ram_base_(ram_base), cpus_(cpus) {
  MM_ASSERT(cpus >= 1 && cpus <= mm::kMaxCpus);
}

void HostPlatform::log(mm::LogLevel level, const char* text) {
  if (level >= mm::LogLevel::Warn) {
    std::fprintf(stderr, "pagelab: %s: %s\n", level == mm::LogLevel::Warn ? "warning" : "error", text);
  }
}

}  // namespace pagelab
