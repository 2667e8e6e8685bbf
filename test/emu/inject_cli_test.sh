#!/usr/bin/env bash
# End-to-end tests of `--inject` (docs/EMULATOR.md, "Fault injection"), one
# case per call:
#   inject_cli_test.sh PAGELAB SOURCE_DIR CASE
# bad-input      bad specs (alloc-fail@0, alloc-fail@x, spec-fill:1.5, foo, twice) exit 2
#                naming the argument, for run and explore; a record with a bad inject line too
# same-seed      the same seed and --inject give the same trace, byte for byte; the
#                injections show as `inject` events; another seed gives another trace
# alloc-fail     an allocation made to fail gives ENOMEM or a segv, exit 1, no leak
# record-replay  run --record keeps --inject; replay runs it again to the same trace
# explore        explore --inject finds the bug only spec-fill shows, and its reproduce
#                command and record carry --inject; under the correct policy every seed holds
# parallel       --parallel runs take injections (and the oracle is off: no check to trip)
set -uo pipefail
pagelab=$1 source=$2 case=$3
untouched=$source/test/data/inject_untouched_page.scenario
race=$source/examples/races/concurrent_unmaps.scenario
demand=$source/examples/demand_zero.scenario
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

die() { echo "FAILED: $*"; for f in "$work"/out "$work"/err; do [ -f "$f" ] && { echo "--- $f"; head -60 "$f"; }; done; exit 1; }
# expect STATUS CMD...: runs CMD with stdout to $work/out, stderr to $work/err.
expect() {
  local want=$1; shift
  "$@" >"$work/out" 2>"$work/err"
  local got=$?
  [ "$got" -eq "$want" ] || die "expected exit $want, got $got: $*"
}
# has FILE PATTERN: a grep -E that explains itself when it fails.
has() { grep -qE -- "$2" "$1" || die "'$2' not in $1"; }

