// The scenario language front end (src/emu/scenario): a complete scenario
// parsed into its AST, the lexical forms, and one row per kind of error with
// the exact `FILE:LINE:COL: error: MESSAGE` it must produce.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "emu/scenario/lexer.hpp"
#include "emu/scenario/parser.hpp"

namespace pagelab::scenario {
namespace {

using mm::Prot;

constexpr std::string_view kComplete = R"(# A scenario that uses every statement kind.
machine cpus=3 ram=64M tlb=tiny pcid=on psc=off
option pmm=bitmap
option flush-threshold=0x10
option shootdown=unsafe-active-only
seed 42

space a
map a 0x400000 16K rw populate
map a 0x800000 8K r shared
map a 0x1000000 64K rw stack
map a 0x2000000 4K rwx phys=0x3c00000 expect any
poke a 0x400008 0xdeadbeef
protect a 0x400000 4K r expect ok
pin a 0x400000 4K
fork b from a
unmap a 0x800000 4K expect EBUSY

cpu 0
  use a
  mode kernel
  read 0x400008 expect 0xdeadbeef
  write 0x400010 7 expect segv
  exec 0x2000000 expect any
  barrier go
end

cpu 2
  use b
  repeat 3
    read 0x400000
    repeat 2
      write 0x400000 1
    end
  end
  fork c from b
  use c
  map c 0x3000000 4K none expect ENOMEM
  unmap c 0x3000000 4K
  protect c 0x400000 4K rw
  pin c 0x400000 4K expect any
  barrier go
end

check value a 0x400008 == 0xdeadbeef
check mapped b 0x400000 r
check unmapped c 0x3000000
check frames leaked == 0
check faults cpu 2 >= 1
check shootdowns <= 10
)";

Scenario parse_ok(std::string_view text) {
  ParseResult result = parse_scenario(text, "t.scn");
  EXPECT_TRUE(result.ok()) << (result.ok() ? "" : result.error().to_string());
  if (!result.ok()) return Scenario{};
  return std::move(result).scenario();
}

SourceLocation at(u32 line, u32 column) { return SourceLocation{line, column}; }

// The statement or check as a T, or (after a test failure) an empty T.
template <typename T, typename Node>
const T& get(const Node& node) {
  static const T kEmpty{};
  const T* value = node.template as<T>();
  if (value == nullptr) {
    ADD_FAILURE() << "not the expected kind of node";
    return kEmpty;
  }
  return *value;
}

const CpuProgram& program(const Scenario& s, u32 cpu) {
  static const CpuProgram kEmpty{};
  const CpuProgram* found = s.program_for(cpu);
  if (found == nullptr) {
    ADD_FAILURE() << "no program for cpu " << cpu;
    return kEmpty;
  }
  return *found;
}

TEST(ScenarioParser, CompleteScenarioHeader) {
  const Scenario s = parse_ok(kComplete);
  EXPECT_EQ(s.file, "t.scn");
  EXPECT_EQ(s.machine.where, at(2, 1));
  EXPECT_EQ(s.machine.cpus, 3u);
  EXPECT_EQ(s.machine.ram_bytes, u64{64} << 20);
  EXPECT_EQ(s.machine.tlb_preset, "tiny");
  EXPECT_EQ(s.machine.tlb_where, at(2, 28));
  EXPECT_TRUE(s.machine.pcid);
  EXPECT_FALSE(s.machine.psc);

  ASSERT_EQ(s.options.given.size(), 3u);
  EXPECT_EQ(s.options.given[1].name, "flush-threshold");
  EXPECT_EQ(s.options.given[1].value, "0x10");
  EXPECT_EQ(s.options.given[1].where, at(4, 1));
  EXPECT_EQ(s.options.given[1].value_where, at(4, 24));
  EXPECT_EQ(s.options.pmm, PmmKind::Bitmap);
  EXPECT_EQ(s.options.flush_threshold, 16u);
  EXPECT_EQ(s.options.shootdown, ShootdownPolicy::UnsafeActiveOnly);
  EXPECT_TRUE(s.options.unsafe());
  EXPECT_TRUE(s.uses_unsafe_policy());
  const OptionSetting* pmm = s.options.find("pmm");
  ASSERT_NE(pmm, nullptr);
  EXPECT_EQ(pmm->value, "bitmap");
  EXPECT_EQ(s.options.find("nope"), nullptr);

  EXPECT_EQ(s.seed, 42u);
  EXPECT_EQ(s.seed_where, at(6, 1));
}

TEST(ScenarioParser, CompleteScenarioSetup) {
  const Scenario s = parse_ok(kComplete);
  ASSERT_EQ(s.setup.size(), 10u);

  const auto& space = get<SpaceStmt>(s.setup[0]);
  EXPECT_EQ(space.name, "a");
  EXPECT_EQ(s.setup[0].where, at(8, 1));

  const auto& populate = get<MapStmt>(s.setup[1]);
  EXPECT_EQ(populate.space, "a");
  EXPECT_EQ(populate.address.value(), 0x400000u);
  EXPECT_EQ(populate.length, 16u << 10);
  EXPECT_EQ(populate.prot, Prot::ReadWrite);
  EXPECT_EQ(populate.word, MapKindWord::Anon);
  EXPECT_EQ(populate.kind, mm::RegionKind::Anonymous);
  EXPECT_EQ(populate.fork, mm::ForkPolicy::Private);
  EXPECT_TRUE(populate.populate);
  EXPECT_FALSE(s.setup[1].expect.written);
  EXPECT_EQ(s.setup[1].expect.kind, OutcomeKind::Ok);
  EXPECT_EQ(s.setup[1].expect.where, at(9, 1));

  const auto& shared = get<MapStmt>(s.setup[2]);
  EXPECT_EQ(shared.prot, Prot::Read);
  EXPECT_EQ(shared.word, MapKindWord::Shared);
  EXPECT_EQ(shared.fork, mm::ForkPolicy::Shared);
  EXPECT_FALSE(shared.populate);

  const auto& stack = get<MapStmt>(s.setup[3]);
  EXPECT_EQ(stack.kind, mm::RegionKind::Stack);
  EXPECT_EQ(stack.length, 64u << 10);

  const auto& phys = get<MapStmt>(s.setup[4]);
  EXPECT_EQ(phys.prot, Prot::All);
  EXPECT_EQ(phys.kind, mm::RegionKind::Physical);
  EXPECT_EQ(phys.physical.value(), 0x3c00000u);
  EXPECT_TRUE(s.setup[4].expect.written);
  EXPECT_EQ(s.setup[4].expect.kind, OutcomeKind::Any);
  EXPECT_EQ(s.setup[4].expect.where, at(12, 46));

  const auto& poke = get<PokeStmt>(s.setup[5]);
  EXPECT_EQ(poke.address.value(), 0x400008u);
  EXPECT_EQ(poke.value, 0xdeadbeefu);

  const auto& protect = get<ProtectStmt>(s.setup[6]);
  EXPECT_EQ(protect.prot, Prot::Read);
  EXPECT_EQ(protect.length, 4096u);
  EXPECT_TRUE(s.setup[6].expect.written);
  EXPECT_EQ(s.setup[6].expect.kind, OutcomeKind::Ok);

  const auto& pin = get<PinStmt>(s.setup[7]);
  EXPECT_EQ(pin.space, "a");

  const auto& fork = get<ForkStmt>(s.setup[8]);
  EXPECT_EQ(fork.child, "b");
  EXPECT_EQ(fork.parent, "a");

  const auto& unmap = get<UnmapStmt>(s.setup[9]);
  EXPECT_EQ(unmap.address.value(), 0x800000u);
  EXPECT_EQ(s.setup[9].expect.kind, OutcomeKind::Error);
  EXPECT_EQ(s.setup[9].expect.error, mm::Status::Busy);
  EXPECT_EQ(keyword_of(s.setup[9]), "unmap");
}

TEST(ScenarioParser, CompleteScenarioCpuPrograms) {
  const Scenario s = parse_ok(kComplete);
  ASSERT_EQ(s.programs.size(), 2u);
  EXPECT_EQ(s.program_for(1), nullptr);

  const CpuProgram& cpu0 = program(s, 0);
  EXPECT_EQ(cpu0.where, at(19, 1));
  EXPECT_EQ(cpu0.end_where, at(26, 1));
  ASSERT_EQ(cpu0.body.size(), 6u);
  EXPECT_EQ(get<UseStmt>(cpu0.body[0]).space, "a");
  EXPECT_EQ(cpu0.body[0].where, at(20, 3));
  EXPECT_EQ(get<ModeStmt>(cpu0.body[1]).mode, mm::AccessMode::Kernel);
  EXPECT_EQ(get<ReadStmt>(cpu0.body[2]).address.value(), 0x400008u);
  EXPECT_EQ(cpu0.body[2].expect.kind, OutcomeKind::Value);
  EXPECT_EQ(cpu0.body[2].expect.value, 0xdeadbeefu);
  EXPECT_EQ(get<WriteStmt>(cpu0.body[3]).value, 7u);
  EXPECT_EQ(cpu0.body[3].expect.kind, OutcomeKind::Segv);
  EXPECT_EQ(cpu0.body[4].expect.kind, OutcomeKind::Any);
  EXPECT_EQ(get<BarrierStmt>(cpu0.body[5]).name, "go");

  const CpuProgram& cpu2 = program(s, 2);
  ASSERT_EQ(cpu2.body.size(), 9u);
  const auto& outer = get<RepeatStmt>(cpu2.body[1]);
  EXPECT_EQ(cpu2.body[1].where, at(30, 3));
  EXPECT_EQ(outer.count, 3u);
  EXPECT_EQ(outer.end_where, at(35, 3));
  ASSERT_EQ(outer.body.size(), 2u);
  EXPECT_TRUE(outer.body[0].is<ReadStmt>());
  const auto& inner = get<RepeatStmt>(outer.body[1]);
  EXPECT_EQ(inner.count, 2u);
  ASSERT_EQ(inner.body.size(), 1u);
  EXPECT_EQ(inner.body[0].where, at(33, 7));
  EXPECT_EQ(keyword_of(inner.body[0]), "write");
  EXPECT_EQ(get<ForkStmt>(cpu2.body[2]).child, "c");
  const auto& map = get<MapStmt>(cpu2.body[4]);
  EXPECT_EQ(map.prot, Prot::None);
  EXPECT_EQ(cpu2.body[4].expect.error, mm::Status::OutOfMemory);
  EXPECT_TRUE(cpu2.body[5].is<UnmapStmt>());
  EXPECT_EQ(get<ProtectStmt>(cpu2.body[6]).prot, Prot::ReadWrite);
  EXPECT_TRUE(cpu2.body[7].is<PinStmt>());
  EXPECT_EQ(cpu2.body[7].expect.kind, OutcomeKind::Any);

  ASSERT_EQ(s.spaces.size(), 3u);
  EXPECT_EQ(s.spaces[0].name, "a");
  EXPECT_FALSE(s.spaces[0].creator_cpu.has_value());
  EXPECT_EQ(s.spaces[1].name, "b");
  EXPECT_EQ(s.spaces[1].where, at(16, 6));
  EXPECT_EQ(s.spaces[2].name, "c");
  EXPECT_EQ(s.spaces[2].creator_cpu, 2u);
  ASSERT_NE(s.find_space("c"), nullptr);
}

TEST(ScenarioParser, CompleteScenarioChecks) {
  const Scenario s = parse_ok(kComplete);
  ASSERT_EQ(s.checks.size(), 6u);
  const auto& value = get<CheckValue>(s.checks[0]);
  EXPECT_EQ(s.checks[0].where, at(45, 1));
  EXPECT_EQ(value.space, "a");
  EXPECT_EQ(value.address.value(), 0x400008u);
  EXPECT_EQ(value.value, 0xdeadbeefu);
  const auto& mapped = get<CheckMapped>(s.checks[1]);
  EXPECT_EQ(mapped.space, "b");
  EXPECT_EQ(mapped.prot, Prot::Read);
  const auto& unmapped = get<CheckUnmapped>(s.checks[2]);
  EXPECT_EQ(unmapped.space, "c");
  const auto& leaked = get<CheckFramesLeaked>(s.checks[3]);
  EXPECT_EQ(leaked.comparison, Comparison::Equal);
  EXPECT_EQ(leaked.count, 0u);
  const auto& faults = get<CheckFaults>(s.checks[4]);
  EXPECT_EQ(faults.cpu, 2u);
  EXPECT_EQ(faults.comparison, Comparison::AtLeast);
  EXPECT_EQ(faults.count, 1u);
  const auto& shootdowns = get<CheckShootdowns>(s.checks[5]);
  EXPECT_EQ(shootdowns.comparison, Comparison::AtMost);
  EXPECT_EQ(shootdowns.count, 10u);
  EXPECT_TRUE(compare(3, shootdowns.comparison, shootdowns.count));
  EXPECT_FALSE(compare(11, shootdowns.comparison, shootdowns.count));
}

TEST(ScenarioParser, DefaultsOfAMinimalScenario) {
  const Scenario s = parse_ok("machine cpus=1 ram=1M\n");
  EXPECT_EQ(s.machine.cpus, 1u);
  EXPECT_EQ(s.machine.ram_bytes, u64{1} << 20);
  EXPECT_EQ(s.machine.tlb_preset, "skylake");
  EXPECT_FALSE(s.machine.pcid);
  EXPECT_FALSE(s.machine.psc);
  EXPECT_TRUE(s.options.given.empty());
  EXPECT_FALSE(s.options.pmm.has_value());
  EXPECT_FALSE(s.options.flush_threshold.has_value());
  EXPECT_FALSE(s.options.shootdown.has_value());
  EXPECT_FALSE(s.uses_unsafe_policy());
  EXPECT_FALSE(s.seed.has_value());
  EXPECT_TRUE(s.setup.empty());
  EXPECT_TRUE(s.programs.empty());
  EXPECT_TRUE(s.checks.empty());
}

TEST(ScenarioParser, ShootdownPoliciesSafeAndUnsafe) {
  struct Row {
    std::string_view name;
    ShootdownPolicy policy;
    bool unsafe;
  };
  const Row rows[] = {
      {"batched", ShootdownPolicy::Batched, false},
      {"broadcast", ShootdownPolicy::Broadcast, false},
      {"unsafe-free-before-ack", ShootdownPolicy::UnsafeFreeBeforeAck, true},
      {"unsafe-active-only", ShootdownPolicy::UnsafeActiveOnly, true},
      {"unsafe-no-flush", ShootdownPolicy::UnsafeNoFlush, true},
      {"unsafe-local-only", ShootdownPolicy::UnsafeLocalOnly, true},
      {"unsafe-flush-after-unlock", ShootdownPolicy::UnsafeFlushAfterUnlock, true},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.name);
    const Scenario s = parse_ok("machine cpus=2 ram=16M\noption shootdown=" + std::string(row.name) + "\n");
    EXPECT_EQ(s.options.shootdown, row.policy);
    EXPECT_EQ(s.uses_unsafe_policy(), row.unsafe);
    EXPECT_EQ(shootdown_policy_name(row.policy), row.name);
    EXPECT_EQ(is_unsafe(row.policy), row.unsafe);
  }
  EXPECT_EQ(parse_ok("machine cpus=1 ram=1M\noption pmm=buddy\n").options.pmm, PmmKind::Buddy);
  EXPECT_EQ(parse_ok("machine cpus=1 ram=1M\noption pmm=stack\n").options.pmm, PmmKind::Stack);
}

