// The parsed form of a scenario file (../../../docs/SCENARIOS.md): the
// machine, the options, the seed, the set-up statements, one program per CPU
// and the final checks. parse_scenario() (parser.hpp) builds it; the runner
// executes it.
//
// Contract: a Scenario returned by parse_scenario() has passed every static
// check of the language — every CPU number is below machine.cpus, every
// address is canonical and aligned as its statement requires, every space
// name exists where it is used, every `repeat` and `cpu` block is closed,
// every barrier is named by two or more CPUs that reach it equally often.
// What it has not checked is what only the machine knows (the TLB preset
// name) and what happens at run time (an address outside user space, a zero
// length: the core answers EINVAL, which a scenario may expect).
//
// Every statement keeps its source location so the runner can report a
// failure "at FILE:LINE".
#pragma once

#include <cstdint>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "mm/base/status.hpp"
#include "mm/base/types.hpp"
#include "mm/paging/protection.hpp"
#include "mm/paging/shootdown_policy.hpp"
#include "mm/vm/fault.hpp"
#include "mm/vm/region.hpp"

namespace pagelab::scenario {

using mm::u32;
using mm::u64;

// 1-based; columns count bytes (a tab is one column).
struct SourceLocation {
  u32 line = 0;
  u32 column = 0;
  friend bool operator==(const SourceLocation&, const SourceLocation&) = default;
};

// ---------------------------------------------------------------------------
// Header: machine, options, seed.

inline constexpr u32 kMaxCpus = 64;            // the active-CPU masks are 64 bits wide
inline constexpr u64 kMinRamBytes = u64{1} << 20;

// machine cpus=N ram=SIZE [tlb=PRESET] [pcid=on|off] [psc=on|off]
struct Machine {
  SourceLocation where;
  u32 cpus = 0;                      // 1 .. kMaxCpus
  u64 ram_bytes = 0;                 // a multiple of 4 KiB, at least 1 MiB
  std::string tlb_preset = "skylake";  // not checked here: the machine knows its presets
  SourceLocation tlb_where;          // of the preset name; the machine line when defaulted
  bool pcid = false;
  bool psc = false;                  // paging-structure caches
};

enum class PmmKind : std::uint8_t { Buddy, Stack, Bitmap };

// TLB-shootdown policies are the core's (mm/paging/shootdown_policy.hpp).
// The unsafe ones reproduce classic bugs so the oracle can be shown to catch
// them; the runner refuses them unless --allow-unsafe is given.
using mm::ShootdownPolicy;

struct ShootdownPolicyName {
  ShootdownPolicy policy;
  std::string_view name;
  bool unsafe;
};

inline constexpr ShootdownPolicyName kShootdownPolicies[] = {
    {ShootdownPolicy::Batched, "batched", false},
    {ShootdownPolicy::Broadcast, "broadcast", false},
    {ShootdownPolicy::UnsafeFreeBeforeAck, "unsafe-free-before-ack", true},
    {ShootdownPolicy::UnsafeActiveOnly, "unsafe-active-only", true},
    {ShootdownPolicy::UnsafeNoFlush, "unsafe-no-flush", true},
    {ShootdownPolicy::UnsafeLocalOnly, "unsafe-local-only", true},
    {ShootdownPolicy::UnsafeFlushAfterUnlock, "unsafe-flush-after-unlock", true},
};

using mm::shootdown_policy_name;
using mm::is_unsafe;

constexpr std::string_view pmm_name(PmmKind kind) {
  switch (kind) {
    case PmmKind::Buddy: return "buddy";
    case PmmKind::Stack: return "stack";
    case PmmKind::Bitmap: return "bitmap";
  }
  return "?";
}

// `option NAME=VALUE`, exactly as written.
struct OptionSetting {
  std::string name;
  std::string value;
  SourceLocation where;        // of the `option` keyword
  SourceLocation value_where;  // of VALUE
};

struct Options {
  std::vector<OptionSetting> given;  // in file order; every name is a known one, each at most once
  // The typed form of the known options; empty when the scenario leaves the
  // choice to the core's default (or to the command line).
  std::optional<PmmKind> pmm;
  std::optional<u32> flush_threshold;  // pages above which a batch does a full flush
  std::optional<ShootdownPolicy> shootdown;

