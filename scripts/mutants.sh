#!/usr/bin/env bash
# Mutation testing of the fuzzer: applies deliberate bugs to a copy of the
# core (src/mm), one at a time, and checks that `pagelab fuzz` finds each
# (docs/FUZZING.md, "Mutants").
#
#   scripts/mutants.sh [--time SECONDS] [--jobs N] [--seed S] [--only NAME...] [--list]
#
#   --time SECONDS      fuzzing budget per mutant (default 300)
#   --jobs N            fuzz worker threads (default 1)
#   --seed S            the fuzz campaign's seed (default 1)
#   --shrink-time SECS  time to shrink the failure that kills a mutant (default 10)
#   --pristine-time SECS  fuzzing of the unmodified core first, which must pass (default 30)
#   --only NAME...      these mutants only: a file name of scripts/mutants/, with or
#                       without .patch, or its number (05)
#   --list              list the mutants and what each breaks, and exit
#
# Each mutant is a unified diff against src/mm, scripts/mutants/NN-name.patch,
# whose leading `# ` lines say what it breaks (the first line goes in the table).
# The work happens in build-mutants/: src-copy/ is a copy of this tree's
# files (tracked and untracked, not ignored: what `git ls-files` lists),
# build/ its Release build (Ninja, no benchmarks, warnings as errors), runs/NAME/ each
# mutant's fuzz output (the shrunk case, the JSON, stdout and stderr), logs/ the
# builds. For each mutant: src/mm of the copy is reset to the pristine one,
# the patch applied, the `pagelab` target built, and
#
#   pagelab fuzz --seed S --time SECONDS --jobs N --shootdown batched --max-failures 1 ...
#
# run. A mutant is killed when that fuzz run fails (an oracle, the lock
# checker, the runner or the judge: found_after_s in its JSON is the time to
# kill) or panics (the core's own assertion, reached by a generated case: the
# time is the run's). The copy's src/mm is restored at the end.
#
# The kill table (mutant, what it breaks, result, time to kill, invariant, the
# first failure) goes to stdout and to build-mutants/kill-table.md; one
# progress line per mutant goes to stderr.
#
# Exit status 0 when at least 90% of the mutants run were killed, 1 when
# fewer were, 2 for a bad argument, a patch that does not apply, a failed
# build, or a pristine core the fuzzer fails (then no mutant means anything).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

seconds=300
jobs=1
seed=1
shrink=10
pristine_seconds=30
list=false
only=()

die() { echo "mutants.sh: $*" >&2; exit 2; }
is_count() { [[ $1 =~ ^[0-9]+$ ]] && [ "$1" -ge 1 ]; }

while [ $# -gt 0 ]; do
  case $1 in
    --time|--jobs|--seed|--shrink-time|--pristine-time)
      [ $# -ge 2 ] || die "$1 needs a value"
      is_count "$2" || die "$1 takes a number >= 1, not '$2'"
      case $1 in
        --time) seconds=$2 ;;
        --jobs) jobs=$2 ;;
        --seed) seed=$2 ;;
        --shrink-time) shrink=$2 ;;
        --pristine-time) pristine_seconds=$2 ;;
      esac
      shift 2 ;;
    --only)
      shift
      while [ $# -gt 0 ] && [[ $1 != --* ]]; do only+=("$1"); shift; done
      [ ${#only[@]} -gt 0 ] || die "--only needs at least one mutant name (see --list)" ;;
    --list) list=true; shift ;;
    -h|--help) sed -n '2,41p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (try --time SECONDS, --jobs N, --seed S, --only NAME..., --list, --help)" ;;
  esac
done

# ---- the mutants ------------------------------------------------------------

mutant_dir=scripts/mutants
# What a mutant breaks: the first `# ` line of its patch.
what_of() { sed -n '1s/^# //p' "$1"; }

all=()
for patch in "$mutant_dir"/*.patch; do
  [ -e "$patch" ] && all+=("$patch")
done
[ ${#all[@]} -gt 0 ] || die "no mutants in $mutant_dir/ (*.patch)"

selected=()
if [ ${#only[@]} -eq 0 ]; then
  selected=("${all[@]}")
else
  for want in "${only[@]}"; do
    want=${want%.patch}
    want=${want##*/}
    found=""
    for patch in "${all[@]}"; do
      name=$(basename "$patch" .patch)
      if [ "$name" = "$want" ] || [[ $name == "$want"-* ]]; then found=$patch; fi
    done
    [ -n "$found" ] || die "no mutant '$want' in $mutant_dir/ (see --list)"
    selected+=("$found")
  done
fi

if $list; then
  for patch in "${selected[@]}"; do
    printf '%-40s %s\n' "$(basename "$patch" .patch)" "$(what_of "$patch")"
  done
  exit 0
