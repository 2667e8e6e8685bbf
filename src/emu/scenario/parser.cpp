// The scenario parser: one pass over the lexed lines, statement by statement,
// with the static checks done as each statement is read (so the first error
// in the file is the one reported), except the barrier checks, which need
// every CPU's program and run at the end.
#include "emu/scenario/parser.hpp"

#include <algorithm>
#include <cstdio>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "emu/machine/device_window.hpp"
#include "emu/scenario/lexer.hpp"

namespace pagelab::scenario {

std::string ParseError::to_string() const {
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": error: " + message;
}

namespace {

std::string quoted(std::string_view text) {
  std::string out = "'";
  out += text;
  out += '\'';
  return out;
}

std::string hex(u64 value) {
  char buffer[24];
  std::snprintf(buffer, sizeof buffer, "0x%llx", static_cast<unsigned long long>(value));
  return buffer;
}

// 16777216 -> "16 MiB"; a size of no whole KiB in hex.
std::string size_text(u64 bytes) {
  constexpr const char* kUnits[] = {"GiB", "MiB", "KiB"};
  for (int i = 0; i < 3; ++i) {
    const unsigned shift = 30 - 10 * static_cast<unsigned>(i);
    if (bytes != 0 && bytes % (u64{1} << shift) == 0) return std::to_string(bytes >> shift) + " " + kUnits[i];
  }
  return hex(bytes) + " bytes";
}

u64 saturating_multiply(u64 a, u64 b) {
  if (a != 0 && b > std::numeric_limits<u64>::max() / a) return std::numeric_limits<u64>::max();
  return a * b;
}

bool before(SourceLocation a, SourceLocation b) { return a.line != b.line ? a.line < b.line : a.column < b.column; }

// The sections of a file, in the order they must come.
enum class Phase : std::uint8_t { Start, Header, Setup, Cpus, Checks };

std::string_view phase_description(Phase phase) {
  switch (phase) {
    case Phase::Start:
    case Phase::Header: return "the header";
    case Phase::Setup: return "the set-up statements";
    case Phase::Cpus: return "the cpu blocks";
    case Phase::Checks: return "the checks";
  }
  return "?";
}

constexpr std::string_view kKeywords[] = {"machine", "option", "seed", "space", "map",    "unmap",   "protect",
                                          "fork",    "pin",    "unpin", "poke", "cpu",   "use",    "mode",    "read",
                                          "write",   "exec",   "repeat", "barrier", "end", "check"};

bool is_keyword(std::string_view word) {
  return std::find(std::begin(kKeywords), std::end(kKeywords), word) != std::end(kKeywords);
}

constexpr std::string_view kOutcomeMm = "[expect ok|ERRNAME|any]";

std::string usage_of(std::string_view keyword) {
  const std::string mm_outcome(kOutcomeMm);
  if (keyword == "machine") return "machine cpus=N ram=SIZE [tlb=PRESET] [pcid=on|off] [psc=on|off]";
  if (keyword == "option") return "option NAME=VALUE";
  if (keyword == "seed") return "seed N";
  if (keyword == "space") return "space NAME";
  if (keyword == "map") return "map SPACE ADDR LEN PROT [anon|shared|stack|phys=PADDR] [populate] " + mm_outcome;
  if (keyword == "unmap") return "unmap SPACE ADDR LEN " + mm_outcome;
  if (keyword == "protect") return "protect SPACE ADDR LEN PROT " + mm_outcome;
  if (keyword == "fork") return "fork CHILD from PARENT " + mm_outcome;
  if (keyword == "pin") return "pin SPACE ADDR LEN " + mm_outcome;
  if (keyword == "unpin") return "unpin SPACE ADDR LEN " + mm_outcome;
  if (keyword == "poke") return "poke SPACE ADDR VALUE " + mm_outcome;
  if (keyword == "cpu") return "cpu N";
  if (keyword == "use") return "use SPACE";
  if (keyword == "mode") return "mode user|kernel";
  if (keyword == "read") return "read ADDR [expect VALUE|ok|segv|any]";
  if (keyword == "write") return "write ADDR VALUE [expect ok|segv|any]";
  if (keyword == "exec") return "exec ADDR [expect ok|segv|any]";
  if (keyword == "repeat") return "repeat N";
  if (keyword == "barrier") return "barrier NAME";
  if (keyword == "end") return "end";
  if (keyword == "check value") return "check value SPACE ADDR == VALUE";
  if (keyword == "check mapped") return "check mapped SPACE ADDR PROT";
  if (keyword == "check unmapped") return "check unmapped SPACE ADDR";
  if (keyword == "check frames") return "check frames leaked ==|>=|<= N";
  if (keyword == "check faults") return "check faults cpu N ==|>=|<= K";
  if (keyword == "check shootdowns") return "check shootdowns ==|>=|<= K";
  return "check value|mapped|unmapped|frames|faults|shootdowns ...";
}

// Which outcomes a statement's `expect` may name.
enum class OutcomeClass : std::uint8_t {
  Read,      // ok, segv, any, VALUE
  Access,    // ok, segv, any
  MemoryOp,  // ok, any, ERRNAME
};

std::string_view expected_outcomes(OutcomeClass outcome_class) {
  switch (outcome_class) {
    case OutcomeClass::Read: return "ok, segv, any or a value";
    case OutcomeClass::Access: return "ok, segv or any";
    case OutcomeClass::MemoryOp: return "ok, any or an error name such as ENOMEM";
  }
  return "?";
}

constexpr mm::Status kErrorStatuses[] = {mm::Status::InvalidArgument, mm::Status::OutOfMemory, mm::Status::Busy,
                                         mm::Status::AlreadyExists,   mm::Status::NotFound,    mm::Status::BadAddress,
                                         mm::Status::NotSupported,    mm::Status::TooBig};

std::optional<mm::Status> status_named(std::string_view name) {
  for (const mm::Status status : kErrorStatuses) {
    if (name == mm::errno_name(status)) return status;
  }
  return std::nullopt;
}

std::string error_name_list() {
  std::string out;
  for (const mm::Status status : kErrorStatuses) {
    if (!out.empty()) out += ", ";
    out += mm::errno_name(status);
  }
  return out;
}

bool looks_like_error_name(std::string_view word) {
  if (word.size() < 2 || word[0] != 'E') return false;
  return std::all_of(word.begin(), word.end(), [](char c) { return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); });
}

enum class Alignment : std::uint8_t { None, Word, Page };  // any, 8 bytes, 4 KiB

// The tokens of one line, consumed left to right.
class Cursor {
 public:
  explicit Cursor(const Line& line) : line_(line) {}
  bool done() const { return next_ == line_.tokens.size(); }
  const Token* peek() const { return done() ? nullptr : &line_.tokens[next_]; }
  const Token& take() { return line_.tokens[next_++]; }
  u32 line() const { return line_.number; }
  // Where a missing argument is reported: just past the last token.
  SourceLocation end() const { return SourceLocation{line_.number, line_.end_column()}; }