TEST(ScenarioParser, CpuForkedSpaceIsVisibleToChecks) {
  const Scenario s = parse_ok(
      "machine cpus=2 ram=16M\nspace a\ncpu 1\n  fork k from a expect ENOMEM\n  use k\nend\n"
      "check unmapped k 0x400000\n");
  ASSERT_EQ(s.checks.size(), 1u);
  EXPECT_EQ(get<CheckUnmapped>(s.checks[0]).space, "k");
}

// ---------------------------------------------------------------------------
// Lexical forms.

TEST(ScenarioLexer, Numbers) {
  struct Row {
    std::string_view text;
    u64 value;
  };
  const Row rows[] = {
      {"0", 0},
      {"42", 42},
      {"0x2A", 42},
      {"0X2a", 42},
      {"0xdeadBEEF", 0xdeadbeef},
      {"4K", 4096},
      {"16K", 16 << 10},
      {"2M", 2 << 20},
      {"1G", u64{1} << 30},
      {"0x10K", 16 << 10},
      {"18446744073709551615", ~u64{0}},
      {"0xffffffffffffffff", ~u64{0}},
      {"17179869183G", (u64{17179869183}) << 30},
  };
  for (const Row& row : rows) {
    const Lexed<u64> lexed = lex_number(row.text);
    EXPECT_TRUE(lexed.ok()) << row.text << ": " << lexed.error;
    EXPECT_EQ(lexed.value, row.value) << row.text;
  }
  struct Bad {
    std::string_view text;
    std::string_view message;
  };
  const Bad bad[] = {
      {"0x", "bad number '0x'"},
      {"K", "bad number 'K'"},
      {"1.5", "bad number '1.5'"},
      {"-1", "bad number '-1'"},
      {"0x1g", "bad number '0x1g' (size suffixes are K, M and G)"},
      {"16k", "bad number '16k' (size suffixes are K, M and G)"},
      {"12KB", "bad number '12KB'"},
      {"18446744073709551616", "number '18446744073709551616' does not fit in 64 bits"},
      {"0x10000000000000000", "number '0x10000000000000000' does not fit in 64 bits"},
      {"17179869184G", "number '17179869184G' does not fit in 64 bits"},
  };
  for (const Bad& row : bad) {
    EXPECT_EQ(lex_number(row.text).error, row.message) << row.text;
  }
}

