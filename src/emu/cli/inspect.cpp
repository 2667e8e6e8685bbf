#include "emu/cli/inspect.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <cstring>
#include <optional>
#include <vector>

namespace pagelab::emu {

namespace {

using u64 = std::uint64_t;

// Entry bits (SDM tables 4-15 to 4-20) and pagelab's software bits, spelled
// out here again: inspect shares nothing with the mapper it inspects.
constexpr u64 kP = u64{1} << 0;
constexpr u64 kRW = u64{1} << 1;
constexpr u64 kUS = u64{1} << 2;
constexpr u64 kPWT = u64{1} << 3;
constexpr u64 kPCD = u64{1} << 4;
constexpr u64 kA = u64{1} << 5;
constexpr u64 kD = u64{1} << 6;
constexpr u64 kPS = u64{1} << 7;
constexpr u64 kG = u64{1} << 8;
constexpr u64 kCow = u64{1} << 9;
constexpr u64 kParked = u64{1} << 10;
constexpr u64 kNX = u64{1} << 63;
constexpr u64 kAddress = 0x000FFFFFFFFFF000;
constexpr u64 kRootMask = 0x000FFFFFFFFFF000;
constexpr int kLowerHalfEntries = 256;
// A garbage tree (a destroyed space whose frames were reused) must not print
// forever.
constexpr u64 kMaxItems = 200000;

constexpr u64 span_of(int level) { return u64{1} << (12 + 9 * (level - 1)); }
constexpr u64 index_of(u64 va, int level) { return (va >> (12 + 9 * (level - 1))) & 511; }

const char* table_name(int level) {
  switch (level) {
    case 4: return "PML4";
    case 3: return "PDPT";
    case 2: return "PD";
    default: return "PT";
  }
}
const char* entry_name(int level) {
  switch (level) {
    case 4: return "PML4E";
    case 3: return "PDPTE";
    case 2: return "PDE";
    default: return "PTE";
  }
}
const char* size_name(int level) { return level == 1 ? "4K" : level == 2 ? "2M" : "1G"; }

// The 8 bytes at physical address `pa`, or nullopt outside the RAM.
std::optional<u64> read_entry(const Ram& ram, u64 pa) {
  if (pa % 8 != 0 || pa >= ram.bytes() || ram.bytes() - pa < 8) return std::nullopt;
  u64 value;
  std::memcpy(&value, ram.frames() + pa, sizeof(value));
  return value;
}
bool table_in_ram(const Ram& ram, u64 table) { return table % 4096 == 0 && table < ram.bytes() && ram.bytes() - table >= 4096; }

bool is_leaf(u64 entry, int level) { return level == 1 || (level <= 3 && (entry & kPS)); }
bool is_parked(u64 entry) { return !(entry & kP) && (entry & kParked); }
// The frame a leaf of `level` maps (large leaves: bit 12 is PAT, not address).
u64 leaf_frame(u64 entry, int level) { return entry & kAddress & ~(span_of(level) - 1); }

// Reserved bits the hardware would fault on (the subset a read-only
// inspector can name): PS in a PML4E, the low address bits of a large leaf.
bool has_reserved_bits(u64 entry, int level) {
  if (level == 4) return (entry & kPS) != 0;
  if (level <= 3 && level >= 2 && (entry & kPS)) return (entry & (span_of(level) - 1) & ~u64{0x1FFF}) != 0;
  return false;
}

std::string hex(u64 v) { return fmt::format("{:#x}", v); }
std::string range(u64 first, u64 bytes) { return fmt::format("{:#014x}-{:#014x}", first, first + bytes - 1); }

// Rights of a leaf's translation, combined over the levels (SDM 4.6).
struct Rights {
  bool writable = true;
  bool user = true;
  bool nx = false;
  void combine(u64 e) {
    writable = writable && (e & kRW);
    user = user && (e & kUS);
    nx = nx || (e & kNX);
  }
  std::string describe() const {
    return fmt::format("{}, {}, {}", writable ? "writable" : "read-only", user ? "user" : "supervisor",
                       nx ? "no-execute" : "executable");
  }
};

// The tree, as a visitor over present tables and leaves.
struct TreeVisitor {
  virtual ~TreeVisitor() = default;
  // A table at `level` at `table`, reached through `entry` (0 for the root).
  virtual void table(int level, u64 table, int depth) = 0;
  // A present entry of a table (the edge to a child table, or a leaf).
  virtual void child_table(int level, u64 parent, unsigned index, u64 va, u64 entry, u64 child, int depth) = 0;
  virtual void leaf(int level, u64 parent, unsigned index, u64 va, u64 entry, int depth) = 0;
  virtual void bad_entry(int level, u64 parent, unsigned index, u64 va, u64 entry, const char* why, int depth) = 0;
};

struct TreeCounts {
  u64 tables = 0;
  u64 leaves[4] = {0, 0, 0, 0};  // by level 1..3
  u64 parked = 0;
  u64 bad = 0;
  u64 items = 0;
  bool truncated = false;
};

void visit_table(const Ram& ram, int level, u64 table, u64 va_base, int depth, TreeVisitor& v, TreeCounts& counts) {
  ++counts.tables;
  v.table(level, table, depth);
  const unsigned entries = level == 4 ? kLowerHalfEntries : 512;
  for (unsigned i = 0; i < entries; ++i) {
    if (counts.items >= kMaxItems) {
      counts.truncated = true;
      return;
    }
    const u64 e = *read_entry(ram, table + 8 * i);
    if (e == 0) continue;
    const u64 va = va_base + u64{i} * span_of(level);
    ++counts.items;
    if (!(e & kP)) {
      if (is_parked(e)) {
        ++counts.parked;
        v.leaf(level, table, i, va, e, depth + 1);
      } else {
        ++counts.bad;
        v.bad_entry(level, table, i, va, e, "not present, not parked", depth + 1);
      }
      continue;
    }
    if (has_reserved_bits(e, level)) {
      ++counts.bad;
      v.bad_entry(level, table, i, va, e, "reserved bits set", depth + 1);
      continue;
    }
    if (is_leaf(e, level)) {
      ++counts.leaves[level];
      v.leaf(level, table, i, va, e, depth + 1);
      continue;
    }
    const u64 child = e & kAddress;
    if (!table_in_ram(ram, child)) {
      ++counts.bad;
      v.bad_entry(level, table, i, va, e, "table outside RAM", depth + 1);
      continue;
    }
    v.child_table(level, table, i, va, e, child, depth + 1);
    visit_table(ram, level - 1, child, va, depth + 1, v, counts);
  }
}

// The pattern the core's PhysicalMemory writes over freed frames
// (mm::kPoisonPattern), spelled out again: a root that holds it was freed.
constexpr u64 kFreedFramePoison = 0xDEADF4A3DEADF4A3ull;

// Does the root's lower half hold no entry a live tree could hold (present,
// no PS, pointing at a table inside the RAM, or parked)? That is what a
// space the run destroyed leaves: a zeroed root, or one poisoned when freed.
bool lower_half_empty(const Ram& ram, u64 root) {
  for (unsigned i = 0; i < kLowerHalfEntries; ++i) {
    const u64 e = *read_entry(ram, root + 8 * i);
    if (e == 0 || e == kFreedFramePoison) continue;
    if ((e & kP) && !(e & kPS) && table_in_ram(ram, e & kAddress)) return false;
  }
  return true;
}
bool root_poisoned(const Ram& ram, u64 root) { return *read_entry(ram, root) == kFreedFramePoison; }
std::string destroyed_line(const Ram& ram, u64 root, const std::string& name) {
  return fmt::format("space {}: no mappings (the run destroyed it{})\n", name,
                     root_poisoned(ram, root) ? "; its root frame holds the freed-frame poison" : "");
}

std::string summary(const TreeCounts& c) {
  std::string s = fmt::format("{} table{}, {} leaves ({} x 4K, {} x 2M, {} x 1G)", c.tables, c.tables == 1 ? "" : "s",
                              c.leaves[1] + c.leaves[2] + c.leaves[3], c.leaves[1], c.leaves[2], c.leaves[3]);
  if (c.parked != 0) s += fmt::format(", {} parked", c.parked);
  if (c.bad != 0) s += fmt::format(", {} bad entr{}", c.bad, c.bad == 1 ? "y" : "ies");
  if (c.truncated) s += fmt::format(" (stopped after {} entries)", kMaxItems);
  return s;
}

class TextTree final : public TreeVisitor {
 public:
  std::string out;
  void table(int level, u64 table_pa, int depth) override {
    if (depth == 0) out += fmt::format("{} @{}\n", table_name(level), hex(table_pa));
  }
  void child_table(int level, u64, unsigned index, u64 va, u64 entry, u64 child, int depth) override {
    out += fmt::format("{:{}}[{:3}] {} {} @{}  {}  ({})\n", "", 2 * depth, index, range(va, span_of(level)),
                       table_name(level - 1), hex(child), hex(entry), describe_entry_flags(entry, level));
  }
  void leaf(int level, u64, unsigned index, u64 va, u64 entry, int depth) override {
    out += fmt::format("{:{}}[{:3}] {} {} page -> {}{}  {}  ({})\n", "", 2 * depth, index, range(va, span_of(level)),
                       size_name(level), hex(leaf_frame(entry, level)), is_parked(entry) ? " (parked)" : "", hex(entry),
                       describe_entry_flags(entry, level));
  }
  void bad_entry(int level, u64, unsigned index, u64 va, u64 entry, const char* why, int depth) override {
    out += fmt::format("{:{}}[{:3}] {} {}: {}  ({})\n", "", 2 * depth, index, range(va, span_of(level)), why, hex(entry),
                       describe_entry_flags(entry, level));
  }
};

std::string space_title(const std::string& name, u64 cr3) {
  return fmt::format("space {} (cr3 {}, root {}, pcid {})", name, hex(cr3), hex(cr3 & kRootMask), cr3 & 0xFFF);
}

// Graphviz identifiers: only [A-Za-z0-9_].
std::string dot_id(const std::string& text) {
  std::string id;
  for (char c : text) id += (std::isalnum(static_cast<unsigned char>(c)) ? c : '_');
  return id;
}
std::string dot_escape(const std::string& text) {
  std::string s;
  for (char c : text) {
    if (c == '"' || c == '\\') s += '\\';
    s += c;
  }
  return s;
}

class DotTree final : public TreeVisitor {
 public:
  explicit DotTree(std::string prefix) : prefix_(std::move(prefix)) {}
  std::string out;

