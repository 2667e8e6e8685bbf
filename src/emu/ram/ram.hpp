// The emulated machine's physical memory: one contiguous mapping from
// Boost.Interprocess. Anonymous by default; `shm:NAME` (a POSIX shared-memory
// object) or `file:PATH` (a file) put it in a named object, so that a second
// process (`pagelab inspect`) can attach read-only and walk the page tables
// of a live or finished run.
//
// The object starts with one page of header (RamHeader: what an inspector
// needs to find its way: the RAM size and each address space's name and
// CR3); physical address 0 is the byte after it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace pagelab::emu {

struct RamHeader {
  static constexpr char kMagic[8] = {'P', 'A', 'G', 'E', 'L', 'A', 'B', '1'};
  static constexpr std::uint32_t kMaxSpaces = 60;
  struct Space {
    char name[40];
    std::uint64_t cr3;
  };

  char magic[8];
  std::uint64_t ram_bytes;
  std::uint32_t cpus;
  std::uint32_t space_count;
  Space spaces[kMaxSpaces];
};
static_assert(sizeof(RamHeader) <= 4096);

struct RamSpec {
  enum class Kind : std::uint8_t { Anonymous, SharedMemory, File };
  Kind kind = Kind::Anonymous;
  std::string name;  // the shm object's name or the file's path

  // "anon", "shm:NAME" or "file:PATH"; nullopt with a message otherwise.
  static std::optional<RamSpec> parse(const std::string& text, std::string& error);
  std::string describe() const;
};

class Ram {
 public:
  static constexpr std::uint64_t kHeaderBytes = 4096;

  // A new RAM of `bytes` bytes (a multiple of 4 KiB), zeroed. A named object
  // that exists is replaced.
  static std::unique_ptr<Ram> create(const RamSpec& spec, std::uint64_t bytes, std::string& error);
  // An existing named RAM, read-only (for inspect). Checks the header.
  static std::unique_ptr<Ram> open_read_only(const RamSpec& spec, std::string& error);
  ~Ram();
  Ram(const Ram&) = delete;
  Ram& operator=(const Ram&) = delete;

  std::byte* frames() const { return base_ + kHeaderBytes; }
  std::uint64_t bytes() const { return bytes_; }
  RamHeader& header() const { return *reinterpret_cast<RamHeader*>(base_); }
  // Records (or updates) an address space in the header.
  void record_space(const std::string& name, std::uint64_t cr3);
  // Forgets every recorded space (a RAM used again for another run).
  void forget_spaces();

 private:
  struct Mapping;
  Ram(std::unique_ptr<Mapping> mapping, std::byte* base, std::uint64_t bytes);

  std::unique_ptr<Mapping> mapping_;
  std::byte* base_;
  std::uint64_t bytes_;
};

}  // namespace pagelab::emu
