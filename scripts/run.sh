#!/usr/bin/env bash
# Sets up, builds and runs pagelab's main job. Until the emulator lands
# (issue 4/5) that is the physical-memory benchmark summary: every allocator
# on a fragmented 256 MiB pool, with a short measuring time per benchmark.
#   scripts/run.sh [extra Google Benchmark flags, e.g. --benchmark_filter=Buddy]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh build
exec build/bin/pagelab-bench --benchmark_min_time=0.05 "$@"
