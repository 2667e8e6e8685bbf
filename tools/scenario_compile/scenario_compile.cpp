// pagelab-scenario-compile: scenario files to the kernel's compiled form.
//
//   pagelab-scenario-compile --out FILE.cpp [--root DIR] SCENARIO...
//
// Parses each scenario with the emulator's parser (emu/scenario/parser.hpp),
// so the kernel runs exactly the language the emulator runs, and writes one
// C++ source of constant arrays of kernel::scenario::Op
// (src/kernel/scenario/compiled_scenario.hpp) that the kernel links. A
// scenario the kernel cannot run is still listed, with the reason, so the
// kernel can say it skipped it. A parse error is fatal (exit 2): the build
// stops, as `pagelab run` would. (A phys= range outside the emulator's
// device window is one: it would name the kernel's own RAM.)
//
// What makes a scenario "cannot run" on the kernel:
//   - an unsafe shootdown policy (the emulator's oracle is what catches them);
//   - `exec` in kernel mode (the kernel would run whatever bytes are there
//     at CPL 0);
//   - an access to the upper half (the kernel half is the kernel's own
//     memory there, and empty in the emulator);
//   - more spaces, barriers or nested repeats than the interpreter holds.
#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "emu/io/text_input.hpp"
#include "emu/machine/device_window.hpp"
#include "emu/scenario/lexer.hpp"
#include "emu/scenario/parser.hpp"
#include "mm/vm/layout.hpp"
#include "scenario/compiled_scenario.hpp"

namespace {

namespace ks = kernel::scenario;
namespace sc = pagelab::scenario;

// phys= addresses in scenarios point into the emulator's device window
// (emu/machine/device_window.hpp); the kernel gives a scenario a zeroed run
// in its place, aligned as the window is modulo 2 MiB.
constexpr std::uint64_t kTwoMiB = std::uint64_t{2} << 20;

class Compiler {
 public:
  Compiler(const sc::Scenario& scenario, std::string name, std::string file)
      : s_(scenario), name_(std::move(name)), file_(std::move(file)) {
    for (std::size_t i = 0; i < s_.spaces.size(); ++i) space_index_[s_.spaces[i].name] = static_cast<std::uint8_t>(i);
    if (s_.spaces.size() > ks::kMaxSpaces) skip(fmt::format("it creates {} address spaces; the kernel holds {}", s_.spaces.size(), ks::kMaxSpaces));
    window_bytes_ = pagelab::emu::device_window_bytes(s_.machine.ram_bytes);
    window_start_ = pagelab::emu::device_window_start(s_.machine.ram_bytes);
  }

  void compile() {
    if (s_.uses_unsafe_policy()) {
      skip(fmt::format("the unsafe shootdown policy '{}' is for the emulator's oracle",
                       sc::shootdown_policy_name(*s_.options.shootdown)));
    }
    notes();
    for (const sc::Statement& st : s_.setup) emit(setup_, st, 0);
    for (const sc::CpuProgram& program : s_.programs) {
      std::vector<ks::Op> ops;
      for (const sc::Statement& st : program.body) emit(ops, st, 0);
      bool kernel_mode = false;
      find_kernel_exec(program.body, kernel_mode);
      programs_.push_back({program.cpu, std::move(ops)});
    }
    for (const sc::Check& check : s_.checks) checks_.push_back(compile_check(check));
  }