 private:
  const Line& line_;
  std::size_t next_ = 0;
};

// An open `cpu` or `repeat` block.
struct Frame {
  bool is_cpu = false;
  SourceLocation where;
  u32 cpu = 0;
  u64 count = 1;         // repeat
  u64 multiplicity = 1;  // how many times the statements of this body run
  std::vector<Statement> body;
};

struct BarrierUse {
  std::string name;
  u32 cpu = 0;
  SourceLocation where;
  u64 times = 1;
};

class Parser {
 public:
  explicit Parser(std::string file) { scenario_.file = std::move(file); }

  ParseResult run(std::string_view text) {
    LexResult lexed = lex_scenario(text);
    if (lexed.error) {
      return ParseError{scenario_.file, lexed.error->line, lexed.error->column, lexed.error->message};
    }
    for (const Line& line : lexed.lines) {
      if (!parse_line(line)) return std::move(*error_);
    }
    if (!finish_file()) return std::move(*error_);
    return std::move(scenario_);
  }

 private:
  // ---- errors ----------------------------------------------------------
  bool fail(SourceLocation where, std::string message) {
    if (!error_) error_ = ParseError{scenario_.file, where.line, where.column, std::move(message)};
    return false;
  }
  bool fail_at(const Cursor& c, const Token& token, std::string message) {
    return fail(SourceLocation{c.line(), token.column}, std::move(message));
  }
  bool missing(const Cursor& c, std::string_view what, std::string_view usage_key) {
    return fail(c.end(), "missing " + std::string(what) + " (usage: " + usage_of(usage_key) + ")");
  }
  // No tokens may follow.
  bool finish(const Cursor& c, std::string_view usage_key) {
    if (c.done()) return true;
    return fail_at(c, *c.peek(), "extra argument " + quoted(c.peek()->text) + " (usage: " + usage_of(usage_key) + ")");
  }

  // ---- arguments -------------------------------------------------------
  const Token* need(Cursor& c, std::string_view what, std::string_view usage_key) {
    if (c.done()) {
      missing(c, what, usage_key);
      return nullptr;
    }
    const Token& token = c.take();
    if (token.kind == TokenKind::Operator) {
      fail_at(c, token, "expected " + std::string(what) + ", found " + quoted(token.text));
      return nullptr;
    }
    return &token;
  }

  bool number(Cursor& c, std::string_view what, std::string_view usage_key, u64& out, const Token** where = nullptr) {
    const Token* token = need(c, what, usage_key);
    if (token == nullptr) return false;
    if (where != nullptr) *where = token;
    const Lexed<u64> lexed = lex_number(token->text);
    if (!lexed.ok()) return fail_at(c, *token, lexed.error);
    out = lexed.value;
    return true;
  }

  // A canonical virtual address, aligned as `keyword` requires.
  bool address(Cursor& c, std::string_view usage_key, std::string_view keyword, Alignment alignment, mm::VirtAddr& out) {
    u64 value = 0;
    const Token* token = nullptr;
    if (!number(c, "ADDR", usage_key, value, &token)) return false;
    const mm::VirtAddr va(value);
    if (!va.is_canonical()) {
      return fail_at(c, *token, "non-canonical address " + quoted(token->text) +
                                    " (bits 63 to 47 must be all zeros or all ones)");
    }
    if (alignment == Alignment::Page && !va.is_page_aligned()) {
      return fail_at(c, *token, "misaligned address " + quoted(token->text) + " (" + quoted(keyword) +
                                    " needs a multiple of 4 KiB)");
    }
    if (alignment == Alignment::Word && (value & 7) != 0) {
      return fail_at(c, *token, "misaligned address " + quoted(token->text) + " (" + quoted(keyword) +
                                    " accesses 64 bits: it needs a multiple of 8)");
    }
    out = va;
    return true;
  }

