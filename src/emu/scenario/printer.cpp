#include "emu/scenario/printer.hpp"

#include <fmt/format.h>

namespace pagelab::scenario {

namespace {

std::string hex(u64 value) { return fmt::format("{:#x}", value); }

// A length as the shortest exact size word: 4K, 2M, 1G, else hex.
std::string size_word(u64 bytes) {
  constexpr u64 kK = u64{1} << 10, kM = u64{1} << 20, kG = u64{1} << 30;
  if (bytes != 0 && bytes % kG == 0) return fmt::format("{}G", bytes / kG);
  if (bytes != 0 && bytes % kM == 0) return fmt::format("{}M", bytes / kM);
  if (bytes != 0 && bytes % kK == 0) return fmt::format("{}K", bytes / kK);
  return hex(bytes);
}

// " expect ..." when the statement's expectation was written (or is not the default).
std::string expectation(const Statement& s) {
  const Expectation& e = s.expect;
  if (!e.written && e.kind == OutcomeKind::Ok) return {};
  switch (e.kind) {
    case OutcomeKind::Ok: return " expect ok";
    case OutcomeKind::Segv: return " expect segv";
    case OutcomeKind::Any: return " expect any";
    case OutcomeKind::Value: return " expect " + hex(e.value);
    case OutcomeKind::Error: return std::string(" expect ") + mm::errno_name(e.error);
  }
  return {};
}

std::string map_kind(const MapStmt& m) {
  switch (m.word) {
    case MapKindWord::Anon: return "";
    case MapKindWord::Shared: return " shared";
    case MapKindWord::Stack: return " stack";
    case MapKindWord::Phys: return " phys=" + hex(m.physical.value());
  }
  return "";
}

void print_body(const std::vector<Statement>& body, int depth, std::string& out) {
  const std::string indent(static_cast<std::size_t>(depth) * 2, ' ');
  for (const Statement& s : body) {
    if (const auto* r = s.as<RepeatStmt>()) {
      out += indent + fmt::format("repeat {}\n", r->count);
      print_body(r->body, depth + 1, out);
      out += indent + "end\n";
      continue;
    }
    out += indent + print_statement(s) + "\n";
  }
}

std::string print_check(const Check& check) {
  if (const auto* v = check.as<CheckValue>()) return fmt::format("check value {} {} == {}", v->space, hex(v->address.value()), hex(v->value));
  if (const auto* m = check.as<CheckMapped>()) return fmt::format("check mapped {} {} {}", m->space, hex(m->address.value()), prot_word(m->prot));
  if (const auto* u = check.as<CheckUnmapped>()) return fmt::format("check unmapped {} {}", u->space, hex(u->address.value()));
  if (const auto* l = check.as<CheckFramesLeaked>()) return fmt::format("check frames leaked {} {}", comparison_symbol(l->comparison), l->count);
  if (const auto* f = check.as<CheckFaults>()) return fmt::format("check faults cpu {} {} {}", f->cpu, comparison_symbol(f->comparison), f->count);
  if (const auto* d = check.as<CheckShootdowns>()) return fmt::format("check shootdowns {} {}", comparison_symbol(d->comparison), d->count);
  return "#";
}

}  // namespace

std::string prot_word(mm::Prot prot) {
  std::string word;
  if (mm::allows(prot, mm::Prot::Read)) word += 'r';
  if (mm::allows(prot, mm::Prot::Write)) word += 'w';
  if (mm::allows(prot, mm::Prot::Exec)) word += 'x';
  return word.empty() ? "none" : word;
}

std::string print_statement(const Statement& s) {
  struct Line {
    std::string operator()(const SpaceStmt& x) const { return "space " + x.name; }
    std::string operator()(const MapStmt& x) const {
      return fmt::format("map {} {} {} {}{}{}", x.space, hex(x.address.value()), size_word(x.length), prot_word(x.prot),
                         map_kind(x), x.populate ? " populate" : "");
    }
    std::string operator()(const UnmapStmt& x) const {
      return fmt::format("unmap {} {} {}", x.space, hex(x.address.value()), size_word(x.length));
    }
    std::string operator()(const ProtectStmt& x) const {
      return fmt::format("protect {} {} {} {}", x.space, hex(x.address.value()), size_word(x.length), prot_word(x.prot));
    }
    std::string operator()(const ForkStmt& x) const { return fmt::format("fork {} from {}", x.child, x.parent); }
    std::string operator()(const PinStmt& x) const {
      return fmt::format("pin {} {} {}", x.space, hex(x.address.value()), size_word(x.length));
    }
    std::string operator()(const UnpinStmt& x) const {
      return fmt::format("unpin {} {} {}", x.space, hex(x.address.value()), size_word(x.length));
    }
    std::string operator()(const PokeStmt& x) const {
      return fmt::format("poke {} {} {}", x.space, hex(x.address.value()), hex(x.value));
    }
    std::string operator()(const UseStmt& x) const { return "use " + x.space; }
    std::string operator()(const ModeStmt& x) const { return x.mode == mm::AccessMode::User ? "mode user" : "mode kernel"; }
    std::string operator()(const ReadStmt& x) const { return "read " + hex(x.address.value()); }
    std::string operator()(const WriteStmt& x) const {
      return fmt::format("write {} {}", hex(x.address.value()), hex(x.value));
    }
    std::string operator()(const ExecStmt& x) const { return "exec " + hex(x.address.value()); }
    std::string operator()(const BarrierStmt& x) const { return "barrier " + x.name; }
    std::string operator()(const RepeatStmt& x) const { return fmt::format("repeat {}", x.count); }  // print_body prints the block
  };
  return std::visit(Line{}, s.op) + expectation(s);
}

std::string print_scenario(const Scenario& s, const std::vector<std::string>& header) {
  std::string out;
  for (const std::string& line : header) out += line.empty() ? "#\n" : "# " + line + "\n";
  const Machine& m = s.machine;
  out += fmt::format("machine cpus={} ram={}", m.cpus, size_word(m.ram_bytes));
  if (m.tlb_preset != "skylake") out += " tlb=" + m.tlb_preset;
  if (m.pcid) out += " pcid=on";
  if (m.psc) out += " psc=on";
  out += "\n";
  for (const OptionSetting& o : s.options.given) out += fmt::format("option {}={}\n", o.name, o.value);
  if (s.seed) out += fmt::format("seed {}\n", *s.seed);
  if (!s.setup.empty()) out += "\n";
  print_body(s.setup, 0, out);
  for (const CpuProgram& p : s.programs) {
    out += fmt::format("\ncpu {}\n", p.cpu);
    print_body(p.body, 1, out);
    out += "end\n";
  }
  if (!s.checks.empty()) out += "\n";
  for (const Check& c : s.checks) out += print_check(c) + "\n";
  return out;
}

}  // namespace pagelab::scenario
