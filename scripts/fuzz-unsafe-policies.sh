#!/usr/bin/env bash
# Does `pagelab fuzz` find each known shootdown bug with no hand-written
# input? For each unsafe policy, a campaign that stops at its first failure,
# then the shrunk case's size (docs/FUZZING.md, "What it finds").
#
#   scripts/fuzz-unsafe-policies.sh [--time DURATION] [--jobs N] [--seed S] [POLICY...]
#
#   --time DURATION  each policy's budget (as fuzz --time; default 5m)
#   --jobs N         fuzz workers (default: the host's CPUs)
#   --seed S         the campaigns' seed (default 1)
#   POLICY           unsafe-local-only, unsafe-no-flush, unsafe-active-only,
#                    unsafe-free-before-ack, unsafe-flush-after-unlock (default: all five)
#
# Prints a table: policy, found after (s), invariant, lines of the shrunk
# case, the case file (in build/fuzz-unsafe/POLICY/). Exit 0 when every
# policy was found within its budget and shrunk to at most 25 lines, 1
# otherwise, 2 for a bad argument.
set -euo pipefail
cd "$(dirname "$0")/.."

duration=5m
jobs=$(nproc)
seed=1
policies=()
while [ $# -gt 0 ]; do
  case $1 in
    --time|--jobs|--seed)
      [ $# -ge 2 ] || { echo "fuzz-unsafe-policies.sh: $1 needs a value" >&2; exit 2; }
      case $1 in --time) duration=$2 ;; --jobs) jobs=$2 ;; *) seed=$2 ;; esac
      shift 2 ;;
    unsafe-local-only|unsafe-no-flush|unsafe-active-only|unsafe-free-before-ack|unsafe-flush-after-unlock)
      policies+=("$1"); shift ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "fuzz-unsafe-policies.sh: unknown argument '$1' (try --time, --jobs, --seed or an unsafe-* policy)" >&2; exit 2 ;;
  esac
done
[ ${#policies[@]} -eq 0 ] &&
  policies=(unsafe-local-only unsafe-no-flush unsafe-active-only unsafe-free-before-ack unsafe-flush-after-unlock)

scripts/build.sh build
out=build/fuzz-unsafe
status=0
rows=()
for policy in "${policies[@]}"; do
  rm -rf "${out:?}/$policy"
  mkdir -p "$out/$policy"
  json=$out/$policy/results.json
  echo "== $policy: fuzz --time $duration --jobs $jobs --seed $seed --max-failures 1"
  set +e
  build/bin/pagelab fuzz --seed "$seed" --time "$duration" --jobs "$jobs" --shootdown "$policy" --allow-unsafe \
    --max-failures 1 --quiet --out "$out/$policy" --json "$json" >"$out/$policy/fuzz.log" 2>&1
  rc=$?
  set -e
  if [ $rc -eq 2 ] || [ ! -s "$json" ]; then
    cat "$out/$policy/fuzz.log" >&2
    echo "fuzz-unsafe-policies.sh: the campaign for $policy did not run" >&2
    exit 2
  fi
  row=$(python3 - "$json" "$policy" <<'PY'
import json, sys
results = json.load(open(sys.argv[1]))
failures = results.get("failures", [])
if not failures:
    print(f"| {sys.argv[2]} | not found | | | |")
    sys.exit(1)
f = min(failures, key=lambda f: f.get("found_after_s", 1e9))
print(f"| {sys.argv[2]} | {f['found_after_s']:.1f} | {f['invariant']} | {f['lines_before']} -> {f['lines_after']} | {f.get('scenario', '')} |")
sys.exit(0 if f["lines_after"] <= 25 else 1)
PY
  ) || status=1
  rows+=("$row")
done

echo
echo "| policy | found after (s) | invariant | lines (generated -> shrunk) | shrunk case |"
echo "|---|---:|---|---|---|"
for row in "${rows[@]}"; do echo "$row"; done
exit $status
