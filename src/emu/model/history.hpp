// History: what a deterministic run did, in the order it did it, for the
// reference model's judge (judge.hpp).
//
// Events are appended by the CPU that runs (in deterministic mode one CPU
// steps at a time, every CPU a fiber on one thread), so the vector's order
// is the run's order. Each memory-management statement and each page fault
// is three events: it begins; it takes effect (its linearization point:
// the moment it takes its address space's lock, after which no other
// operation on that space can interleave with it; one that fails before
// taking the lock takes effect when it ends); it ends, with its status or
// fault outcome. Between the last two, other CPUs may still use the
// translations it removed (the shootdown is under way). Each access is one
// event at its load or store, with the value and the physical address it
// used. And where a page stops sharing a copy-on-write frame, the core says
// whether it copied (which no lock orders when other sharers unshare, unmap
// or fork at the same time): one event, from inside the operation or fault.
#pragma once

#include <cstdint>
#include <vector>

#include "mm/base/types.hpp"

namespace pagelab::scenario {
struct Statement;
}

namespace pagelab::model {

struct HistoryEvent {
  enum class Kind : std::uint8_t {
    Statement,   // the CPU starts an access statement (for reports): `statement`
    OpBegin,     // a statement that is not an access: `statement`
    FaultBegin,  // a #PF handed to the core: va, access, mode
    Effect,      // the pending operation or fault of `cpu` takes effect
    OpEnd,       // result: the mm::Status
    FaultEnd,    // result: the mm::FaultOutcome
    Access,      // a completed access (result 0) or a segmentation fault (result 1)
    Unshared,    // the pending pin, poke or fault's page va left frame `value` for frame `physical` (the same: taken in place)
  };
  Kind kind = Kind::OpBegin;
  std::uint8_t cpu = 0;
  std::uint8_t access = 0;  // mm::Access
  std::uint8_t mode = 0;    // mm::AccessMode
  std::uint8_t result = 0;
  const scenario::Statement* statement = nullptr;
  std::uint64_t va = 0;
  std::uint64_t value = 0;     // Access: the value read, or written
  std::uint64_t physical = 0;  // Access: the physical address the access used
};

class History {
 public:
  void statement(std::uint32_t cpu, const scenario::Statement& statement) {
    add({HistoryEvent::Kind::Statement, static_cast<std::uint8_t>(cpu), 0, 0, 0, &statement});
  }
  void begin_op(std::uint32_t cpu, const scenario::Statement& statement) {
    add({HistoryEvent::Kind::OpBegin, static_cast<std::uint8_t>(cpu), 0, 0, 0, &statement});
    pending_[cpu] = true;
  }
  void end_op(std::uint32_t cpu, std::uint8_t status) {
    pending_[cpu] = false;
    add({HistoryEvent::Kind::OpEnd, static_cast<std::uint8_t>(cpu), 0, 0, status});
  }
  void begin_fault(std::uint32_t cpu, std::uint64_t va, std::uint8_t access, std::uint8_t mode) {
    HistoryEvent e{HistoryEvent::Kind::FaultBegin, static_cast<std::uint8_t>(cpu), access, mode};
    e.va = va;
    add(e);
    pending_[cpu] = true;
  }
  void end_fault(std::uint32_t cpu, std::uint8_t outcome) {
    pending_[cpu] = false;
    add({HistoryEvent::Kind::FaultEnd, static_cast<std::uint8_t>(cpu), 0, 0, outcome});
  }
  // `cpu` took an address space's lock (not nested inside another): its
  // pending operation, if any, takes effect now.
  void space_locked(std::uint32_t cpu) {
    if (!pending_[cpu]) return;
    pending_[cpu] = false;
    add({HistoryEvent::Kind::Effect, static_cast<std::uint8_t>(cpu)});
  }
  void access(std::uint32_t cpu, std::uint64_t va, std::uint8_t access, std::uint8_t mode, bool segv, std::uint64_t value,
              std::uint64_t physical) {
    HistoryEvent e{HistoryEvent::Kind::Access, static_cast<std::uint8_t>(cpu), access, mode, static_cast<std::uint8_t>(segv)};
    e.va = va;
    e.value = value;
    e.physical = physical;
    add(e);
  }

  void unshared(std::uint32_t cpu, std::uint64_t va, std::uint64_t from, std::uint64_t to) {
    HistoryEvent e{HistoryEvent::Kind::Unshared, static_cast<std::uint8_t>(cpu)};
    e.va = va;
    e.value = from;
    e.physical = to;
    add(e);
  }

  const std::vector<HistoryEvent>& events() const { return events_; }
  void clear() {
    events_.clear();
    for (bool& p : pending_) p = false;
  }

 private:
  void add(const HistoryEvent& e) { events_.push_back(e); }

  std::vector<HistoryEvent> events_;
  bool pending_[64] = {};
};

}  // namespace pagelab::model
