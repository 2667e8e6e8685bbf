// `pagelab trace`: the lackey replay, checked against counts computed
// independently by a model of a fully associative LRU TLB (a std::list) with
// demand-zero mapping, on hand-written traces, a generated one, and (when
// valgrind is installed) a trace recorded from a real program.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <list>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>

#include "emu/cli/lackey_replay.hpp"

namespace {

using pagelab::emu::LackeyStats;
using pagelab::emu::replay_lackey;
namespace hw = pagelab::hw;

// One fully associative array of `entries`, every page size, no L2.
hw::TlbGeometry fully_associative(unsigned entries) {
  hw::TlbGeometry g;
  g.name = "fa" + std::to_string(entries);
  g.l1d = {hw::TlbArrayGeometry{.sets = 1, .ways = entries, .sizes = hw::kAllSizes}};
  return g;
}

// The independent model: what the replay must count.
struct Model {
  struct Cached {
    std::uint64_t page;
    bool dirty;
  };
  unsigned capacity;
  std::list<Cached> lru;                      // most recently used first
  std::map<std::uint64_t, bool> pte_dirty;    // pages mapped so far, and their D flag
  std::uint64_t records = 0, accesses = 0, translations = 0, hits = 0, misses = 0, walks = 0, dirty_walks = 0,
                faults = 0, skipped = 0;
  std::uint64_t by_kind[4] = {0, 0, 0, 0};    // I L S M

  explicit Model(unsigned n) : capacity(n) {}

  void translate(std::uint64_t page, bool store) {
    ++translations;
    for (auto it = lru.begin(); it != lru.end(); ++it) {
      if (it->page != page) continue;
      ++hits;
      Cached c = *it;
      lru.erase(it);
      if (store && !c.dirty) {  // walk again to set D
        ++dirty_walks;
        ++walks;
        pte_dirty[page] = true;
        c.dirty = true;
      }
      lru.push_front(c);
      return;
    }
    ++misses;
    ++walks;
    if (!pte_dirty.count(page)) {
      ++faults;
      ++walks;
      pte_dirty[page] = false;
    }
    if (store) pte_dirty[page] = true;
    lru.push_front(Cached{page, pte_dirty[page]});
    if (lru.size() > capacity) lru.pop_back();
  }
  void access(std::uint64_t va, std::uint64_t size, bool store) {
    ++accesses;
    for (std::uint64_t page = va >> 12; page <= (va + size - 1) >> 12; ++page) translate(page, store);
  }
  void line(const std::string& text) {
    char kind = 0;
    unsigned long long va = 0, size = 0;
    if (std::sscanf(text.c_str(), " %c %llx,%llu", &kind, &va, &size) != 3 || std::string("ILSM").find(kind) == std::string::npos) {
      ++skipped;
      return;
    }
    ++records;
    ++by_kind[std::string("ILSM").find(kind)];
    if (kind == 'M') {
      access(va, size, false);
      access(va, size, true);
    } else {
      access(va, size, kind == 'S');
    }
  }
};

void expect_same(const LackeyStats& s, const Model& m) {
  EXPECT_EQ(s.records, m.records);
  EXPECT_EQ(s.instructions, m.by_kind[0]);
  EXPECT_EQ(s.loads, m.by_kind[1]);
  EXPECT_EQ(s.stores, m.by_kind[2]);
  EXPECT_EQ(s.modifies, m.by_kind[3]);
  EXPECT_EQ(s.skipped_lines, m.skipped);
  EXPECT_EQ(s.accesses, m.accesses);
  EXPECT_EQ(s.translations, m.translations);
  EXPECT_EQ(s.l1_hits, m.hits);
  EXPECT_EQ(s.l2_hits, 0u);
  EXPECT_EQ(s.misses, m.misses);
  EXPECT_EQ(s.walks, m.walks);
  EXPECT_EQ(s.dirty_walks, m.dirty_walks);
  EXPECT_EQ(s.page_faults, m.faults);
  EXPECT_EQ(s.pages, m.pte_dirty.size());
}

LackeyStats replay(const std::string& text, const hw::TlbGeometry& geometry) {
  std::istringstream in(text);
  std::string error;
  const auto stats = replay_lackey(in, "t.lackey", geometry, error);
  EXPECT_TRUE(stats.has_value()) << error;
  return stats.value_or(LackeyStats{});
}

Model model_of(const std::string& text, unsigned entries) {
  Model m(entries);
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) m.line(line);
  return m;
}

