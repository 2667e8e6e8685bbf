// `pagelab inspect`: reads the page tables of a named RAM (left by
// `pagelab run --ram file:PATH|shm:NAME`, or built by a test) straight from
// its bytes, read-only, without the mapper and without hw::walk (which sets
// A and D): a walker of its own that changes nothing.
//
//   pagelab inspect --ram SPEC [--space NAME] [--address VA] [--format text|dot]
//
// Exit status: 0, or 2 for bad input (no RAM, not a pagelab RAM, an unknown
// space, a bad address or format).
#pragma once

#include <cstdint>
#include <string>

#include "emu/ram/ram.hpp"

namespace pagelab::emu {

// The set bits of a paging-structure entry at `level` (4 = PML4E ... 1 =
// PTE), by name: "P RW US PWT PCD A D PS G NX COW PARKED"; PS is shown only
// at levels 3 and 2 (bit 7 of a PTE is PAT), G and D only where they mean
// something to the hardware or are set. "-" when none is.
std::string describe_entry_flags(std::uint64_t entry, int level);

// One address's translation in the space whose CR3 is `cr3`: each level's
// entry (level, index, entry address, value, flags), then the physical
// address, or where and why the walk stopped.
std::string inspect_address(const Ram& ram, std::uint64_t cr3, std::uint64_t va);

// The tree of the space's lower half: every present table and leaf (and
// parked leaves: P = 0 with bit 10), with VA ranges, sizes and flags, then a
// one-line summary. A space with no lower-half entry says
// "space NAME: no mappings (the run destroyed it)".
std::string inspect_tree(const Ram& ram, std::uint64_t cr3, const std::string& name);

// The same tree as a Graphviz digraph: one node per table, one per run of
// leaves (consecutive indices, contiguous frames, equal flags); edges
// labelled by index.
std::string inspect_dot(const Ram& ram, std::uint64_t cr3, const std::string& name);

// The command: prints to standard output, errors to standard error.
// `address` and `space` may be empty (all spaces, the tree).
int inspect_command(const std::string& ram_spec, const std::string& space, const std::string& address,
                    const std::string& format);

}  // namespace pagelab::emu