  void table(int level, u64 table_pa, int) override {
    flush_run();
    out += fmt::format("    {} [label=\"{} @{}\", shape=box];\n", table_id(table_pa), table_name(level), hex(table_pa));
  }
  void child_table(int level, u64 parent, unsigned index, u64, u64, u64 child, int) override {
    flush_run();
    (void)level;
    out += fmt::format("    {} -> {} [label=\"{}\"];\n", table_id(parent), table_id(child), index);
  }
  void leaf(int level, u64 parent, unsigned index, u64 va, u64 entry, int) override {
    const u64 bytes = span_of(level);
    const u64 frame = leaf_frame(entry, level);
    const bool parked = is_parked(entry);
    // Extends the current run: same table, next index, next frame, same flags.
    if (run_.count != 0 && run_.parent == parent && run_.last_index + 1 == index && run_.level == level &&
        run_.frame + run_.count * bytes == frame && (run_.entry & ~kAddress) == (entry & ~kAddress) && !parked &&
        !run_.parked) {
      ++run_.count;
      run_.last_index = index;
      return;
    }
    flush_run();
    run_ = Run{level, parent, index, index, va, frame, entry, 1, parked};
  }
  void bad_entry(int level, u64 parent, unsigned index, u64 va, u64 entry, const char* why, int) override {
    flush_run();
    const std::string id = fmt::format("{}_bad_{:x}_{}", prefix_, parent, index);
    out += fmt::format("    {} [label=\"{}\\n{}\\n{}\", shape=octagon, color=red];\n", id, why, range(va, span_of(level)),
                       hex(entry));
    out += fmt::format("    {} -> {} [label=\"{}\"];\n", table_id(parent), id, index);
  }
  void finish() { flush_run(); }