fi

# ---- the copy -----------------------------------------------------------------

work=build-mutants
copy=$work/src-copy
pristine=$work/pristine
build=$work/build
logs=$work/logs
runs=$work/runs
bin=$build/bin/pagelab
mkdir -p "$copy" "$logs" "$runs"
tmp=$(mktemp -d)

# Makes DEST hold exactly the files listed on stdin (paths relative to SRC),
# with SRC's contents. Only a file whose contents differ is copied, so it
# alone gets a new time stamp and Ninja rebuilds only what depends on it;
# a file of DEST the list does not name is removed.
sync_files() {  # sync_files SRC DEST < LIST
  local src=$1 dest=$2 f
  sort -u >"$tmp/want"
  while IFS= read -r f; do
    if [ ! -e "$dest/$f" ] || ! cmp -s "$src/$f" "$dest/$f"; then
      mkdir -p "$(dirname "$dest/$f")"
      rm -f "$dest/$f"
      cp -P "$src/$f" "$dest/$f"
    fi
  done <"$tmp/want"
  (cd "$dest" && find . \( -type f -o -type l \) | sed 's|^\./||' | sort) >"$tmp/have"
  comm -13 "$tmp/want" "$tmp/have" | while IFS= read -r f; do rm -f "$dest/$f"; done
}

# The copy's src/mm back to the pristine one (and nothing else changed).
restore_core() {
  [ -d "$pristine/mm" ] || return 0
  (cd "$pristine/mm" && find . \( -type f -o -type l \) | sed 's|^\./||') | sync_files "$pristine/mm" "$copy/src/mm"
}

