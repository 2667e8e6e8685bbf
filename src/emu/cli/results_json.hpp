// Machine-readable results of `pagelab explore --json` and `pagelab fuzz
// --json`, in one versioned schema (docs/EMULATOR.md, "Results as JSON"),
// so that shards of either - spread over a batch system - can be merged.
//
//   {
//     "schema": "pagelab-results", "version": 1,
//     "tool": "explore" | "fuzz", "pagelab": "0.1.0",
//     "options": { ... },                       // what the sweep was asked to do
//     "summary": { "runs": N, "failing_runs": F, "seconds": T, "interrupted": false, ... },
//     "failures": [                             // one per signature, by first sighting
//       { "signature": "...", "invariant": "O5", "message": "FAIL: ...", "count": C,
//         "seed": S, "strategy": "random", "scenario": "path", "reproduce": "pagelab run ...", ... }
//     ]
//   }
//
// A field is added, never renamed or removed, within a version.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "emu/cli/explore.hpp"
#include "emu/fuzz/campaign.hpp"

namespace pagelab::emu {

inline constexpr int kResultsVersion = 1;

nlohmann::ordered_json explore_results_json(const ExploreCommand& command, const ExploreResult& result);
nlohmann::ordered_json fuzz_results_json(const fuzz::CampaignOptions& options, const fuzz::CampaignResult& result);

// Writes `json` to `path` (replacing it). False, with `error` naming the path and the reason.
bool write_json_file(const std::string& path, const nlohmann::ordered_json& json, std::string& error);

}  // namespace pagelab::emu