 private:
  struct Run {
    int level = 0;
    u64 parent = 0;
    unsigned first_index = 0;
    unsigned last_index = 0;
    u64 va = 0;
    u64 frame = 0;
    u64 entry = 0;
    u64 count = 0;
    bool parked = false;
  };
  std::string table_id(u64 table) const { return fmt::format("{}_t{:x}", prefix_, table); }
  void flush_run() {
    if (run_.count == 0) return;
    const u64 bytes = span_of(run_.level);
    const std::string id = fmt::format("{}_l{:x}_{}", prefix_, run_.parent, run_.first_index);
    const std::string count = run_.count == 1 ? std::string(size_name(run_.level))
                                              : fmt::format("{} x {}", run_.count, size_name(run_.level));
    out += fmt::format("    {} [label=\"{}{}\\n{}\\n-> {}\\n{}\", shape=ellipse];\n", id, count,
                       run_.parked ? " parked" : "", range(run_.va, bytes * run_.count), hex(run_.frame),
                       describe_entry_flags(run_.entry, run_.level));
    const std::string label = run_.count == 1 ? fmt::format("{}", run_.first_index)
                                              : fmt::format("{}-{}", run_.first_index, run_.last_index);
    out += fmt::format("    {}_t{:x} -> {} [label=\"{}\"];\n", prefix_, run_.parent, id, label);
    run_ = Run{};
  }

