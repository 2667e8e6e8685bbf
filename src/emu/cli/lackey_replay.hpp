// `pagelab trace`: replays a memory-access trace in valgrind lackey's format
// (`valgrind --tool=lackey --trace-mem=yes PROGRAM 2> FILE`) through one
// CPU's TLB (hw::Tlb, a chosen geometry) and page walker (hw::walk), with
// demand-zero mapping: the first touch of a page faults and maps it.
//
//   pagelab trace FILE [--tlb tiny|skylake|zen2] [--json]
//
// The lines:
//   "I  ADDR,SIZE"   an instruction fetch (lackey writes no leading space)
//   " L ADDR,SIZE"   a load
//   " S ADDR,SIZE"   a store
//   " M ADDR,SIZE"   a modify: a load, then a store, of the same bytes
//   "==PID== ..." and "--PID-- ..."   valgrind's own lines, skipped
// ADDR is hexadecimal (no 0x; any number of leading zeros, a value that
// fits 64 bits), SIZE decimal, from 1 to kMaxLackeyAccessBytes. An access
// whose bytes cross a page boundary translates both pages it touches. A line
// holds at most kMaxLackeyLineBytes and no NUL byte (emu/io/text_input.hpp);
// the trace itself is a stream, of any length: each line's work is bounded,
// so the replay's time is linear in the trace's size.
//
// The model (one user-mode CPU, CR0.WP, EFER.NXE, no PCIDs, no PSC):
//   - every translation looks up the TLB; a miss walks the 4-level tables
//     (hw::walk over the tables' own bytes: the walk sets A, and D on a
//     write, as the hardware does);
//   - a walk that finds no mapping is a page fault: a zeroed 4 KiB page is
//     mapped (with any missing page-table pages), and the walk is retried;
//   - a store that hits a TLB entry whose dirty flag is clear walks again to
//     set D (SDM 4.8); those walks are counted apart ("dirty walks");
//   - every successful walk's translation is inserted into the TLB.
// The tables live in a buffer of their own; data pages get distinct frame
// numbers but no bytes (nothing reads them).
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "emu/hw/tlb.hpp"

namespace pagelab::emu {

// Lackey's lines are about 20 bytes; valgrind's own (its command line) can
// be longer.
inline constexpr std::size_t kMaxLackeyLineBytes = 8192;
// Lackey writes sizes of at most 512 bytes (MAX_DSIZE in its lk_main.c; an
// instruction is at most 20). A page is above any of them, and keeps an
// access to two pages: without the bound, a 15-byte line of size 999999999
// asked for 244,141 translations (a 4 KiB trace took seconds).
inline constexpr std::uint64_t kMaxLackeyAccessBytes = 4096;

struct LackeyStats {
  // The trace.
  std::uint64_t records = 0;       // I, L, S and M lines
  std::uint64_t instructions = 0;  // I lines
  std::uint64_t loads = 0;         // L lines
  std::uint64_t stores = 0;        // S lines
  std::uint64_t modifies = 0;      // M lines
  std::uint64_t skipped_lines = 0;  // valgrind's own lines and empty ones
  // Accesses: I + L + S + 2 M (a modify is a load and a store).
  std::uint64_t accesses = 0;
  std::uint64_t page_crossings = 0;  // accesses touching more than one page
  std::uint64_t translations = 0;    // TLB lookups: one per page an access touches
  // The TLB.
  std::uint64_t l1_hits = 0;
  std::uint64_t l2_hits = 0;
  std::uint64_t misses = 0;
  // The walker.
  std::uint64_t walks = 0;        // every hw::walk, the ones after a fault and dirty walks included
  std::uint64_t dirty_walks = 0;  // walks for a store hitting an entry with D = 0
  std::uint64_t page_faults = 0;  // first touches
  std::uint64_t pages = 0;        // distinct 4 KiB pages touched
  std::uint64_t page_table_pages = 0;  // the root included
};

class LackeyReplayer {
 public:
  explicit LackeyReplayer(const hw::TlbGeometry& geometry);

  // One line of the trace. False with `error` (no file or line prefix) for a
  // line that is not lackey's.
  bool feed_line(std::string_view line, std::string& error);
  // One access of `size` bytes at `va` (already counted as a record).
  // False with `error` for a non-canonical address.
  bool access(std::uint64_t va, std::uint64_t size, hw::AccessKind kind, std::string& error);

  // The counts so far (TLB counts copied from the TLB's counters).
  LackeyStats stats() const;

 private:
  struct Port {
    LackeyReplayer* owner;
    hw::u64 load(hw::u64 physical) const;
    bool compare_exchange(hw::u64 physical, hw::u64& expected, hw::u64 desired);
  };
  bool translate(std::uint64_t va, hw::AccessKind kind, std::string& error);
  hw::WalkResult walk(std::uint64_t va, hw::AccessKind kind);
  std::uint64_t new_table();
  void map_page(std::uint64_t va);

  hw::Tlb tlb_;
  hw::ControlRegisters cr_;
  std::vector<std::uint64_t> tables_;  // page-table pages, 512 entries each; table k at physical k * 4096
  std::uint64_t next_data_frame_;
  LackeyStats stats_;
};

// The whole file; nullopt with "FILE:LINE: error: ..." in `error` (or
// "FILE:LINE:COL: error: ..." for a NUL byte or a line too long, "pagelab:
// cannot read FILE: REASON" for a read that failed).
std::optional<LackeyStats> replay_lackey(std::istream& in, const std::string& file_name,
                                         const hw::TlbGeometry& geometry, std::string& error);

std::string format_lackey_text(const LackeyStats& stats, const std::string& file_name, const std::string& tlb_name);
std::string format_lackey_json(const LackeyStats& stats, const std::string& file_name, const std::string& tlb_name);

// The command: 0, or 2 for bad input (an unreadable file, a bad line, an
// unknown TLB preset).
int trace_command(const std::string& file, const std::string& tlb, bool json);

}  // namespace pagelab::emu
