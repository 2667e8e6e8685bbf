// The lackey trace reader's properties (input_properties.hpp).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>

#include "emu/cli/lackey_replay.hpp"
#include "emu/hw/tlb_geometry.hpp"
#include "fuzz_check.hpp"
#include "input_properties.hpp"

namespace pagelab::fuzz_inputs {

namespace {

constexpr std::string_view kFile = "fuzz.lackey";

// The `tiny` preset: 4 entries, fully associative, so evictions come every
// few pages and every path of the replay runs.
const hw::TlbGeometry& tiny() {
  static const hw::TlbGeometry geometry = hw::tlb_geometry_named("tiny").geometry;
  return geometry;
}

}  // namespace

std::optional<std::string> lackey_properties(std::string_view bytes) {
  const std::string text(bytes);
  if (tiny().name != "tiny") return failure("no tiny TLB preset");
  std::istringstream in(text);
  std::string error;
  const std::optional<emu::LackeyStats> stats = emu::replay_lackey(in, std::string(kFile), tiny(), error);
  // An istringstream always reads: never "cannot read".
  if (!stats) return line_error_form(error, kFile, line_count(text));
  const emu::LackeyStats& s = *stats;
  const std::string counts = emu::format_lackey_text(s, std::string(kFile), "tiny");
  if (s.records != s.instructions + s.loads + s.stores + s.modifies) return failure("records != I + L + S + M", counts);
  if (s.accesses != s.instructions + s.loads + s.stores + 2 * s.modifies) {
    return failure("accesses != I + L + S + 2 M", counts);
  }
  if (s.records + s.skipped_lines > line_count(text)) return failure("more lines counted than the input has", counts);
  // A size is at most kMaxLackeyAccessBytes, a page: one page an access, or two when it crosses.
  if (s.page_crossings > s.accesses || s.translations != s.accesses + s.page_crossings) {
    return failure("an access did not translate one page, or two when it crosses", counts);
  }
  if (s.l1_hits + s.l2_hits + s.misses != s.translations) return failure("hits + misses != translations", counts);
  if (s.walks != s.misses + s.page_faults + s.dirty_walks) return failure("walks != misses + faults + dirty walks", counts);
  if (s.pages != s.page_faults) return failure("a page faulted twice", counts);
  if (s.page_faults > s.misses) return failure("a fault without a TLB miss", counts);
  if (s.page_table_pages < 1 || s.page_table_pages > 1 + 3 * s.pages) return failure("page-table pages out of bounds", counts);
  return std::nullopt;
}

}  // namespace pagelab::fuzz_inputs