  std::string prefix_;
  Run run_;
};

// The body of one space's cluster in a digraph.
std::string dot_cluster(const Ram& ram, u64 cr3, const std::string& name, unsigned number) {
  const std::string prefix = fmt::format("s{}_{}", number, dot_id(name));
  std::string out = fmt::format("  subgraph cluster_{} {{\n    label=\"{}\";\n", prefix, dot_escape(space_title(name, cr3)));
  const u64 root = cr3 & kRootMask;
  if (!table_in_ram(ram, root)) {
    out += fmt::format("    {}_none [label=\"root {} outside RAM\", shape=plaintext];\n", prefix, hex(root));
  } else if (lower_half_empty(ram, root)) {
    out += fmt::format("    {}_none [label=\"no mappings (the run destroyed it)\", shape=plaintext];\n", prefix);
  } else {
    DotTree tree(prefix);
    TreeCounts counts;
    visit_table(ram, 4, root, 0, 0, tree, counts);
    tree.finish();
    out += tree.out;
  }
  out += "  }\n";
  return out;
}

std::string header_line(u64 bytes) { return fmt::format("{} KiB of RAM", bytes / 1024); }

}  // namespace

std::string describe_entry_flags(u64 entry, int level) {
  std::string s;
  const auto add = [&](u64 bit, const char* name) {
    if (entry & bit) {
      if (!s.empty()) s += ' ';
      s += name;
    }
  };
  add(kP, "P");
  add(kRW, "RW");
  add(kUS, "US");
  add(kPWT, "PWT");
  add(kPCD, "PCD");
  add(kA, "A");
  add(kD, "D");
  if (level == 3 || level == 2) add(kPS, "PS");
  if (level == 1) add(kPS, "PAT");
  if (level == 4) add(kPS, "PS!");
  add(kG, "G");
  add(kNX, "NX");
  add(kCow, "COW");
  add(kParked, "PARKED");
  return s.empty() ? "-" : s;
}

std::string inspect_address(const Ram& ram, u64 cr3, u64 va) {
  std::string out = fmt::format("va {}\n", hex(va));
  const u64 top = va >> 47;
  if (top != 0 && top != 0x1FFFF) return out + "  stopped: not canonical (#GP, no walk)\n";
  u64 table = cr3 & kRootMask;
  Rights rights;
  for (int level = 4; level >= 1; --level) {
    const unsigned index = static_cast<unsigned>(index_of(va, level));
    const u64 address = table + 8 * index;
    const std::optional<u64> e = read_entry(ram, address);
    if (!e) {
      return out + fmt::format("  stopped: the {} at {} lies outside the RAM ({} bytes)\n", table_name(level), hex(table),
                               ram.bytes());
    }
    out += fmt::format("  {:<5} [{:3}] @{:#014x} = {:#018x}  {}\n", entry_name(level), index, address, *e,
                       describe_entry_flags(*e, level));
    if (!(*e & kP)) {
      if (is_parked(*e)) {
        return out + fmt::format("  stopped at {}: not present (parked: PROT_NONE page keeping frame {})\n",
                                 entry_name(level), hex(leaf_frame(*e, level)));
      }
      return out + fmt::format("  stopped at {}: not present\n", entry_name(level));
    }
    if (has_reserved_bits(*e, level)) return out + fmt::format("  stopped at {}: reserved bits set\n", entry_name(level));
    rights.combine(*e);
    if (is_leaf(*e, level)) {
      const u64 bytes = span_of(level);
      const u64 physical = leaf_frame(*e, level) | (va & (bytes - 1));
      return out + fmt::format("  => physical {} ({} page at {}; {})\n", hex(physical), size_name(level),
                               hex(leaf_frame(*e, level)), rights.describe());
    }
    table = *e & kAddress;
  }
  return out;  // not reached: level 1 is always a leaf
}

std::string inspect_tree(const Ram& ram, u64 cr3, const std::string& name) {
  std::string out = space_title(name, cr3) + "\n";
  const u64 root = cr3 & kRootMask;
  if (!table_in_ram(ram, root)) {
    return out + fmt::format("space {}: root table {} lies outside the RAM ({} bytes)\n", name, hex(root), ram.bytes());
  }
  if (lower_half_empty(ram, root)) return out + destroyed_line(ram, root, name);
  TextTree tree;
  TreeCounts counts;
  visit_table(ram, 4, root, 0, 0, tree, counts);
  return out + tree.out + "  " + summary(counts) + "\n";
}

std::string inspect_dot(const Ram& ram, u64 cr3, const std::string& name) {
  return "digraph pagelab {\n  rankdir=LR;\n  node [fontname=\"monospace\"];\n" + dot_cluster(ram, cr3, name, 0) + "}\n";
}

int inspect_command(const std::string& ram_spec, const std::string& space, const std::string& address,
                    const std::string& format) {
  const auto fail = [](const std::string& message) {
    std::fprintf(stderr, "pagelab inspect: %s\n", message.c_str());
    return 2;
  };
  if (format != "text" && format != "dot") return fail("--format takes text or dot, not '" + format + "'");
  if (format == "dot" && !address.empty()) return fail("--format dot draws a tree: it does not go with --address");
  std::optional<u64> va;
  if (!address.empty()) {
    try {
      std::size_t used = 0;
      const u64 value = std::stoull(address, &used, 0);
      if (used != address.size()) throw std::invalid_argument(address);
      va = value;
    } catch (...) {
      return fail("--address takes a number such as 0x10000000, not '" + address + "'");
    }
  }
  std::string error;
  const std::optional<RamSpec> spec = RamSpec::parse(ram_spec, error);
  if (!spec) return fail(error);
  const std::unique_ptr<Ram> ram = Ram::open_read_only(*spec, error);
  if (!ram) return fail(error);

  const RamHeader& header = ram->header();
  const std::uint32_t count = std::min(header.space_count, RamHeader::kMaxSpaces);
  struct Named {
    std::string name;
    u64 cr3;
  };
  std::vector<Named> spaces;
  for (std::uint32_t i = 0; i < count; ++i) {
    spaces.push_back(Named{std::string(header.spaces[i].name, strnlen(header.spaces[i].name, sizeof(header.spaces[i].name))),
                           header.spaces[i].cr3});
  }
  if (!space.empty()) {
    std::vector<Named> chosen;
    for (const Named& s : spaces) {
      if (s.name == space) chosen.push_back(s);
    }
    if (chosen.empty()) {
      std::string known;
      for (const Named& s : spaces) known += (known.empty() ? "" : ", ") + s.name;
      return fail("no space '" + space + "' in " + spec->describe() +
                  (known.empty() ? std::string(" (it records no spaces)") : " (known: " + known + ")"));
    }
    spaces = chosen;
  }

  std::string out;
  if (format == "dot") {
    out = "digraph pagelab {\n  rankdir=LR;\n  node [fontname=\"monospace\"];\n";
    for (unsigned i = 0; i < spaces.size(); ++i) out += dot_cluster(*ram, spaces[i].cr3, spaces[i].name, i);
    out += "}\n";
  } else {
    out = fmt::format("{}: {}, {} space{}", spec->describe(), header_line(ram->bytes()), count, count == 1 ? "" : "s");
    for (std::uint32_t i = 0; i < count; ++i) {
      out += fmt::format("{} {}", i == 0 ? ":" : ",", std::string(header.spaces[i].name, strnlen(header.spaces[i].name, sizeof(header.spaces[i].name))));
    }
    out += "\n";
    if (spaces.empty()) out += "no spaces recorded\n";
    for (const Named& s : spaces) {
      out += "\n";
      if (va) {
        out += space_title(s.name, s.cr3) + "\n";
        const u64 root = s.cr3 & kRootMask;
        if (table_in_ram(*ram, root) && lower_half_empty(*ram, root) && (*va >> 47) == 0) {
          out += destroyed_line(*ram, root, s.name);
        }
        out += inspect_address(*ram, s.cr3, *va);
      } else {
        out += inspect_tree(*ram, s.cr3, s.name);
      }
    }
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

}  // namespace pagelab::emu
