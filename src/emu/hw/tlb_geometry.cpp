#include "emu/hw/tlb_geometry.hpp"

#include <charconv>

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
  if (static_cast<unsigned>(geometry.replacement) > static_cast<unsigned>(TlbReplacement::Random)) {
    return "unknown replacement policy";
  }
  if (geometry.entries() > kMaxTlbEntries) return "more than " + std::to_string(kMaxTlbEntries) + " entries in all";
  return {};
}

TlbGeometry tiny_tlb_geometry() {
  return TlbGeometry{.name = "tiny", .l1d = {{.sets = 1, .ways = 4, .sizes = kAllSizes}}, .l1i = {}, .l2 = {},
                     .replacement = TlbReplacement::Lru, .seed = 0};
}

TlbGeometry skylake_tlb_geometry() {
  return TlbGeometry{
      .name = "skylake",
      .l1d = {{.sets = 16, .ways = 4, .sizes = kSizes4K},
              {.sets = 8, .ways = 4, .sizes = kSizes2M},
              {.sets = 1, .ways = 4, .sizes = kSizes1G}},
      .l1i = {{.sets = 16, .ways = 8, .sizes = kSizes4K}, {.sets = 1, .ways = 8, .sizes = kSizes2M}},
      .l2 = {{.sets = 128, .ways = 12, .sizes = kSizes4K | kSizes2M}, {.sets = 4, .ways = 4, .sizes = kSizes1G}},
      .replacement = TlbReplacement::Lru,
      .seed = 0,
  };
}

TlbGeometry zen2_tlb_geometry() {
  return TlbGeometry{
      .name = "zen2",
      .l1d = {{.sets = 1, .ways = 64, .sizes = kAllSizes}},
      .l1i = {{.sets = 1, .ways = 64, .sizes = kAllSizes}},
      .l2 = {{.sets = 171, .ways = 12, .sizes = kSizes4K | kSizes2M}},
      .replacement = TlbReplacement::Lru,
      .seed = 0,
  };
}

const std::vector<std::string_view>& tlb_geometry_names() {
  static const std::vector<std::string_view> names = {"tiny", "skylake", "zen2"};
  return names;
}

const char* tlb_replacement_name(TlbReplacement replacement) {
  switch (replacement) {
    case TlbReplacement::Lru: return "lru";
    case TlbReplacement::Fifo: return "fifo";
    case TlbReplacement::Random: return "random";
  }
  return "?";
}

const std::vector<std::string_view>& tlb_replacement_names() {
  static const std::vector<std::string_view> names = {"lru", "fifo", "random"};
  return names;
}

namespace {

NamedTlbGeometry preset_named(std::string_view name) {
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

}  // namespace

NamedTlbGeometry tlb_geometry_named(std::string_view name) {
  const std::size_t colon = name.find(':');
  NamedTlbGeometry named = preset_named(name.substr(0, colon));
  if (!named.ok() || colon == std::string_view::npos) return named;
  std::string_view rest = name.substr(colon + 1);
  const std::size_t second = rest.find(':');
  const std::string_view policy = rest.substr(0, second);
  bool known = false;
  for (const TlbReplacement r : {TlbReplacement::Lru, TlbReplacement::Fifo, TlbReplacement::Random}) {
    if (policy == tlb_replacement_name(r)) {
      named.geometry.replacement = r;
      known = true;
    }
  }
  if (!known) {
    std::string error = "unknown TLB replacement policy '" + std::string(policy) + "' (known:";
    for (std::string_view k : tlb_replacement_names()) {
      error += ' ';
      error += k;
    }
    error += ')';
    return {TlbGeometry{}, error};
  }
  if (second != std::string_view::npos) {
    const std::string_view seed = rest.substr(second + 1);
    u64 value = 0;
    const auto [end, ec] = std::from_chars(seed.data(), seed.data() + seed.size(), value);
    if (seed.empty() || ec != std::errc{} || end != seed.data() + seed.size()) {
      return {TlbGeometry{}, "bad TLB replacement seed '" + std::string(seed) + "' (a decimal number)"};
    }
    named.geometry.seed = value;
  }
  return named;
}

}  // namespace pagelab::hw
