#!/usr/bin/env bash
# The reference model's judge does not fail runs the core got right:
#   judge_regressions.sh PAGELAB DIR [SEEDS]
# For each DIR/*.scenario (a false positive the fuzzer once found; DIR's
# README.md says which), every seed of 1..SEEDS (default 500) must hold under
# `explore --judge`. Before each fix, some seed of 1..500 failed.
set -uo pipefail
pagelab=$1 dir=$2 seeds=${3:-500}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

shopt -s nullglob
files=("$dir"/*.scenario)
[ ${#files[@]} -gt 0 ] || { echo "FAILED: no scenarios in $dir"; exit 1; }
status=0
for file in "${files[@]}"; do
  "$pagelab" explore "$file" --seeds "1..$seeds" --judge --max-failures 1 --jobs 2 --quiet >"$work/out" 2>&1
  got=$?
  if [ $got -ne 0 ]; then
    echo "FAILED: $(basename "$file"): explore --judge exited $got"
    head -20 "$work/out"
    status=1
  else
    echo "ok: $(basename "$file"): seeds 1..$seeds hold under the judge"
  fi
done
exit $status
