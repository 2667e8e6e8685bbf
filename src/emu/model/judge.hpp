// The fuzzer's reference-model judge: a run's History (history.hpp) replayed,
// in the order the run took, against the sequential model of every address
// space (vm_model.hpp). It is the executable specification of what the
// scenario's statements mean under concurrency:
//
//  - an operation or fault takes effect at its linearization point (when it
//    takes its space's lock); its status, or the fault's outcome, must be the
//    model's at that point (device pages: a first touch a 2 MiB page already
//    mapped may answer Complete instead of MapBacking);
//  - a read returns the value of a translation the model allows at that
//    moment: the page's current one, or one an operation removed or
//    narrowed while that operation is still between taking effect and
//    returning (its shootdown is under way). Never an older one: once the
//    operation has returned, no CPU may see it. The same for the right an
//    access used (a write needs a writable translation, an execute an
//    executable one);
//  - a write lands in the store of such a translation, and every later
//    read of that store sees it;
//  - the physical frame an access used must be the one the model's store is
//    bound to (bound at its first access): a store is one frame, and a
//    frame holds one live store at a time, so data that crossed owners
//    shows even where no freed frame (and no poison) is involved;
//  - at quiescence (every CPU done), every space's regions (protection,
//    kind, sharing, pins) and every slot value match the model exactly.
//
// What it cannot judge, and leaves alone: ENOMEM (the model does not
// predict the physical allocator: judging stops at the first one, and a
// run with --inject alloc-fail is not judged); words outside the slots the
// generator writes; parallel runs (no single order to replay).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "emu/model/history.hpp"
#include "emu/scenario/ast.hpp"

namespace pagelab::emu {
class Machine;
}

namespace pagelab::model {

struct JudgeFailure {
  std::string message;  // starts "reference model: "
  std::uint32_t cpu = 0;
  const scenario::Statement* statement = nullptr;  // the operation or access's, when known
};

struct JudgeResult {
  std::optional<JudgeFailure> failure;
  bool complete = true;  // false: judging stopped early (an ENOMEM)
};

// Replays `history` (of a finished deterministic run of `scenario` on
// `machine`, whose spaces still exist), then checks quiescence.
JudgeResult judge_run(const scenario::Scenario& scenario, const History& history, emu::Machine& machine);

}  // namespace pagelab::model