  // The C++ of this scenario's arrays (in an anonymous namespace) and its
  // CompiledScenario initializer.
  void write(std::ostream& arrays, std::ostream& table, int index) const {
    const std::string p = fmt::format("s{}_", index);
    auto write_ops = [&](const std::string& id, const std::vector<ks::Op>& ops) {
      if (ops.empty()) return;
      arrays << "constexpr Op " << id << "[] = {\n";
      for (const ks::Op& op : ops) arrays << "    " << op_text(op) << ",\n";
      arrays << "};\n";
    };
    write_ops(p + "setup", setup_);
    write_ops(p + "checks", checks_);
    for (const auto& [cpu, ops] : programs_) write_ops(fmt::format("{}cpu{}", p, cpu), ops);
    if (!programs_.empty()) {
      arrays << "constexpr CpuProgram " << p << "programs[] = {\n";
      for (const auto& [cpu, ops] : programs_) {
        arrays << fmt::format("    {{{}, {}, {}}},\n", cpu, ops.size(), ops.empty() ? "nullptr" : fmt::format("{}cpu{}", p, cpu));
      }
      arrays << "};\n";
    }
    auto write_strings = [&](const std::string& id, const std::vector<std::string>& strings) {
      if (strings.empty()) return;
      arrays << "constexpr const char* " << id << "[] = {";
      for (const std::string& text : strings) arrays << quoted(text) << ", ";
      arrays << "};\n";
    };
    std::vector<std::string> spaces;
    for (const sc::SpaceInfo& info : s_.spaces) spaces.push_back(info.name);
    write_strings(p + "spaces", spaces);
    write_strings(p + "notes", notes_);
    if (!barrier_participants_.empty()) {
      arrays << "constexpr mm::u32 " << p << "barriers[] = {";
      for (std::uint32_t n : barrier_participants_) arrays << n << ", ";
      arrays << "};\n";
    }
    auto ptr = [&](bool present, const std::string& id) { return present ? p + id : std::string("nullptr"); };
    table << "    {" << quoted(name_) << ", " << quoted(file_) << ", " << (skip_.empty() ? "nullptr" : quoted(skip_)) << ", "
          << s_.machine.cpus << ",\n"
          << "     " << notes_.size() << ", " << ptr(!notes_.empty(), "notes") << ", " << spaces.size() << ", "
          << ptr(!spaces.empty(), "spaces") << ", " << barrier_participants_.size() << ", "
          << ptr(!barrier_participants_.empty(), "barriers") << ",\n"
          << "     " << setup_.size() << ", " << ptr(!setup_.empty(), "setup") << ", " << programs_.size() << ", "
          << ptr(!programs_.empty(), "programs") << ", " << checks_.size() << ", " << ptr(!checks_.empty(), "checks")
          << ", " << fmt::format("{:#x}, {:#x}", uses_phys_ ? window_bytes_ : 0, uses_phys_ ? window_start_ % kTwoMiB : 0)
          << "},\n";
  }

  const std::string& skip_reason() const { return skip_; }

 private:
  void skip(std::string reason) {
    if (skip_.empty()) skip_ = std::move(reason);
  }

  // Header settings the kernel does not honour, said once when it runs.
  void notes() {
    const sc::Machine& m = s_.machine;
    if (m.tlb_preset != "skylake") notes_.push_back(fmt::format("tlb={} is ignored: the CPU's own TLB translates", m.tlb_preset));
    if (m.psc) notes_.push_back("psc=on is ignored: the CPU's own paging-structure caches are in use");
    if (m.pcid) notes_.push_back("pcid=on runs without PCIDs: every use loads CR3 with a full flush");
    if (s_.options.pmm) {
      notes_.push_back(fmt::format("pmm={} is ignored: the kernel's allocator is the boot's (pmm= on the command line)",
                                   sc::pmm_name(*s_.options.pmm)));
    }
    if (s_.options.flush_threshold) notes_.push_back("flush-threshold is ignored: the core's default is used");
    if (s_.options.shootdown && !s_.uses_unsafe_policy()) {
      notes_.push_back(fmt::format("shootdown={} is ignored: the core's default is used",
                                   sc::shootdown_policy_name(*s_.options.shootdown)));
    }
  }

  std::uint8_t space(const std::string& name) const { return space_index_.at(name); }

  std::uint8_t barrier(const std::string& name) {
    const auto it = barrier_index_.find(name);
    if (it != barrier_index_.end()) return it->second;
    const auto index = static_cast<std::uint8_t>(barrier_participants_.size());
    if (barrier_participants_.size() >= ks::kMaxBarriers) {
      skip(fmt::format("it names more than {} barriers", ks::kMaxBarriers));
      return 0;
    }
    barrier_index_[name] = index;
    std::uint32_t participants = 0;
    for (const sc::CpuProgram& program : s_.programs) participants += names_barrier(program.body, name) ? 1 : 0;
    barrier_participants_.push_back(participants);
    return index;
  }

  static bool names_barrier(const std::vector<sc::Statement>& body, const std::string& name) {
    for (const sc::Statement& st : body) {
      if (const auto* b = st.as<sc::BarrierStmt>(); b != nullptr && b->name == name) return true;
      if (const auto* r = st.as<sc::RepeatStmt>(); r != nullptr && names_barrier(r->body, name)) return true;
    }
    return false;
  }