  bool length(Cursor& c, std::string_view usage_key, u64& out) {
    const Token* token = nullptr;
    if (!number(c, "LEN", usage_key, out, &token)) return false;
    if ((out & mm::kPageMask) != 0) {
      return fail_at(c, *token, "misaligned length " + quoted(token->text) + " (" + quoted(usage_key) +
                                    " needs a multiple of 4 KiB)");
    }
    return true;
  }

  bool prot(Cursor& c, std::string_view usage_key, mm::Prot& out) {
    const Token* token = need(c, "PROT", usage_key);
    if (token == nullptr) return false;
    const Lexed<mm::Prot> lexed = lex_prot(token->text);
    if (!lexed.ok()) return fail_at(c, *token, lexed.error);
    out = lexed.value;
    return true;
  }

  std::optional<u32> current_cpu() const {
    if (frames_.empty()) return std::nullopt;
    return frames_.front().cpu;
  }

  // A space that exists here: declared by the set-up, or forked earlier by
  // this CPU's own program (checks may name any space).
  bool space_ref(Cursor& c, std::string_view what, std::string_view usage_key, std::string& out) {
    const Token* token = need(c, what, usage_key);
    if (token == nullptr) return false;
    if (!is_name(token->text)) return fail_at(c, *token, "bad address-space name " + quoted(token->text));
    const SpaceInfo* info = find_space(token->text);
    if (info == nullptr) return fail_at(c, *token, "unknown address space " + quoted(token->text));
    const std::optional<u32> cpu = current_cpu();
    if (info->creator_cpu && cpu && *info->creator_cpu != *cpu) {
      return fail_at(c, *token, "address space " + quoted(token->text) + " is created by a fork on cpu " +
                                    std::to_string(*info->creator_cpu) + " (line " + std::to_string(info->where.line) +
                                    "); cpu " + std::to_string(*cpu) + " cannot use it");
    }
    out = std::string(token->text);
    return true;
  }

  // A name for a new space; recorded by add_space() once the statement is good.
  bool new_space_name(Cursor& c, std::string_view what, std::string_view usage_key, const Token*& out) {
    out = need(c, what, usage_key);
    if (out == nullptr) return false;
    if (!is_name(out->text)) return fail_at(c, *out, "bad address-space name " + quoted(out->text));
    if (const SpaceInfo* info = find_space(out->text); info != nullptr) {
      return fail_at(c, *out, "address space " + quoted(out->text) + " already exists (created at line " +
                                  std::to_string(info->where.line) + ")");
    }
    return true;
  }

  void add_space(const Cursor& c, const Token& name) {
    space_index_.emplace(std::string(name.text), scenario_.spaces.size());
    scenario_.spaces.push_back(SpaceInfo{std::string(name.text), SourceLocation{c.line(), name.column}, current_cpu()});
  }

  // Scenario::find_space through the index: a file of many spaces parses
  // in O(n log n), not O(n^2).
  const SpaceInfo* find_space(std::string_view name) const {
    const auto it = space_index_.find(name);
    return it == space_index_.end() ? nullptr : &scenario_.spaces[it->second];
  }

  // `NAME = VALUE` where NAME is already taken: the `=` and the value.
  const Token* value_after(Cursor& c, const Token& name, std::string_view usage_key) {
    if (c.done() || c.peek()->kind != TokenKind::Operator || c.peek()->text != "=") {
      const SourceLocation where = c.done() ? c.end() : SourceLocation{c.line(), c.peek()->column};
      fail(where, "expected '=' after " + quoted(name.text) + " (usage: " + usage_of(usage_key) + ")");
      return nullptr;
    }
    c.take();
    if (c.done() || c.peek()->kind != TokenKind::Word) {
      const SourceLocation where = c.done() ? c.end() : SourceLocation{c.line(), c.peek()->column};
      fail(where, "missing value after '" + std::string(name.text) + "=' (usage: " + usage_of(usage_key) + ")");
      return nullptr;
    }
    return &c.take();
  }

  // [expect OUTCOME] into statement.expect.
  bool expectation(Cursor& c, std::string_view keyword, OutcomeClass outcome_class, Statement& statement) {
    statement.expect = Expectation{};
    statement.expect.where = statement.where;
    if (c.done() || c.peek()->text != "expect") return true;
    c.take();
    const Token* token = need(c, "outcome after 'expect'", keyword);
    if (token == nullptr) return false;
    Expectation& e = statement.expect;
    e.written = true;
    e.where = SourceLocation{c.line(), token->column};
    const std::string_view word = token->text;
    const std::string cannot = quoted(keyword) + " cannot expect ";
    const std::string allowed = " (expected " + std::string(expected_outcomes(outcome_class)) + ")";
    if (word == "ok") {
      e.kind = OutcomeKind::Ok;
    } else if (word == "any") {
      e.kind = OutcomeKind::Any;
    } else if (word == "segv") {
      if (outcome_class == OutcomeClass::MemoryOp) return fail_at(c, *token, cannot + "segv" + allowed);
      e.kind = OutcomeKind::Segv;
    } else if (looks_like_error_name(word)) {
      if (outcome_class != OutcomeClass::MemoryOp) return fail_at(c, *token, cannot + std::string(word) + allowed);
      const std::optional<mm::Status> status = status_named(word);
      if (!status) {
        return fail_at(c, *token, "unknown error name " + quoted(word) + " (expected one of " + error_name_list() + ")");
      }
      e.kind = OutcomeKind::Error;
      e.error = *status;
    } else if (word[0] >= '0' && word[0] <= '9') {
      if (outcome_class != OutcomeClass::Read) return fail_at(c, *token, cannot + "a value" + allowed);
      const Lexed<u64> lexed = lex_number(word);
      if (!lexed.ok()) return fail_at(c, *token, lexed.error);
      e.kind = OutcomeKind::Value;
      e.value = lexed.value;
    } else {
      return fail_at(c, *token, "unknown outcome " + quoted(word) + allowed);
    }
    return true;
  }

