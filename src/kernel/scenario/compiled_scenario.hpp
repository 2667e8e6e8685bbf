// The compiled form of a scenario (docs/SCENARIOS.md), as the kernel runs it:
// plain arrays of POD operations, generated at build time by
// tools/scenario_compile from the same parser the emulator uses, and linked
// into the kernel image (compiled_scenarios.cpp in the build directory).
//
// This header is the contract between the two: the host tool includes it to
// name the enumerators it writes, the kernel to read them. Only fixed-width
// integers and pointers to constant arrays, so it compiles hosted and
// freestanding alike.
//
// A program is a flat array. `repeat N ... end` becomes a Repeat op (count
// in `length`, `jump` = the index of its EndRepeat) and an EndRepeat op
// (`jump` = the index of its Repeat), so the interpreter needs no tree and
// no allocation.
#pragma once

#include "mm/base/types.hpp"

namespace kernel::scenario {

enum class OpCode : mm::u8 {
  // Statements: the set-up and the CPU programs.
  Space,      // space:   the new space's index
  Map,        // map:     space, address, length, prot, other = MapKind, flags & kPopulate, value = phys offset
  Unmap,      // unmap:   space, address, length
  Protect,    // protect: space, address, length, prot
  Fork,       // fork:    space = the child, other = the parent
  Pin,        // pin:     space, address, length
  Unpin,      // unpin:   space, address, length
  Poke,       // poke:    space, address, value
  Use,        // use:     space
  Mode,       // mode:    other = 0 user, 1 kernel
  Read,       // read:    address; ExpectKind::Value compares `value`
  Write,      // write:   address, value
  Exec,       // exec:    address
  Barrier,    // barrier: other = the barrier's index
  Repeat,     // repeat:  length = the count, jump = the index of the EndRepeat
  EndRepeat,  // end:     jump = the index of the Repeat
  // The final checks.
  CheckValue,         // space, address, value
  CheckMapped,        // space, address, prot
  CheckUnmapped,      // space, address
  CheckFramesLeaked,  // other = Compare, length = the count
  CheckFaults,        // other = Compare, space = the CPU, length = the count
  CheckShootdowns,    // other = Compare, length = the count
};

// What the statement's `expect` asks for (emu/scenario/ast.hpp OutcomeKind).
enum class ExpectKind : mm::u8 { Ok, Segv, Any, Value, Error };
enum class MapKind : mm::u8 { Anon, Shared, Stack, Phys };
enum class Compare : mm::u8 { Equal, AtLeast, AtMost };

inline constexpr mm::u8 kPopulate = 1;

struct Op {
  OpCode code;
  ExpectKind expect;
  mm::u8 error;   // ExpectKind::Error: the mm::Status expected
  mm::u8 prot;    // mm::Prot bits
  mm::u8 space;   // index into CompiledScenario::spaces (CheckFaults: the CPU)
  mm::u8 other;   // per OpCode, above
  mm::u8 flags;   // kPopulate
  mm::u8 reserved;
  mm::u32 line;   // in the scenario file, 1-based
  mm::u32 jump;   // Repeat / EndRepeat: the index of the other end
  mm::u64 address;
  mm::u64 length;
  mm::u64 value;
};

struct CpuProgram {
  mm::u32 cpu;
  mm::u32 count;
  const Op* ops;
};

struct CompiledScenario {
  const char* name;  // the file's stem: what scenarios=NAME selects
  const char* file;  // the path the compiler was given
  const char* skip;  // non-null: why the kernel cannot run it (printed, not run)
  mm::u32 cpus;      // machine cpus=N
  mm::u32 note_count;
  const char* const* notes;  // header settings the kernel does not honour, one sentence each
  mm::u32 space_count;
  const char* const* spaces;  // names, by index
  mm::u32 barrier_count;
  const mm::u32* barrier_participants;  // CPUs that name each barrier
  mm::u32 setup_count;
  const Op* setup;
  mm::u32 program_count;
  const CpuProgram* programs;
  mm::u32 check_count;
  const Op* checks;
  // phys= mappings: their addresses are offsets into the emulator's device
  // window (the top of its RAM), which the kernel replaces by a zeroed run of
  // its own with the same offset modulo 2 MiB. 0 when there is none.
  mm::u64 device_window_bytes;
  mm::u64 device_window_misalignment;  // the emulator window's start modulo 2 MiB
};

// Limits the compiler enforces (a scenario beyond them is compiled as skipped).
inline constexpr mm::u32 kMaxSpaces = 16;
inline constexpr mm::u32 kMaxBarriers = 32;
inline constexpr mm::u32 kMaxRepeatDepth = 8;

extern const CompiledScenario kCompiledScenarios[];
extern const mm::usize kCompiledScenarioCount;

}  // namespace kernel::scenario
