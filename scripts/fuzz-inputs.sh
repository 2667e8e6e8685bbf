#!/usr/bin/env bash
# Builds the input fuzzers (fuzz/, libFuzzer with ASan + UBSan, Clang 14) in
# build-fuzz/ and runs each for a while: the scenario parser, the lackey
# trace reader, the schedule-record reader (docs/FUZZING.md, "Input fuzzers").
#
#   scripts/fuzz-inputs.sh [--time SECONDS] [--jobs N] [TARGET...]
#
#   --time SECONDS  how long each target runs (default 60)
#   --jobs N        libFuzzer processes per target (-fork=N; default 1)
#   TARGET          scenario, lackey, schedule (default: all three, in turn)
#
# Exit status 0 when no target found anything, 1 when one did (a crash, a
# sanitizer report, a broken property, an input over the time or memory
# limit: each is a file under build-fuzz/findings/TARGET/, named below with
# the command that reproduces it), 2 for a bad argument or a failed build.
# The corpus each run grows is kept in build-fuzz/corpus/TARGET/ and seeds
# the next run, with the committed seeds (examples/, the tests' scenarios,
# fuzz/seeds/); logs are in build-fuzz/logs/.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=60
jobs=1
targets=()
while [ $# -gt 0 ]; do
  case $1 in
    --time|--jobs)
      [ $# -ge 2 ] || { echo "fuzz-inputs.sh: $1 needs a value" >&2; exit 2; }
      if [ "$1" = --time ]; then seconds=$2; else jobs=$2; fi
      shift 2 ;;
    scenario|lackey|schedule) targets+=("$1"); shift ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "fuzz-inputs.sh: unknown argument '$1' (try --time SECONDS, --jobs N, scenario, lackey, schedule)" >&2; exit 2 ;;
  esac
done
case $seconds in ''|*[!0-9]*|0) echo "fuzz-inputs.sh: --time takes a number of seconds >= 1, not '$seconds'" >&2; exit 2 ;; esac
case $jobs in ''|*[!0-9]*|0) echo "fuzz-inputs.sh: --jobs takes a number >= 1, not '$jobs'" >&2; exit 2 ;; esac
[ ${#targets[@]} -eq 0 ] && targets=(scenario lackey schedule)

scripts/setup.sh --fuzz

dir=build-fuzz
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if [ ! -f "$dir/CMakeCache.txt" ]; then
  # -O1 and line tables: libFuzzer's usual trade between speed and readable
  # stack traces. No NDEBUG: every assert stays armed.
  if ! CXX=clang++-14 cmake -S . -B "$dir" -G Ninja -DPAGELAB_LIBFUZZER=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" >"$log" 2>&1; then
    cat "$log" >&2
    exit 2
  fi
fi
echo "== building the input fuzzers in $dir"
if ! cmake --build "$dir" --target pagelab-input-fuzzers -j "$(nproc)" >"$log" 2>&1; then
  cat "$log" >&2
  exit 2
fi

# The seeds of each target: the committed files, copied afresh every run so
# a seed that changed in the tree is the one fuzzed.
seed_files() {
  case $1 in
    scenario) ls examples/*.scenario examples/races/*.scenario test/boot/scenarios/*.scenario test/data/*.scenario ;;
    lackey) ls test/data/demo.trace fuzz/seeds/lackey/* ;;
    schedule) ls fuzz/seeds/schedule/* ;;
  esac
}
# Inputs a little past each reader's line bound (4096, 8192 bytes), so the
# fuzzer can reach it.
max_len() {
  case $1 in
    scenario) echo 8192 ;;
    lackey|schedule) echo 12288 ;;
  esac
}

status=0
summary=()
for target in "${targets[@]}"; do
  binary=$dir/bin/pagelab-fuzz-$target
  corpus=$dir/corpus/$target
  seeds=$dir/seeds/$target
  findings=$dir/findings/$target
  mkdir -p "$corpus" "$findings" "$dir/logs"
  rm -rf "$seeds"
  mkdir -p "$seeds"
  seed_files "$target" | while read -r f; do cp "$f" "$seeds/"; done
  target_log=$dir/logs/$target.log
  before=$(find "$findings" -type f | wc -l)
  fork=()
  [ "$jobs" -gt 1 ] && fork=(-fork="$jobs")
  echo "== fuzzing $target for ${seconds}s (${jobs} job(s)); log: $target_log"
  # -timeout: an input's time is bounded by its size; 10 s under ASan is a
  # hang. -rss_limit_mb (and libFuzzer's malloc limit, the same): 2 GiB.
  set +e
  "$binary" "${fork[@]}" -max_total_time="$seconds" -max_len="$(max_len "$target")" -timeout=10 -rss_limit_mb=2048 \
    -dict="fuzz/$target.dict" -artifact_prefix="$findings/" -print_final_stats=1 \
    "$corpus" "$seeds" >"$target_log" 2>&1
  rc=$?
  set -e
  found=$(find "$findings" -type f -newer "$seeds" \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | sort)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$target_log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$target_log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$target_log" | tail -1 || true)
  if [ -z "$execs" ]; then  # fork mode: the last status line has the totals
    execs=$(grep -oE '^#[0-9]+' "$target_log" | tail -1 | tr -d '#' || true)
  fi
  line="$target: ${execs:-?} execs (${rate:-?}/s), ${cov:-no coverage line}"
  if [ -n "$found" ] || [ $rc -ne 0 ]; then
    status=1
    line="$line: FINDINGS (libFuzzer exit $rc)"
    echo "!! $target found something (exit $rc); see $target_log" >&2
    grep -E '^==[0-9]+==ERROR|PROPERTY FAILED|^SUMMARY|Test unit written to' "$target_log" | head -20 >&2 || true
    for f in $found; do
      echo "   finding: $f   reproduce: $binary $f" >&2
    done
  fi
  summary+=("$line")
  echo "   $line"
done

echo "== summary"
for line in "${summary[@]}"; do echo "   $line"; done
if [ $status -ne 0 ]; then
  echo "fuzz-inputs.sh: findings above; each one's input goes into a regression test (docs/FUZZING.md)" >&2
fi
exit $status
