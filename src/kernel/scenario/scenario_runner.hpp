// The bundled scenarios on the real CPUs (`scenarios=` on the command line).
//
// For each selected scenario (compiled_scenario.hpp): the set-up on the boot
// CPU, then every CPU's program on that CPU at once (run_on_all_cpus), each
// access through the MMU (real_access.hpp), barriers as spin barriers, then
// the final checks, the spaces destroyed, and the leak check. The outcome of
// every statement is recorded on its CPU and printed after the run, so
// printing does not change the interleaving:
//
//   scenario NAME: begin (FILE, N CPUs)
//   scenario NAME: note: tlb=tiny is ignored: ...
//   scenario NAME: setup line L: KEYWORD -> RESULT
//   scenario NAME: cpu C line L: KEYWORD -> RESULT [any] (FAIL: expected X)
//   scenario NAME: check line L: KIND -> ok | FAIL (...) | skipped (...)
//   scenario NAME: PASS | FAIL | SKIPPED (why)
//
// RESULT is ok, segv, an errno name (ENOENT, ...), or for a read that
// completed the value read in hex (0x2a). `[any]` marks a statement that
// expects any outcome. `pagelab run --outcomes FILE` writes the same lines
// (without the "scenario NAME: " prefix) from the emulator, which is what
// test/boot/scenario_crosscheck.sh compares.
#pragma once

#include "mm/base/types.hpp"

namespace kernel::scenario {

// `selection` is "all" or NAME[,NAME...] (file stems), `length` bytes of it.
// True when every named scenario is known and every one that ran passed;
// a skipped scenario (one the kernel cannot run, said why) does not fail.
bool run_scenarios(const char* selection, mm::usize length);

}  // namespace kernel::scenario
