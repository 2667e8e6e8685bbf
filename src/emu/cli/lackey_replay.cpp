#include "emu/cli/lackey_replay.hpp"

#include <fmt/format.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <istream>

#include "emu/io/line_reader.hpp"

namespace pagelab::emu {

namespace {

using u64 = std::uint64_t;
constexpr u64 kPageBytes = 4096;
constexpr u64 kTableFlags = hw::entry::kP | hw::entry::kRW | hw::entry::kUS;
constexpr u64 kLeafFlags = hw::entry::kP | hw::entry::kRW | hw::entry::kUS;
// Data pages get frame numbers from here on (nothing backs them).
constexpr u64 kFirstDataFrame = u64{1} << 40;

bool is_space(char c) { return c == ' ' || c == '\t'; }

// A digit's value by character, 0xFF for a non-digit: one load per digit.
constexpr std::array<std::uint8_t, 256> kHexDigits = [] {
  std::array<std::uint8_t, 256> table{};
  table.fill(0xFF);
  for (int c = '0'; c <= '9'; ++c) table[static_cast<std::size_t>(c)] = static_cast<std::uint8_t>(c - '0');
  for (int c = 'a'; c <= 'f'; ++c) table[static_cast<std::size_t>(c)] = static_cast<std::uint8_t>(c - 'a' + 10);
  for (int c = 'A'; c <= 'F'; ++c) table[static_cast<std::size_t>(c)] = static_cast<std::uint8_t>(c - 'A' + 10);
  return table;
}();

// A bad line as an error quotes it: its first 40 bytes, unprintable ones
// as \xNN (a binary file's line is neither short nor printable).
std::string excerpt(std::string_view text) {
  constexpr std::size_t kShown = 40;
  std::string out;
  for (const char c : text.substr(0, kShown)) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x20 && byte < 0x7f) out += c;
    else out += fmt::format("\\x{:02x}", byte);
  }
  if (text.size() > kShown) out += "...";
  return out;
}

int hex_digit(char c) {
  const std::uint8_t d = kHexDigits[static_cast<unsigned char>(c)];
  return d == 0xFF ? -1 : d;
}

}  // namespace

hw::u64 LackeyReplayer::Port::load(hw::u64 physical) const {
  const u64 index = physical / 8;
  return index < owner->tables_.size() ? owner->tables_[index] : 0;
}

bool LackeyReplayer::Port::compare_exchange(hw::u64 physical, hw::u64& expected, hw::u64 desired) {
  const u64 index = physical / 8;
  if (index >= owner->tables_.size()) return false;
  u64& slot = owner->tables_[index];
  if (slot != expected) {
    expected = slot;
    return false;
  }
  slot = desired;
  return true;
}

LackeyReplayer::LackeyReplayer(const hw::TlbGeometry& geometry) : tlb_(geometry), next_data_frame_(kFirstDataFrame) {
  cr_.cr0 = hw::cr0::kPE | hw::cr0::kPG | hw::cr0::kWP;
  cr_.cr4 = hw::cr4::kPAE;
  cr_.efer = hw::efer::kLME | hw::efer::kLMA | hw::efer::kNXE;
  cr_.cr3 = new_table();  // the root, at physical 0
}

u64 LackeyReplayer::new_table() {
  const u64 physical = tables_.size() * 8;
  tables_.resize(tables_.size() + 512, 0);
  ++stats_.page_table_pages;
  return physical;
}

void LackeyReplayer::map_page(u64 va) {
  u64 table = cr_.root();
  for (int level = hw::kWalkLevels; level > 1; --level) {
    const u64 slot = (table + hw::index_at_level(va, level) * 8) / 8;
    if (!(tables_[slot] & hw::entry::kP)) {
      const u64 child = new_table();  // may move tables_: index again below
      tables_[slot] = child | kTableFlags;
    }
    table = tables_[slot] & hw::entry::kAddress;
  }
  const u64 slot = (table + hw::index_at_level(va, 1) * 8) / 8;
  tables_[slot] = next_data_frame_ | kLeafFlags;
  next_data_frame_ += kPageBytes;
}

hw::WalkResult LackeyReplayer::walk(u64 va, hw::AccessKind kind) {
  ++stats_.walks;
  Port port{this};
  return hw::walk(port, cr_, va, hw::Access{.kind = kind, .mode = hw::Mode::User});
}