const char* const kHandWritten =
    "==4242== Lackey, an example Valgrind tool\n"
    "==4242== Command: ./a.out\n"
    "\n"
    "I  04000000,3\n"        // page 0x4000: fault
    " L 1ffefff9e0,8\n"      // stack page: fault
    "I  04000003,4\n"        // hit
    " S 1ffefff9e8,8\n"      // hit, clean -> dirty walk
    " S 1ffefff9f0,8\n"      // hit, dirty
    "I  04000ffe,5\n"        // crosses into page 0x4001: hit + fault
    " M 00601000,4\n"        // load: fault; store: hit, dirty walk
    " L 00602ffc,8\n"        // crosses 0x602/0x603: two faults (evicts)
    " L 1ffefff9e0,8\n"      // the stack page: evicted? (5 pages, 4 entries)
    "I  04000007,2\n"
    " S 00603000,8\n"
    " L 00601000,4\n"
    "==4242== \n"
    "==4242== I   refs:      5\n";

TEST(LackeyReplay, HandWrittenTraceMatchesTheModel) {
  for (unsigned entries : {1u, 2u, 4u, 64u}) {
    SCOPED_TRACE(entries);
    const LackeyStats s = replay(kHandWritten, fully_associative(entries));
    const Model m = model_of(kHandWritten, entries);
    expect_same(s, m);
    // Counts this trace fixes whatever the TLB.
    EXPECT_EQ(s.records, 12u);
    EXPECT_EQ(s.accesses, 13u);  // M is a load and a store
    EXPECT_EQ(s.page_crossings, 2u);
    EXPECT_EQ(s.page_faults, 6u);  // 0x4000, stack, 0x4001, 0x601, 0x602, 0x603
    EXPECT_EQ(s.pages, 6u);
    EXPECT_EQ(s.skipped_lines, 5u);
    EXPECT_EQ(s.l1_hits + s.l2_hits + s.misses, s.translations);
    EXPECT_EQ(s.walks, s.misses + s.page_faults + s.dirty_walks);
    // Root and PDPT; a PD for the low pages with two PTs (PDE 32 for
    // 0x4000000, PDE 3 for 0x601000); the stack (PDPTE 127) a PD and a PT.
    EXPECT_EQ(s.page_table_pages, 1u + 1u + 2u + 3u);
  }
  // The exact counts for 4 entries, worked out by hand.
  const LackeyStats s = replay(kHandWritten, fully_associative(4));
  EXPECT_EQ(s.translations, 15u);
  // LRU of 4: the six first touches, then the stack page, 0x4000 and 0x601
  // again after their eviction.
  EXPECT_EQ(s.misses, 9u);
  // Stores through clean entries: the stack page, 0x601 (M), 0x603.
  EXPECT_EQ(s.dirty_walks, 3u);
  EXPECT_EQ(s.walks, 9u + 6u + 3u);
}

TEST(LackeyReplay, GeneratedTraceMatchesTheModel) {
  std::mt19937_64 random(12345);
  std::string text;
  const char kinds[] = {'I', 'L', 'S', 'M'};
  for (int i = 0; i < 20000; ++i) {
    const std::uint64_t page = random() % 40;
    const std::uint64_t base = (page < 20 ? 0x400000 : 0x7ff000000000) + page * 4096;
    const std::uint64_t va = base + random() % 4096;
    const unsigned size = 1u << (random() % 4);
    const char kind = kinds[random() % 4];
    char line[64];
    std::snprintf(line, sizeof(line), "%s%c %llx,%u\n", kind == 'I' ? "" : " ", kind,
                  static_cast<unsigned long long>(va), size);
    text += line;
    if (i % 1000 == 0) text += "==1== a valgrind line\n";
  }
  for (unsigned entries : {4u, 16u, 32u}) {
    SCOPED_TRACE(entries);
    expect_same(replay(text, fully_associative(entries)), model_of(text, entries));
  }
}

