#!/usr/bin/env bash
# Configures (once) and builds one build directory.
#   scripts/build.sh [BUILD_DIR] [extra cmake -D options...]
# Default: build/ in Release. Quiet unless something fails.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=${1:-build}
shift || true
log=$(mktemp)
trap 'rm -f "$log"' EXIT

if [ ! -f "$dir/CMakeCache.txt" ]; then
  if ! cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" >"$log" 2>&1; then
    cat "$log" >&2
    exit 1
  fi
fi
if ! cmake --build "$dir" -j "$(nproc)" >"$log" 2>&1; then
  cat "$log" >&2
  exit 1
fi