  // Walks a program in order (each repeat body twice, so a mode set late in
  // the body reaches its start) and notes an exec that may run in kernel mode.
  void find_kernel_exec(const std::vector<sc::Statement>& body, bool& kernel_mode) {
    for (const sc::Statement& st : body) {
      if (const auto* m = st.as<sc::ModeStmt>()) kernel_mode = m->mode == mm::AccessMode::Kernel;
      if (st.is<sc::ExecStmt>() && kernel_mode) {
        skip(fmt::format("line {}: exec in kernel mode would run the page's bytes at CPL 0", st.where.line));
      }
      if (const auto* r = st.as<sc::RepeatStmt>()) {
        find_kernel_exec(r->body, kernel_mode);
        find_kernel_exec(r->body, kernel_mode);
      }
    }
  }

  void check_access(const sc::Statement& st, mm::VirtAddr address) {
    if (address.value() >= mm::kUserSpaceEnd) {
      skip(fmt::format("line {}: an access to the upper half ({:#x}), the kernel's own memory on the kernel", st.where.line,
                       address.value()));
    }
  }

  static ks::ExpectKind expect_kind(sc::OutcomeKind kind) {
    switch (kind) {
      case sc::OutcomeKind::Ok: return ks::ExpectKind::Ok;
      case sc::OutcomeKind::Segv: return ks::ExpectKind::Segv;
      case sc::OutcomeKind::Any: return ks::ExpectKind::Any;
      case sc::OutcomeKind::Value: return ks::ExpectKind::Value;
      case sc::OutcomeKind::Error: return ks::ExpectKind::Error;
    }
    return ks::ExpectKind::Ok;
  }

  void emit(std::vector<ks::Op>& out, const sc::Statement& st, std::uint32_t depth) {
    ks::Op op{};
    op.line = st.where.line;
    op.expect = expect_kind(st.expect.kind);
    op.error = static_cast<std::uint8_t>(st.expect.error);
    if (st.expect.kind == sc::OutcomeKind::Value) op.value = st.expect.value;
    if (const auto* s = st.as<sc::SpaceStmt>()) {
      op.code = ks::OpCode::Space;
      op.space = space(s->name);
    } else if (const auto* m = st.as<sc::MapStmt>()) {
      op.code = ks::OpCode::Map;
      op.space = space(m->space);
      op.address = m->address.value();
      op.length = m->length;
      op.prot = static_cast<std::uint8_t>(m->prot);
      op.flags = m->populate ? ks::kPopulate : 0;
      switch (m->word) {
        case sc::MapKindWord::Anon: op.other = static_cast<std::uint8_t>(ks::MapKind::Anon); break;
        case sc::MapKindWord::Shared: op.other = static_cast<std::uint8_t>(ks::MapKind::Shared); break;
        case sc::MapKindWord::Stack: op.other = static_cast<std::uint8_t>(ks::MapKind::Stack); break;
        case sc::MapKindWord::Phys: {
          op.other = static_cast<std::uint8_t>(ks::MapKind::Phys);
          // The parser took only a range inside the device window.
          op.value = m->physical.value() - window_start_;
          uses_phys_ = true;
          break;
        }
      }
    } else if (const auto* u = st.as<sc::UnmapStmt>()) {
      op.code = ks::OpCode::Unmap;
      op.space = space(u->space);
      op.address = u->address.value();
      op.length = u->length;
    } else if (const auto* p = st.as<sc::ProtectStmt>()) {
      op.code = ks::OpCode::Protect;
      op.space = space(p->space);
      op.address = p->address.value();
      op.length = p->length;
      op.prot = static_cast<std::uint8_t>(p->prot);
    } else if (const auto* f = st.as<sc::ForkStmt>()) {
      op.code = ks::OpCode::Fork;
      op.space = space(f->child);
      op.other = space(f->parent);
    } else if (const auto* pin = st.as<sc::PinStmt>()) {
      op.code = ks::OpCode::Pin;
      op.space = space(pin->space);
      op.address = pin->address.value();
      op.length = pin->length;
    } else if (const auto* unpin = st.as<sc::UnpinStmt>()) {
      op.code = ks::OpCode::Unpin;
      op.space = space(unpin->space);
      op.address = unpin->address.value();
      op.length = unpin->length;
    } else if (const auto* poke = st.as<sc::PokeStmt>()) {
      op.code = ks::OpCode::Poke;
      op.space = space(poke->space);
      op.address = poke->address.value();
      op.value = poke->value;
    } else if (const auto* use = st.as<sc::UseStmt>()) {
      op.code = ks::OpCode::Use;
      op.space = space(use->space);
    } else if (const auto* mode = st.as<sc::ModeStmt>()) {
      op.code = ks::OpCode::Mode;
      op.other = mode->mode == mm::AccessMode::Kernel ? 1 : 0;
    } else if (const auto* r = st.as<sc::ReadStmt>()) {
      op.code = ks::OpCode::Read;
      op.address = r->address.value();
      check_access(st, r->address);
    } else if (const auto* w = st.as<sc::WriteStmt>()) {
      op.code = ks::OpCode::Write;
      op.address = w->address.value();
      op.value = w->value;
      check_access(st, w->address);
    } else if (const auto* x = st.as<sc::ExecStmt>()) {
      op.code = ks::OpCode::Exec;
      op.address = x->address.value();
      check_access(st, x->address);
    } else if (const auto* b = st.as<sc::BarrierStmt>()) {
      op.code = ks::OpCode::Barrier;
      op.other = barrier(b->name);
    } else if (const auto* rep = st.as<sc::RepeatStmt>()) {
      if (depth + 1 > ks::kMaxRepeatDepth) skip(fmt::format("line {}: repeats nest deeper than {}", st.where.line, ks::kMaxRepeatDepth));
      op.code = ks::OpCode::Repeat;
      op.length = rep->count;
      const std::size_t begin = out.size();
      out.push_back(op);
      for (const sc::Statement& inner : rep->body) emit(out, inner, depth + 1);
      ks::Op end{};
      end.code = ks::OpCode::EndRepeat;
      end.line = rep->end_where.line;
      end.jump = static_cast<std::uint32_t>(begin);
      out[begin].jump = static_cast<std::uint32_t>(out.size());
      out.push_back(end);
      return;
    }
    out.push_back(op);
  }

