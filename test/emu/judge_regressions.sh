#!/usr/bin/env bash
# The reference model's judge does not fail runs the core got right:
#   judge_regressions.sh PAGELAB DIR [SEEDS]
# For each DIR/*.scenario (a false positive the fuzzer once found; DIR's
# README.md says which), every seed of 1..SEEDS (default 500) must hold under
# `explore --judge`, and each DIR/*.schedule (a recorded run of the scenario
# beside it) must hold under `replay`: a race too rare for 500 seeds is kept
# as the very run that found it. Before each fix, some seed of 1..500, or the
# recorded run, failed.
set -uo pipefail
pagelab=$1 dir=$2 seeds=${3:-500}
status=0
count=0
for file in "$dir"/*.scenario; do
  [ -e "$file" ] || break
  count=$((count + 1))
  out=$("$pagelab" explore "$file" --seeds "1..$seeds" --judge --max-failures 1 --jobs 2 --quiet 2>&1)
  got=$?
  if [ $got -ne 0 ]; then
    echo "FAILED: $(basename "$file"): explore --judge exited $got"
    head -20 <<<"$out"
    status=1
  else
    echo "ok: $(basename "$file"): seeds 1..$seeds hold under the judge"
  fi
done
for record in "$dir"/*.schedule; do
  [ -e "$record" ] || break
  out=$("$pagelab" replay "$record" --trace none 2>&1)
  got=$?
  if [ $got -ne 0 ] || grep -q "warning" <<<"$out"; then
    echo "FAILED: $(basename "$record"): replay exited $got"
    head -20 <<<"$out"
    status=1
  else
    echo "ok: $(basename "$record"): the recorded run holds under the judge"
  fi
done
[ $count -gt 0 ] || { echo "FAILED: no scenarios in $dir"; exit 1; }
exit $status
