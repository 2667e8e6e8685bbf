#!/usr/bin/env bash
# End-to-end tests of `pagelab run`, one case per call:
#   emulator_cli_test.sh PAGELAB SOURCE_DIR CASE
# golden       the demo's text trace equals test/data/demo.trace, byte for byte
# same-seed    two runs with one seed give identical traces (all three formats)
# seeds-differ different seeds give different interleavings
# fails        a wrong expectation exits 1 with the file:line, the seed and the step
# bad-input    a scenario with an error exits 2 with FILE:LINE:COL: error:
# chrome       the Chrome trace is one JSON document with a track per CPU
# parallel     examples hold with the CPUs running freely (--parallel)
set -uo pipefail
pagelab=$1 source=$2 case=$3
demo=$source/examples/demo.scenario
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

run() { "$pagelab" run "$@" 2>"$work/stderr"; }

case $case in
  golden)
    run "$demo" --trace text --trace-out "$work/trace" || { cat "$work/stderr"; exit 1; }
    diff -u "$source/test/data/demo.trace" "$work/trace" || { echo "the demo's trace changed (if on purpose, regenerate test/data/demo.trace)"; exit 1; }
    ;;
  same-seed)
    for format in text jsonl chrome; do
      run "$demo" --seed 7 --trace $format --trace-out "$work/a" || exit 1
      run "$demo" --seed 7 --trace $format --trace-out "$work/b" || exit 1
      cmp "$work/a" "$work/b" || { echo "two runs with seed 7 differ ($format)"; exit 1; }
    done
    ;;
  seeds-differ)
    for seed in $(seq 1 12); do
      run "$demo" --seed $seed --trace text --events access,tlb.miss --trace-out "$work/t$seed" || exit 1
    done
    distinct=$(for f in "$work"/t*; do md5sum <"$f"; done | sort -u | wc -l)
    [ "$distinct" -ge 2 ] || { echo "12 seeds gave only $distinct distinct interleavings"; exit 1; }
    echo "$distinct distinct interleavings from 12 seeds"
    ;;
  fails)
    sed 's/read 0x10000000 expect 0x1111/read 0x10000000 expect 0x1112/' "$demo" >"$work/wrong.scenario"
    run "$work/wrong.scenario" --trace none
    status=$?
    [ $status -eq 1 ] || { echo "expected exit 1, got $status"; cat "$work/stderr"; exit 1; }
    grep -q "wrong.scenario:25:3: read 0x10000000: got 0x1111, expected 0x1112" "$work/stderr" &&
      grep -q "seed 1, cpu 1, step" "$work/stderr" &&
      grep -q "last events:" "$work/stderr" || { cat "$work/stderr"; exit 1; }
    ;;
  bad-input)
    printf 'machine cpus=1 ram=8M\nspace a\nmapp a 0x10000000 4K rw\n' >"$work/bad.scenario"
    run "$work/bad.scenario"
    status=$?
    [ $status -eq 2 ] || { echo "expected exit 2, got $status"; exit 1; }
    grep -q "bad.scenario:3:1: error: unknown keyword 'mapp'" "$work/stderr" || { cat "$work/stderr"; exit 1; }
    run "$work/none.scenario"; [ $? -eq 2 ] || { echo "a missing file must exit 2"; exit 1; }
    run "$demo" --trace fancy; [ $? -eq 2 ] || { echo "a bad --trace must exit 2"; exit 1; }
    run "$demo" --strategy fifo; [ $? -eq 2 ] || { echo "a bad --strategy must exit 2"; exit 1; }
    ;;
  chrome)
    run "$demo" --trace chrome --trace-out "$work/trace.json" || exit 1
    python3 - "$work/trace.json" <<'PY' || exit 1
import json, sys
doc = json.load(open(sys.argv[1]))
tracks = {e["tid"] for e in doc["traceEvents"] if e.get("ph") == "M"}
assert tracks == {0, 1}, tracks
assert any(e.get("name") == "fault" for e in doc["traceEvents"])
PY
    ;;
  parallel)
    # The CPUs as free-running threads (run under TSan in CI): every example
    # that needs no particular interleaving must still hold.
    for example in demo two_cpus_shared_space cow_fork; do
      for round in 1 2 3; do
        run "$source/examples/$example.scenario" --parallel --trace none || { cat "$work/stderr"; exit 1; }
      done
    done
    ;;
  *) echo "unknown case $case"; exit 2 ;;
esac
