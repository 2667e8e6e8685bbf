// The scenario parser's properties (input_properties.hpp).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "emu/machine/device_window.hpp"
#include "emu/scenario/parser.hpp"
#include "emu/scenario/printer.hpp"
#include "fuzz_check.hpp"
#include "input_properties.hpp"

namespace {

using namespace pagelab::scenario;
using pagelab::fuzz_inputs::failure;
using pagelab::fuzz_inputs::line_count;
using pagelab::fuzz_inputs::line_of;
using Report = std::optional<std::string>;

constexpr std::string_view kFile = "fuzz.scenario";

// ---- the error's form -------------------------------------------------------

Report check_error(const ParseError& error, std::string_view text) {
  const std::string line = error.to_string();
  if (error.file != kFile) return failure("the error names another file", line);
  if (error.line < 1 || error.line > line_count(text)) return failure("the error's line is outside the input", line);
  if (error.column < 1 || error.column > line_of(text, error.line).size() + 1) {
    return failure("the error's column is outside its line", line);
  }
  if (error.message.empty()) return failure("the error has no message", line);
  if (Report not_printable = pagelab::fuzz_inputs::printable_line(line)) return not_printable;
  const std::string prefix =
      std::string(kFile) + ":" + std::to_string(error.line) + ":" + std::to_string(error.column) + ": error: ";
  if (line.rfind(prefix, 0) != 0 || line.size() == prefix.size()) {
    return failure("the error is not FILE:LINE:COL: error: MESSAGE", line);
  }
  return std::nullopt;
}

// ---- the contract of a parsed scenario (ast.hpp) ----------------------------

struct ContractChecker {
  const Scenario& s;
  std::string where;
  Report report;  // the first breach

  void fail_unless(bool holds, const std::string& what) {
    if (!holds && !report) report = failure("a parsed scenario breaks the contract of ast.hpp", what + " (" + where + ")");
  }
  void at(const SourceLocation& location) { where = "line " + std::to_string(location.line); }

  void address(mm::VirtAddr va, u64 alignment) {
    fail_unless(va.is_canonical(), "non-canonical address");
    fail_unless(va.value() % alignment == 0, "misaligned address");
  }
  void range(mm::VirtAddr va, u64 length) {
    address(va, 4096);
    fail_unless(length % 4096 == 0, "misaligned length");
  }
  void known_space(const std::string& name) { fail_unless(s.find_space(name) != nullptr, "unknown space " + name); }

  void statement(const Statement& st, bool in_cpu, u32 repeat_depth) {
    const bool in_repeat = repeat_depth > 0;
    at(st.where);
    const Expectation& e = st.expect;
    if (e.kind == OutcomeKind::Error) fail_unless(e.error != mm::Status::Ok, "expect ERRNAME of Ok");
    if (const auto* x = st.as<SpaceStmt>()) {
      fail_unless(!in_cpu, "space in a cpu block");
      known_space(x->name);
    } else if (const auto* m = st.as<MapStmt>()) {
      known_space(m->space);
      range(m->address, m->length);
      if (m->word == MapKindWord::Phys) {
        const u64 start = pagelab::emu::device_window_start(s.machine.ram_bytes);
        const u64 p = m->physical.value();
        fail_unless(p % 4096 == 0 && p >= start && p < s.machine.ram_bytes && m->length <= s.machine.ram_bytes - p,
                    "phys= outside the device window");
      }
    } else if (const auto* u = st.as<UnmapStmt>()) {
      known_space(u->space);
      range(u->address, u->length);
    } else if (const auto* p = st.as<ProtectStmt>()) {
      known_space(p->space);
      range(p->address, p->length);
    } else if (const auto* f = st.as<ForkStmt>()) {
      fail_unless(!in_repeat, "fork inside repeat");
      known_space(f->parent);
      known_space(f->child);
    } else if (const auto* pin = st.as<PinStmt>()) {
      known_space(pin->space);
      range(pin->address, pin->length);
    } else if (const auto* unpin = st.as<UnpinStmt>()) {
      known_space(unpin->space);
      range(unpin->address, unpin->length);
    } else if (const auto* poke = st.as<PokeStmt>()) {
      fail_unless(!in_cpu, "poke in a cpu block");
      known_space(poke->space);
      address(poke->address, 8);
    } else if (const auto* use = st.as<UseStmt>()) {
      fail_unless(in_cpu, "use outside a cpu block");
      known_space(use->space);
    } else if (const auto* r = st.as<ReadStmt>()) {
      fail_unless(in_cpu, "read outside a cpu block");
      address(r->address, 8);
    } else if (const auto* w = st.as<WriteStmt>()) {
      fail_unless(in_cpu, "write outside a cpu block");
      address(w->address, 8);
    } else if (const auto* x2 = st.as<ExecStmt>()) {
      fail_unless(in_cpu, "exec outside a cpu block");
      address(x2->address, 1);
    } else if (const auto* rep = st.as<RepeatStmt>()) {
      fail_unless(in_cpu, "repeat outside a cpu block");
      fail_unless(rep->count >= 1, "repeat 0");
      fail_unless(repeat_depth < kMaxRepeatNesting, "repeats nested deeper than kMaxRepeatNesting");
      for (const Statement& inner : rep->body) statement(inner, in_cpu, repeat_depth + 1);
    }
  }