  bool unsafe() const { return shootdown.has_value() && is_unsafe(*shootdown); }
  // The setting named `name`, or nullptr.
  const OptionSetting* find(std::string_view name) const {
    for (const auto& option : given) {
      if (option.name == name) return &option;
    }
    return nullptr;
  }
};

// ---------------------------------------------------------------------------
// Statements: set-up and CPU programs.

// What a statement's `expect` asks for. Without `expect`, Ok (written = false).
//   read:                      Ok, Segv, Any, Value
//   write, exec:               Ok, Segv, Any
//   map/unmap/protect/fork/pin/unpin/poke: Ok, Any, Error
enum class OutcomeKind : std::uint8_t { Ok, Segv, Any, Value, Error };

struct Expectation {
  OutcomeKind kind = OutcomeKind::Ok;
  u64 value = 0;                     // OutcomeKind::Value: the 64-bit value read
  mm::Status error = mm::Status::Ok;  // OutcomeKind::Error: never Ok
  bool written = false;              // false: the default `expect ok`
  SourceLocation where;              // of the outcome word; the statement's when defaulted
};

// space NAME
struct SpaceStmt {
  std::string name;
};

// How `map` fills the range, as written: anon (the default), shared, stack
// (an extension: a stack region with a guard page at ADDR - 4 KiB) or
// phys=PADDR. The fields mirror mm::MapRequest; the runner copies them over
// (MapFixed::FailIfExists).
enum class MapKindWord : std::uint8_t { Anon, Shared, Stack, Phys };

// map SPACE ADDR LEN PROT [anon|shared|stack|phys=PADDR] [populate]
struct MapStmt {
  std::string space;
  mm::VirtAddr address;
  u64 length = 0;
  mm::Prot prot = mm::Prot::None;
  MapKindWord word = MapKindWord::Anon;
  mm::RegionKind kind = mm::RegionKind::Anonymous;  // Anonymous, Stack or Physical
  mm::ForkPolicy fork = mm::ForkPolicy::Private;    // Shared for `shared`
  mm::PhysAddr physical;                            // Physical: the first frame
  bool populate = false;
};

// unmap SPACE ADDR LEN
struct UnmapStmt {
  std::string space;
  mm::VirtAddr address;
  u64 length = 0;
};

// protect SPACE ADDR LEN PROT
struct ProtectStmt {
  std::string space;
  mm::VirtAddr address;
  u64 length = 0;
  mm::Prot prot = mm::Prot::None;
};

// fork CHILD from PARENT
struct ForkStmt {
  std::string child;
  std::string parent;
};

// pin SPACE ADDR LEN
struct PinStmt {
  std::string space;
  mm::VirtAddr address;
  u64 length = 0;
};

// unpin SPACE ADDR LEN (undoes one pin of each region in the range)
struct UnpinStmt {
  std::string space;
  mm::VirtAddr address;
  u64 length = 0;
};

// poke SPACE ADDR VALUE (set-up only: a 64-bit write through the kernel)
struct PokeStmt {
  std::string space;
  mm::VirtAddr address;  // 8-byte aligned
  u64 value = 0;
};

// use SPACE (CPU only: load SPACE's CR3)
struct UseStmt {
  std::string space;
};

// mode user|kernel (CPU only)
struct ModeStmt {
  mm::AccessMode mode = mm::AccessMode::User;
};

// read ADDR (CPU only; 8-byte aligned, 64 bits)
struct ReadStmt {
  mm::VirtAddr address;
};

// write ADDR VALUE (CPU only; 8-byte aligned, 64 bits)
struct WriteStmt {
  mm::VirtAddr address;
  u64 value = 0;
};

// exec ADDR (CPU only; an instruction fetch, any alignment)
struct ExecStmt {
  mm::VirtAddr address;
};

// barrier NAME (CPU only)
struct BarrierStmt {
  std::string name;
};

struct Statement;

// How deep `repeat`s nest, at most. Everything that walks a program (the
// runner, the printer, the kernel's compiler, the destructor) recurses once
// a level, some of it on a CPU's 256 KiB fiber stack: a 9 KB file of 700
// nested repeats overflowed it (Release build). Generated and written
// scenarios use one or two levels; the kernel's compiler takes 8.
inline constexpr u32 kMaxRepeatNesting = 64;

// repeat N ... end (CPU only; N >= 1; may nest, at most kMaxRepeatNesting deep)
struct RepeatStmt {
  u64 count = 1;
  std::vector<Statement> body;
  SourceLocation end_where;  // of the closing `end`
};

struct Statement {
  using Op = std::variant<SpaceStmt, MapStmt, UnmapStmt, ProtectStmt, ForkStmt, PinStmt, UnpinStmt, PokeStmt, UseStmt, ModeStmt,
                          ReadStmt, WriteStmt, ExecStmt, BarrierStmt, RepeatStmt>;
  SourceLocation where;  // of the keyword
  Op op;
  Expectation expect;    // only for the statements that take `expect`; otherwise the default Ok

