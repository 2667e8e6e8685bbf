#!/usr/bin/env bash
# Every mutant of scripts/mutants/ still applies to this tree's src/mm (a
# change to the core that moves a mutant's context must rebase the mutant in
# the same commit, or scripts/mutants.sh would report it unbuildable):
#   mutant_patches_apply.sh SOURCE_DIR
# Outside a git checkout there is nothing to apply against: skipped (77).
set -uo pipefail
root=$1
git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1 || { echo "skipped: $root is not a git checkout"; exit 77; }
status=0 count=0
for patch in "$root"/scripts/mutants/*.patch; do
  [ -e "$patch" ] || break
  count=$((count + 1))
  if out=$(git -C "$root" apply --check "$patch" 2>&1); then
    echo "ok: $(basename "$patch")"
  else
    echo "FAILED: $(basename "$patch") does not apply: $out"
    status=1
  fi
done
[ $count -gt 0 ] || { echo "FAILED: no mutants in $root/scripts/mutants"; exit 1; }
exit $status
