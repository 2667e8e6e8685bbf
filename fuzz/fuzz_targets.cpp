// The input fuzzers' entry points (libFuzzer's LLVMFuzzerTestOneInput), one
// executable each: this file is compiled once per target with
// PAGELAB_FUZZ_TARGET naming its property function (fuzz/CMakeLists.txt).
// A report (input_properties.hpp) is a finding: it goes to stderr and the
// process aborts, so libFuzzer keeps the input as crash-<sha1>.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "input_properties.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  if (const std::optional<std::string> report = pagelab::fuzz_inputs::PAGELAB_FUZZ_TARGET(bytes)) {
    std::fprintf(stderr, "\n==pagelab fuzz== %s\n", report->c_str());
    std::fflush(stderr);
    std::abort();
  }
  return 0;
}
