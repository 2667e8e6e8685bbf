#!/usr/bin/env bash
# End-to-end tests of `pagelab run --record`, `pagelab replay` and
# `pagelab explore`, one case per call:
#   explore_cli_test.sh PAGELAB SOURCE_DIR CASE
# record-replay    run --record then replay: the same trace, byte for byte (text, jsonl,
#                  chrome; random and pct), and a failing run replays to the same failure
# replay-errors    a missing, truncated or corrupt record exits 2 with FILE[:LINE]: error: (a
#                  missing one: pagelab: cannot read FILE: REASON);
#                  a schedule that does not fit the scenario exits 1
# explore-pass     an example holds over a seed range: exit 0, seeds/s in the summary
# explore-shard    --shard 0/2 and 1/2 together run every seed of the range exactly once
# explore-bad-input  bad ranges, shards, strategies, jobs and scenarios exit 2 with a message
# explore-fails    a racy scenario fails on some seeds: exit 1, the printed command reproduces
#                  the failure, --record writes a record that replays it, and the first
#                  failing seed does not depend on --jobs
# explore-all-script  scripts/explore-all.sh: no scenarios, bug and fix sweeps, bad input
set -uo pipefail
pagelab=$1 source=$2 case=$3
demo=$source/examples/demo.scenario
two=$source/examples/two_cpus_shared_space.scenario
race=$source/test/data/explore_race.scenario
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
  record-replay)
    for args in "$demo --seed 3" "$demo --seed 11 --strategy pct:2" "$two --seed 5" "$two --seed 9 --strategy pct:3"; do
      for format in text jsonl chrome; do
        # shellcheck disable=SC2086
        expect 0 "$pagelab" run $args --trace $format --trace-out "$work/a" --record "$work/r"
        expect 0 "$pagelab" replay "$work/r" --trace $format --trace-out "$work/b"
        cmp -s "$work/a" "$work/b" || die "replay of '$args' gave another $format trace"
      done
    done
    has "$work/r" '^pagelab-schedule 1$'
    has "$work/r" '^strategy pct:3$'
    # The trace to standard output and the trace filters work as in run.
    expect 0 "$pagelab" run "$two" --seed 4 --record "$work/r"; cp "$work/out" "$work/a"
    expect 0 "$pagelab" replay "$work/r"; cmp -s "$work/a" "$work/out" || die "replay to stdout differs"
    expect 0 "$pagelab" run "$two" --seed 4 --events access --cpu 1 --trace-out "$work/a"
    expect 0 "$pagelab" replay "$work/r" --events access --cpu 1 --trace-out "$work/b"
    cmp -s "$work/a" "$work/b" || die "filtered replay differs"
    # A failing run replays to the same failure, trace and report.
    seed=""
    for s in $(seq 1 60); do
      if ! "$pagelab" run "$race" --seed "$s" --trace none >/dev/null 2>&1; then seed=$s; break; fi
    done
    [ -n "$seed" ] || die "no seed of 1..60 makes $race fail"
    expect 1 "$pagelab" run "$race" --seed "$seed" --trace-out "$work/a" --record "$work/r"; cp "$work/err" "$work/e1"
    expect 1 "$pagelab" replay "$work/r" --trace-out "$work/b"
    cmp -s "$work/a" "$work/b" || die "the failing run's replay gave another trace"
    cmp -s "$work/e1" "$work/err" || die "the failing run's replay gave another report"
    # An oracle violation found by explore replays exactly from its record:
    # the same invariant, CPU, step and trace.
    for race_file in concurrent_unmaps:pct:3:unsafe-flush-after-unlock pcid_reuse_after_switch:random:unsafe-active-only; do
      IFS=: read -r name strat depth policy <<<"$race_file"
      [ "$strat" = pct ] && strat="pct:$depth" || policy=$depth
      file=$source/examples/races/$name.scenario
      expect 1 "$pagelab" explore "$file" --seeds 1..200 --strategy "$strat" --shootdown "$policy" --allow-unsafe \
        --max-failures 1 --record "$work/v" --quiet
      has "$work/out" 'oracle: O[1-6] violated'
      grep -E 'oracle: O[1-6] violated' "$work/out" | head -1 | sed -E 's/.*FAIL: [^ ]+ //' >"$work/found"
      expect 1 "$pagelab" replay "$work/v" --trace-out "$work/a"; cp "$work/err" "$work/e1"
      has "$work/e1" 'oracle: O[1-6] violated'
      expect 1 "$pagelab" replay "$work/v" --trace-out "$work/b"
      cmp -s "$work/a" "$work/b" || die "two replays of the $name violation gave other traces"
      cmp -s "$work/e1" "$work/err" || die "two replays of the $name violation gave other reports"
      [ -s "$work/found" ] || die "explore printed no oracle report for $name"
      grep -qF "$(cat "$work/found")" "$work/e1" || die "the replay of $name reports another violation than explore found"
    done
    # The record names the scenario as given; a copy of both elsewhere still replays.
    (cd "$source" && "$pagelab" run test/data/explore_race.scenario --seed "$seed" --trace none --record "$work/rel" >/dev/null 2>&1)
    mkdir -p "$work/elsewhere/test/data" && cp "$race" "$work/elsewhere/test/data/" && cp "$work/rel" "$work/elsewhere/"
    (cd / && "$pagelab" replay "$work/elsewhere/rel" --trace none >/dev/null 2>"$work/err"); [ $? -eq 1 ] || die "a record beside its scenario did not replay"
    # --shootdown replaces the scenario's policy, and the record keeps it:
    # CPU 0 unmaps a page of space a while CPU 1 runs space b, so only
    # broadcast sends CPU 1 an IPI.
    printf '%s\n' 'machine cpus=2 ram=8M' 'space a' 'space b' 'map a 0x10000000 8K rw populate' \
      'map b 0x10000000 4K rw populate' 'cpu 0' 'use a' 'read 0x10000000' 'barrier up' 'unmap a 0x10000000 4K' \
      'barrier done' 'end' 'cpu 1' 'use b' 'read 0x10000000' 'barrier up' 'barrier done' 'end' >"$work/spaces.scenario"
    expect 0 "$pagelab" run "$work/spaces.scenario" --seed 6 --shootdown broadcast --trace-out "$work/a" --record "$work/r"
    has "$work/r" '^shootdown broadcast$'
    has "$work/a" 'ipi.send'
    expect 0 "$pagelab" replay "$work/r" --trace-out "$work/b"
    cmp -s "$work/a" "$work/b" || die "replay with --shootdown differs"
    expect 0 "$pagelab" run "$work/spaces.scenario" --seed 6 --trace-out "$work/c"
    ! grep -q 'ipi.send' "$work/c" || die "batched sent an IPI to a CPU that does not run the space"
    expect 2 "$pagelab" run "$two" --shootdown unsafe-no-flush
    has "$work/err" 'pass --allow-unsafe'
    expect 2 "$pagelab" run "$two" --shootdown lazy
    has "$work/err" "unknown policy 'lazy'"
    "$pagelab" run "$two" --seed 2 --shootdown unsafe-no-flush --allow-unsafe --trace-out "$work/a" --record "$work/r" >/dev/null 2>"$work/e1"
    status=$?; [ $status -le 1 ] || die "an unsafe run exited $status"
    has "$work/r" '^allow-unsafe yes$'
    "$pagelab" replay "$work/r" --trace-out "$work/b" >/dev/null 2>"$work/e2"
    [ $? -eq $status ] || die "the unsafe run's replay exited otherwise"
    cmp -s "$work/a" "$work/b" && cmp -s "$work/e1" "$work/e2" || die "the unsafe run's replay differs"
    # --record needs the deterministic scheduler.
    expect 2 "$pagelab" run "$demo" --parallel --record "$work/r"
    has "$work/err" 'record needs the deterministic scheduler'
    ;;
  replay-errors)
    expect 0 "$pagelab" run "$demo" --seed 2 --trace none --record "$work/good"
    expect 2 "$pagelab" replay "$work/none"
    has "$work/err" "^pagelab: cannot read $work/none: No such file or directory$"
    expect 2 "$pagelab" replay "$work"
    has "$work/err" "^pagelab: cannot read $work: Is a directory$"
    : >"$work/empty"
    expect 2 "$pagelab" replay "$work/empty"
    has "$work/err" "^$work/empty:1: error: empty file"
    echo "hello" >"$work/junk"
    expect 2 "$pagelab" replay "$work/junk"
    has "$work/err" "^$work/junk:1: error: not a pagelab schedule record"
    sed 's/^pagelab-schedule 1$/pagelab-schedule 9/' "$work/good" >"$work/version"
    expect 2 "$pagelab" replay "$work/version"
    has "$work/err" "^$work/version:1: error: unsupported version '9'"
    # Truncated: the last line (end) and then the schedule lines cut off.
    head -n -1 "$work/good" >"$work/truncated"
    expect 2 "$pagelab" replay "$work/truncated"
    has "$work/err" "^$work/truncated:[0-9]+: error: the schedule ends without an \`end\` line"
    head -n 5 "$work/good" >"$work/cut"
    expect 2 "$pagelab" replay "$work/cut"
    has "$work/err" "^$work/cut:6: error: the header ends without a \`schedule\` line"
    # Corrupt: a bad entry, a CPU beyond cpus, a count that disagrees with steps,
    # a bad or unknown or repeated header line, a missing one.
    awk '/^schedule$/ { print; print "0*x"; next } { print }' "$work/good" >"$work/entry"
    line=$(grep -n '^0\*x$' "$work/entry" | cut -d: -f1)
    expect 2 "$pagelab" replay "$work/entry"
    has "$work/err" "^$work/entry:$line: error: bad schedule entry '0\\*x'"
    awk '/^schedule$/ { print; print "7"; next } { print }' "$work/good" >"$work/cpu"
    expect 2 "$pagelab" replay "$work/cpu"
    has "$work/err" "^$work/cpu:[0-9]+: error: schedule entry '7': CPU 7 but the record has cpus 2"
    sed 's/^steps \([0-9]*\)$/steps 1\1/' "$work/good" >"$work/steps"
    expect 2 "$pagelab" replay "$work/steps"
    has "$work/err" "^$work/steps:[0-9]+: error: the schedule holds [0-9]+ choices, the header says steps"
    sed 's/^seed 2$/seed two/' "$work/good" >"$work/seed"
    expect 2 "$pagelab" replay "$work/seed"
    has "$work/err" "^$work/seed:[0-9]+: error: bad seed 'two'"
    sed 's/^seed 2$/seed 2\nfuel 3/' "$work/good" >"$work/key"
    expect 2 "$pagelab" replay "$work/key"
    has "$work/err" "^$work/key:[0-9]+: error: unknown key 'fuel'"
    sed 's/^seed 2$/seed 2\nseed 3/' "$work/good" >"$work/twice"
    expect 2 "$pagelab" replay "$work/twice"
    has "$work/err" "^$work/twice:[0-9]+: error: 'seed' given twice"
    grep -v '^strategy ' "$work/good" >"$work/nostrategy"
    expect 2 "$pagelab" replay "$work/nostrategy"
    has "$work/err" "^$work/nostrategy:[0-9]+: error: the header has no 'strategy' line"
    sed 's/^strategy .*/strategy fifo/' "$work/good" >"$work/strategy"
    expect 2 "$pagelab" replay "$work/strategy"
    has "$work/err" "^$work/strategy:[0-9]+: error: unknown strategy 'fifo'"
    sed "s|^scenario .*|scenario $work/missing.scenario|" "$work/good" >"$work/noscenario"
    expect 2 "$pagelab" replay "$work/noscenario"
    has "$work/err" "^$work/noscenario:[0-9]+: error: cannot read the recorded scenario"
    # A scenario that no longer parses: its own FILE:LINE:COL error.
    printf 'machine cpus=2 ram=8M\nmapp\n' >"$work/broken.scenario"
    sed "s|^scenario .*|scenario $work/broken.scenario|" "$work/good" >"$work/broken"
    expect 2 "$pagelab" replay "$work/broken"
    has "$work/err" "broken.scenario:2:1: error: unknown keyword 'mapp'"
    # Schedules that do not fit: too short (runs out), a CPU that cannot run
    # (the record of a 2-CPU run on a 2-CPU scenario that finishes at once),
    # and a record of another scenario (longer than the run): exit 1.
    awk '/^steps / { print "steps 1"; next } /^schedule$/ { print; print "0"; skip = 1; next } /^end$/ { skip = 0 } !skip { print }' "$work/good" >"$work/short"
    expect 1 "$pagelab" replay "$work/short" --trace none
    has "$work/err" 'the recorded schedule does not fit this run'
    sed "s|^scenario .*|scenario $two|" "$work/good" >"$work/other"
    expect 1 "$pagelab" replay "$work/other" --trace none
    has "$work/err" 'does not fit'
    has "$work/err" 'changed since'
    # A bad output option is a usage error, as in run.
    expect 2 "$pagelab" replay "$work/good" --trace fancy
    ;;
  explore-pass)
    expect 0 "$pagelab" explore "$demo" --seeds 1..40 --jobs 2
    has "$work/out" 'seeds run: 40 of 40'
    has "$work/out" '[0-9.]+ seeds/s'
    has "$work/out" 'failing seeds: 0'
    expect 0 "$pagelab" explore "$two" --seeds 100..129 --strategy pct:3 --jobs 1 --quiet
    has "$work/out" 'seeds run: 30 of 30'
    [ ! -s "$work/err" ] || die "--quiet still wrote to stderr"
    expect 0 "$pagelab" explore "$two" --seeds 7 --jobs 4
    has "$work/out" 'seeds run: 1 of 1'
    # Not a terminal: progress comes as whole lines, never a carriage return.
    ! grep -q $'\r' "$work/err" || die "progress used a carriage return on a pipe"
    ;;
  explore-shard)
    expect 1 "$pagelab" explore "$race" --seeds 3..61 --jobs 2 --verbose --quiet
    grep -E '^seed [0-9]+:' "$work/out" | sort -n -k2 >"$work/all"
    total_failed=$(sed -n 's/^failing seeds: //p' "$work/out")
    : >"$work/union"; sum_failed=0
    for shard in 0/2 1/2; do
      "$pagelab" explore "$race" --seeds 3..61 --shard $shard --jobs 2 --verbose --quiet >"$work/out" 2>"$work/err"
      status=$?; [ $status -le 1 ] || die "shard $shard exited $status"
      i=${shard%/*}
      grep -E '^seed [0-9]+:' "$work/out" >>"$work/union"
      # Every seed of shard I has (seed - 3) % 2 == I.
      grep -E '^seed [0-9]+:' "$work/out" | awk -v i="$i" '{ s = $2 + 0; if ((s - 3) % 2 != i) { print "seed " s " in shard " i; exit 1 } }' || die "a seed in the wrong shard"
      sum_failed=$((sum_failed + $(sed -n 's/^failing seeds: //p' "$work/out")))
    done
    sort -n -k2 "$work/union" >"$work/union.sorted"
    diff <(seq 3 61) <(awk '{ print $2 + 0 }' "$work/union.sorted") >/dev/null || die "the shards do not cover 3..61 exactly once"
    cmp -s "$work/all" "$work/union.sorted" || die "the shards' outcomes differ from the whole range's"
    [ "$sum_failed" -eq "$total_failed" ] || die "the shards found $sum_failed failing seeds, the whole range $total_failed"
    # A shard with no seeds of the range runs nothing and holds.
    expect 0 "$pagelab" explore "$race" --seeds 5..5 --shard 1/2
    has "$work/out" 'seeds run: 0 of 0'
    ;;
  explore-bad-input)
    for bad in 5..3 a..b 1.. ..4 1..2..3 -1..4 0x..3 ""; do
      expect 2 "$pagelab" explore "$demo" --seeds "$bad"
      has "$work/err" 'seeds'
    done
    expect 2 "$pagelab" explore "$demo" --seeds 5..3
    has "$work/err" 'the range is empty'
    for bad in 2/2 3/2 1/0 x 1 1/ /2 -1/2; do
      expect 2 "$pagelab" explore "$demo" --seeds 1..4 --shard "$bad"
      has "$work/err" 'shard'
    done
    expect 2 "$pagelab" explore "$demo" --seeds 1..4 --shard 2/2
    has "$work/err" 'I must be below N'
    expect 2 "$pagelab" explore "$demo" --seeds 1..4 --strategy fifo
    has "$work/err" "unknown strategy 'fifo'"
    expect 2 "$pagelab" explore "$demo" --seeds 1..4 --jobs 0
    has "$work/err" 'jobs'
    expect 2 "$pagelab" explore "$demo"
    printf 'machine cpus=1 ram=8M\nspace a\nmapp a 0x10000000 4K rw\n' >"$work/bad.scenario"
    expect 2 "$pagelab" explore "$work/bad.scenario" --seeds 1..4
    has "$work/err" "bad.scenario:3:1: error: unknown keyword 'mapp'"
    expect 2 "$pagelab" explore "$work/none.scenario" --seeds 1..4
    has "$work/err" "^pagelab: cannot read $work/none.scenario: No such file or directory$"
    # What only the machine knows (a TLB preset) is bad input too, once.
    printf 'machine cpus=1 ram=8M tlb=huge\n' >"$work/tlb.scenario"
    expect 2 "$pagelab" explore "$work/tlb.scenario" --seeds 1..50 --jobs 2
    has "$work/err" "tlb.scenario:1:[0-9]+: error:"
    ;;
  explore-fails)
    expect 1 "$pagelab" explore "$race" --seeds 1..200 --jobs 2 --record "$work/first.schedule"
    cp "$work/out" "$work/summary"
    has "$work/summary" 'failing seeds: [1-9]'
    has "$work/summary" 'distinct failures: 1$'
    has "$work/summary" 'explore_race.scenario:18:3: read 0x10000000: got 0x0, expected 0x2a'
    has "$work/summary" '[0-9.]+ seeds/s'
    seed=$(sed -n 's/^first failing seed: //p' "$work/summary")
    [ -n "$seed" ] || die "no first failing seed"
    # Every seed of the sweep passed or failed; some passed.
    failed=$(sed -n 's/^failing seeds: //p' "$work/summary")
    [ "$failed" -lt 200 ] || die "every seed failed: the scenario should race"
    # The printed command reproduces the failure.
    command=$(sed -n 's/^reproduce: //p' "$work/summary")
    case $command in *" run "*"--seed $seed --strategy random"*) ;; *) die "odd reproduce command: $command" ;; esac
    (eval "$command") >/dev/null 2>"$work/err"; status=$?
    [ $status -eq 1 ] || die "the reproduce command exited $status: $command"
    has "$work/err" "seed $seed,"
    # The record replays to the same failure.
    has "$work/summary" "^recorded: $work/first.schedule"
    expect 1 "$pagelab" replay "$work/first.schedule" --trace none
    has "$work/err" "explore_race.scenario:18:3: read 0x10000000: got 0x0, expected 0x2a"
    has "$work/err" "seed $seed,"
    # The first failing seed is the lowest, whatever the jobs; --max-failures
    # stops early and still finds it.
    for jobs in 1 3; do
      expect 1 "$pagelab" explore "$race" --seeds 1..200 --jobs $jobs --quiet
      has "$work/out" "^first failing seed: $seed$"
      has "$work/out" "^failing seeds: $failed$"
    done
    expect 1 "$pagelab" explore "$race" --seeds 1..200 --jobs 2 --max-failures 1 --quiet
    has "$work/out" "^first failing seed: $seed$"
    has "$work/out" 'stopped after --max-failures 1'
    # Without --record, the summary says how to make one.
    expect 1 "$pagelab" explore "$race" --seeds "$seed" --quiet
    has "$work/out" "^record it: .* --record seed-$seed.schedule"
    ;;
  explore-all-script)
    script=$source/scripts/explore-all.sh
    mkdir -p "$work/none" "$work/races"
    expect 0 "$script" -p "$pagelab" "$work/none"
    has "$work/out" 'no race scenarios'
    expect 0 "$script" -p "$pagelab" "$work/missing"
    # A racy file whose `# explore:` options find the failure (bug: ok) but
    # which fails as written too (fix: FAILED), and a file that holds (fix: ok).
    { echo '# explore: --strategy pct:2'; cat "$race"; } >"$work/races/racy.scenario"
    cp "$two" "$work/races/"
    expect 1 "$script" -p "$pagelab" -u 100 -s 20 -j 2 "$work/races"
    has "$work/out" 'racy.scenario +bug +ok'
    has "$work/out" 'racy.scenario +fix +FAILED'
    has "$work/out" 'two_cpus_shared_space.scenario +fix +ok'
    ! grep -q 'two_cpus_shared_space.scenario +bug' "$work/out" || die "a file without # explore: got a bug sweep"
    # `unsafe=POLICY` is short for --shootdown POLICY: an unknown policy is bad input.
    rm "$work/races/racy.scenario"
    { echo '# explore: unsafe=unsafe-nonsense'; cat "$two"; } >"$work/races/bad.scenario"
    expect 2 "$script" -p "$pagelab" -u 5 -s 0 "$work/races"
    has "$work/out" 'bad.scenario +bug +BAD INPUT'
    has "$work/err" "unknown policy 'unsafe-nonsense'"
    expect 2 "$script" -p "$pagelab" -u 0
    expect 2 "$script" -p "$work/no-pagelab"
    ;;
  *) echo "unknown case $case"; exit 2 ;;
esac
