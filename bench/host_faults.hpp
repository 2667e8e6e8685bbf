// The host's page faults, for the benchmarks that show what a run costs the
// host (BM_Explore, BM_Fuzz).
#pragma once

#include <sys/resource.h>

#include <cstdint>

namespace pagelab::bench {

// Minor page faults the calling thread has taken so far (getrusage
// RUSAGE_THREAD): a first touch of a fresh mapping's page is one.
inline std::uint64_t host_minor_faults() {
  rusage usage{};
  ::getrusage(RUSAGE_THREAD, &usage);
  return static_cast<std::uint64_t>(usage.ru_minflt);
}

}  // namespace pagelab::bench