  // ---- statements ------------------------------------------------------
  bool parse_line(const Line& line) {
    Cursor c(line);
    const Token& keyword = c.take();
    const SourceLocation where{line.number, keyword.column};
    const std::string_view k = keyword.text;
    if (keyword.kind == TokenKind::Operator || !is_keyword(k)) return fail(where, "unknown keyword " + quoted(k));
    if (phase_ == Phase::Start && k != "machine") {
      return fail(where, "missing 'machine' line: a scenario starts with 'machine cpus=N ram=SIZE'");
    }
    return frames_.empty() ? top_level(c, k, where) : in_cpu_block(c, k, where);
  }

  // Moves to section `phase`, which must not come before the current one.
  bool enter(Phase phase, std::string_view keyword, SourceLocation where) {
    if (phase < phase_) {
      return fail(where, quoted(keyword) + " must come before " + std::string(phase_description(phase_)));
    }
    phase_ = phase;
    return true;
  }

  bool top_level(Cursor& c, std::string_view k, SourceLocation where) {
    if (k == "machine") return machine(c, where);
    if (k == "option") return enter(Phase::Header, k, where) && option(c, where);
    if (k == "seed") return enter(Phase::Header, k, where) && seed(c, where);
    if (k == "space" || k == "map" || k == "unmap" || k == "protect" || k == "fork" || k == "pin" || k == "unpin" ||
        k == "poke") {
      if (!enter(Phase::Setup, k, where)) return false;
      Statement statement;
      statement.where = where;
      if (!memory_statement(c, k, statement)) return false;
      scenario_.setup.push_back(std::move(statement));
      return true;
    }
    if (k == "cpu") return enter(Phase::Cpus, k, where) && open_cpu(c, where);
    if (k == "check") return enter(Phase::Checks, k, where) && check(c, where);
    if (k == "end") return fail(where, "'end' without 'cpu' or 'repeat'");
    return fail(where, quoted(k) + " outside a cpu block");  // use, mode, read, write, exec, repeat, barrier
  }

  bool in_cpu_block(Cursor& c, std::string_view k, SourceLocation where) {
    Frame& frame = frames_.back();
    if (k == "space" || k == "poke") {
      return fail(where, quoted(k) + " is a set-up statement and cannot appear in a cpu block");
    }
    if (k == "machine" || k == "option" || k == "seed" || k == "cpu" || k == "check") {
      const std::string block = frame.is_cpu ? "the block of cpu " + std::to_string(frame.cpu) : "the 'repeat'";
      return fail(where, quoted(k) + " cannot appear in a cpu block (is the 'end' of " + block + " at line " +
                             std::to_string(frame.where.line) + " missing?)");
    }
    if (k == "end") {
      if (!finish(c, "end")) return false;
      return close_block(where);
    }
    if (k == "repeat") {
      u64 count = 0;
      const Token* token = nullptr;
      if (!number(c, "N", "repeat", count, &token)) return false;
      if (count == 0) return fail_at(c, *token, "repeat count must be at least 1");
      if (!finish(c, "repeat")) return false;
      // frames_ holds the cpu block, then the open repeats: this one nests frames_.size() deep.
      if (frames_.size() > kMaxRepeatNesting) {
        return fail(where, "repeats nest at most " + std::to_string(kMaxRepeatNesting) + " deep (this one is " +
                               std::to_string(frames_.size()) + " deep)");
      }
      Frame inner;
      inner.where = where;
      inner.cpu = frame.cpu;
      inner.count = count;
      inner.multiplicity = saturating_multiply(frame.multiplicity, count);
      frames_.push_back(std::move(inner));
      return true;
    }
    Statement statement;
    statement.where = where;
    statement.expect.where = where;
    if (k == "use") {
      UseStmt use;
      if (!space_ref(c, "SPACE", k, use.space) || !finish(c, k)) return false;
      statement.op = std::move(use);
    } else if (k == "mode") {
      const Token* token = need(c, "user|kernel", k);
      if (token == nullptr) return false;
      ModeStmt mode;
      if (token->text == "user") {
        mode.mode = mm::AccessMode::User;
      } else if (token->text == "kernel") {
        mode.mode = mm::AccessMode::Kernel;
      } else {
        return fail_at(c, *token, "unknown mode " + quoted(token->text) + " (expected user or kernel)");
      }
      if (!finish(c, k)) return false;
      statement.op = mode;
    } else if (k == "read") {
      ReadStmt read;
      if (!address(c, k, k, Alignment::Word, read.address)) return false;
      if (!expectation(c, k, OutcomeClass::Read, statement) || !finish(c, k)) return false;
      statement.op = read;
    } else if (k == "write") {
      WriteStmt write;
      if (!address(c, k, k, Alignment::Word, write.address) || !number(c, "VALUE", k, write.value)) return false;
      if (!expectation(c, k, OutcomeClass::Access, statement) || !finish(c, k)) return false;
      statement.op = write;
    } else if (k == "exec") {
      ExecStmt exec;
      if (!address(c, k, k, Alignment::None, exec.address)) return false;
      if (!expectation(c, k, OutcomeClass::Access, statement) || !finish(c, k)) return false;
      statement.op = exec;
    } else if (k == "barrier") {
      const Token* token = need(c, "NAME", k);
      if (token == nullptr) return false;
      if (!is_name(token->text)) return fail_at(c, *token, "bad barrier name " + quoted(token->text));
      if (!finish(c, k)) return false;
      barriers_.push_back(BarrierUse{std::string(token->text), frame.cpu, where, frame.multiplicity});
      statement.op = BarrierStmt{std::string(token->text)};
    } else {  // map, unmap, protect, fork, pin
      if (k == "fork" && !frame.is_cpu) {
        return fail(where, "'fork' cannot appear inside 'repeat' (it would create its child again on every iteration)");
      }
      if (!memory_statement(c, k, statement)) return false;
    }
    frames_.back().body.push_back(std::move(statement));
    return true;
  }

