#!/usr/bin/env bash
# The reference model's judge does not fail runs the core got right:
#   judge_regressions.sh PAGELAB DIR [SEEDS]
# For each DIR/*.scenario (a false positive the fuzzer once found; DIR's
# README.md says which), every seed of 1..SEEDS (default 500) must hold under
# `explore --judge`. Before each fix, some seed of 1..500 failed.
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
[ $count -gt 0 ] || { echo "FAILED: no scenarios in $dir"; exit 1; }
exit $status