  void run() {
    const Machine& m = s.machine;
    at(m.where);
    fail_unless(m.cpus >= 1 && m.cpus <= kMaxCpus, "cpus out of range");
    fail_unless(m.ram_bytes >= kMinRamBytes && m.ram_bytes % 4096 == 0, "bad ram");
    for (const Statement& st : s.setup) statement(st, false, 0);
    std::set<u32> cpus;
    for (const CpuProgram& p : s.programs) {
      at(p.where);
      fail_unless(p.cpu < m.cpus, "cpu beyond cpus");
      fail_unless(cpus.insert(p.cpu).second, "two blocks for one cpu");
      for (const Statement& st : p.body) statement(st, true, 0);
    }
    for (const Check& c : s.checks) {
      at(c.where);
      if (const auto* f = c.as<CheckFaults>()) fail_unless(f->cpu < m.cpus, "check faults of a cpu beyond cpus");
      if (const auto* v = c.as<CheckValue>()) {
        known_space(v->space);
        address(v->address, 8);
      }
      if (const auto* mapped = c.as<CheckMapped>()) known_space(mapped->space);
      if (const auto* unmapped = c.as<CheckUnmapped>()) known_space(unmapped->space);
    }
  }
};

// ---- every field but source locations, for comparing two parses -------------
// Written field by field from ast.hpp, not with the printer, so a printer that
// drops or changes something cannot hide it by doing the same twice.

// Fields appended one after the other, each after a space.
class Description {
 public:
  Description& word(std::string_view text) {
    out_ += ' ';
    out_ += text;
    return *this;
  }
  Description& number(u64 value) { return word(std::to_string(value)); }
  template <typename Enum>
  Description& kind(Enum value) {
    return number(static_cast<u64>(value));
  }
  template <typename T>
  Description& maybe(const std::optional<T>& value) {
    if (!value) return word("-");
    if constexpr (std::is_enum_v<T>) return kind(*value);
    else return number(*value);
  }
  Description& line() {
    out_ += '\n';
    return *this;
  }
  std::string& text() { return out_; }