TEST(ScenarioLexer, Protections) {
  struct Row {
    std::string_view text;
    Prot prot;
  };
  const Row rows[] = {{"none", Prot::None}, {"r", Prot::Read},      {"w", Prot::Write},          {"x", Prot::Exec},
                      {"rw", Prot::ReadWrite}, {"wr", Prot::ReadWrite}, {"rx", Prot::ReadExec}, {"xwr", Prot::All}};
  for (const Row& row : rows) {
    const Lexed<Prot> lexed = lex_prot(row.text);
    EXPECT_TRUE(lexed.ok()) << row.text;
    EXPECT_EQ(lexed.value, row.prot) << row.text;
  }
  for (const std::string_view bad : {"rr", "rwz", "r-x", "RW", "None", "---"}) {
    EXPECT_FALSE(lex_prot(bad).ok()) << bad;
  }
}

TEST(ScenarioLexer, CommentsBlankLinesAndColumns) {
  const LexResult lexed = lex_scenario("# only a comment\n\n   \t\nmachine cpus=2 ram=1M # trailing\r\n\tcheck frames leaked==0#x\n");
  ASSERT_FALSE(lexed.error.has_value());
  ASSERT_EQ(lexed.lines.size(), 2u);
  const Line& machine = lexed.lines[0];
  EXPECT_EQ(machine.number, 4u);
  ASSERT_EQ(machine.tokens.size(), 7u);  // machine cpus = 2 ram = 1M
  EXPECT_EQ(machine.tokens[1].text, "cpus");
  EXPECT_EQ(machine.tokens[2].kind, TokenKind::Operator);
  EXPECT_EQ(machine.tokens[2].column, 13u);
  EXPECT_EQ(machine.tokens[6].text, "1M");
  EXPECT_EQ(machine.end_column(), 22u);
  const Line& check = lexed.lines[1];
  EXPECT_EQ(check.number, 5u);
  ASSERT_EQ(check.tokens.size(), 5u);
  EXPECT_EQ(check.tokens[0].column, 2u);  // a tab is one column
  EXPECT_EQ(check.tokens[3].text, "==");
  EXPECT_EQ(check.tokens[4].text, "0");
}

