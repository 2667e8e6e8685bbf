#!/usr/bin/env bash
# Sets up, builds and runs pagelab's main job: the emulator on the bundled
# demo scenario (a demand-zero fault, a copy-on-write copy after fork, and a
# second CPU reading the child), printing its trace.
#   scripts/run.sh [pagelab run options, e.g. --seed 3 --trace jsonl]
# The physical-memory benchmarks: build/bin/pagelab-bench (or scripts/bench.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh build
exec build/bin/pagelab run examples/demo.scenario "$@"
