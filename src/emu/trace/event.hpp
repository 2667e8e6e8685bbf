// Trace events: what the emulator reports about a run. docs/TRACE.md lists
// every kind and field. An event is a small value (no allocation); the
// formatters (trace.hpp) turn it into text, a JSON line or a Chrome
// trace-event record.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace pagelab::emu {

enum class EventKind : std::uint8_t {
  Access,         // a = va, b = access (0 read, 1 write, 2 exec), c = user (1) / kernel (0), d = value
  TlbHit,         // a = va, b = level (1 = L1, 2 = L2), c = physical, d = pcid
  TlbMiss,        // a = va, d = pcid
  Walk,           // a = va, b = level (4..1), c = entry address, d = entry
  Fault,          // a = va (CR2), b = #PF error code
  FaultResolved,  // a = va, text = the core's answer (FaultOutcome)
  Segv,           // a = va, b = error code: the core could not resolve it
  FrameAlloc,     // a = physical, b = frames, text = owner
  FrameFree,      // a = physical, b = frames
  Map,            // a = address, b = length, c = status (0 ok), text = space
  Unmap,          // a = address, b = length, c = status, text = space
  Protect,        // a = address, b = length, c = status, text = space
  Fork,           // c = status, text = "parent->child"
  Cr3Load,        // a = root, b = pcid, c = no-flush bit
  Invlpg,         // a = va
  Invpcid,        // a = va, b = type (0-3), c = pcid
  FlushAll,       // (CR4.PGE toggle: every translation, globals too)
  IpiSend,        // a = target CPU set (bit mask)
  IpiReceive,     // a = sending CPU
  Note,           // text = a free-form line (scenario progress)
  Inject,         // text = what was injected (fault_injection.hpp): "alloc-fail" (a = N, b = frames, c = owner),
                  // "ipi-delay" (a = boundaries), "spec-fill" (a = va), "evict" (a = page, b = level, c = pcid)
};

inline constexpr int kEventKindCount = static_cast<int>(EventKind::Inject) + 1;

// "access", "tlb.hit", ... as used by --events and in every format.
std::string_view event_kind_name(EventKind kind);
std::optional<EventKind> event_kind_from_name(std::string_view name);

struct Event {
  std::uint64_t step = 0;
  std::uint32_t cpu = 0;
  EventKind kind = EventKind::Note;
  std::uint64_t a = 0, b = 0, c = 0, d = 0;
  std::string_view text{};  // must outlive the emit() call only
};

}  // namespace pagelab::emu