TEST(ScenarioLexer, ByteOrderMarkIsSkipped) {
  const LexResult lexed = lex_scenario("\xEF\xBB\xBFmachine cpus=1 ram=1M\n");
  ASSERT_FALSE(lexed.error.has_value());
  ASSERT_EQ(lexed.lines.size(), 1u);
  EXPECT_EQ(lexed.lines[0].tokens[0].text, "machine");
  EXPECT_EQ(lexed.lines[0].tokens[0].column, 1u);
}

TEST(ScenarioLexer, NamesAndControlCharacters) {
  EXPECT_TRUE(is_name("a"));
  EXPECT_TRUE(is_name("_parent-2.b"));
  EXPECT_FALSE(is_name("2a"));
  EXPECT_FALSE(is_name("-a"));
  EXPECT_FALSE(is_name(""));
  const LexResult lexed = lex_scenario("machine\n  cpus\x01");
  ASSERT_TRUE(lexed.error.has_value());
  EXPECT_EQ(lexed.error->line, 2u);
  EXPECT_EQ(lexed.error->column, 7u);
}

TEST(ScenarioParser, LexicalFormsInStatements) {
  const Scenario s = parse_ok(
      "machine cpus=2 ram=0x100000\r\n"
      "\n"
      "   # indented comment\n"
      "space a   # a comment after a statement\n"
      "map a 4M 2M rx\n"
      "map\ta\t0xffff800000000000\t4K\tnone   # the kernel half: canonical, the core says EINVAL\n"
      "cpu 1\n"
      "  read 0x7ffffffff000 expect 18446744073709551615\n"
      "end\n"
      "check frames leaked==0\n"
      "check faults cpu 1<=3\n");
  EXPECT_EQ(s.machine.ram_bytes, u64{1} << 20);
  ASSERT_EQ(s.setup.size(), 3u);
  const auto& big = get<MapStmt>(s.setup[1]);
  EXPECT_EQ(big.address.value(), u64{4} << 20);
  EXPECT_EQ(big.length, u64{2} << 20);
  EXPECT_EQ(big.prot, Prot::ReadExec);
  const auto& kernel = get<MapStmt>(s.setup[2]);
  EXPECT_EQ(kernel.address.value(), 0xffff800000000000u);
  EXPECT_EQ(s.setup[2].where, at(6, 1));
  EXPECT_EQ(s.programs[0].body[0].expect.value, ~u64{0});
  EXPECT_EQ(s.programs[0].body[0].where, at(8, 3));
  ASSERT_EQ(s.checks.size(), 2u);
  EXPECT_EQ(get<CheckFaults>(s.checks[1]).comparison, Comparison::AtMost);
}

