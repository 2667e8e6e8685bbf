#!/usr/bin/env bash
# The scenarios on real CPUs against the emulator, as one ctest case.
#   scenario_crosscheck.sh PAGELAB KERNEL SCENARIO... [-- boot.sh options...]
#
# Boots KERNEL once (TCG unless the options say otherwise) with
# `selftest=off scenarios=NAME,...` and as many CPUs as the largest
# `machine cpus=N` asks for, runs each scenario in the emulator with
# `pagelab run --outcomes`, and compares, scenario by scenario:
#   - the statement outcomes, in program order per CPU (CPUs interleave
#     differently, so lines are sorted by set-up / CPU, stably), unless the
#     scenario says `# crosscheck: checks-only` (its outcomes depend on the
#     interleaving);
#   - the check results (ok / FAIL), except those the kernel skips (said);
#   - the kernel's verdict, which must be PASS.
# Details in parentheses and the outcome of `expect any` statements are not
# compared. A scenario the kernel skips (it says why) is reported, not failed.
# A KVM boot on a host without usable KVM is skipped (77).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 3 ] || { echo "usage: $0 PAGELAB KERNEL SCENARIO... [-- boot.sh options...]" >&2; exit 2; }
pagelab=$1 kernel=$2
shift 2
scenarios=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do scenarios+=("$1"); shift; done
[ "${1:-}" = -- ] && shift
boot_options=("$@")

if [[ " ${boot_options[*]-} " == *" --accel kvm "* ]] && ! { [ -r /dev/kvm ] && [ -w /dev/kvm ]; }; then
  echo "skipped: /dev/kvm is not usable here"
  exit 77
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

smp=1 names=""
for file in "${scenarios[@]}"; do
  cpus=$(grep -m1 -oE '^[[:space:]]*machine[[:space:]].*cpus[[:space:]]*=[[:space:]]*[0-9]+' "$file" | grep -oE '[0-9]+$')
  [ -n "$cpus" ] && [ "$cpus" -gt "$smp" ] && smp=$cpus
  names+="${names:+,}$(basename "$file" .scenario)"
done

# By name, unless the list would crowd the command line: then every one the
# kernel has (those not given here are not compared).
[ ${#names} -le 400 ] || names=all
"$here/../../scripts/boot.sh" --kernel "$kernel" --accel tcg --smp "$smp" \
  --append "selftest=off scenarios=$names" "${boot_options[@]}" >"$work/boot.log" 2>&1
boot_status=$?
if ! grep -q '^scenarios: ' "$work/boot.log"; then
  cat "$work/boot.log"
  echo "crosscheck: the kernel did not finish its scenarios (boot.sh exited $boot_status)"
  exit 1
fi

# The comparable form of outcome lines: set-up first, then each CPU's lines
# in their order, then the checks by line; details dropped, `[any]` masked.
normalize() {
  grep -E '^(setup|cpu [0-9]+|check) line [0-9]+: ' |
    sed -E -e 's/ \(.*$//' -e 's/-> [^ ]+ \[any\]$/-> * [any]/' |
    awk '{ key = ($1 == "setup") ? 0 : ($1 == "cpu") ? 1 + $2 : 1000000 + $3
           printf "%d\t%s\n", key, $0 }' |
    sort -s -t "$(printf '\t')" -k1,1n | cut -f2-
}

full=0 checks_only=0 skipped=0 failed=0
for file in "${scenarios[@]}"; do
  name=$(basename "$file" .scenario)
  tr -d '\r' <"$work/boot.log" | grep -F "scenario $name: " | sed "s/^scenario $name: //" >"$work/$name.kernel"
  if grep -q '^SKIPPED' "$work/$name.kernel"; then
    echo "SKIP  $name: the kernel $(grep -m1 '^SKIPPED' "$work/$name.kernel" | sed 's/^SKIPPED/skipped it/')"
    skipped=$((skipped + 1))
    continue
  fi
  problems=()
  grep -q '^begin' "$work/$name.kernel" || problems+=("the kernel did not run it")
  "$pagelab" run "$file" --trace none --outcomes "$work/$name.emu" >/dev/null 2>"$work/$name.emu.err"
  emu_status=$?
  [ $emu_status -eq 0 ] || problems+=("the emulator does not pass it (exit $emu_status): $(head -1 "$work/$name.emu.err")")
  grep -q '^PASS' "$work/$name.kernel" || problems+=("the kernel's verdict is not PASS")

  # Checks the kernel cannot evaluate leave both sides.
  skipped_checks=$(grep -E '^check line [0-9]+: [a-z]+ -> skipped' "$work/$name.kernel" | awk '{ print $3 }')
  for line in $skipped_checks; do
    echo "note  $name: check line ${line%:} not compared: $(grep -m1 "^check line $line" "$work/$name.kernel" | sed 's/.*-> //')"
  done
  normalize <"$work/$name.kernel" >"$work/$name.k"
  normalize <"$work/$name.emu" >"$work/$name.e"
  for line in $skipped_checks; do
    grep -v "^check line $line " "$work/$name.k" >"$work/$name.k2"; mv "$work/$name.k2" "$work/$name.k"
    grep -v "^check line $line " "$work/$name.e" >"$work/$name.e2"; mv "$work/$name.e2" "$work/$name.e"
  done
  mode="outcomes and checks"
  if grep -qE '^[[:space:]]*#[[:space:]]*crosscheck:[[:space:]]*checks-only' "$file"; then
    mode="checks only"
    grep '^check ' "$work/$name.k" >"$work/$name.k2"; mv "$work/$name.k2" "$work/$name.k"
    grep '^check ' "$work/$name.e" >"$work/$name.e2"; mv "$work/$name.e2" "$work/$name.e"
  fi
  if ! diff -u --label "emulator $name" --label "kernel $name" "$work/$name.e" "$work/$name.k" >"$work/$name.diff"; then
    problems+=("the outcomes differ (- emulator, + kernel):")
  fi

  if [ ${#problems[@]} -eq 0 ]; then
    echo "ok    $name: $mode agree ($(wc -l <"$work/$name.k") lines)"
    if [ "$mode" = "checks only" ]; then checks_only=$((checks_only + 1)); else full=$((full + 1)); fi
  else
    echo "FAIL  $name ($file):"
    for problem in "${problems[@]}"; do echo "      $problem"; done
    [ -s "$work/$name.diff" ] && sed 's/^/      /' "$work/$name.diff"
    echo "      kernel:"
    sed 's/^/        /' "$work/$name.kernel"
    failed=$((failed + 1))
  fi
done

echo "crosscheck: $full compared fully, $checks_only on their checks only, $skipped skipped by the kernel, $failed failed" \
     "(one boot, -smp $smp)"
[ $failed -eq 0 ]
