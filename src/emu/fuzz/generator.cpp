#include "emu/fuzz/generator.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

#include "emu/machine/machine.hpp"

namespace pagelab::fuzz {

namespace {

using namespace pagelab::scenario;
using mm::u32;
using mm::u64;

constexpr u64 kPage = 4096;
constexpr u64 kLarge = u64{2} << 20;

// What this case may use (swarm testing). Every flag off is the simplest case.
struct Swarm {
  bool writes, execs, kernel_mode, switches, maps, unmaps, protects, pins, unpins, cpu_forks, barriers, repeats;
  bool populate, shared, stack, phys, setup_forks, pokes;

  static Swarm draw(ChoiceStream& c) {
    Swarm s{};
    bool* flags[] = {&s.writes, &s.execs,   &s.kernel_mode, &s.switches, &s.maps,    &s.unmaps,
                     &s.protects, &s.pins,  &s.unpins,      &s.cpu_forks, &s.barriers, &s.repeats,
                     &s.populate, &s.shared, &s.stack,      &s.phys,      &s.setup_forks, &s.pokes};
    for (bool* flag : flags) *flag = c.percent(55);
    return s;
  }
  std::string words() const {
    std::string out;
    const std::pair<bool, const char*> named[] = {
        {writes, "write"},   {execs, "exec"},       {kernel_mode, "mode"}, {switches, "use"},  {maps, "map"},
        {unmaps, "unmap"},   {protects, "protect"}, {pins, "pin"},         {unpins, "unpin"},  {cpu_forks, "cpu-fork"},
        {barriers, "barrier"}, {repeats, "repeat"}, {populate, "populate"}, {shared, "shared"}, {stack, "stack"},
        {phys, "phys"},      {setup_forks, "fork"}, {pokes, "poke"}};
    for (const auto& [on, word] : named) {
      if (!on) continue;
      if (!out.empty()) out += ',';
      out += word;
    }
    return out.empty() ? "read" : out;
  }
};

class Generator {
 public:
  Generator(ChoiceStream& c, const GeneratorOptions& options) : c_(c), options_(options) {}

  GeneratedCase run() {
    swarm_ = Swarm::draw(c_);
    GeneratedCase out;
    Scenario& s = out.scenario;
    machine(s);
    this->options(s);
    arena_pages_ = c_.range(2, 12);
    setup(s);
    for (u32 cpu = 0; cpu < s.machine.cpus; ++cpu) s.programs.push_back(program(cpu));
    barriers(s);
    Check leaks;
    leaks.what = CheckFramesLeaked{Comparison::Equal, 0};
    s.checks.push_back(leaks);
    std::string features = swarm_.words();
    if (s.machine.pcid) features += ",pcid";
    if (s.machine.psc) features += ",psc";
    if (s.machine.tlb_preset != "skylake") features += ",tlb=" + s.machine.tlb_preset;
    out.features = features;
    return out;
  }

 private:
  // ---- header -------------------------------------------------------------

  void machine(Scenario& s) {
    s.machine.cpus = static_cast<u32>(c_.range(2, 8));
    // 2 MiB: memory runs short (512 frames, against up to 80 cached per
    // CPU), so allocations fail, commitments fall short and the per-CPU
    // caches are drained, every CPU's stolen by another (issue 3/10).
    static constexpr u64 kRam[] = {u64{16} << 20, u64{8} << 20, u64{32} << 20, u64{2} << 20};
    s.machine.ram_bytes = c_.pick(kRam);
    static constexpr const char* kTlb[] = {"skylake", "tiny", "zen2"};
    s.machine.tlb_preset = c_.pick(kTlb);
    s.machine.pcid = c_.percent(40);
    s.machine.psc = c_.percent(40);
    window_bytes_ = emu::device_window_bytes(s.machine.ram_bytes);
    window_base_ = s.machine.ram_bytes - window_bytes_;
  }

  void options(Scenario& s) {
    if (c_.percent(30)) {
      static constexpr PmmKind kPmm[] = {PmmKind::Buddy, PmmKind::Stack, PmmKind::Bitmap};
      const PmmKind pmm = c_.pick(kPmm);
      s.options.pmm = pmm;
      s.options.given.push_back(OptionSetting{"pmm", std::string(pmm_name(pmm)), {}, {}});
    }
    if (c_.percent(30)) {
      const u32 threshold = static_cast<u32>(c_.range(1, 32));
      s.options.flush_threshold = threshold;
      s.options.given.push_back(OptionSetting{"flush-threshold", std::to_string(threshold), {}, {}});
    }
  }

  // ---- statements ---------------------------------------------------------

  static Statement any(Statement::Op op) {
    Statement s;
    s.op = std::move(op);
    s.expect.kind = OutcomeKind::Any;
    s.expect.written = true;
    return s;
  }
  static Statement plain(Statement::Op op) {
    Statement s;
    s.op = std::move(op);
    return s;
  }