// ---------------------------------------------------------------------------
// Errors: one row per kind, with the exact message.

struct ErrorRow {
  const char* kind;
  std::string text;
  std::string expected;
};

const std::string kHead = "machine cpus=2 ram=16M\n";

std::vector<ErrorRow> error_rows() {
  return {
      // Lexical.
      {"unknown keyword", kHead + "space a\nmapp a 0x400000 4K rw\n", "t.scn:3:1: error: unknown keyword 'mapp'"},
      {"keyword is case-sensitive", kHead + "Space a\n", "t.scn:2:1: error: unknown keyword 'Space'"},
      {"bad number", kHead + "space a\nmap a 0x40000z 4K rw\n", "t.scn:3:7: error: bad number '0x40000z'"},
      {"lowercase size suffix", kHead + "space a\nmap a 0x400000 16k rw\n",
       "t.scn:3:16: error: bad number '16k' (size suffixes are K, M and G)"},
      {"number too large", kHead + "seed 0x10000000000000000\n",
       "t.scn:2:6: error: number '0x10000000000000000' does not fit in 64 bits"},
      {"non-canonical address", kHead + "space a\nmap a 0x800000000000 4K rw\n",
       "t.scn:3:7: error: non-canonical address '0x800000000000' (bits 63 to 47 must be all zeros or all ones)"},
      {"bad protection", kHead + "space a\nmap a 0x400000 4K rwq\n",
       "t.scn:3:19: error: bad protection 'rwq' (expected a word of r, w, x letters, each at most once, or none)"},
      {"control character", "machine cpus=1 ram=16M\x01\n", "t.scn:1:23: error: unexpected control character 0x01"},
      // Bounds: /dev/zero or a binary named by mistake is an error, not a hang.
      {"NUL byte, even in a comment", kHead + std::string("# a\0b\n", 6),
       "t.scn:2:4: error: binary data (a NUL byte), not text"},
      {"line too long, even a comment", kHead + "# " + std::string(kMaxScenarioLineBytes, 'x') + "\n",
       "t.scn:2:4097: error: line longer than 4096 bytes"},
      // Alignment.
      {"misaligned page address", kHead + "space a\nmap a 0x400800 4K rw\n",
       "t.scn:3:7: error: misaligned address '0x400800' ('map' needs a multiple of 4 KiB)"},
      {"misaligned length", kHead + "space a\nunmap a 0x400000 6K\n",
       "t.scn:3:18: error: misaligned length '6K' ('unmap' needs a multiple of 4 KiB)"},
      {"misaligned read", kHead + "space a\ncpu 0\n  read 0x400004\nend\n",
       "t.scn:4:8: error: misaligned address '0x400004' ('read' accesses 64 bits: it needs a multiple of 8)"},
      {"misaligned physical address", kHead + "space a\nmap a 0x400000 4K rw phys=0x1800\n",
       "t.scn:3:27: error: misaligned physical address '0x1800' ('phys=' needs a multiple of 4 KiB)"},
      // phys= names the device window only (16 MiB of RAM: [12 MiB, 16 MiB)).
      {"phys= beyond RAM", kHead + "space a\nmap a 0x400000 4K rw phys=0x1000000\n",
       "t.scn:3:27: error: phys= range [0x1000000, 0x1001000) is outside the device window: with 16 MiB of RAM, phys= "
       "may name only [0xc00000, 0x1000000), the top of RAM that the allocator never hands out"},
      {"phys= over the allocator's frames", kHead + "space a\nmap a 0x400000 8K rw phys=0x100000\n",
       "t.scn:3:27: error: phys= range [0x100000, 0x102000) is outside the device window: with 16 MiB of RAM, phys= "
       "may name only [0xc00000, 0x1000000), the top of RAM that the allocator never hands out"},
      {"phys= range running past RAM", kHead + "space a\nmap a 0x400000 8K rw phys=0xfff000\n",
       "t.scn:3:27: error: phys= range [0xfff000, 0x1001000) is outside the device window: with 16 MiB of RAM, phys= "
       "may name only [0xc00000, 0x1000000), the top of RAM that the allocator never hands out"},
      {"phys= starting just below the window", kHead + "space a\nmap a 0x400000 8K rw phys=0xbff000\n",
       "t.scn:3:27: error: phys= range [0xbff000, 0xc01000) is outside the device window: with 16 MiB of RAM, phys= "
       "may name only [0xc00000, 0x1000000), the top of RAM that the allocator never hands out"},
      {"phys= in a cpu program", kHead + "space a\ncpu 1\n  map a 0x400000 4K rw phys=0x0 expect any\nend\n",
       "t.scn:4:29: error: phys= range [0x0, 0x1000) is outside the device window: with 16 MiB of RAM, phys= "
       "may name only [0xc00000, 0x1000000), the top of RAM that the allocator never hands out"},
      {"phys= on a machine without a window", "machine cpus=1 ram=6M\nspace a\nmap a 0x400000 4K rw phys=0x500000\n",
       "t.scn:3:27: error: phys= needs the machine's device window, and a machine with 6 MiB of RAM has none (it is the "
       "top quarter of RAM, at most 4 MiB, in whole 2 MiB blocks: ram=8M or more)"},
      // CPUs.
      {"cpu beyond cpus", kHead + "cpu 2\nend\n", "t.scn:2:5: error: cpu 2 does not exist: the machine has 2 CPUs, 0 to 1"},
      {"check faults cpu beyond cpus", kHead + "check faults cpu 5 >= 1\n",
       "t.scn:2:18: error: cpu 5 does not exist: the machine has 2 CPUs, 0 to 1"},
      {"duplicate cpu block", kHead + "cpu 1\nend\ncpu 1\nend\n", "t.scn:4:1: error: duplicate block for cpu 1 (first at line 2)"},
      // Address spaces.
      {"unknown address space", kHead + "map b 0x400000 4K rw\n", "t.scn:2:5: error: unknown address space 'b'"},
      {"space used before its fork", kHead + "space a\ncpu 0\n use c\n fork c from a\nend\n",
       "t.scn:4:6: error: unknown address space 'c'"},
      {"space forked by another cpu", kHead + "space a\ncpu 0\n  fork c from a\nend\ncpu 1\n  use c\nend\n",
       "t.scn:7:7: error: address space 'c' is created by a fork on cpu 0 (line 4); cpu 1 cannot use it"},
      {"space declared twice", kHead + "space a\nspace a\n",
       "t.scn:3:7: error: address space 'a' already exists (created at line 2)"},
      {"fork inside repeat", kHead + "space a\ncpu 0\n repeat 2\n  fork b from a\n end\nend\n",
       "t.scn:5:3: error: 'fork' cannot appear inside 'repeat' (it would create its child again on every iteration)"},
      {"fork without from", kHead + "space a\nfork b of a\n",
       "t.scn:3:8: error: expected 'from', found 'of' (usage: fork CHILD from PARENT [expect ok|ERRNAME|any])"},
      // Arguments.
      {"missing argument", kHead + "space a\nunmap a 0x400000\n",
       "t.scn:3:17: error: missing LEN (usage: unmap SPACE ADDR LEN [expect ok|ERRNAME|any])"},
      {"extra argument", kHead + "space a b\n", "t.scn:2:9: error: extra argument 'b' (usage: space NAME)"},
      {"unknown map flag", kHead + "space a\nmap a 0x400000 4K rw private\n",
       "t.scn:3:22: error: unknown map flag 'private' (expected anon, shared, stack, phys=PADDR, populate or expect)"},
      {"map kind twice", kHead + "space a\nmap a 0x400000 4K rw anon shared\n",
       "t.scn:3:27: error: map kind given twice: 'shared' after 'anon'"},
      {"outcome not allowed", kHead + "space a\nmap a 0x400000 4K rw expect segv\n",
       "t.scn:3:29: error: 'map' cannot expect segv (expected ok, any or an error name such as ENOMEM)"},
      {"unknown error name", kHead + "space a\nunmap a 0x400000 4K expect EPERM\n",
       "t.scn:3:28: error: unknown error name 'EPERM' (expected one of EINVAL, ENOMEM, EBUSY, EEXIST, ENOENT, EFAULT, "
       "EOPNOTSUPP, E2BIG)"},
      {"write cannot expect a value", kHead + "space a\ncpu 0\n  write 0x400000 1 expect 5\nend\n",
       "t.scn:4:27: error: 'write' cannot expect a value (expected ok, segv or any)"},
      {"missing outcome", kHead + "cpu 0\n  read 0x400000 expect\nend\n",
       "t.scn:3:23: error: missing outcome after 'expect' (usage: read ADDR [expect VALUE|ok|segv|any])"},
      {"unknown mode", kHead + "cpu 0\n  mode root\nend\n", "t.scn:3:8: error: unknown mode 'root' (expected user or kernel)"},
      {"repeat zero", kHead + "cpu 0\n  repeat 0\n  end\nend\n", "t.scn:3:10: error: repeat count must be at least 1"},
      // Blocks.
      {"end without repeat", kHead + "end\n", "t.scn:2:1: error: 'end' without 'cpu' or 'repeat'"},
      {"unterminated cpu block", kHead + "cpu 0\n  read 0x400000\n", "t.scn:2:1: error: block of cpu 0 has no 'end'"},
      {"unterminated repeat", kHead + "cpu 0\n  repeat 2\n    read 0x400000\n", "t.scn:3:3: error: 'repeat' has no 'end'"},
      {"check inside a cpu block", kHead + "cpu 0\n  read 0x400000\ncheck shootdowns >= 0\n",
       "t.scn:4:1: error: 'check' cannot appear in a cpu block (is the 'end' of the block of cpu 0 at line 2 missing?)"},
      {"poke inside a cpu block", kHead + "space a\ncpu 0\n  poke a 0x400000 1\nend\n",
       "t.scn:4:3: error: 'poke' is a set-up statement and cannot appear in a cpu block"},
      {"statement outside any section", kHead + "read 0x400000\n", "t.scn:2:1: error: 'read' outside a cpu block"},
      {"set-up after a cpu block", kHead + "space a\ncpu 0\nend\nmap a 0x400000 4K rw\n",
       "t.scn:5:1: error: 'map' must come before the cpu blocks"},
      {"option after set-up", kHead + "space a\noption pmm=buddy\n",
       "t.scn:3:1: error: 'option' must come before the set-up statements"},
      // Barriers.
      {"barrier named by one cpu", kHead + "cpu 0\n  barrier sync\nend\ncpu 1\nend\n",
       "t.scn:3:3: error: barrier 'sync' is named only by cpu 0: a barrier needs two or more CPUs"},
      {"barrier reached unequally", kHead + "cpu 0\n  repeat 2\n    barrier b\n  end\nend\ncpu 1\n  barrier b\nend\n",
       "t.scn:8:3: error: barrier 'b' is reached 1 time by cpu 1 but 2 times by cpu 0: every CPU that names a barrier "
       "must reach it equally often"},
      // Machine, options, seed.
      {"machine missing", "space a\n",
       "t.scn:1:1: error: missing 'machine' line: a scenario starts with 'machine cpus=N ram=SIZE'"},
      {"machine missing in an empty file", "# nothing here\n",
       "t.scn:1:1: error: missing 'machine' line: a scenario starts with 'machine cpus=N ram=SIZE'"},
      {"machine repeated", kHead + "machine cpus=1 ram=1M\n", "t.scn:2:1: error: 'machine' repeated (first at line 1)"},
      {"machine without cpus", "machine ram=16M\n",
       "t.scn:1:16: error: missing cpus=N (usage: machine cpus=N ram=SIZE [tlb=PRESET] [pcid=on|off] [psc=on|off])"},
      {"cpus out of range", "machine cpus=0 ram=16M\n", "t.scn:1:14: error: cpus must be between 1 and 64, not '0'"},
      {"ram not a multiple of 4 KiB", "machine cpus=1 ram=1000000\n",
       "t.scn:1:20: error: ram '1000000' is not a multiple of 4 KiB"},
      {"ram below 1 MiB", "machine cpus=1 ram=512K\n", "t.scn:1:20: error: ram '512K' is smaller than 1 MiB"},
      {"unknown machine setting", "machine cpus=1 ram=16M smt=on\n",
       "t.scn:1:24: error: unknown machine setting 'smt' (expected cpus, ram, tlb, pcid or psc)"},
      {"machine setting twice", "machine cpus=1 ram=16M cpus=2\n", "t.scn:1:24: error: machine setting 'cpus' given twice"},
      {"bad on/off", "machine cpus=1 ram=16M pcid=yes\n", "t.scn:1:29: error: pcid must be 'on' or 'off', not 'yes'"},
      {"missing '='", "machine cpus 4 ram=16M\n",
       "t.scn:1:14: error: expected '=' after 'cpus' (usage: machine cpus=N ram=SIZE [tlb=PRESET] [pcid=on|off] "
       "[psc=on|off])"},
      {"unknown option", kHead + "option slab=on\n",
       "t.scn:2:8: error: unknown option 'slab' (known options: pmm, flush-threshold, shootdown)"},
      {"bad pmm", kHead + "option pmm=slab\n", "t.scn:2:12: error: unknown pmm 'slab' (expected buddy, stack or bitmap)"},
      {"unknown shootdown policy", kHead + "option shootdown=lazy\n",
       "t.scn:2:18: error: unknown shootdown policy 'lazy' (expected one of batched, broadcast, unsafe-free-before-ack, "
       "unsafe-active-only, unsafe-no-flush, unsafe-local-only, unsafe-flush-after-unlock)"},
      {"option twice", kHead + "option pmm=buddy\noption pmm=stack\n",
       "t.scn:3:8: error: option 'pmm' given twice (first at line 2)"},
      {"seed repeated", kHead + "seed 1\nseed 2\n", "t.scn:3:1: error: 'seed' repeated (first at line 2)"},
      // Checks.
      {"unknown check", kHead + "check tlb 3\n",
       "t.scn:2:7: error: unknown check 'tlb' (expected value, mapped, unmapped, frames, faults or shootdowns)"},
      {"bad comparison", kHead + "check frames leaked = 0\n", "t.scn:2:21: error: expected '==', '>=' or '<=', found '='"},
      {"check value with >=", kHead + "space a\ncheck value a 0x400000 >= 1\n",
       "t.scn:3:24: error: 'check value' compares with '==' only"},
  };
}