 private:
  std::string out_;
};

void describe_body(const std::vector<Statement>& body, Description& d);

void describe_statement(const Statement& st, Description& d) {
  d.word(keyword_of(st));
  if (const auto* x = st.as<SpaceStmt>()) d.word(x->name);
  if (const auto* m = st.as<MapStmt>()) {
    d.word(m->space).number(m->address.value()).number(m->length).kind(m->prot).kind(m->word).kind(m->kind).kind(m->fork);
    d.number(m->physical.value()).word(m->populate ? "populate" : "-");
  }
  if (const auto* u = st.as<UnmapStmt>()) d.word(u->space).number(u->address.value()).number(u->length);
  if (const auto* p = st.as<ProtectStmt>()) d.word(p->space).number(p->address.value()).number(p->length).kind(p->prot);
  if (const auto* f = st.as<ForkStmt>()) d.word(f->child).word(f->parent);
  if (const auto* p = st.as<PinStmt>()) d.word(p->space).number(p->address.value()).number(p->length);
  if (const auto* p = st.as<UnpinStmt>()) d.word(p->space).number(p->address.value()).number(p->length);
  if (const auto* p = st.as<PokeStmt>()) d.word(p->space).number(p->address.value()).number(p->value);
  if (const auto* u = st.as<UseStmt>()) d.word(u->space);
  if (const auto* m = st.as<ModeStmt>()) d.kind(m->mode);
  if (const auto* r = st.as<ReadStmt>()) d.number(r->address.value());
  if (const auto* w = st.as<WriteStmt>()) d.number(w->address.value()).number(w->value);
  if (const auto* x = st.as<ExecStmt>()) d.number(x->address.value());
  if (const auto* b = st.as<BarrierStmt>()) d.word(b->name);
  const Expectation& e = st.expect;
  d.word("expect").kind(e.kind).number(e.value).kind(e.error).word(e.written ? "written" : "default");
  if (const auto* r = st.as<RepeatStmt>()) {
    d.number(r->count).word("{").line();
    describe_body(r->body, d);
    d.word("}");
  }
}

void describe_body(const std::vector<Statement>& body, Description& d) {
  for (const Statement& st : body) {
    describe_statement(st, d);
    d.line();
  }
}

std::string describe(const Scenario& s) {
  Description d;
  const Machine& m = s.machine;
  d.word("machine").number(m.cpus).number(m.ram_bytes).word("[" + m.tlb_preset + "]").word(m.pcid ? "pcid" : "-");
  d.word(m.psc ? "psc" : "-").line();
  for (const OptionSetting& o : s.options.given) d.word("option [" + o.name + "]=[" + o.value + "]").line();
  d.word("pmm").maybe(s.options.pmm).word("threshold").maybe(s.options.flush_threshold);
  d.word("shootdown").maybe(s.options.shootdown).line();
  d.word("seed").maybe(s.seed).line();
  d.word("setup {").line();
  describe_body(s.setup, d);
  d.word("}").line();
  for (const CpuProgram& p : s.programs) {
    d.word("cpu").number(p.cpu).word("{").line();
    describe_body(p.body, d);
    d.word("}").line();
  }
  for (const Check& c : s.checks) {
    d.word("check").number(c.what.index());
    if (const auto* v = c.as<CheckValue>()) d.word(v->space).number(v->address.value()).number(v->value);
    if (const auto* mapped = c.as<CheckMapped>()) d.word(mapped->space).number(mapped->address.value()).kind(mapped->prot);
    if (const auto* u = c.as<CheckUnmapped>()) d.word(u->space).number(u->address.value());
    if (const auto* l = c.as<CheckFramesLeaked>()) d.kind(l->comparison).number(l->count);
    if (const auto* f = c.as<CheckFaults>()) d.number(f->cpu).kind(f->comparison).number(f->count);
    if (const auto* sd = c.as<CheckShootdowns>()) d.kind(sd->comparison).number(sd->count);
    d.line();
  }
  for (const SpaceInfo& space : s.spaces) {
    d.word("space").word(space.name).word("by").maybe(space.creator_cpu).line();
  }
  return std::move(d.text());
}

}  // namespace

namespace pagelab::fuzz_inputs {

std::optional<std::string> scenario_properties(std::string_view text) {
  const ParseResult parsed = parse_scenario(text, std::string(kFile));
  if (!parsed.ok()) return check_error(parsed.error(), text);
  const Scenario& scenario = parsed.scenario();
  if (scenario.file != kFile) return failure("the scenario names another file", scenario.file);
  ContractChecker contract{scenario, {}, {}};
  contract.run();
  if (contract.report) return contract.report;

  const std::string printed = print_scenario(scenario);
  const ParseResult again = parse_scenario(printed, "printed.scenario");
  if (!again.ok()) {
    return failure("the printed scenario does not parse", again.error().to_string() + "\n--- printed:\n" + printed);
  }
  const std::string before = describe(scenario);
  const std::string after = describe(again.scenario());
  if (before != after) {
    return failure("the printed scenario parses to another scenario",
                   "--- parsed:\n" + before + "--- printed and parsed again:\n" + after + "--- printed:\n" + printed);
  }
  const std::string reprinted = print_scenario(again.scenario());
  if (reprinted != printed) return failure("printing is not stable", "--- first:\n" + printed + "--- second:\n" + reprinted);
  return std::nullopt;
}

}  // namespace pagelab::fuzz_inputs