  // space, map, unmap, protect, fork, pin, poke: in the set-up or (but space
  // and poke) in a CPU program.
  bool memory_statement(Cursor& c, std::string_view k, Statement& statement) {
    if (k == "space") {
      const Token* name = nullptr;
      if (!new_space_name(c, "NAME", k, name) || !finish(c, k)) return false;
      add_space(c, *name);
      statement.op = SpaceStmt{std::string(name->text)};
      statement.expect.where = statement.where;
      return true;
    }
    if (k == "map") {
      MapStmt map;
      if (!space_ref(c, "SPACE", k, map.space) || !address(c, k, k, Alignment::Page, map.address) ||
          !length(c, k, map.length) || !prot(c, k, map.prot)) {
        return false;
      }
      if (!map_flags(c, map)) return false;
      statement.op = std::move(map);
    } else if (k == "unmap") {
      UnmapStmt unmap;
      if (!space_ref(c, "SPACE", k, unmap.space) || !address(c, k, k, Alignment::Page, unmap.address) ||
          !length(c, k, unmap.length)) {
        return false;
      }
      statement.op = std::move(unmap);
    } else if (k == "protect") {
      ProtectStmt protect;
      if (!space_ref(c, "SPACE", k, protect.space) || !address(c, k, k, Alignment::Page, protect.address) ||
          !length(c, k, protect.length) || !prot(c, k, protect.prot)) {
        return false;
      }
      statement.op = std::move(protect);
    } else if (k == "pin") {
      PinStmt pin;
      if (!space_ref(c, "SPACE", k, pin.space) || !address(c, k, k, Alignment::Page, pin.address) ||
          !length(c, k, pin.length)) {
        return false;
      }
      statement.op = std::move(pin);
    } else if (k == "unpin") {
      UnpinStmt unpin;
      if (!space_ref(c, "SPACE", k, unpin.space) || !address(c, k, k, Alignment::Page, unpin.address) ||
          !length(c, k, unpin.length)) {
        return false;
      }
      statement.op = std::move(unpin);
    } else if (k == "poke") {
      PokeStmt poke;
      if (!space_ref(c, "SPACE", k, poke.space) || !address(c, k, k, Alignment::Word, poke.address) ||
          !number(c, "VALUE", k, poke.value)) {
        return false;
      }
      statement.op = std::move(poke);
    } else {  // fork
      ForkStmt fork;
      const Token* child = nullptr;
      if (!new_space_name(c, "CHILD", k, child)) return false;
      const Token* from = need(c, "'from'", k);
      if (from == nullptr) return false;
      if (from->text != "from") {
        return fail_at(c, *from, "expected 'from', found " + quoted(from->text) + " (usage: " + usage_of(k) + ")");
      }
      if (!space_ref(c, "PARENT", k, fork.parent)) return false;
      if (!expectation(c, k, OutcomeClass::MemoryOp, statement) || !finish(c, k)) return false;
      add_space(c, *child);
      fork.child = std::string(child->text);
      statement.op = std::move(fork);
      return true;
    }
    return expectation(c, k, OutcomeClass::MemoryOp, statement) && finish(c, k);
  }

  // [anon|shared|stack|phys=PADDR] [populate], in either order.
  bool map_flags(Cursor& c, MapStmt& map) {
    const Token* kind_token = nullptr;
    const Token* populate_token = nullptr;
    while (!c.done() && c.peek()->text != "expect") {
      const Token& token = c.take();
      const std::string_view word = token.text;
      if (word == "populate") {
        if (populate_token != nullptr) return fail_at(c, token, "'populate' given twice");
        populate_token = &token;
        map.populate = true;
        continue;
      }
      if (word != "anon" && word != "shared" && word != "stack" && word != "phys") {
        return fail_at(c, token, "unknown map flag " + quoted(word) +
                                     " (expected anon, shared, stack, phys=PADDR, populate or expect)");
      }
      if (kind_token != nullptr) {
        return fail_at(c, token, "map kind given twice: " + quoted(word) + " after " + quoted(kind_token->text));
      }
      kind_token = &token;
      if (word == "anon") {
        map.word = MapKindWord::Anon;
      } else if (word == "shared") {
        map.word = MapKindWord::Shared;
        map.fork = mm::ForkPolicy::Shared;
      } else if (word == "stack") {
        map.word = MapKindWord::Stack;
        map.kind = mm::RegionKind::Stack;
      } else {
        const Token* value = value_after(c, token, "map");
        if (value == nullptr) return false;
        const Lexed<u64> lexed = lex_number(value->text);
        if (!lexed.ok()) return fail_at(c, *value, lexed.error);
        if (lexed.value >= mm::kMaxPhysAddr) {
          return fail_at(c, *value, "physical address " + quoted(value->text) +
                                        " is beyond the 52-bit physical address space");
        }
        if ((lexed.value & mm::kPageMask) != 0) {
          return fail_at(c, *value, "misaligned physical address " + quoted(value->text) +
                                        " ('phys=' needs a multiple of 4 KiB)");
        }
        if (!inside_device_window(c, *value, lexed.value, map.length)) return false;
        map.word = MapKindWord::Phys;
        map.kind = mm::RegionKind::Physical;
        map.physical = mm::PhysAddr(lexed.value);
      }
    }
    return true;
  }