TEST(ScenarioErrors, EveryKindHasItsExactMessage) {
  const std::vector<ErrorRow> rows = error_rows();
  EXPECT_GE(rows.size(), 25u);
  for (const ErrorRow& row : rows) {
    SCOPED_TRACE(row.kind);
    const ParseResult result = parse_scenario(row.text, "t.scn");
    ASSERT_FALSE(result.ok()) << "accepted:\n" << row.text;
    EXPECT_EQ(result.error().to_string(), row.expected);
  }
}

TEST(ScenarioParser, PhysAnywhereInTheDeviceWindow) {
  // 16 MiB: [12 MiB, 16 MiB); 64 MiB and more: the top 4 MiB; 8 MiB: the top 2 MiB.
  for (const char* text : {"machine cpus=1 ram=16M\nspace a\nmap a 0x400000 4M rw phys=0xc00000\n",
                           "machine cpus=1 ram=16M\nspace a\nmap a 0x400000 4K rw phys=0xfff000\n",
                           "machine cpus=1 ram=1G\nspace a\nmap a 0x400000 2M rw phys=0x3fe00000\n",
                           "machine cpus=1 ram=8M\nspace a\ncpu 0\n  map a 0x400000 2M rw phys=0x600000\nend\n"}) {
    const ParseResult result = parse_scenario(text, "t.scn");
    EXPECT_TRUE(result.ok()) << text << (result.ok() ? "" : result.error().to_string());
  }
}