  static std::uint8_t compare(sc::Comparison c) {
    switch (c) {
      case sc::Comparison::Equal: return static_cast<std::uint8_t>(ks::Compare::Equal);
      case sc::Comparison::AtLeast: return static_cast<std::uint8_t>(ks::Compare::AtLeast);
      case sc::Comparison::AtMost: return static_cast<std::uint8_t>(ks::Compare::AtMost);
    }
    return 0;
  }

  ks::Op compile_check(const sc::Check& check) {
    ks::Op op{};
    op.line = check.where.line;
    if (const auto* v = check.as<sc::CheckValue>()) {
      op.code = ks::OpCode::CheckValue;
      op.space = space(v->space);
      op.address = v->address.value();
      op.value = v->value;
    } else if (const auto* m = check.as<sc::CheckMapped>()) {
      op.code = ks::OpCode::CheckMapped;
      op.space = space(m->space);
      op.address = m->address.value();
      op.prot = static_cast<std::uint8_t>(m->prot);
    } else if (const auto* u = check.as<sc::CheckUnmapped>()) {
      op.code = ks::OpCode::CheckUnmapped;
      op.space = space(u->space);
      op.address = u->address.value();
    } else if (const auto* l = check.as<sc::CheckFramesLeaked>()) {
      op.code = ks::OpCode::CheckFramesLeaked;
      op.other = compare(l->comparison);
      op.length = l->count;
    } else if (const auto* f = check.as<sc::CheckFaults>()) {
      op.code = ks::OpCode::CheckFaults;
      op.other = compare(f->comparison);
      op.space = static_cast<std::uint8_t>(f->cpu);
      op.length = f->count;
    } else if (const auto* sd = check.as<sc::CheckShootdowns>()) {
      op.code = ks::OpCode::CheckShootdowns;
      op.other = compare(sd->comparison);
      op.length = sd->count;
    }
    return op;
  }