TEST(LackeyReplay, PresetsCountEveryTranslationOnce) {
  for (const char* name : {"tiny", "skylake", "zen2"}) {
    const auto named = hw::tlb_geometry_named(name);
    ASSERT_TRUE(named.ok()) << named.error;
    const LackeyStats s = replay(kHandWritten, named.geometry);
    EXPECT_EQ(s.translations, 15u) << name;
    EXPECT_EQ(s.l1_hits + s.l2_hits + s.misses, s.translations) << name;
    EXPECT_EQ(s.page_faults, 6u) << name;
  }
}

TEST(LackeyReplay, BadLinesNameFileAndLine) {
  const std::pair<const char*, const char*> cases[] = {
      {"I  0400,4\nX 1234,4\n", "t.lackey:2: error: expected an access (I, L, S or M)"},
      {" L 1234\n", "t.lackey:1: error: expected ',' and a size"},
      {" L ,4\n", "t.lackey:1: error: expected a hexadecimal address"},
      {" L 12g4,4\n", "t.lackey:1: error: expected ',' and a size"},
      {" S 1234,0\n", "t.lackey:1: error: expected a decimal size of at least 1"},
      {" S 1234,\n", "t.lackey:1: error: expected a decimal size"},
      {" S 1234,4 x\n", "t.lackey:1: error: unexpected ' x' after the size"},
      {"\n\n M 12345678901234567,4\n", "t.lackey:3: error: the address does not fit in 64 bits"},
      {" L 00000000000000010000000000000000,4\n", "t.lackey:1: error: the address does not fit in 64 bits"},
      {" L 800000000000,8\n", "t.lackey:1: error: address 0x800000000000,8 is not canonical"},
      {" L 7ffffffffffc,8\n", "t.lackey:1: error: address 0x7ffffffffffc,8 is not canonical"},
      {"IL 1234,4\n", "t.lackey:1: error: expected a space after 'I'"},
  };
  for (const auto& [text, message] : cases) {
    std::istringstream in(text);
    std::string error;
    const auto stats = replay_lackey(in, "t.lackey", fully_associative(4), error);
    EXPECT_FALSE(stats.has_value()) << text;
    EXPECT_EQ(error.rfind(message, 0), 0u) << "got: " << error << "\nwanted: " << message;
  }
}

// Zeros before the 16 significant digits change nothing: the value fits.
TEST(LackeyReplay, LeadingZerosBeyondSixteenDigits) {
  const LackeyStats padded = replay("I  00000000000000000401000,4\n L 0000000000000000000000007ffffffffff8,8\n", fully_associative(4));
  const LackeyStats plain = replay("I  401000,4\n L 7ffffffffff8,8\n", fully_associative(4));
  EXPECT_EQ(padded.records, 2u);
  EXPECT_EQ(padded.pages, plain.pages);
  EXPECT_EQ(padded.misses, plain.misses);
}

// An endless stream of bytes with no line break: an istream that never ends.
class EndlessBytes : public std::streambuf {
 public:
  explicit EndlessBytes(char byte) { std::fill(std::begin(block_), std::end(block_), byte); }

 protected:
  int_type underflow() override {
    ++blocks_;
    setg(block_, block_, block_ + sizeof block_);
    return traits_type::to_int_type(block_[0]);
  }

 public:
  std::size_t blocks_ = 0;

 private:
  char block_[4096];
};