  // phys= names device memory, and the machine has it only in its device
  // window (emu/machine/device_window.hpp): beyond RAM there is nothing to
  // map, and below the window every frame is the allocator's (page tables
  // included), which a phys= mapping would alias and never give back.
  bool inside_device_window(Cursor& c, const Token& value, u64 physical, u64 length) {
    const u64 ram = scenario_.machine.ram_bytes;
    const u64 start = emu::device_window_start(ram);
    if (emu::device_window_bytes(ram) == 0) {
      return fail_at(c, value, "phys= needs the machine's device window, and a machine with " + size_text(ram) +
                                   " of RAM has none (it is the top quarter of RAM, at most 4 MiB, in whole 2 MiB "
                                   "blocks: ram=8M or more)");
    }
    if (physical >= start && physical < ram && length <= ram - physical) return true;
    const u64 end = length > ~u64{0} - physical ? ~u64{0} : physical + length;
    return fail_at(c, value, "phys= range [" + hex(physical) + ", " + hex(end) + ") is outside the device window: with " +
                                 size_text(ram) + " of RAM, phys= may name only [" + hex(start) + ", " + hex(ram) +
                                 "), the top of RAM that the allocator never hands out");
  }

  bool close_block(SourceLocation where) {
    Frame frame = std::move(frames_.back());
    frames_.pop_back();
    if (frame.is_cpu) {
      scenario_.programs.push_back(CpuProgram{frame.cpu, frame.where, where, std::move(frame.body)});
      return true;
    }
    Statement statement;
    statement.where = frame.where;
    statement.expect.where = frame.where;
    statement.op = RepeatStmt{frame.count, std::move(frame.body), where};
    frames_.back().body.push_back(std::move(statement));
    return true;
  }

  std::string cpu_range() const {
    const u32 cpus = scenario_.machine.cpus;
    if (cpus == 1) return "the machine has 1 CPU, cpu 0";
    return "the machine has " + std::to_string(cpus) + " CPUs, 0 to " + std::to_string(cpus - 1);
  }

  // A CPU number below machine.cpus.
  bool cpu_number(Cursor& c, std::string_view usage_key, u32& out) {
    u64 value = 0;
    const Token* token = nullptr;
    if (!number(c, "N", usage_key, value, &token)) return false;
    if (value >= scenario_.machine.cpus) {
      return fail_at(c, *token, "cpu " + std::string(token->text) + " does not exist: " + cpu_range());
    }
    out = static_cast<u32>(value);
    return true;
  }

  bool open_cpu(Cursor& c, SourceLocation where) {
    u32 cpu = 0;
    if (!cpu_number(c, "cpu", cpu) || !finish(c, "cpu")) return false;
    for (const CpuProgram& program : scenario_.programs) {
      if (program.cpu == cpu) {
        return fail(where, "duplicate block for cpu " + std::to_string(cpu) + " (first at line " +
                               std::to_string(program.where.line) + ")");
      }
    }
    Frame frame;
    frame.is_cpu = true;
    frame.where = where;
    frame.cpu = cpu;
    frames_.push_back(std::move(frame));
    return true;
  }

