// Protections of a mapping (mmap's PROT_*), and their page-table form.
#pragma once

#include "mm/paging/pte.hpp"

namespace mm {

enum class Prot : u8 {
  None = 0,
  Read = 1 << 0,
  Write = 1 << 1,
  Exec = 1 << 2,
  ReadWrite = Read | Write,
  ReadExec = Read | Exec,
  All = Read | Write | Exec,
};

constexpr Prot operator|(Prot a, Prot b) { return static_cast<Prot>(static_cast<u8>(a) | static_cast<u8>(b)); }
constexpr Prot operator&(Prot a, Prot b) { return static_cast<Prot>(static_cast<u8>(a) & static_cast<u8>(b)); }
constexpr bool allows(Prot prot, Prot access) { return (static_cast<u8>(prot) & static_cast<u8>(access)) == static_cast<u8>(access); }

// "rwx", "r--", "---".
constexpr const char* prot_name(Prot prot) {
  constexpr const char* kNames[] = {"---", "r--", "-w-", "rw-", "--x", "r-x", "-wx", "rwx"};
  return kNames[static_cast<u8>(prot) & 7];
}

// The leaf attributes for a protection. x86 cannot express write-only or
// execute-only: any access right makes the page present and readable. No
// execute right sets NX (which needs EFER.NXE; without it the bit is reserved).
constexpr u64 leaf_attributes(Prot prot, bool user) {
  u64 bits = 0;
  if (prot != Prot::None) bits |= pte::kPresent;
  if (allows(prot, Prot::Write)) bits |= pte::kWritable;
  if (!allows(prot, Prot::Exec)) bits |= pte::kNoExecute;
  if (user) bits |= pte::kUser;
  return bits;
}

}  // namespace mm
