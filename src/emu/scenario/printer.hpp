// The scenario printer: a parsed (or generated) Scenario back to the text
// of the language (docs/SCENARIOS.md), in one canonical layout: the machine
// line, options, seed, the set-up, each CPU's program indented by two
// spaces per block, then the checks. The fuzzer writes its cases and their
// shrunk failures with it.
//
// Contract: for any Scenario that parse_scenario() accepts,
// parse_scenario(print_scenario(s)) gives back the same statements, checks
// and settings (source locations aside): the round trip is the printer's
// test. Comments are not kept; `header` (lines without their `# `) is
// printed first as a comment block.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "emu/scenario/ast.hpp"

namespace pagelab::scenario {

std::string print_scenario(const Scenario& scenario, const std::vector<std::string>& header = {});

// One statement as a line of the language, without indentation or line break.
std::string print_statement(const Statement& statement);

// A protection as the language writes it: "r", "rw", "rwx", "x", ..., or "none".
std::string prot_word(mm::Prot prot);

}  // namespace pagelab::scenario
