#!/usr/bin/env bash
# Every race scenario's bug is caught by the oracle, not only by an
# expectation that a stale translation happens to break:
#   races_by_oracle.sh PAGELAB DIR [SEEDS]
# For each DIR/*.scenario with an `# explore:` line (the options that turn
# it into the bug, as scripts/explore-all.sh reads them), explores seeds
# 1..SEEDS (default 200) with those options, --allow-unsafe and
# --max-failures 1: some seed must fail, and the first failing seed's report
# must be an oracle violation (`oracle: O1`..`O6`). The large-page races
# (protect_splits_huge_page, unmap_splits_huge_page) are what this was
# written for: their stale 2 MiB entries are right at their base page, and
# no access of the scenario touches the page that changed.
set -uo pipefail
pagelab=$1 dir=$2 seeds=${3:-200}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

shopt -s nullglob
files=("$dir"/*.scenario)
[ ${#files[@]} -gt 0 ] || { echo "FAILED: no race scenarios in $dir"; exit 1; }
status=0
checked=0
for file in "${files[@]}"; do
  options=$(sed -n 's/^#[[:space:]]*explore:[[:space:]]*//p' "$file" | head -n 1)
  if [[ $options =~ ^unsafe=([a-z-]+)[[:space:]]*$ ]]; then options="--shootdown ${BASH_REMATCH[1]}"; fi
  [ -n "$options" ] || continue
  checked=$((checked + 1))
  # shellcheck disable=SC2086  # the options are words on purpose
  "$pagelab" explore "$file" --seeds "1..$seeds" $options --allow-unsafe --max-failures 1 --jobs 2 --quiet \
    >"$work/out" 2>&1
  got=$?
  if [ $got -ne 1 ]; then
    echo "FAILED: $(basename "$file"): explore with '$options' exited $got, expected 1 (a failing seed)"
    head -40 "$work/out"
    status=1
  elif ! grep -qE 'oracle: O[1-6] violated' "$work/out"; then
    echo "FAILED: $(basename "$file"): the first failure under '$options' is not the oracle's"
    head -40 "$work/out"
    status=1
  else
    echo "ok: $(basename "$file"): $(grep -oE 'oracle: O[1-6] violated' "$work/out" | head -n 1) under $options"
  fi
done
[ $checked -gt 0 ] || { echo "FAILED: no scenario in $dir has an '# explore:' line"; exit 1; }
exit $status
