#!/usr/bin/env bash
# pagelab's buddy allocator against the header-only buddy_alloc, in one run.
#
#   bench/peers/buddy_alloc.sh PEER_DIR [BENCHMARK ARGS...]
#
# PEER_DIR is a checkout of https://github.com/spaskalev/buddy_alloc (the
# directory holding buddy_alloc.h); nothing of it is copied into this tree.
# Configures build-peer/ (Release) with PAGELAB_BUDDY_PEER=PEER_DIR, builds
# pagelab-bench-peer from bench/peers/buddy_alloc_peer.cpp and runs it; more
# arguments go to Google Benchmark (--benchmark_repetitions=5, ...).
# Compare BM_Buddy_AllocFree/N (pagelab) with BM_Peer_BuddyAlloc/N: the same
# pool, the same run (BM_Buddy_MixedSteadyState comes along).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
if [ $# -lt 1 ] || [ ! -f "$1/buddy_alloc.h" ]; then
  echo "usage: bench/peers/buddy_alloc.sh PEER_DIR [BENCHMARK ARGS...]  (PEER_DIR holds buddy_alloc.h)" >&2
  exit 2
fi
peer=$(cd "$1" && pwd)
shift
"$root/scripts/setup.sh"
cmake -S "$root" -B "$root/build-peer" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPAGELAB_BUILD_KERNEL=OFF \
  -DPAGELAB_BUDDY_PEER="$peer" > /dev/null
cmake --build "$root/build-peer" --target pagelab-bench-peer
echo "peer: $peer ($(git -C "$peer" rev-parse --short HEAD 2> /dev/null || echo 'not a git checkout'))"
exec "$root/build-peer/bin/pagelab-bench-peer" "$@"
