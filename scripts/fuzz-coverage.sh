#!/usr/bin/env bash
# A `pagelab fuzz` campaign on a build with Clang's source-based coverage,
# and the branch coverage of src/mm it reached (docs/FUZZING.md, "Coverage").
#
#   scripts/fuzz-coverage.sh [--time DURATION] [--jobs N] [--seed S]
#
#   --time DURATION  how long the campaign runs (as fuzz --time: 90s, 5m, 1h; default 5m)
#   --jobs N         independent fuzz processes, seeds S to S+N-1, one worker each
#                    (default 1): their counters merge, and no two threads bump one
#   --seed S         the first campaign's seed (default 1)
#
# Builds `pagelab` with clang++-14 -fprofile-instr-generate -fcoverage-mapping
# in build-cov/ (Release otherwise), runs the campaigns under the correct
# protocol, merges their profiles (llvm-profdata-14) and prints, with
# llvm-cov-14, the region, line and branch coverage of every file of src/mm
# and the total; build-cov/coverage-mm.txt keeps it, build-cov/html/ the
# annotated sources. Exit 0 when no campaign found anything, 1 when one did
# (its failures are in build-cov/out-SEED/), 2 for a bad argument or build.
set -euo pipefail
cd "$(dirname "$0")/.."

duration=5m
jobs=1
seed=1
while [ $# -gt 0 ]; do
  case $1 in
    --time|--jobs|--seed)
      [ $# -ge 2 ] || { echo "fuzz-coverage.sh: $1 needs a value" >&2; exit 2; }
      case $1 in --time) duration=$2 ;; --jobs) jobs=$2 ;; *) seed=$2 ;; esac
      shift 2 ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "fuzz-coverage.sh: unknown argument '$1' (try --time DURATION, --jobs N, --seed S)" >&2; exit 2 ;;
  esac
done
case $jobs in ''|*[!0-9]*|0) echo "fuzz-coverage.sh: --jobs takes a number >= 1, not '$jobs'" >&2; exit 2 ;; esac
case $seed in ''|*[!0-9]*) echo "fuzz-coverage.sh: --seed takes a whole number, not '$seed'" >&2; exit 2 ;; esac

scripts/setup.sh --fuzz   # clang++-14 and its tools
dir=build-cov
log=$dir/build.log
mkdir -p "$dir"
if [ ! -f "$dir/CMakeCache.txt" ]; then
  flags="-fprofile-instr-generate -fcoverage-mapping"
  if ! CXX=clang++-14 cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPAGELAB_BUILD_BENCH=OFF \
      -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="$flags" >"$log" 2>&1; then
    cat "$log" >&2
    exit 2
  fi
fi
echo "== building pagelab with coverage in $dir"
cmake --build "$dir" --target pagelab -j "$(nproc)" >"$log" 2>&1 || { cat "$log" >&2; exit 2; }
binary=$dir/bin/pagelab

rm -rf "$dir/profiles"
mkdir -p "$dir/profiles"
echo "== $jobs campaign(s) of $duration, seeds $seed to $((seed + jobs - 1))"
pids=()
for ((i = 0; i < jobs; ++i)); do
  s=$((seed + i))
  rm -rf "$dir/out-$s"
  LLVM_PROFILE_FILE="$dir/profiles/fuzz-$s.profraw" \
    "$binary" fuzz --seed "$s" --time "$duration" --quiet --out "$dir/out-$s" --json "$dir/fuzz-$s.json" \
    >"$dir/fuzz-$s.log" 2>&1 &
  pids+=($!)
done
status=0
for ((i = 0; i < jobs; ++i)); do
  wait "${pids[$i]}" || status=1
  s=$((seed + i))
  echo "   seed $s: $(grep -m1 '^fuzz:' "$dir/fuzz-$s.log" || echo 'no summary (see the log)')"
done

llvm-profdata-14 merge -sparse "$dir"/profiles/*.profraw -o "$dir/fuzz.profdata"
echo "== coverage of src/mm"
llvm-cov-14 report "$binary" -instr-profile="$dir/fuzz.profdata" -show-branch-summary "$PWD/src/mm" \
  | sed "s|$PWD/||" | tee "$dir/coverage-mm.txt"
llvm-cov-14 show "$binary" -instr-profile="$dir/fuzz.profdata" -show-branches=count -format=html \
  -output-dir="$dir/html" "$PWD/src/mm" >/dev/null
[ $status -eq 0 ] || echo "fuzz-coverage.sh: a campaign failed; its failures are in $dir/out-SEED/" >&2
exit $status
