#!/usr/bin/env bash
# Runs today's generator against the core from before issue 1/10's fix: does
# generated work find the copy-on-write use-after-free nobody wrote a scenario
# for? (docs/FUZZING.md, "Finds what was unknown".)
#
#   scripts/fuzz-prefix-core.sh [--seed S] [--time SECONDS] [--seeds-per-case K] [--match REGEX]
#
# The commit before the fix (2efe73f^) predates `pagelab fuzz`, so its own
# binary cannot generate; this builds that commit's `pagelab` in
# build-prefix/ (a git worktree), then asks today's build/bin/pagelab for
# case 0, 1, 2, ... of campaign S (`fuzz --print-case`) and runs each under
# the old `explore` with K seeds. The old parser does not know statements
# added since (`unpin`); cases using them are skipped and counted. It stops at
# the first case whose failure matches REGEX (default: the bug's two
# symptoms, a read of a freed frame's poison or O1) and prints it, the time
# taken and the counts. Other failures are counted, not stopped at: the old
# emulator had its own bugs (its oracle read a CPU's previous space's entries
# as the next space's during a switch, an O2 false positive).
# Exit 0 when a failure was found, 1 when the time ran out, 2 on a bad
# argument or a failed build.
set -euo pipefail
cd "$(dirname "$0")/.."

seed=1
seconds=300
per_case=10
match='poison of a freed frame|O1 violated'
while [ $# -gt 0 ]; do
  case $1 in
    --seed|--time|--seeds-per-case|--match)
      [ $# -ge 2 ] || { echo "fuzz-prefix-core.sh: $1 needs a value" >&2; exit 2; }
      case $1 in --seed) seed=$2 ;; --time) seconds=$2 ;; --match) match=$2 ;; *) per_case=$2 ;; esac
      shift 2 ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "fuzz-prefix-core.sh: unknown argument '$1' (try --seed S, --time SECONDS, --seeds-per-case K)" >&2; exit 2 ;;
  esac
done
for value in "$seed" "$seconds" "$per_case"; do
  case $value in ''|*[!0-9]*) echo "fuzz-prefix-core.sh: '$value' is not a whole number" >&2; exit 2 ;; esac
done
[ "$seconds" -ge 1 ] && [ "$per_case" -ge 1 ] || { echo "fuzz-prefix-core.sh: --time and --seeds-per-case are at least 1" >&2; exit 2; }

prefix_commit=2efe73f^   # "Core: the TLB batch owns reference drops" is the fix
dir=build-prefix
scripts/build.sh build
if [ ! -d "$dir/src" ]; then
  git worktree add --force --detach "$dir/src" "$prefix_commit" >/dev/null 2>&1 ||
    { echo "fuzz-prefix-core.sh: cannot check out $prefix_commit into $dir/src" >&2; exit 2; }
fi
# Only the old `pagelab`: its tests, benchmarks and kernel are not needed.
if ! { [ -f "$dir/src/build/CMakeCache.txt" ] ||
       cmake -S "$dir/src" -B "$dir/src/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPAGELAB_BUILD_BENCH=OFF >"$dir/build.log" 2>&1; } ||
   ! cmake --build "$dir/src/build" --target pagelab -j "$(nproc)" >>"$dir/build.log" 2>&1; then
  cat "$dir/build.log" >&2
  echo "fuzz-prefix-core.sh: the old core did not build (log above)" >&2
  exit 2
fi
old=$dir/src/build/bin/pagelab
new=build/bin/pagelab

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
start=$(date +%s%N)
deadline=$(( $(date +%s) + seconds ))
case_index=0 ran=0 skipped=0 other=0
while [ "$(date +%s)" -lt "$deadline" ]; do
  "$new" fuzz --seed "$seed" --print-case "$case_index" >"$work/case.scenario"
  if "$old" explore "$work/case.scenario" --seeds "1..$per_case" >"$work/out.txt" 2>&1; then
    ran=$((ran + 1))
  elif grep -q 'case.scenario:[0-9]*:[0-9]*: error:' "$work/out.txt"; then
    skipped=$((skipped + 1))   # a statement the old parser does not know
  elif ! grep -Eq "$match" "$work/out.txt"; then
    ran=$((ran + 1)) other=$((other + 1))
  else
    ran=$((ran + 1))
    elapsed=$(( ($(date +%s%N) - start) / 1000000000 ))
    mkdir -p "$dir/found"
    cp "$work/case.scenario" "$dir/found/seed$seed-case$case_index.scenario"
    echo "found after $elapsed s: case $case_index of campaign $seed ($ran cases run, $other failing otherwise, $skipped skipped as unparsable by the old core)"
    echo "scenario: $dir/found/seed$seed-case$case_index.scenario"
    grep -E -m1 "$match" "$work/out.txt" || true
    grep -m1 '^reproduce:' "$work/out.txt" | sed "s|$work/case.scenario|$dir/found/seed$seed-case$case_index.scenario|" || true
    exit 0
  fi
  case_index=$((case_index + 1))
done
echo "nothing matching found in $seconds s: $ran cases run, $other failing otherwise, $skipped skipped as unparsable by the old core"
exit 1