  template <typename T>
  const T* as() const { return std::get_if<T>(&op); }
  template <typename T>
  bool is() const { return std::holds_alternative<T>(op); }
};

// The keyword of a statement ("map", "repeat", ...).
inline std::string_view keyword_of(const Statement& statement) {
  constexpr std::string_view kKeywords[] = {"space", "map",  "unmap", "protect", "fork",  "pin", "unpin", "poke",
                                            "use",   "mode", "read",  "write",   "exec",  "barrier", "repeat"};
  static_assert(std::size(kKeywords) == std::variant_size_v<Statement::Op>);
  return kKeywords[statement.op.index()];
}

// cpu N ... end
struct CpuProgram {
  u32 cpu = 0;
  SourceLocation where;      // of `cpu`
  SourceLocation end_where;  // of the closing `end`
  std::vector<Statement> body;
};

// ---------------------------------------------------------------------------
// Final checks.

enum class Comparison : std::uint8_t { Equal, AtLeast, AtMost };  // ==, >=, <=

constexpr std::string_view comparison_symbol(Comparison comparison) {
  switch (comparison) {
    case Comparison::Equal: return "==";
    case Comparison::AtLeast: return ">=";
    case Comparison::AtMost: return "<=";
  }
  return "?";
}
constexpr bool compare(u64 actual, Comparison comparison, u64 expected) {
  switch (comparison) {
    case Comparison::Equal: return actual == expected;
    case Comparison::AtLeast: return actual >= expected;
    case Comparison::AtMost: return actual <= expected;
  }
  return false;
}

// check value SPACE ADDR == VALUE (ADDR 8-byte aligned)
struct CheckValue {
  std::string space;
  mm::VirtAddr address;
  u64 value = 0;
};

// check mapped SPACE ADDR PROT
struct CheckMapped {
  std::string space;
  mm::VirtAddr address;
  mm::Prot prot = mm::Prot::None;
};

// check unmapped SPACE ADDR
struct CheckUnmapped {
  std::string space;
  mm::VirtAddr address;
};

// check frames leaked OP N (normally `== 0`; after every space is destroyed)
struct CheckFramesLeaked {
  Comparison comparison = Comparison::Equal;
  u64 count = 0;
};

// check faults cpu N OP K
struct CheckFaults {
  u32 cpu = 0;
  Comparison comparison = Comparison::AtLeast;
  u64 count = 0;
};

// check shootdowns OP K
struct CheckShootdowns {
  Comparison comparison = Comparison::AtLeast;
  u64 count = 0;
};

struct Check {
  using What = std::variant<CheckValue, CheckMapped, CheckUnmapped, CheckFramesLeaked, CheckFaults, CheckShootdowns>;
  SourceLocation where;  // of `check`
  What what;

  template <typename T>
  const T* as() const { return std::get_if<T>(&what); }
};

// ---------------------------------------------------------------------------
// The whole scenario.

// An address space the scenario creates: by `space`, by a set-up `fork`, or
// by a `fork` in one CPU's program (creator_cpu; only that CPU may use it,
// and only after the fork).
struct SpaceInfo {
  std::string name;
  SourceLocation where;
  std::optional<u32> creator_cpu;  // empty: created by the set-up
};

struct Scenario {
  std::string file;
  Machine machine;
  Options options;
  std::optional<u64> seed;  // `--seed` on the command line wins
  SourceLocation seed_where;
  std::vector<Statement> setup;       // runs first, on CPU 0
  std::vector<CpuProgram> programs;   // in file order; at most one per CPU
  std::vector<Check> checks;
  std::vector<SpaceInfo> spaces;      // in order of creation in the file

  // The program of `cpu`, or nullptr when the scenario gives it none.
  const CpuProgram* program_for(u32 cpu) const {
    for (const auto& program : programs) {
      if (program.cpu == cpu) return &program;
    }
    return nullptr;
  }
  const SpaceInfo* find_space(std::string_view name) const {
    for (const auto& space : spaces) {
      if (space.name == name) return &space;
    }
    return nullptr;
  }
  bool uses_unsafe_policy() const { return options.unsafe(); }
};

}  // namespace pagelab::scenario
