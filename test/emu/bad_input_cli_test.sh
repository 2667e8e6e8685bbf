#!/usr/bin/env bash
# Inputs that used to crash, hang or fail silently, one case per call:
#   bad_input_cli_test.sh PAGELAB SOURCE_DIR CASE
# endless-input   /dev/zero, a binary, an endless stream or a huge line as a scenario (run,
#                 explore), a schedule record (replay) or a lackey trace (trace): exit 2 at
#                 once, FILE[:LINE:COL]: error: naming the bound
# unreadable      a missing file or a directory as any of them: pagelab: cannot read FILE: REASON
# write-failures  --outcomes, --trace-out, --record (run and explore) and standard output on
#                 /dev/full: exit 3 with pagelab: PATH: REASON, no "LOG ERROR"
# missing-dirs    an output in a directory that does not exist: exit 2 before the run, and
#                 the directory is not created
# interrupt       explore on SIGINT or SIGTERM: the summary so far, the record, exit 130 / 143;
#                 a second signal ends it at once
# closed-pipe     run and explore into `| head -1`: no noise, the usual status, the record written
# small           --cpu beyond the scenario's CPUs, lackey addresses with leading zeros
# phys-window     phys= outside the device window (beyond RAM, over the allocator's frames,
#                 in a CPU program): exit 2 at the phys= value, not a crash or a leak
set -uo pipefail
pagelab=$1 source=$2 case=$3
demo=$source/examples/demo.scenario
race=$source/test/data/explore_race.scenario
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

die() { echo "FAILED: $*"; for f in "$work"/out "$work"/err; do [ -f "$f" ] && { echo "--- $f"; head -c 3000 "$f"; echo; }; done; exit 1; }
# expect STATUS CMD...: runs CMD (at most 10 s) with stdout to $work/out, stderr to $work/err.
expect() {
  local want=$1; shift
  timeout 10 "$@" >"$work/out" 2>"$work/err"
  local got=$?
  [ "$got" -eq "$want" ] || die "expected exit $want, got $got: $*"
}
# has FILE PATTERN: a grep -E that explains itself when it fails.
has() { grep -qE -- "$2" "$1" || die "'$2' not in $1"; }
hasnt() { ! grep -qE -- "$2" "$1" || die "'$2' in $1"; }
# The schedule record of one run of the demo, to corrupt.
good_record() { "$pagelab" run "$demo" --seed 2 --trace none --record "$work/good" >/dev/null 2>&1 || die "no record"; }