  // A page range inside the arena: [first page, first + count).
  std::pair<u64, u64> arena_range() {
    const u64 first = c_.draw(arena_pages_);
    const u64 count = c_.range(1, arena_pages_ - first);
    return {kArenaBase + first * kPage, count * kPage};
  }
  // A page range an operation (unmap, protect, pin, unpin) names: in the
  // arena, or, once the case maps device memory, from a device page on.
  // Half of those start at the window's first page, so that a range ends
  // inside a 2 MiB device page that starts with it: the core must split the
  // large page at the range's end as well as at its start.
  std::pair<u64, u64> op_range() {
    if (phys_pages_ == 0 || !c_.percent(20)) return arena_range();
    const u64 first = c_.percent(50) ? 0 : c_.draw(std::min<u64>(phys_pages_, 16));
    return {kDeviceBase + first * kPage, c_.range(1, 8) * kPage};
  }

  mm::Prot prot() {
    static constexpr mm::Prot kProts[] = {mm::Prot::ReadWrite, mm::Prot::Read, mm::Prot::None, mm::Prot::All,
                                          mm::Prot::ReadExec,  mm::Prot::Write, mm::Prot::Exec};
    return c_.pick(kProts);
  }

  Statement map(const std::string& space) {
    MapStmt m;
    m.space = space;
    m.prot = prot();
    const u64 kind = c_.draw(4);
    if (kind == 3 && swarm_.phys && window_bytes_ >= kLarge) {
      // Device memory: a 2 MiB page where both addresses allow it, else 4 KiB pages.
      const bool large = c_.percent(50);
      const u64 window_pages = window_bytes_ / kPage;
      const u64 pages = large ? kLarge / kPage : c_.range(1, 8);
      const u64 offset = large ? 0 : c_.draw(window_pages - pages + 1);
      m.address = mm::VirtAddr(kDeviceBase + (large ? 0 : offset * kPage));
      m.length = pages * kPage;
      m.word = MapKindWord::Phys;
      m.kind = mm::RegionKind::Physical;
      m.fork = mm::ForkPolicy::Shared;
      m.physical = mm::PhysAddr(window_base_ + offset * kPage);
      phys_pages_ = std::max(phys_pages_, (m.address.value() - kDeviceBase) / kPage + pages);
    } else {
      const auto [address, length] = arena_range();
      m.address = mm::VirtAddr(address);
      m.length = length;
      if (kind == 1 && swarm_.shared) {
        m.word = MapKindWord::Shared;
        m.fork = mm::ForkPolicy::Shared;
      } else if (kind == 2 && swarm_.stack) {
        m.word = MapKindWord::Stack;
        m.kind = mm::RegionKind::Stack;
      }
    }
    m.populate = swarm_.populate && c_.percent(35);
    return any(std::move(m));
  }

  // An address an access may use: a word of an arena page (first, second or
  // last word), or of a device page when the case maps device memory.
  u64 access_address(bool word_aligned) {
    if (phys_pages_ > 0 && c_.percent(25)) {
      return kDeviceBase + c_.draw(std::min<u64>(phys_pages_, 16)) * kPage + slot(word_aligned);
    }
    return kArenaBase + c_.draw(arena_pages_) * kPage + slot(word_aligned);
  }
  u64 slot(bool word_aligned) {
    static constexpr u64 kWords[] = {0, 8, kPage - 8};
    static constexpr u64 kBytes[] = {0, 0x11, kPage - 1};
    return word_aligned ? c_.pick(kWords) : c_.pick(kBytes);
  }

  u64 next_value(u32 cpu) { return unique_value(cpu, values_[cpu == 255 ? kMaxCpus : cpu]++); }

  // ---- set-up ---------------------------------------------------------------

  void setup(Scenario& s) {
    const u64 roots = c_.range(1, 3);
    for (u64 i = 0; i < roots; ++i) {
      const std::string name = fmt::format("s{}", i);
      s.setup.push_back(plain(SpaceStmt{name}));
      spaces_.push_back(name);
      const u64 maps = c_.range(1, 3);
      for (u64 m = 0; m < maps; ++m) s.setup.push_back(map(name));
    }
    const u64 extras = c_.range(0, 4);
    for (u64 i = 0; i < extras; ++i) {
      const std::string& space = spaces_[c_.draw(spaces_.size())];
      const u64 what = c_.draw(3);
      if (what == 1 && swarm_.pokes) {
        s.setup.push_back(any(PokeStmt{space, mm::VirtAddr(access_address(true)), next_value(255)}));
      } else if (what == 2 && swarm_.pins) {
        const auto [address, length] = arena_range();
        s.setup.push_back(any(PinStmt{space, mm::VirtAddr(address), length}));
      } else if (swarm_.maps) {
        s.setup.push_back(map(space));
      }
    }
    if (swarm_.setup_forks) {
      const u64 forks = c_.range(1, 2);
      for (u64 i = 0; i < forks; ++i) {
        const std::string parent = spaces_[c_.draw(spaces_.size())];
        const std::string child = fmt::format("c{}", i);
        s.setup.push_back(any(ForkStmt{child, parent}));
        spaces_.push_back(child);
        if (swarm_.pokes && c_.percent(50)) {
          s.setup.push_back(any(PokeStmt{child, mm::VirtAddr(access_address(true)), next_value(255)}));
        }
      }
    }
  }