  // ---- header ----------------------------------------------------------
  bool machine(Cursor& c, SourceLocation where) {
    if (phase_ != Phase::Start) {
      return fail(where, "'machine' repeated (first at line " + std::to_string(scenario_.machine.where.line) + ")");
    }
    phase_ = Phase::Header;
    Machine& m = scenario_.machine;
    m.where = where;
    m.tlb_where = where;
    std::vector<std::string_view> seen;
    while (!c.done()) {
      const Token& key = c.take();
      const std::string_view name = key.text;
      if (key.kind != TokenKind::Word) {
        return fail_at(c, key, "expected a machine setting, found " + quoted(name) + " (usage: " + usage_of("machine") + ")");
      }
      if (name != "cpus" && name != "ram" && name != "tlb" && name != "pcid" && name != "psc") {
        return fail_at(c, key, "unknown machine setting " + quoted(name) + " (expected cpus, ram, tlb, pcid or psc)");
      }
      if (std::find(seen.begin(), seen.end(), name) != seen.end()) {
        return fail_at(c, key, "machine setting " + quoted(name) + " given twice");
      }
      seen.push_back(name);
      const Token* value = value_after(c, key, "machine");
      if (value == nullptr) return false;
      if (name == "cpus") {
        const Lexed<u64> lexed = lex_number(value->text);
        if (!lexed.ok()) return fail_at(c, *value, lexed.error);
        if (lexed.value < 1 || lexed.value > kMaxCpus) {
          return fail_at(c, *value, "cpus must be between 1 and " + std::to_string(kMaxCpus) + ", not " +
                                        quoted(value->text));
        }
        m.cpus = static_cast<u32>(lexed.value);
      } else if (name == "ram") {
        const Lexed<u64> lexed = lex_number(value->text);
        if (!lexed.ok()) return fail_at(c, *value, lexed.error);
        if ((lexed.value & mm::kPageMask) != 0) {
          return fail_at(c, *value, "ram " + quoted(value->text) + " is not a multiple of 4 KiB");
        }
        if (lexed.value < kMinRamBytes) {
          return fail_at(c, *value, "ram " + quoted(value->text) + " is smaller than 1 MiB");
        }
        m.ram_bytes = lexed.value;
      } else if (name == "tlb") {
        m.tlb_preset = std::string(value->text);
        m.tlb_where = SourceLocation{c.line(), value->column};
      } else {
        bool& flag = name == "pcid" ? m.pcid : m.psc;
        if (value->text == "on") {
          flag = true;
        } else if (value->text == "off") {
          flag = false;
        } else {
          return fail_at(c, *value, std::string(name) + " must be 'on' or 'off', not " + quoted(value->text));
        }
      }
    }
    if (m.cpus == 0) return missing(c, "cpus=N", "machine");
    if (m.ram_bytes == 0) return missing(c, "ram=SIZE", "machine");
    return true;
  }

  bool option(Cursor& c, SourceLocation where) {
    const Token* name = need(c, "NAME=VALUE", "option");
    if (name == nullptr) return false;
    const std::string_view n = name->text;
    if (n != "pmm" && n != "flush-threshold" && n != "shootdown") {
      return fail_at(c, *name, "unknown option " + quoted(n) + " (known options: pmm, flush-threshold, shootdown)");
    }
    if (const OptionSetting* first = scenario_.options.find(n); first != nullptr) {
      return fail_at(c, *name, "option " + quoted(n) + " given twice (first at line " +
                                   std::to_string(first->where.line) + ")");
    }
    const Token* value = value_after(c, *name, "option");
    if (value == nullptr) return false;
    const std::string_view v = value->text;
    Options& options = scenario_.options;
    if (n == "pmm") {
      if (v == "buddy") {
        options.pmm = PmmKind::Buddy;
      } else if (v == "stack") {
        options.pmm = PmmKind::Stack;
      } else if (v == "bitmap") {
        options.pmm = PmmKind::Bitmap;
      } else {
        return fail_at(c, *value, "unknown pmm " + quoted(v) + " (expected buddy, stack or bitmap)");
      }
    } else if (n == "flush-threshold") {
      const Lexed<u64> lexed = lex_number(v);
      if (!lexed.ok()) return fail_at(c, *value, lexed.error);
      if (lexed.value > std::numeric_limits<u32>::max()) {
        return fail_at(c, *value, "flush-threshold " + quoted(v) + " is too large");
      }
      options.flush_threshold = static_cast<u32>(lexed.value);
    } else {
      std::string names;
      for (const ShootdownPolicyName& entry : kShootdownPolicies) {
        if (entry.name == v) options.shootdown = entry.policy;
        names += names.empty() ? "" : ", ";
        names += entry.name;
      }
      if (!options.shootdown) return fail_at(c, *value, "unknown shootdown policy " + quoted(v) + " (expected one of " + names + ")");
    }
    if (!finish(c, "option")) return false;
    options.given.push_back(OptionSetting{std::string(n), std::string(v), where, SourceLocation{c.line(), value->column}});
    return true;
  }

  bool seed(Cursor& c, SourceLocation where) {
    if (scenario_.seed) {
      return fail(where, "'seed' repeated (first at line " + std::to_string(scenario_.seed_where.line) + ")");
    }
    u64 value = 0;
    if (!number(c, "N", "seed", value) || !finish(c, "seed")) return false;
    scenario_.seed = value;
    scenario_.seed_where = where;
    return true;
  }

  // ---- checks ----------------------------------------------------------
  bool comparison(Cursor& c, std::string_view usage_key, Comparison& out) {
    if (c.done()) return missing(c, "comparison", usage_key);
    const Token& token = c.take();
    if (token.text == "==") {
      out = Comparison::Equal;
    } else if (token.text == ">=") {
      out = Comparison::AtLeast;
    } else if (token.text == "<=") {
      out = Comparison::AtMost;
    } else {
      return fail_at(c, token, "expected '==', '>=' or '<=', found " + quoted(token.text));
    }
    return true;
  }