  static std::string op_text(const ks::Op& op) {
    static constexpr const char* kCodes[] = {"Space", "Map", "Unmap", "Protect", "Fork", "Pin", "Unpin", "Poke",
                                             "Use", "Mode", "Read", "Write", "Exec", "Barrier", "Repeat",
                                             "EndRepeat", "CheckValue", "CheckMapped", "CheckUnmapped",
                                             "CheckFramesLeaked", "CheckFaults", "CheckShootdowns"};
    static constexpr const char* kExpects[] = {"Ok", "Segv", "Any", "Value", "Error"};
    return fmt::format("{{OpCode::{}, ExpectKind::{}, {}, {}, {}, {}, {}, 0, {}, {}, {:#x}, {:#x}, {:#x}}}",
                       kCodes[static_cast<int>(op.code)], kExpects[static_cast<int>(op.expect)], op.error, op.prot,
                       op.space, op.other, op.flags, op.line, op.jump, op.address, op.length, op.value);
  }

  const sc::Scenario& s_;
  std::string name_;
  std::string file_;
  std::string skip_;
  std::vector<std::string> notes_;
  std::map<std::string, std::uint8_t> space_index_;
  std::map<std::string, std::uint8_t> barrier_index_;
  std::vector<std::uint32_t> barrier_participants_;
  std::vector<ks::Op> setup_;
  std::vector<std::pair<std::uint32_t, std::vector<ks::Op>>> programs_;
  std::vector<ks::Op> checks_;
  std::uint64_t window_bytes_ = 0;
  std::uint64_t window_start_ = 0;
  bool uses_phys_ = false;

 public:
  static std::string quoted(const std::string& text) {
    std::string out = "\"";
    for (char c : text) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    return out + "\"";
  }
};

int usage() {
  std::fprintf(stderr, "usage: pagelab-scenario-compile --out FILE.cpp [--root DIR] SCENARIO...\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string out_path;
  std::filesystem::path root;
  std::vector<std::string> inputs;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--out" && i + 1 < argc) {
      out_path = argv[++i];
    } else if (arg == "--root" && i + 1 < argc) {
      root = argv[++i];
    } else if (!arg.empty() && arg[0] == '-') {
      return usage();
    } else {
      inputs.push_back(arg);
    }
  }
  if (out_path.empty()) return usage();

  std::ostringstream arrays, table;
  std::set<std::string> names;
  int index = 0;
  for (const std::string& input : inputs) {
    const pagelab::emu::TextFile text = pagelab::emu::read_text_file(
        input, {pagelab::scenario::kMaxScenarioLineBytes, pagelab::scenario::kMaxScenarioBytes, "a scenario"});
    if (!text.ok()) {
      std::fprintf(stderr, "%s\n", text.error->message("pagelab-scenario-compile").c_str());
      return 2;
    }
    const std::filesystem::path path(input);
    const std::string file = root.empty() ? input : std::filesystem::relative(path, root).generic_string();
    const pagelab::scenario::ParseResult parsed = pagelab::scenario::parse_scenario(text.text, file);
    if (!parsed.ok()) {
      std::fprintf(stderr, "%s\n", parsed.error().to_string().c_str());
      return 2;
    }
    const std::string name = path.stem().string();
    if (!names.insert(name).second) {
      std::fprintf(stderr, "pagelab-scenario-compile: two scenarios are named '%s' (scenarios=NAME selects by file stem)\n",
                   name.c_str());
      return 2;
    }
    Compiler compiler(parsed.scenario(), name, file);
    compiler.compile();
    compiler.write(arrays, table, index++);
  }

  std::ostringstream source;
  source << "// Generated by pagelab-scenario-compile (tools/scenario_compile) from the scenario files\n"
            "// below. Do not edit: the build regenerates it when any of them changes.\n"
            "#include \"scenario/compiled_scenario.hpp\"\n\n"
            "namespace kernel::scenario {\n\nnamespace {\n\n"
         << arrays.str() << "\n}  // namespace\n\n"
         << "const CompiledScenario kCompiledScenarios[] = {\n"
         << table.str()
         << (index == 0 ? "    {},\n" : "") << "};\n"
         << "const mm::usize kCompiledScenarioCount = " << index << ";\n\n}  // namespace kernel::scenario\n";
  std::ofstream out(out_path);
  out << source.str();
  out.close();  // a full disk shows only here
  if (!out) {
    std::fprintf(stderr, "pagelab-scenario-compile: cannot write '%s'\n", out_path.c_str());
    return 2;
  }
  return 0;
}