case $case in
  endless-input)
    # /dev/zero: binary data at 1:1, whatever reads it.
    for command in run "explore --seeds 1..3 --quiet" replay trace; do
      read -r -a words <<<"$command"
      expect 2 "$pagelab" "${words[0]}" /dev/zero "${words[@]:1}"
      has "$work/err" "^/dev/zero:1:1: error: binary data \(a NUL byte\), not text$"
    done
    # A binary: a NUL byte somewhere on a line, found with its place.
    printf 'machine cpus=1 ram=8M\nspace a\x00\n' >"$work/nul.scenario"
    expect 2 "$pagelab" run "$work/nul.scenario"
    has "$work/err" "^$work/nul.scenario:2:8: error: binary data"
    # One endless line: line longer than the bound (4096 for a scenario,
    # 8192 for a record or a trace), from a file or a stream.
    head -c 100000 /dev/zero | tr '\0' 'x' >"$work/line"
    expect 2 "$pagelab" run "$work/line"
    has "$work/err" "^$work/line:1:4097: error: line longer than 4096 bytes$"
    expect 2 "$pagelab" explore "$work/line" --seeds 1..2
    has "$work/err" "^$work/line:1:4097: error: line longer than 4096 bytes$"
    expect 2 "$pagelab" replay "$work/line"
    has "$work/err" "^$work/line:1:8193: error: line longer than 8192 bytes$"
    expect 2 "$pagelab" trace "$work/line"
    has "$work/err" "^$work/line:1:8193: error: line longer than 8192 bytes$"
    expect 2 sh -c 'tr "\0" x </dev/zero | "$0" trace /dev/stdin' "$pagelab"
    has "$work/err" "^/dev/stdin:1:8193: error: line longer than 8192 bytes$"
    # A scenario is at most 4 MiB, a record 64 MiB: an endless stream of
    # good lines stops there (a trace is a stream of any length).
    expect 2 sh -c 'yes "# a comment" | "$0" run /dev/stdin' "$pagelab"
    has "$work/err" "^/dev/stdin: error: larger than 4194304 bytes \(a scenario is at most 4 MiB\)$"
    { echo 'machine cpus=1 ram=8M'; yes '# padding' | head -c 4300000; } >"$work/big.scenario"
    expect 2 "$pagelab" explore "$work/big.scenario" --seeds 1..2
    has "$work/err" "^$work/big.scenario: error: larger than 4194304 bytes"
    expect 2 sh -c '{ echo "pagelab-schedule 1"; yes "# a comment"; } | "$0" replay /dev/stdin' "$pagelab"
    has "$work/err" "^/dev/stdin: error: larger than 67108864 bytes \(a schedule record is at most 64 MiB\)$"
    # The bounds are not too tight: the longest line a scenario may have runs.
    { cat "$demo"; printf '# %4094s\n' x | tr ' ' y; } >"$work/longest.scenario"
    expect 0 "$pagelab" run "$work/longest.scenario" --trace none
    ;;
  unreadable)
    for command in run "explore --seeds 1..3" replay trace; do
      read -r -a words <<<"$command"
      expect 2 "$pagelab" "${words[0]}" "$work/none" "${words[@]:1}"
      has "$work/err" "^pagelab: cannot read $work/none: No such file or directory$"
      expect 2 "$pagelab" "${words[0]}" "$work" "${words[@]:1}"
      has "$work/err" "^pagelab: cannot read $work: Is a directory$"
    done
    ;;
  write-failures)
    [ -w /dev/full ] || { echo "no /dev/full: skipped"; exit 77; }
    expect 3 "$pagelab" run "$demo" --trace none --outcomes /dev/full
    has "$work/err" "^pagelab: /dev/full: No space left on device$"
    has "$work/err" "^PASS:"  # the verdict is still reported
    expect 3 "$pagelab" run "$demo" --trace-out /dev/full
    has "$work/err" "^pagelab: /dev/full: No space left on device$"
    hasnt "$work/err" "LOG ERROR"
    expect 3 "$pagelab" run "$demo" --trace none --record /dev/full
    has "$work/err" "^pagelab: /dev/full: No space left on device$"
    expect 3 "$pagelab" explore "$race" --seeds 1..60 --jobs 2 --quiet --record /dev/full
    has "$work/err" "^pagelab: /dev/full: No space left on device$"
    has "$work/out" "^first failing seed: "
    # Standard output itself: the trace, and explore's summary.
    expect 3 sh -c '"$0" run "$1" >/dev/full' "$pagelab" "$demo"
    has "$work/err" "^pagelab: standard output: No space left on device$"
    expect 3 sh -c '"$0" explore "$1" --seeds 1..5 --quiet >/dev/full' "$pagelab" "$demo"
    has "$work/err" "^pagelab: standard output: No space left on device$"
    # A failing run whose output failed: 3 still, and its report.
    expect 3 "$pagelab" run "$race" --seed 2 --trace-out /dev/full
    has "$work/err" "^FAIL: "
    ;;
  missing-dirs)
    for option in --trace-out --record --outcomes; do
      trace=none; [ "$option" = --trace-out ] && trace=text
      expect 2 "$pagelab" run "$demo" --trace "$trace" "$option" "$work/no/such/dir/file"
      has "$work/err" "^pagelab: $work/no/such/dir/file: No such file or directory$"
      hasnt "$work/err" "^PASS"  # refused before the run
      [ ! -e "$work/no" ] || die "$option created $work/no"
    done
    expect 2 "$pagelab" run "$demo" --trace none --ram "file:$work/no/such/dir/ram"
    has "$work/err" "^pagelab: $work/no/such/dir/ram: No such file or directory$"
    expect 2 "$pagelab" explore "$race" --seeds 1..60 --record "$work/no/such/dir/r"
    has "$work/err" "^pagelab: $work/no/such/dir/r: No such file or directory$"
    [ ! -s "$work/out" ] || die "explore ran seeds before refusing its --record"
    [ ! -e "$work/no" ] || die "a directory was created"
    good_record
    expect 2 "$pagelab" replay "$work/good" --trace-out "$work/no/such/dir/t"
    has "$work/err" "^pagelab: $work/no/such/dir/t: No such file or directory$"
    [ ! -e "$work/no" ] || die "replay created a directory"
    # A directory in the way of a file: EISDIR.
    expect 2 "$pagelab" run "$demo" --trace none --record "$work"
    has "$work/err" "^pagelab: $work: Is a directory$"
    ;;
  interrupt)
    set -m  # background jobs of a script ignore SIGINT otherwise; explore keeps a signal that was ignored
    for signal in INT TERM; do
      "$pagelab" explore "$race" --seeds 1..100000000 --jobs 2 --record "$work/r.$signal" >"$work/out" 2>"$work/err" &
      pid=$!
      # Wait for failures to be found (the race fails about one seed in two).
      sleep 1
      kill -"$signal" "$pid"
      timeout 20 tail --pid="$pid" -f /dev/null || die "explore did not stop after SIG$signal"
      wait "$pid"; status=$?
      want=$([ $signal = INT ] && echo 130 || echo 143)
      [ "$status" -eq "$want" ] || die "SIG$signal: expected exit $want, got $status"
      has "$work/out" "^seeds run: [0-9]+ of 100000000 \(interrupted by SIG$signal\)$"
      has "$work/out" "^failing seeds: [1-9]"
      has "$work/out" "^first failing seed: 2$"
      has "$work/out" "^reproduce: .* run .*explore_race.scenario --seed 2 --strategy random$"
      has "$work/out" "^recorded: $work/r.$signal"
      has "$work/err" "interrupted: no more seeds are handed out"
      expect 1 "$pagelab" replay "$work/r.$signal" --trace none
      has "$work/err" "seed 2,"
    done
    # No failure yet: the summary says so, and no record is written.
    "$pagelab" explore "$demo" --seeds 1..100000000 --jobs 2 --record "$work/r.none" >"$work/out" 2>"$work/err" &
    pid=$!; sleep 1; kill -INT "$pid"; wait "$pid"; status=$?
    [ "$status" -eq 130 ] || die "expected exit 130, got $status"
    has "$work/out" "^INTERRUPTED: every seed run held$"
    [ ! -e "$work/r.none" ] || die "a record without a failure"
    # A second signal does not wait for the running seeds (a seed of this
    # scenario takes seconds): the process ends with no summary.
    printf 'machine cpus=1 ram=8M\nspace a\nmap a 0x10000000 4K rw\ncpu 0\n  use a\n  repeat 20000000\n    write 0x10000000 1\n  end\nend\n' \
      >"$work/slow.scenario"
    "$pagelab" explore "$work/slow.scenario" --seeds 1..10 --jobs 1 >"$work/out" 2>"$work/err" &
    pid=$!; sleep 0.5; kill -INT "$pid"; sleep 0.5; kill -INT "$pid"
    timeout 10 tail --pid="$pid" -f /dev/null || die "a second SIGINT did not end explore"
    wait "$pid"; status=$?
    [ "$status" -eq 130 ] || die "expected exit 130 after a second SIGINT, got $status"
    hasnt "$work/out" "^seeds run:"
    ;;
  closed-pipe)
    # A trace of megabytes into a reader that leaves after one line.
    printf 'machine cpus=1 ram=8M\nspace a\nmap a 0x10000000 4K rw\ncpu 0\n  use a\n  repeat 50000\n    write 0x10000000 1\n  end\nend\n' \
      >"$work/long.scenario"
    timeout 20 "$pagelab" run "$work/long.scenario" 2>"$work/err" | head -1 >"$work/out"
    status=${PIPESTATUS[0]}
    [ "$status" -eq 0 ] || die "run into a closed pipe exited $status"
    [ -s "$work/out" ] || die "head read nothing"
    has "$work/err" "^PASS:"
    hasnt "$work/err" "Broken pipe|LOG ERROR|standard output"
    # explore: its summary is lost, its status and its record are not.
    timeout 20 "$pagelab" explore "$race" --seeds 1..100 --jobs 2 --verbose --record "$work/r" 2>"$work/err" | head -1 >"$work/out"
    status=${PIPESTATUS[0]}
    [ "$status" -eq 1 ] || die "explore into a closed pipe exited $status"
    hasnt "$work/err" "Broken pipe|standard output"
    expect 1 "$pagelab" replay "$work/r" --trace none
    ;;
  small)
    expect 2 "$pagelab" run "$demo" --cpu 99
    has "$work/err" "^pagelab: --cpu 99: CPU 99 does not exist: .*demo.scenario has 2 CPUs, 0 to 1$"
    expect 2 "$pagelab" run "$demo" --cpu 0,2
    has "$work/err" "^pagelab: --cpu 0,2: CPU 2 does not exist"
    expect 0 "$pagelab" run "$demo" --cpu 1 --trace-out "$work/t"
    good_record
    expect 2 "$pagelab" replay "$work/good" --cpu 7
    has "$work/err" "^pagelab: --cpu 7: CPU 7 does not exist: .*demo.scenario has 2 CPUs, 0 to 1$"
    # Lackey: leading zeros past 16 digits, a value that fits.
    printf 'I  00000000000000000401000,4\n L 0000000000000000000000007ffffffffff8,8\n' >"$work/zeros.trace"
    expect 0 "$pagelab" trace "$work/zeros.trace"
    has "$work/out" "^records +2 "
    printf 'I  00000000000000010000000000000000,4\n' >"$work/big.trace"
    expect 2 "$pagelab" trace "$work/big.trace"
    has "$work/err" "^$work/big.trace:1: error: the address does not fit in 64 bits$"
    ;;
  phys-window)
    # 16 MiB of RAM: the window is [12 MiB, 16 MiB).
    window='phys= may name only \[0xc00000, 0x1000000\), the top of RAM that the allocator never hands out'
    printf 'machine cpus=1 ram=16M\nspace a\nmap a 0x40000000 4K rw phys=0x40000000\ncpu 0\n  use a\n  read 0x40000000\nend\n' \
      >"$work/beyond.scenario"
    expect 2 "$pagelab" run "$work/beyond.scenario"
    has "$work/err" "^$work/beyond.scenario:3:29: error: phys= range \[0x40000000, 0x40001000\) is outside the device window: with 16 MiB of RAM, $window$"
    printf 'machine cpus=1 ram=16M\nspace a\nmap a 0x40000000 16K rw phys=0x100000\n' >"$work/frames.scenario"
    expect 2 "$pagelab" run "$work/frames.scenario"
    has "$work/err" "^$work/frames.scenario:3:30: error: phys= range \[0x100000, 0x104000\) is outside the device window"
    printf 'machine cpus=2 ram=16M\nspace a\ncpu 1\n  map a 0x40000000 2M rw phys=0xf00000 expect any\nend\n' >"$work/cpu.scenario"
    expect 2 "$pagelab" explore "$work/cpu.scenario" --seeds 1..5
    has "$work/err" "^$work/cpu.scenario:4:31: error: phys= range \[0xf00000, 0x1100000\) is outside the device window"
    # Inside the window it maps and runs, and nothing leaks.
    printf 'machine cpus=1 ram=16M\nspace a\nmap a 0x40000000 4M rw phys=0xc00000\ncpu 0\n  use a\n  write 0x403ff000 7\n  read 0x403ff000 expect 7\nend\ncheck frames leaked == 0\n' \
      >"$work/inside.scenario"
    expect 0 "$pagelab" run "$work/inside.scenario" --trace none
    ;;
  *) echo "unknown case $case"; exit 2 ;;
esac