  bool check(Cursor& c, SourceLocation where) {
    const Token* kind = need(c, "what to check", "check");
    if (kind == nullptr) return false;
    const std::string_view k = kind->text;
    const std::string key = "check " + std::string(k);
    Check result;
    result.where = where;
    if (k == "value") {
      CheckValue value;
      Comparison op = Comparison::Equal;
      if (!space_ref(c, "SPACE", key, value.space) || !address(c, key, key, Alignment::Word, value.address)) return false;
      const Token* op_token = c.peek();
      if (!comparison(c, key, op)) return false;
      if (op != Comparison::Equal) return fail_at(c, *op_token, "'check value' compares with '==' only");
      if (!number(c, "VALUE", key, value.value)) return false;
      result.what = std::move(value);
    } else if (k == "mapped") {
      CheckMapped mapped;
      if (!space_ref(c, "SPACE", key, mapped.space) || !address(c, key, key, Alignment::None, mapped.address) ||
          !prot(c, key, mapped.prot)) {
        return false;
      }
      result.what = std::move(mapped);
    } else if (k == "unmapped") {
      CheckUnmapped unmapped;
      if (!space_ref(c, "SPACE", key, unmapped.space) || !address(c, key, key, Alignment::None, unmapped.address)) {
        return false;
      }
      result.what = std::move(unmapped);
    } else if (k == "frames") {
      CheckFramesLeaked leaked;
      const Token* word = need(c, "'leaked'", key);
      if (word == nullptr) return false;
      if (word->text != "leaked") return fail_at(c, *word, "expected 'leaked', found " + quoted(word->text));
      if (!comparison(c, key, leaked.comparison) || !number(c, "N", key, leaked.count)) return false;
      result.what = leaked;
    } else if (k == "faults") {
      CheckFaults faults;
      const Token* word = need(c, "'cpu'", key);
      if (word == nullptr) return false;
      if (word->text != "cpu") return fail_at(c, *word, "expected 'cpu', found " + quoted(word->text));
      if (!cpu_number(c, key, faults.cpu) || !comparison(c, key, faults.comparison) ||
          !number(c, "K", key, faults.count)) {
        return false;
      }
      result.what = faults;
    } else if (k == "shootdowns") {
      CheckShootdowns shootdowns;
      if (!comparison(c, key, shootdowns.comparison) || !number(c, "K", key, shootdowns.count)) return false;
      result.what = shootdowns;
    } else {
      return fail_at(c, *kind, "unknown check " + quoted(k) +
                                   " (expected value, mapped, unmapped, frames, faults or shootdowns)");
    }
    if (!finish(c, key)) return false;
    scenario_.checks.push_back(std::move(result));
    return true;
  }

  // ---- end of file -----------------------------------------------------
  bool finish_file() {
    if (phase_ == Phase::Start) {
      return fail(SourceLocation{1, 1}, "missing 'machine' line: a scenario starts with 'machine cpus=N ram=SIZE'");
    }
    if (!frames_.empty()) {
      const Frame& frame = frames_.back();
      if (frame.is_cpu) return fail(frame.where, "block of cpu " + std::to_string(frame.cpu) + " has no 'end'");
      return fail(frame.where, "'repeat' has no 'end'");
    }
    return check_barriers();
  }

  // Every barrier must be named by two or more CPUs, and each of them must
  // reach it equally often: otherwise a CPU would wait there forever.
  bool check_barriers() {
    std::optional<ParseError> first;
    const auto report = [&](SourceLocation where, std::string message) {
      if (!first || before(where, SourceLocation{first->line, first->column})) {
        first = ParseError{scenario_.file, where.line, where.column, std::move(message)};
      }
    };
    // Per name, in order of first use; per CPU (at most kMaxCpus of them),
    // in order of first use: the times it is reached and where first. One
    // pass over the uses (the names point into barriers_, which stays put).
    std::vector<std::string_view> names;
    std::map<std::string_view, std::vector<BarrierUse>, std::less<>> uses_of;
    for (const BarrierUse& use : barriers_) {
      const auto [entry, first_use] = uses_of.try_emplace(use.name);
      if (first_use) names.push_back(use.name);
      std::vector<BarrierUse>& per_cpu = entry->second;
      auto it = std::find_if(per_cpu.begin(), per_cpu.end(), [&](const BarrierUse& u) { return u.cpu == use.cpu; });
      if (it == per_cpu.end()) {
        per_cpu.push_back(use);
      } else {
        it->times = it->times > std::numeric_limits<u64>::max() - use.times ? std::numeric_limits<u64>::max()
                                                                            : it->times + use.times;
      }
    }
    for (const std::string_view name : names) {
      const std::vector<BarrierUse>& per_cpu = uses_of.find(name)->second;
      if (per_cpu.size() == 1) {
        report(per_cpu[0].where, "barrier " + quoted(name) + " is named only by cpu " + std::to_string(per_cpu[0].cpu) +
                                     ": a barrier needs two or more CPUs");
        continue;
      }
      const auto times = [](u64 n) { return std::to_string(n) + (n == 1 ? " time" : " times"); };
      for (const BarrierUse& other : per_cpu) {
        if (other.times != per_cpu[0].times) {
          report(other.where, "barrier " + quoted(name) + " is reached " + times(other.times) + " by cpu " +
                                  std::to_string(other.cpu) + " but " + times(per_cpu[0].times) + " by cpu " +
                                  std::to_string(per_cpu[0].cpu) + ": every CPU that names a barrier must reach it "
                                  "equally often");
          break;
        }
      }
    }
    if (first) {
      error_ = std::move(first);
      return false;
    }
    return true;
  }

  Scenario scenario_;
  std::optional<ParseError> error_;
  Phase phase_ = Phase::Start;
  std::vector<Frame> frames_;  // open cpu block, then open repeats, innermost last
  std::vector<BarrierUse> barriers_;
  std::map<std::string, std::size_t, std::less<>> space_index_;  // name -> index in scenario_.spaces
};

}  // namespace

ParseResult parse_scenario(std::string_view text, std::string file_name) {
  Parser parser(std::move(file_name));
  return parser.run(text);
}

}  // namespace pagelab::scenario
