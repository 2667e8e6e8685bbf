#!/usr/bin/env bash
# Explores every race scenario: shows that the oracle catches each classic
# shootdown bug, and that the correct protocol holds where the bug did not.
#
#   scripts/explore-all.sh [-p PAGELAB] [-u UNSAFE_SEEDS] [-s SAFE_SEEDS] [-j JOBS] [DIR]
#
# DIR (default examples/races of this tree) holds *.scenario files. Each names, in a line
#
#   # explore: --shootdown unsafe-POLICY     (any explore options; or `# explore: unsafe=unsafe-POLICY`)
#
# the options that turn it into the bug. For each file the plan is two sweeps:
#
#   1. the bug:  pagelab explore FILE --seeds 1..UNSAFE_SEEDS OPTIONS --allow-unsafe --max-failures 1
#                must exit 1: some seed fails (an oracle violation, or an
#                expectation the stale translation breaks);
#   2. the fix:  pagelab explore FILE --seeds 1..SAFE_SEEDS OPTIONS-without---shootdown
#                (the file's own, correct policy, explored the same way)
#                must exit 0: every seed holds.
#
# A file without an `# explore:` line gets only the second sweep. Defaults:
# UNSAFE_SEEDS 200, SAFE_SEEDS 10000 (-s 0 skips the second sweep), JOBS the
# host's CPUs, PAGELAB build/bin/pagelab of this tree (or $PAGELAB). Each sweep's summary
# goes to stdout; the last lines are a table of verdicts.
#
# Exit status: 0 when every sweep went as planned (also when DIR holds no
# scenario), 1 when one did not (or pagelab crashed), 2 for bad usage or a
# sweep that exited 2 (bad input: the scenario or its options).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

pagelab=${PAGELAB:-$root/build/bin/pagelab}
unsafe_seeds=200
safe_seeds=10000
jobs=$(nproc 2>/dev/null || echo 2)

usage() { sed -n '4,5p' "$0" | sed 's/^# //' >&2; exit 2; }
is_count() { [[ $1 =~ ^[0-9]+$ ]]; }

while getopts "p:u:s:j:h" opt; do
  case $opt in
    p) pagelab=$OPTARG ;;
    u) unsafe_seeds=$OPTARG ;;
    s) safe_seeds=$OPTARG ;;
    j) jobs=$OPTARG ;;
    *) usage ;;
  esac
done
shift $((OPTIND - 1))
[ $# -le 1 ] || usage
dir=${1:-$root/examples/races}
is_count "$unsafe_seeds" && [ "$unsafe_seeds" -ge 1 ] || { echo "explore-all: -u takes a seed count of at least 1, not '$unsafe_seeds'" >&2; exit 2; }
is_count "$safe_seeds" || { echo "explore-all: -s takes a seed count (0 skips), not '$safe_seeds'" >&2; exit 2; }
is_count "$jobs" && [ "$jobs" -ge 1 ] || { echo "explore-all: -j takes a number of jobs, not '$jobs'" >&2; exit 2; }
[ -x "$pagelab" ] || { echo "explore-all: no pagelab at '$pagelab' (build it: scripts/build.sh, or pass -p)" >&2; exit 2; }
[ -d "$dir" ] || { echo "explore-all: no directory '$dir': nothing to explore"; exit 0; }

shopt -s nullglob
files=("$dir"/*.scenario)
if [ ${#files[@]} -eq 0 ]; then
  echo "explore-all: no race scenarios in $dir: nothing to explore"
  exit 0
fi

verdicts=()
status=0
# sweep LABEL WANT FILE ARGS...: one explore, its summary to stdout; records a verdict.
sweep() {
  local label=$1 want=$2 file=$3; shift 3
  echo "== $file ($label): $pagelab explore $file $*"
  "$pagelab" explore "$file" --jobs "$jobs" --quiet "$@"
  local got=$?
  local verdict=ok
  if [ $got -eq 2 ]; then
    verdict="BAD INPUT (exit 2)"; status=2
  elif [ $got -gt 2 ]; then
    verdict="CRASHED (exit $got)"; [ $status -eq 2 ] || status=1
  elif [ $got -ne "$want" ]; then
    if [ "$want" -eq 1 ]; then verdict="MISSED: no failure within the seeds"; else verdict="FAILED: the correct protocol broke"; fi
    [ $status -eq 2 ] || status=1
  fi
  verdicts+=("$(printf '%-52s %-6s %s' "$(basename "$file")" "$label" "$verdict")")
}

for file in "${files[@]}"; do
  # The options after `# explore:`; `unsafe=POLICY` is short for `--shootdown POLICY`.
  options=$(sed -n 's/^#[[:space:]]*explore:[[:space:]]*//p' "$file" | head -n 1)
  if [[ $options =~ ^unsafe=([a-z-]+)[[:space:]]*$ ]]; then options="--shootdown ${BASH_REMATCH[1]}"; fi
  if [ -n "$options" ]; then
    # shellcheck disable=SC2086  # the options are words on purpose
    sweep bug 1 "$file" --seeds "1..$unsafe_seeds" $options --allow-unsafe --max-failures 1
  fi
  if [ "$safe_seeds" -gt 0 ]; then
    # The same exploration (strategy and all) without the unsafe policy.
    fix_options=$(sed -E 's/--shootdown[[:space:]]+[a-z-]+//' <<<"$options")
    # shellcheck disable=SC2086
    sweep fix 0 "$file" --seeds "1..$safe_seeds" $fix_options
  fi
done

echo
echo "explore-all: ${#files[@]} scenarios, bug sweeps over 1..$unsafe_seeds, fix sweeps over 1..$safe_seeds"
printf '%s\n' "${verdicts[@]}"
exit $status
