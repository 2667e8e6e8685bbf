#include "emu/hw/tlb_geometry.hpp"

namespace pagelab::hw {

u32 TlbGeometry::entries() const {
  u32 total = 0;
  for (const std::vector<TlbArrayGeometry>* level : {&l1d, &l1i, &l2}) {
    for (const TlbArrayGeometry& array : *level) total += array.entries();
  }
  return total;
}

namespace {

std::string validate_level(const std::vector<TlbArrayGeometry>& arrays, const char* level_name) {
  if (arrays.size() > kMaxTlbArraysPerLevel) {
    return std::string(level_name) + ": more than " + std::to_string(kMaxTlbArraysPerLevel) + " arrays";
  }
  PageSizeSet seen = 0;
  for (const TlbArrayGeometry& array : arrays) {
    const std::string where = std::string(level_name) + " array " + std::to_string(array.sets) + "x" +
                              std::to_string(array.ways);
    if (array.sets == 0 || array.ways == 0) return where + ": sets and ways must be at least 1";
    if (array.ways > kMaxTlbWays) return where + ": more than " + std::to_string(kMaxTlbWays) + " ways";
    if (array.sets > kMaxTlbEntries / array.ways) return where + ": too many entries";
    if (array.sizes == 0 || (array.sizes & ~kAllSizes) != 0) return where + ": no (valid) page size";
    if (array.sizes & seen) return where + ": a page size held by two arrays of one level";
    seen |= array.sizes;
  }
  return {};
}

}  // namespace

std::string validate(const TlbGeometry& geometry) {
  if (geometry.l1d.empty()) return "a TLB needs at least one L1 data array";
  for (const auto& [arrays, level_name] : {std::pair{&geometry.l1d, "L1 dTLB"}, std::pair{&geometry.l1i, "L1 iTLB"},
                                           std::pair{&geometry.l2, "L2 TLB"}}) {
    std::string error = validate_level(*arrays, level_name);
    if (!error.empty()) return error;
  }
  if (geometry.entries() > kMaxTlbEntries) return "more than " + std::to_string(kMaxTlbEntries) + " entries in all";
  return {};
}

TlbGeometry tiny_tlb_geometry() {
  return TlbGeometry{.name = "tiny", .l1d = {{.sets = 1, .ways = 4, .sizes = kAllSizes}}, .l1i = {}, .l2 = {}};
}

TlbGeometry skylake_tlb_geometry() {
  return TlbGeometry{
      .name = "skylake",
      .l1d = {{.sets = 16, .ways = 4, .sizes = kSizes4K},
              {.sets = 8, .ways = 4, .sizes = kSizes2M},
              {.sets = 1, .ways = 4, .sizes = kSizes1G}},
      .l1i = {{.sets = 16, .ways = 8, .sizes = kSizes4K}, {.sets = 1, .ways = 8, .sizes = kSizes2M}},
      .l2 = {{.sets = 128, .ways = 12, .sizes = kSizes4K | kSizes2M}, {.sets = 4, .ways = 4, .sizes = kSizes1G}},
  };
}

TlbGeometry zen2_tlb_geometry() {
  return TlbGeometry{
      .name = "zen2",
      .l1d = {{.sets = 1, .ways = 64, .sizes = kAllSizes}},
      .l1i = {{.sets = 1, .ways = 64, .sizes = kAllSizes}},
      .l2 = {{.sets = 171, .ways = 12, .sizes = kSizes4K | kSizes2M}},
  };
}

const std::vector<std::string_view>& tlb_geometry_names() {
  static const std::vector<std::string_view> names = {"tiny", "skylake", "zen2"};
  return names;
}

NamedTlbGeometry tlb_geometry_named(std::string_view name) {
  if (name == "tiny") return {tiny_tlb_geometry(), {}};
  if (name == "skylake") return {skylake_tlb_geometry(), {}};
  if (name == "zen2") return {zen2_tlb_geometry(), {}};
  std::string error = "unknown TLB geometry '" + std::string(name) + "' (known:";
  for (std::string_view known : tlb_geometry_names()) {
    error += ' ';
    error += known;
  }
  error += ')';
  return {TlbGeometry{}, error};
}

}  // namespace pagelab::hw