TEST(ScenarioErrors, LongestLineIsAccepted) {
  const std::string line = "# " + std::string(kMaxScenarioLineBytes - 2, 'x');
  EXPECT_TRUE(parse_scenario(kHead + line + "\n" + line, "t.scn").ok());
}

TEST(ScenarioErrors, ErrorFieldsAndFormat) {
  const ParseResult result = parse_scenario("machine cpus=1 ram=16M\nbogus\n", "examples/x.scn");
  ASSERT_FALSE(result.ok());
  const ParseError& error = result.error();
  EXPECT_EQ(error.file, "examples/x.scn");
  EXPECT_EQ(error.line, 2u);
  EXPECT_EQ(error.column, 1u);
  EXPECT_EQ(error.message, "unknown keyword 'bogus'");
  EXPECT_EQ(error.to_string(), "examples/x.scn:2:1: error: unknown keyword 'bogus'");
}

TEST(ScenarioErrors, FirstErrorInTheFileWins) {
  // Two bad lines: the earlier one is reported.
  const ParseResult result = parse_scenario(kHead + "space a\nmap a 0x400001 4K rw\nmap z 0x400000 4K rw\n", "t.scn");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().line, 3u);
}

// Every prefix of a valid scenario either parses or reports an error: never
// a crash, never an exception.
TEST(ScenarioErrors, TruncatedInputNeverCrashes) {
  const std::string text(kComplete);
  for (std::size_t n = 0; n <= text.size(); n += 7) {
    const ParseResult result = parse_scenario(std::string_view(text).substr(0, n), "t.scn");
    if (!result.ok()) {
      EXPECT_FALSE(result.error().message.empty());
      EXPECT_GE(result.error().line, 1u);
      EXPECT_GE(result.error().column, 1u);
    }
  }
}

}  // namespace
}  // namespace pagelab::scenario