bool LackeyReplayer::translate(u64 va, hw::AccessKind kind, std::string& error) {
  ++stats_.translations;
  const hw::TlbLookup found = tlb_.lookup(va, cr_.pcid(), kind);
  if (found.hit()) {
    if (kind != hw::AccessKind::Write || found.entry.dirty) return true;
    // A store through a clean entry: the processor walks to set D (SDM 4.8).
    ++stats_.dirty_walks;
  }
  hw::WalkResult r = walk(va, kind);
  if (r.page_fault() && r.reason == hw::FaultReason::NotPresent) {
    ++stats_.page_faults;
    ++stats_.pages;
    map_page(va);
    r = walk(va, kind);
  }
  if (!r.ok()) {
    error = fmt::format("internal: the walk of {:#x} failed ({})", va, hw::fault_reason_name(r.reason));
    return false;
  }
  tlb_.insert(hw::TlbEntry::from_walk(r, cr_.pcid()), kind);
  return true;
}

bool LackeyReplayer::access(u64 va, u64 size, hw::AccessKind kind, std::string& error) {
  const u64 last = va + (size == 0 ? 0 : size - 1);
  if (last < va || !hw::is_canonical(va) || !hw::is_canonical(last) || (va >> 47) != (last >> 47)) {
    error = fmt::format("address {:#x},{} is not canonical", va, size);
    return false;
  }
  ++stats_.accesses;
  const u64 first_page = va / kPageBytes;
  const u64 last_page = last / kPageBytes;
  if (last_page != first_page) ++stats_.page_crossings;
  for (u64 page = first_page; page <= last_page; ++page) {
    if (!translate(page == first_page ? va : page * kPageBytes, kind, error)) return false;
  }
  return true;
}

bool LackeyReplayer::feed_line(std::string_view line, std::string& error) {
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n' || is_space(line.back()))) line.remove_suffix(1);
  std::size_t pos = 0;
  while (pos < line.size() && is_space(line[pos])) ++pos;
  if (pos == line.size() || line.substr(0, 2) == "==" || line.substr(0, 2) == "--") {
    ++stats_.skipped_lines;
    return true;
  }
  const char kind = line[pos++];
  if (kind != 'I' && kind != 'L' && kind != 'S' && kind != 'M') {
    error = fmt::format("expected an access (I, L, S or M) or a valgrind line (==PID==), found '{}'", excerpt(line));
    return false;
  }
  if (pos == line.size() || !is_space(line[pos])) {
    error = fmt::format("expected a space after '{}'", kind);
    return false;
  }
  while (pos < line.size() && is_space(line[pos])) ++pos;
  u64 va = 0;
  std::size_t digits = 0;
  for (int d; pos < line.size() && (d = hex_digit(line[pos])) >= 0; ++pos, ++digits) {
    if ((va >> 60) != 0) [[unlikely]] {  // leading zeros are fine, a 17th significant digit is not
      error = "the address does not fit in 64 bits";
      return false;
    }
    va = (va << 4) | static_cast<u64>(d);
  }
  if (digits == 0) {
    error = fmt::format("expected a hexadecimal address after '{}'", kind);
    return false;
  }
  if (pos == line.size() || line[pos] != ',') {
    error = "expected ',' and a size after the address";
    return false;
  }
  ++pos;
  u64 size = 0;
  digits = 0;
  for (; pos < line.size() && line[pos] >= '0' && line[pos] <= '9'; ++pos, ++digits) {
    size = size * 10 + static_cast<u64>(line[pos] - '0');
    if (size > kMaxLackeyAccessBytes) {
      error = fmt::format("the size is larger than {} bytes (lackey's are at most 512)", kMaxLackeyAccessBytes);
      return false;
    }
  }
  if (digits == 0 || size == 0) {
    error = "expected a decimal size of at least 1 after ','";
    return false;
  }
  if (pos != line.size()) {
    error = fmt::format("unexpected '{}' after the size", excerpt(line.substr(pos)));
    return false;
  }
  ++stats_.records;
  switch (kind) {
    case 'I':
      ++stats_.instructions;
      return access(va, size, hw::AccessKind::Fetch, error);
    case 'L':
      ++stats_.loads;
      return access(va, size, hw::AccessKind::Read, error);
    case 'S':
      ++stats_.stores;
      return access(va, size, hw::AccessKind::Write, error);
    default:
      ++stats_.modifies;
      return access(va, size, hw::AccessKind::Read, error) && access(va, size, hw::AccessKind::Write, error);
  }
}

LackeyStats LackeyReplayer::stats() const {
  LackeyStats s = stats_;
  s.l1_hits = tlb_.counters().l1_hits;
  s.l2_hits = tlb_.counters().l2_hits;
  s.misses = tlb_.counters().misses;
  return s;
}