  // ---- CPU programs -----------------------------------------------------------

  CpuProgram program(u32 cpu) {
    CpuProgram p;
    p.cpu = cpu;
    std::vector<std::string> mine = spaces_;  // grows with this CPU's own forks
    p.body.push_back(plain(UseStmt{mine[c_.draw(mine.size())]}));
    const u64 count = c_.range(1, 10);
    forked_ = false;
    for (u64 i = 0; i < count; ++i) p.body.push_back(statement(cpu, mine, /*top_level=*/true));
    return p;
  }

  Statement statement(u32 cpu, std::vector<std::string>& mine, bool top_level) {
    const std::string& space = mine[c_.draw(mine.size())];
    switch (c_.draw(12)) {
      case 1:
        if (swarm_.writes) return any(WriteStmt{mm::VirtAddr(access_address(true)), next_value(cpu)});
        break;
      case 2:
        if (swarm_.execs) return any(ExecStmt{mm::VirtAddr(access_address(false))});
        break;
      case 3:
        if (swarm_.switches) return plain(UseStmt{space});
        break;
      case 4:
        if (swarm_.kernel_mode) return plain(ModeStmt{c_.percent(50) ? mm::AccessMode::Kernel : mm::AccessMode::User});
        break;
      case 5:
        if (swarm_.maps) return map(space);
        break;
      case 6:
        if (swarm_.unmaps) {
          const auto [address, length] = op_range();
          return any(UnmapStmt{space, mm::VirtAddr(address), length});
        }
        break;
      case 7:
        if (swarm_.protects) {
          const auto [address, length] = op_range();
          return any(ProtectStmt{space, mm::VirtAddr(address), length, prot()});
        }
        break;
      case 8:
        if (swarm_.pins) {
          const auto [address, length] = op_range();
          return any(PinStmt{space, mm::VirtAddr(address), length});
        }
        break;
      case 9:
        if (swarm_.unpins) {
          const auto [address, length] = op_range();
          return any(UnpinStmt{space, mm::VirtAddr(address), length});
        }
        break;
      case 10:
        // One fork per CPU, outside repeat; its child is this CPU's to use after.
        if (swarm_.cpu_forks && top_level && !forked_ && !options_.allocations_may_fail) {
          forked_ = true;
          const std::string child = fmt::format("f{}", cpu);
          Statement fork = any(ForkStmt{child, space});
          mine.push_back(child);
          return fork;
        }
        break;
      case 11:
        if (swarm_.repeats && top_level) {
          RepeatStmt r;
          r.count = c_.range(2, 5);
          const u64 body = c_.range(1, 3);
          for (u64 i = 0; i < body; ++i) r.body.push_back(statement(cpu, mine, /*top_level=*/false));
          return plain(std::move(r));
        }
        break;
      default:
        break;
    }
    return any(ReadStmt{mm::VirtAddr(access_address(true))});
  }

  // Barriers: each named by two or more CPUs, once each at the top level of
  // their programs, in the same order in every program (so no CPU waits
  // for one another reaches only after a later barrier).
  void barriers(Scenario& s) {
    if (!swarm_.barriers) return;
    const u64 count = c_.range(1, 2);
    std::vector<std::vector<u64>> positions(s.programs.size());
    for (u64 b = 0; b < count; ++b) {
      std::vector<u32> who;
      for (u32 cpu = 0; cpu < s.programs.size(); ++cpu) {
        if (cpu < 2 || c_.percent(50)) who.push_back(cpu);
      }
      for (const u32 cpu : who) {
        CpuProgram& p = s.programs[cpu];
        // After the first `use`, and after this CPU's earlier barrier.
        const u64 earliest = positions[cpu].empty() ? 1 : positions[cpu].back() + 1;
        const u64 at = earliest + c_.draw(p.body.size() - earliest + 1);
        p.body.insert(p.body.begin() + static_cast<std::ptrdiff_t>(at), plain(BarrierStmt{fmt::format("b{}", b)}));
        positions[cpu].push_back(at);
      }
    }
  }

  static constexpr u32 kMaxCpus = 8;

  ChoiceStream& c_;
  GeneratorOptions options_;
  Swarm swarm_{};
  u64 arena_pages_ = 2;
  u64 window_base_ = 0;
  u64 window_bytes_ = 0;
  u64 phys_pages_ = 0;  // device pages mapped from kDeviceBase on (accesses aim there)
  std::vector<std::string> spaces_;  // the set-up's
  bool forked_ = false;
  u64 values_[kMaxCpus + 1] = {};
};

}  // namespace

GeneratedCase generate_case(ChoiceStream& choices, const GeneratorOptions& options) {
  return Generator(choices, options).run();
}

}  // namespace pagelab::fuzz
