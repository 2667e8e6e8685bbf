#!/usr/bin/env bash
# End-to-end tests of `pagelab fuzz` (docs/FUZZING.md), one case per call:
#   fuzz_cli_test.sh PAGELAB SOURCE_DIR CASE
# finds-POLICY  under an unsafe policy the fuzzer finds a violation with no
#               hand-written input, shrinks it to at most 25 lines, writes it
#               with its record; the written reproduce command and the replay
#               both fail with the same signature
# clean         under the correct protocol a budget of cases finds nothing
# json          --json writes the shared schema; the counts add up
# print-case    --print-case prints a case that parses and runs; the same
#               seed and case print the same text
# bad-args      bad arguments exit 2 naming the argument
set -uo pipefail
pagelab=$1 source=$2 case=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

die() { echo "FAILED: $*"; for f in "$work"/out "$work"/err; do [ -f "$f" ] && { echo "--- $f"; head -60 "$f"; }; done; exit 1; }
expect() {
  local want=$1; shift
  "$@" >"$work/out" 2>"$work/err"
  local got=$?
  [ "$got" -eq "$want" ] || die "expected exit $want, got $got: $*"
}
has() { grep -qE -- "$2" "$1" || die "'$2' not in $1"; }

# finds POLICY: the fuzzer finds and shrinks a violation of POLICY.
finds() {
  local policy=$1
  expect 1 "$pagelab" fuzz --seed 1 --cases 400 --jobs 2 --quiet --shootdown "$policy" --allow-unsafe \
    --out "$work/found" --shrink-time 30s --max-failures 1 --json "$work/r.json"
  has "$work/out" "^FAIL \[(O[1-6]|poison|model)\]"
  local best="" best_lines=1000
  for f in "$work"/found/*.scenario; do
    local lines
    lines=$(grep -cvE '^\s*(#|$)' "$f")
    if [ "$lines" -lt "$best_lines" ]; then best=$f; best_lines=$lines; fi
  done
  [ -n "$best" ] || die "no shrunk case written"
  [ "$best_lines" -le 25 ] || die "the smallest shrunk case has $best_lines lines (at most 25 wanted): $best"
  local signature reproduce
  signature=$(sed -n 's/^# signature: //p' "$best")
  reproduce=$(sed -n 's/^# reproduce: //p' "$best")
  [ -n "$signature" ] && [ -n "$reproduce" ] || die "$best has no signature or reproduce line"
  eval "$reproduce --trace none" >"$work/out" 2>"$work/err" && die "the reproduce command passed: $reproduce"
  local first
  # The signature's rule: every number not inside a word (O5 stays) becomes '#'.
  first=$(grep -m1 '^FAIL' "$work/err" | sed -E 's/^FAIL: [^ ]+: //; :a; s/(^|[^A-Za-z0-9_#])(0x[0-9a-fA-F]+|[0-9]+)/\1#/; ta')
  [ "$first" = "$signature" ] || die "the reproduce command failed another way: '$first', not '$signature'"
  expect 1 "$pagelab" replay "${best%.scenario}.schedule" --trace none
  has "$work/err" "^FAIL"
  echo "found and shrunk to $best_lines lines: $signature"
}

case $case in
  finds-local-only) finds unsafe-local-only ;;
  finds-no-flush) finds unsafe-no-flush ;;
  clean)
    expect 0 "$pagelab" fuzz --seed 11 --time 30s --jobs 2 --quiet --out "$work/none"
    has "$work/out" "^PASS: no failure"
    [ -z "$(ls -A "$work/none" 2>/dev/null)" ] || die "a clean campaign wrote cases"
    ;;
  json)
    expect 0 "$pagelab" fuzz --seed 3 --cases 20 --seeds-per-case 3 --quiet --json "$work/r.json"
    python3 - "$work/r.json" <<'PY' || die "bad JSON results"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["schema"] == "pagelab-results" and d["version"] == 1 and d["tool"] == "fuzz", d
assert d["summary"]["cases"] == 20 and d["summary"]["runs"] == 60, d["summary"]
assert d["failures"] == [] and d["options"]["seed"] == 3 and d["options"]["seeds_per_case"] == 3
PY
    ;;
  print-case)
    expect 0 "$pagelab" fuzz --seed 5 --print-case 17
    cp "$work/out" "$work/a.scenario"
    expect 0 "$pagelab" fuzz --seed 5 --print-case 17
    cmp -s "$work/out" "$work/a.scenario" || die "case 17 of seed 5 printed twice differently"
    expect 0 "$pagelab" fuzz --seed 6 --print-case 17
    cmp -s "$work/out" "$work/a.scenario" && die "seeds 5 and 6 gave the same case 17"
    expect 0 "$pagelab" run "$work/a.scenario" --seed 3 --trace none
    ;;
  bad-args)
    expect 2 "$pagelab" fuzz --cases 0
    has "$work/err" "--cases"
    expect 2 "$pagelab" fuzz --time soon
    has "$work/err" "--time"
    expect 2 "$pagelab" fuzz --cases 3 --time 5s
    has "$work/err" "one of them"
    expect 2 "$pagelab" fuzz --shootdown unsafe-local-only
    has "$work/err" "--allow-unsafe"
    expect 2 "$pagelab" fuzz --shootdown nonsense --allow-unsafe
    has "$work/err" "unknown policy"
    expect 2 "$pagelab" fuzz --out "$work/missing/dir"
    has "$work/err" "does not exist"
    expect 2 "$pagelab" fuzz --inject alloc-fail@0
    has "$work/err" "alloc-fail@0"
    ;;
  *) echo "unknown case $case"; exit 2 ;;
esac
