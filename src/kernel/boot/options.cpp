#include "boot/options.hpp"

#include "console/kprintf.hpp"

namespace kernel {

namespace {

bool starts_with(const char* s, const char* prefix, const char** rest) {
  while (*prefix) {
    if (*s++ != *prefix++) return false;
  }
  *rest = s;
  return true;
}

// Parses a number with an optional K/M/G/T suffix; stops at `end` or a terminator.
bool parse_size(const char*& s, mm::u64& value) {
  mm::u64 v = 0;
  const char* start = s;
  if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    s += 2;
    start = s;
    for (;; ++s) {
      const char c = *s;
      const int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                        : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
      if (digit < 0) break;
      if (v >> 60) return false;
      v = v * 16 + static_cast<mm::u64>(digit);
    }
  } else {
    for (; *s >= '0' && *s <= '9'; ++s) {
      if (v > (~mm::u64{0} - 9) / 10) return false;
      v = v * 10 + static_cast<mm::u64>(*s - '0');
    }
  }
  if (s == start) return false;
  int shift = 0;
  switch (*s) {
    case 'K': case 'k': shift = 10; break;
    case 'M': case 'm': shift = 20; break;
    case 'G': case 'g': shift = 30; break;
    case 'T': case 't': shift = 40; break;
    default: break;
  }
  if (shift != 0) {
    if (v >> (64 - shift)) return false;
    v <<= shift;
    ++s;
  }
  value = v;
  return true;
}

bool at_word_end(const char* s) { return *s == 0 || *s == ' '; }

// Every mm::ShootdownPolicy, by the name shootdown_policy_name gives it.
constexpr mm::ShootdownPolicy kShootdownPolicies[] = {
    mm::ShootdownPolicy::Batched,
    mm::ShootdownPolicy::Broadcast,
    mm::ShootdownPolicy::UnsafeFreeBeforeAck,
    mm::ShootdownPolicy::UnsafeActiveOnly,
    mm::ShootdownPolicy::UnsafeNoFlush,
    mm::ShootdownPolicy::UnsafeLocalOnly,
    mm::ShootdownPolicy::UnsafeFlushAfterUnlock,
};

}  // namespace

const char* pmm_kind_name(PmmKind kind) {
  switch (kind) {
    case PmmKind::Buddy: return "buddy";
    case PmmKind::Bitmap: return "bitmap";
    case PmmKind::Stack: return "stack";
  }
  return "?";
}

bool parse_boot_options(const char* cmdline, BootOptions& options) {
  const char* s = cmdline;
  while (*s) {
    while (*s == ' ') ++s;
    if (*s == 0) break;
    const char* word = s;
    const char* rest = nullptr;
    bool ok = false;
    if (starts_with(s, "pmm=", &rest)) {
      const char* tail = nullptr;
      if (starts_with(rest, "buddy", &tail) && at_word_end(tail)) {
        options.pmm = PmmKind::Buddy, s = tail, ok = true;
      } else if (starts_with(rest, "bitmap", &tail) && at_word_end(tail)) {
        options.pmm = PmmKind::Bitmap, s = tail, ok = true;
      } else if (starts_with(rest, "stack", &tail) && at_word_end(tail)) {
        options.pmm = PmmKind::Stack, s = tail, ok = true;
      }
    } else if (starts_with(s, "reserve=", &rest)) {
      s = rest;
      ok = parse_size(s, options.reserve_bytes) && at_word_end(s);
    } else if (starts_with(s, "selftest=off", &rest) && at_word_end(rest)) {
      options.selftest = false, s = rest, ok = true;
    } else if (starts_with(s, "fault=", &rest)) {
      const char* tail = nullptr;
      if (starts_with(rest, "page", &tail) && at_word_end(tail)) {
        options.fault = InjectedFault::PageFault, s = tail, ok = true;
      } else if (starts_with(rest, "opcode", &tail) && at_word_end(tail)) {
        options.fault = InjectedFault::InvalidOpcode, s = tail, ok = true;
      }
    } else if (starts_with(s, "scenarios=", &rest)) {
      const char* end = rest;
      while (!at_word_end(end)) ++end;
      const auto length = static_cast<mm::usize>(end - rest);
      if (length != 0 && length < sizeof(options.scenarios)) {
        __builtin_memcpy(options.scenarios, rest, length);
        options.scenarios_length = length, s = end, ok = true;
      }
    } else if (starts_with(s, "shootdown=", &rest)) {
      for (const mm::ShootdownPolicy policy : kShootdownPolicies) {
        const char* tail = nullptr;
        if (starts_with(rest, mm::shootdown_policy_name(policy), &tail) && at_word_end(tail)) {
          options.shootdown = policy, s = tail, ok = true;
          break;
        }
      }
    } else if (starts_with(s, "memmap=", &rest)) {
      s = rest;
      mm::u64 size = 0, address = 0;
      if (parse_size(s, size) && (*s == '@' || *s == '$')) {
        const mm::MemoryKind kind = *s == '@' ? mm::MemoryKind::Free : mm::MemoryKind::Reserved;
        ++s;
        if (parse_size(s, address) && at_word_end(s) && options.extra_count < 8) {
          options.extra_ranges[options.extra_count++] = mm::MemoryRange{mm::PhysAddr(address), size, kind};
          ok = true;
        }
      }
    }
    if (!ok) {
      mm::usize length = 0;
      while (word[length] && word[length] != ' ') ++length;
      kprintf("boot: bad command-line word '%.*s' at column %lu: expected pmm=buddy|bitmap|stack, "
              "reserve=SIZE, memmap=SIZE@ADDR, memmap=SIZE$ADDR, selftest=off, fault=page|opcode, "
              "shootdown=POLICY or scenarios=all|NAME[,NAME...]\n",
              static_cast<int>(length), word, static_cast<mm::u64>(word - cmdline) + 1);
      return false;
    }
  }
  return true;
}

}  // namespace kernel