cleanup() {
  restore_core || echo "mutants.sh: could not restore $copy/src/mm (the next run syncs it again)" >&2
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo "mutants.sh: interrupted" >&2; exit 130' INT TERM

# This tree's files, as they are now (uncommitted changes included).
git ls-files --cached --others --exclude-standard | while IFS= read -r f; do
  if [ -e "$f" ] || [ -L "$f" ]; then echo "$f"; fi
done | sync_files "$root" "$copy"
rm -rf "$pristine"
mkdir -p "$pristine"
cp -a "$copy/src/mm" "$pristine/mm"

# Applies a patch to the copy. git apply, with the repository search
# stopped above the copy: inside this tree's work tree it would take the
# patch's paths as relative to this repository instead.
apply_patch() {  # apply_patch PATCH [--check]
  local patch=$root/$1
  shift
  (cd "$copy" && GIT_CEILING_DIRECTORIES=$root/$work git apply "$@" "$patch")
}

# Every patch must apply to the pristine core: checked before anything is built.
for patch in "${selected[@]}"; do
  if ! apply_patch "$patch" --check 2>"$tmp/apply"; then
    cat "$tmp/apply" >&2
    die "$patch does not apply to src/mm (the core changed under it: update the patch)"
  fi
done

# ---- build and fuzz -------------------------------------------------------------

if [ ! -f "$build/CMakeCache.txt" ]; then
  if ! cmake -S "$copy" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPAGELAB_BUILD_BENCH=OFF \
      -DPAGELAB_WERROR=ON >"$logs/configure.log" 2>&1; then
    cat "$logs/configure.log" >&2
    die "configuring $build failed (log: $logs/configure.log)"
  fi
fi

build_pagelab() {  # build_pagelab LOG
  cmake --build "$build" --target pagelab -j "$(nproc)" >"$1" 2>&1
}

# Runs the fuzzer on the current build; sets rc, elapsed and the run's
# directory `dir` (result.json, found/, stdout, stderr).
fuzz() {  # fuzz NAME SECONDS
  dir=$runs/$1
  rm -rf "$dir"
  mkdir -p "$dir"
  local start end
  start=$(date +%s.%N)
  # A core that loops without ever reaching a scheduling point would hang
  # the run: the budget, the shrink and a margin, then SIGTERM (the fuzzer
  # stops and writes its summary), then SIGKILL.
  set +e
  timeout -k 30 $(($2 + shrink + 120)) "$bin" fuzz --seed "$seed" --time "$2s" --jobs "$jobs" \
    --shootdown batched --max-failures 1 --shrink-time "${shrink}s" \
    --out "$dir/found" --json "$dir/result.json" --quiet >"$dir/stdout" 2>"$dir/stderr"
  rc=$?
  set -e
  end=$(date +%s.%N)
  elapsed=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
}

# The first failure of a run's JSON: "SECONDS<TAB>INVARIANT<TAB>SIGNATURE".
first_failure() {  # first_failure JSON
  python3 - "$1" <<'PY'
import json, sys
failures = json.load(open(sys.argv[1])).get("failures") or []
if failures:
    f = min(failures, key=lambda f: f.get("found_after_s", 0))
    text = " ".join(str(f.get("signature", "")).split())
    print(f"{f.get('found_after_s', 0):.1f}\t{f.get('invariant', '') or '?'}\t{text}")
PY
}

echo "== building the pristine core in $build" >&2
if ! build_pagelab "$logs/pristine.build.log"; then
  cat "$logs/pristine.build.log" >&2
  die "the pristine core does not build (log: $logs/pristine.build.log)"
fi
echo "== fuzzing the pristine core for ${pristine_seconds}s" >&2
fuzz pristine "$pristine_seconds"
if [ "$rc" -ne 0 ]; then
  cat "$dir/stdout" "$dir/stderr" >&2
  die "the pristine core fails under pagelab fuzz (exit $rc; $dir/): fix that before judging mutants"
fi

echo "== ${#selected[@]} mutant(s), ${seconds}s of fuzzing each (seed $seed, $jobs job(s))" >&2
rows=()
killed=0
total=0
broken=()
for patch in "${selected[@]}"; do
  name=$(basename "$patch" .patch)
  what=$(what_of "$patch")
  restore_core
  if ! apply_patch "$patch" 2>"$tmp/apply"; then
    cat "$tmp/apply" >&2
    die "$patch does not apply to src/mm"
  fi
  if ! build_pagelab "$logs/$name.build.log"; then
    echo "!! $name: does not build (log: $logs/$name.build.log)" >&2
    grep -m 5 -E 'error|Error' "$logs/$name.build.log" >&2 || true
    broken+=("$patch")
    rows+=("| $name | $what | does not build | - | - | see $logs/$name.build.log |")
    continue
  fi
  fuzz "$name" "$seconds"
  total=$((total + 1))
  result="" time="-" invariant="-" first="-"
  if [ "$rc" -eq 0 ]; then
    result="survived"
  elif [ "$rc" -eq 1 ] && [ -s "$dir/result.json" ] && line=$(first_failure "$dir/result.json") && [ -n "$line" ]; then
    IFS=$'\t' read -r time invariant first <<<"$line"
    result="killed" time="$time s"
  elif grep -q 'pagelab: panic:' "$dir/stderr"; then
    # The core's own assertion, in a generated case: the whole fuzzer aborts.
    result="killed" time="$elapsed s (run)" invariant="panic"
    first=$(grep -m 1 'pagelab: panic:' "$dir/stderr" | sed -e 's/^pagelab: panic: //' -e "s|$root/$copy/||g")
  elif [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    result="hang" first="no result within $((seconds + shrink + 120)) s: the core loops (see $dir/)"
  elif [ "$rc" -gt 128 ]; then
    result="killed" time="$elapsed s (run)" invariant="crash" first="pagelab died of signal $((rc - 128))"
  else
    # Exit 2: a run ended neither passing nor failing (the runner's error).
    result="killed" time="$elapsed s (run)" invariant="error"
    first=$(head -n 1 "$dir/stderr")
    [ -n "$first" ] || first="pagelab fuzz exited $rc"
  fi
  [ "$result" = killed ] && killed=$((killed + 1))
  first=${first//|/\\|}
  [ ${#first} -gt 160 ] && first="${first:0:157}..."
  rows+=("| $name | $what | $result | $time | $invariant | $first |")
  progress="== $name: $result"
  [ "$time" = - ] || progress="$progress after $time"
  [ "$invariant" = - ] || progress="$progress [$invariant]"
  echo "$progress" >&2
done
restore_core

# ---- the kill table -------------------------------------------------------------

percent=0
[ "$total" -gt 0 ] && percent=$((100 * killed / total))
revision=$(git rev-parse --short HEAD)
[ -z "$(git status --porcelain -- src/mm)" ] || revision="$revision (src/mm modified)"
{
  echo "Mutants of src/mm at $revision, $(date -u +%Y-%m-%d): \`pagelab fuzz --seed $seed --time ${seconds}s --jobs $jobs --shootdown batched\`"
  echo "on $(nproc) CPU(s); $killed of $total killed ($percent%)."
  echo
  echo "| mutant | what it breaks | result | time to kill | invariant | first failure |"
  echo "|---|---|---|---|---|---|"
  for row in "${rows[@]}"; do echo "$row"; done
} >"$work/kill-table.md"
cat "$work/kill-table.md"

if [ ${#broken[@]} -gt 0 ]; then
  die "${#broken[@]} mutant(s) do not build: ${broken[*]}"
fi
if [ $((killed * 10)) -ge $((total * 9)) ]; then
  exit 0
fi
echo "mutants.sh: $killed of $total mutants killed ($percent%), fewer than 90%; the survivors' fuzz output is in $runs/" >&2
exit 1