std::optional<LackeyStats> replay_lackey(std::istream& in, const std::string& file_name,
                                         const hw::TlbGeometry& geometry, std::string& error) {
  LackeyReplayer replayer(geometry);
  // A trace is a stream (a pipe from valgrind, or gigabytes on disk): its
  // lines are bounded, not its length.
  LineReader lines(in, file_name, TextLimits{kMaxLackeyLineBytes, 0, "a trace"});
  std::string_view line;
  std::string message;
  while (lines.next(line)) {
    if (!replayer.feed_line(line, message)) {
      error = fmt::format("{}:{}: error: {}", file_name, lines.line_number(), message);
      return std::nullopt;
    }
  }
  if (lines.error()) {
    error = lines.error()->message("pagelab");
    return std::nullopt;
  }
  return replayer.stats();
}

std::string format_lackey_text(const LackeyStats& s, const std::string& file_name, const std::string& tlb_name) {
  const auto percent = [&](u64 n) { return s.translations == 0 ? 0.0 : 100.0 * static_cast<double>(n) / static_cast<double>(s.translations); };
  std::string out = fmt::format("trace {} through a {} TLB\n", file_name, tlb_name);
  out += fmt::format("records           {} (I {}, L {}, S {}, M {}; {} other lines skipped)\n", s.records, s.instructions,
                     s.loads, s.stores, s.modifies, s.skipped_lines);
  out += fmt::format("accesses          {} (fetch {}, load {}, store {}; {} crossing a page)\n", s.accesses,
                     s.instructions, s.loads + s.modifies, s.stores + s.modifies, s.page_crossings);
  out += fmt::format("translations      {}\n", s.translations);
  out += fmt::format("TLB L1 hits       {} ({:.2f}%)\n", s.l1_hits, percent(s.l1_hits));
  out += fmt::format("TLB L2 hits       {} ({:.2f}%)\n", s.l2_hits, percent(s.l2_hits));
  out += fmt::format("TLB misses        {} ({:.2f}%)\n", s.misses, percent(s.misses));
  out += fmt::format("walks             {} ({} after a page fault, {} to set a dirty flag)\n", s.walks, s.page_faults,
                     s.dirty_walks);
  out += fmt::format("page faults       {}\n", s.page_faults);
  out += fmt::format("pages touched     {} ({} KiB)\n", s.pages, s.pages * 4);
  out += fmt::format("page-table pages  {}\n", s.page_table_pages);
  return out;
}

namespace {
std::string json_string(const std::string& text) {
  std::string s = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      s += '\\';
      s += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      s += fmt::format("\\u{:04x}", static_cast<unsigned>(static_cast<unsigned char>(c)));
    } else {
      s += c;
    }
  }
  return s + "\"";
}
}  // namespace

std::string format_lackey_json(const LackeyStats& s, const std::string& file_name, const std::string& tlb_name) {
  return fmt::format(
      "{{\"file\": {}, \"tlb\": {}, \"records\": {}, \"skipped_lines\": {}, "
      "\"lines\": {{\"I\": {}, \"L\": {}, \"S\": {}, \"M\": {}}}, "
      "\"accesses\": {{\"total\": {}, \"fetch\": {}, \"load\": {}, \"store\": {}, \"page_crossings\": {}}}, "
      "\"translations\": {}, \"tlb_hits\": {{\"l1\": {}, \"l2\": {}}}, \"tlb_misses\": {}, "
      "\"walks\": {}, \"dirty_walks\": {}, \"page_faults\": {}, \"pages\": {}, \"page_table_pages\": {}}}\n",
      json_string(file_name), json_string(tlb_name), s.records, s.skipped_lines, s.instructions, s.loads, s.stores,
      s.modifies, s.accesses, s.instructions, s.loads + s.modifies, s.stores + s.modifies, s.page_crossings,
      s.translations, s.l1_hits, s.l2_hits, s.misses, s.walks, s.dirty_walks, s.page_faults, s.pages,
      s.page_table_pages);
}

int trace_command(const std::string& file, const std::string& tlb, bool json) {
  const hw::NamedTlbGeometry named = hw::tlb_geometry_named(tlb);
  if (!named.ok()) {
    std::fprintf(stderr, "pagelab trace: --tlb: %s\n", named.error.c_str());
    return 2;
  }
  std::ifstream in;
  if (const std::optional<InputError> failure = open_text_input(file, in)) {
    std::fprintf(stderr, "%s\n", failure->message("pagelab").c_str());
    return 2;
  }
  std::string error;
  const std::optional<LackeyStats> stats = replay_lackey(in, file, named.geometry, error);
  if (!stats) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return 2;
  }
  const std::string out = json ? format_lackey_json(*stats, file, tlb) : format_lackey_text(*stats, file, tlb);
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

}  // namespace pagelab::emu