case $case in
  bad-input)
    for spec in alloc-fail@0 alloc-fail@x spec-fill:1.5 foo evict:-1 ipi-delay:99999 "evict:0.1,evict:0.2" ""; do
      expect 2 "$pagelab" run "$demand" --trace none --inject "$spec"
      has "$work/err" "^pagelab: --inject '$spec'"
      expect 2 "$pagelab" explore "$demand" --seeds 1..3 --quiet --inject "$spec"
      has "$work/err" "^pagelab: --inject '$spec'"
    done
    expect 2 "$pagelab" run "$demand" --inject ipi-delay:1 --inject ipi-delay:2
    has "$work/err" "ipi-delay is given twice"
    # A record whose inject line is not a spec.
    expect 0 "$pagelab" run "$demand" --trace none --inject evict:0.5 --record "$work/r"
    sed -i 's/^inject .*/inject spec-fill:2/' "$work/r"
    expect 2 "$pagelab" replay "$work/r"
    has "$work/err" ":[0-9]+: error: bad inject 'spec-fill:2'"
    ;;
  same-seed)
    inject=(--inject spec-fill:0.4 --inject evict:0.3,ipi-delay:3)
    expect 0 "$pagelab" run "$race" --seed 5 "${inject[@]}" --trace-out "$work/a"
    expect 0 "$pagelab" run "$race" --seed 5 "${inject[@]}" --trace-out "$work/b"
    cmp -s "$work/a" "$work/b" || die "two runs with seed 5 and the same --inject gave different traces"
    for what in spec-fill evict ipi-delay; do has "$work/a" "inject +what=$what"; done
    expect 0 "$pagelab" run "$race" --seed 6 "${inject[@]}" --trace-out "$work/c"
    cmp -s "$work/a" "$work/c" && die "seeds 5 and 6 gave the same trace"
    # --events inject keeps just the injections.
    expect 0 "$pagelab" run "$race" --seed 5 "${inject[@]}" --events inject --trace jsonl --trace-out "$work/d"
    has "$work/d" '"event":"inject","what":"spec-fill","va":"0x1000[0-3]000"'
    grep -qv '"event":"inject"' "$work/d" && die "--events inject kept other events"
    # Nothing to inject: the trace of a run without --inject.
    expect 0 "$pagelab" run "$race" --seed 5 --trace-out "$work/e"
    expect 0 "$pagelab" run "$race" --seed 5 --inject spec-fill:0,evict:0,ipi-delay:0 --trace-out "$work/f"
    cmp -s "$work/e" "$work/f" || die "--inject with nothing to inject changed the trace"
    ;;
  alloc-fail)
    expect 1 "$pagelab" run "$demand" --trace-out "$work/t" --inject alloc-fail@3
    has "$work/t" "inject +what=alloc-fail n=3 frames=1 owner=page-table"
    has "$work/err" "^FAIL: .*demand_zero.scenario:[0-9]+:[0-9]+: read 0x10000000: was a segmentation fault"
    grep -q "leaked" "$work/err" && die "a leak after alloc-fail@3"
    expect 1 "$pagelab" run "$source/examples/cow_fork.scenario" --trace none --inject alloc-fail@1
    has "$work/err" "^FAIL: .*cow_fork.scenario:[0-9]+:[0-9]+: space returned ENOMEM, expected OK"
    expect 0 "$pagelab" run "$demand" --trace none --inject alloc-fail@1000
    ;;
  record-replay)
    for args in "--seed 3" "--seed 8 --strategy pct:2"; do
      # shellcheck disable=SC2086
      expect 0 "$pagelab" run "$race" $args --inject spec-fill:0.5,evict:0.2 --inject ipi-delay:2 --trace-out "$work/a" --record "$work/r"
      has "$work/r" "^inject ipi-delay:2,spec-fill:0.5,evict:0.2$"
      expect 0 "$pagelab" replay "$work/r" --trace-out "$work/b"
      cmp -s "$work/a" "$work/b" || die "replay of '$args' with --inject gave another trace"
    done
    # A failing run (an allocation failure) replays to the same failure.
    expect 1 "$pagelab" run "$race" --seed 2 --inject alloc-fail@5 --trace-out "$work/a" --record "$work/r"; cp "$work/err" "$work/e1"
    expect 1 "$pagelab" replay "$work/r" --trace-out "$work/b"
    cmp -s "$work/a" "$work/b" || die "the failing replay gave another trace"
    cmp -s "$work/e1" "$work/err" || die "the failing replay gave another report"
    ;;
  explore)
    # The bug no access shows: no seed fails without injection...
    expect 0 "$pagelab" explore "$untouched" --seeds 1..40 --jobs 2 --quiet --shootdown unsafe-local-only --allow-unsafe
    # ...and spec-fill finds it.
    expect 1 "$pagelab" explore "$untouched" --seeds 1..40 --jobs 2 --quiet --shootdown unsafe-local-only --allow-unsafe \
      --inject spec-fill:0.5 --record "$work/r"
    has "$work/out" "inject spec-fill:0.5"
    has "$work/out" "oracle: O5 violated"
    has "$work/out" "^reproduce: .* --inject spec-fill:0.5"
    has "$work/r" "^inject spec-fill:0.5$"
    cp "$work/out" "$work/summary"
    expect 1 "$pagelab" replay "$work/r" --trace none
    has "$work/err" "oracle: O5 violated"
    # The reproduce command reproduces.
    cmd=$(sed -n 's/^reproduce: //p' "$work/summary")
    [ -n "$cmd" ] || die "no reproduce line"
    eval "$cmd --trace none" >"$work/out" 2>"$work/err" && die "the reproduce command passed: $cmd"
    has "$work/err" "oracle: O5 violated"
    # Under the correct protocol every seed holds, with every injection.
    expect 0 "$pagelab" explore "$untouched" --seeds 1..100 --jobs 2 --quiet --inject spec-fill:0.5,evict:0.3,ipi-delay:4
    expect 0 "$pagelab" explore "$race" --seeds 1..100 --jobs 2 --quiet --strategy pct:3 --inject spec-fill:0.5,evict:0.3,ipi-delay:4
    ;;
  parallel)
    for seed in 1 2 3; do
      expect 0 "$pagelab" run "$race" --parallel --seed "$seed" --trace none --inject spec-fill:0.5,evict:0.5,ipi-delay:5
    done
    ;;
  *)
    die "unknown case '$case'"
    ;;
esac
echo "ok: $case"
