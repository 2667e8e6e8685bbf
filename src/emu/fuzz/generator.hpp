// The workload generator of `pagelab fuzz`: whole scenarios drawn from a
// ChoiceStream (choices.hpp), so a case is a function of its choices and
// shrinks by shrinking them.
//
// What a case has: a machine (2 to 8 CPUs, 8 to 32 MiB of RAM, a TLB
// preset, PCIDs and paging-structure caches on or off), options (allocator,
// flush threshold), a set-up (spaces; maps of every kind the language has:
// anonymous, shared, stack with its guard, phys= device memory in 4 KiB and
// 2 MiB pages, populate; pokes; pins; fork chains) and one program per CPU
// (use, mode, reads, writes, executes, map/unmap/protect/pin/unpin, a fork
// on the CPU, repeat blocks, barriers).
//
// Swarm testing (Groce et al., 2012): each case first draws which statement
// kinds and machine features it may use at all, so rare combinations (say,
// pins and forks on a tiny TLB with PCIDs) get dense coverage instead of
// being drowned in the average mix.
//
// Valid by construction: the parser accepts every case (every space exists
// where it is named, a CPU's own fork is used only by it and only after the
// fork, barriers are named by at least two CPUs, once each, in one order),
// and every expectation holds under any correct interleaving: accesses and
// memory operations expect `any`, and the judges are the oracle, the
// runner's poison and leak checks, and the reference model. Every write and
// poke writes a value no other statement writes (unique_value()).
//
// It grows with the language: a statement, option or machine setting added
// to the language is added here in the same change (a unit test checks
// that some case over a few hundred seeds uses each).
#pragma once

#include <cstdint>
#include <string>

#include "emu/fuzz/choices.hpp"
#include "emu/scenario/ast.hpp"

namespace pagelab::fuzz {

struct GeneratorOptions {
  // No statement whose success is the only way a later one stays valid
  // (a CPU's fork, whose child it then uses): for --inject alloc-fail,
  // where any allocation may fail.
  bool allocations_may_fail = false;
};

// A case: the scenario, and the words naming what the swarm enabled (for
// reports and coverage).
struct GeneratedCase {
  scenario::Scenario scenario;
  std::string features;
};

GeneratedCase generate_case(ChoiceStream& choices, const GeneratorOptions& options = {});

// The address range generated statements use: anonymous memory in a small
// arena (so operations collide), device memory at a 2 MiB-aligned address.
inline constexpr std::uint64_t kArenaBase = 0x10000000;
inline constexpr std::uint64_t kDeviceBase = 0x40000000;

// The value the n-th write of a case (CPU `cpu`, or the set-up as cpu 255) stores.
constexpr std::uint64_t unique_value(std::uint32_t cpu, std::uint64_t n) {
  return (std::uint64_t{cpu + 1} << 32) | (n + 1);
}

}  // namespace pagelab::fuzz