// A trace is a stream, so only its lines are bounded: a NUL byte or a line
// past kMaxLackeyLineBytes stops it at once, with its place.
TEST(LackeyReplay, BinaryOrEndlessLinesStopAtOnce) {
  const std::string line_limit = std::to_string(pagelab::emu::kMaxLackeyLineBytes);
  const std::pair<std::string, std::string> cases[] = {
      {std::string("I  0400,4\n L 04\0 0,4\n", 21), "t.lackey:2:6: error: binary data (a NUL byte), not text"},
      {"I  0400,4\n==1== " + std::string(pagelab::emu::kMaxLackeyLineBytes, 'x') + "\n",
       "t.lackey:2:" + std::to_string(pagelab::emu::kMaxLackeyLineBytes + 1) + ": error: line longer than " + line_limit + " bytes"},
      {"I  0400,4\n" + std::string(100000, 'y'),  // no line break at all
       "t.lackey:2:" + std::to_string(pagelab::emu::kMaxLackeyLineBytes + 1) + ": error: line longer than " + line_limit + " bytes"},
  };
  for (const auto& [text, message] : cases) {
    std::istringstream in(text);
    std::string error;
    EXPECT_FALSE(replay_lackey(in, "t.lackey", fully_associative(4), error).has_value());
    EXPECT_EQ(error, message);
  }
  for (const char byte : {'\0', 'z'}) {
    EndlessBytes bytes(byte);
    std::istream in(&bytes);
    std::string error;
    EXPECT_FALSE(replay_lackey(in, "endless", fully_associative(4), error).has_value());
    EXPECT_EQ(error, byte == 'z' ? "endless:1:" + std::to_string(pagelab::emu::kMaxLackeyLineBytes + 1) +
                                       ": error: line longer than " + line_limit + " bytes"
                                 : std::string("endless:1:1: error: binary data (a NUL byte), not text"));
    EXPECT_LE(bytes.blocks_, 64u) << "read far past the first line";
  }
}

TEST(LackeyReplay, CommandExitStatus) {
  const std::string path = "/tmp/pagelab-lackey-test-" + std::to_string(::getpid()) + ".txt";
  {
    std::ofstream out(path);
    out << kHandWritten;
  }
  EXPECT_EQ(pagelab::emu::trace_command(path, "skylake", false), 0);
  EXPECT_EQ(pagelab::emu::trace_command(path, "tiny", true), 0);
  EXPECT_EQ(pagelab::emu::trace_command(path, "pentium", false), 2);
  EXPECT_EQ(pagelab::emu::trace_command("/nonexistent/trace.txt", "skylake", false), 2);
  EXPECT_EQ(pagelab::emu::trace_command("/tmp", "skylake", false), 2);  // a directory
  EXPECT_EQ(pagelab::emu::trace_command("/dev/zero", "skylake", false), 2);
  {
    std::ofstream out(path);
    out << "I  0400,4\n?\n";
  }
  EXPECT_EQ(pagelab::emu::trace_command(path, "skylake", false), 2);
  std::remove(path.c_str());
}

TEST(LackeyReplay, FormatsAreCompleteAndJsonIsOneObject) {
  const LackeyStats s = replay(kHandWritten, fully_associative(4));
  const std::string text = pagelab::emu::format_lackey_text(s, "t.lackey", "fa4");
  for (const char* key : {"records           12 (I 4, L 4, S 3, M 1", "accesses          13", "translations      15",
                          "TLB L1 hits", "TLB L2 hits       0", "TLB misses        9", "walks", "page faults       6",
                          "pages touched     6", "page-table pages  7"}) {
    EXPECT_NE(text.find(key), std::string::npos) << key << "\n" << text;
  }
  const std::string json = pagelab::emu::format_lackey_json(s, "t\"x", "fa4");
  EXPECT_EQ(json.front(), '{');
  EXPECT_EQ(json.substr(json.size() - 2), "}\n");
  for (const char* key : {"\"file\": \"t\\\"x\"", "\"records\": 12,", "\"tlb_misses\": 9,", "\"page_faults\": 6,",
                          "\"accesses\": {\"total\": 13, \"fetch\": 4, \"load\": 5, \"store\": 4"}) {
    EXPECT_NE(json.find(key), std::string::npos) << key << "\n" << json;
  }
}

// A trace recorded from a real program, when valgrind is there.
TEST(LackeyReplay, RealProgramTraceMatchesTheModel) {
  if (std::system("command -v valgrind >/dev/null 2>&1") != 0) GTEST_SKIP() << "valgrind is not installed";
  const std::string path = "/tmp/pagelab-lackey-real-" + std::to_string(::getpid()) + ".txt";
  const std::string command = "valgrind --tool=lackey --trace-mem=yes /bin/true 2> " + path;
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  std::remove(path.c_str());
  const Model m = model_of(text.str(), 64);
  ASSERT_GT(m.records, 1000u);
  expect_same(replay(text.str(), fully_associative(64)), m);
}

}  // namespace
