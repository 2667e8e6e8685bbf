#!/usr/bin/env bash
# Runs the benchmarks (build/bin/pagelab-bench) and writes
# their results into docs/BENCHMARKS.md (between <!-- bench:begin --> and
# <!-- bench:end -->) and as Google Benchmark JSON (docs/bench/latest.json).
#
#   scripts/bench.sh [--quick] [--out FILE.json] [--no-doc] [--build-dir DIR] [BENCHMARK ARGS...]
#
#   --quick          a short minimum time per benchmark (CI smoke run)
#   --out FILE       where the JSON goes (default docs/bench/latest.json)
#   --no-doc         leave docs/BENCHMARKS.md alone
#   --build-dir DIR  the build tree to use (default build/); configured as a
#                    Release build if it does not exist yet
#   anything else    passed to pagelab-bench, e.g. --benchmark_filter=Buddy
#                    or --benchmark_repetitions=5
#
# Exits non-zero if the build or a benchmark fails.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
invocation="scripts/bench.sh"
for arg in "$@"; do
  invocation+=" $(printf '%q' "$arg")"
done

usage() { sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

out="$repo/docs/bench/latest.json"
build="$repo/build"
quick=0
write_doc=1
bench_args=()
while (($# > 0)); do
  case "$1" in
    --quick) quick=1; shift ;;
    --no-doc) write_doc=0; shift ;;
    --out) [[ $# -ge 2 ]] || { echo "bench.sh: --out needs a file" >&2; exit 2; }
           out="$2"; shift 2 ;;
    --out=*) out="${1#--out=}"; shift ;;
    --build-dir) [[ $# -ge 2 ]] || { echo "bench.sh: --build-dir needs a directory" >&2; exit 2; }
                 build="$2"; shift 2 ;;
    --build-dir=*) build="${1#--build-dir=}"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) bench_args+=("$1"); shift ;;
  esac
done
# Relative paths are the caller's, not the repository's.
[[ "$out" = /* ]] || out="$PWD/$out"
[[ "$build" = /* ]] || build="$PWD/$build"

log="$(mktemp)"
trap 'rm -f "$log"' EXIT

# Configure only when there is no build tree yet; refuse to benchmark a build
# tree that is not an optimized, uninstrumented one.
if [[ ! -f "$build/CMakeCache.txt" ]]; then
  generator=()
  if command -v ninja > /dev/null; then generator=(-G Ninja); fi
  echo "bench.sh: configuring a Release build in $build" >&2
  if ! cmake -S "$repo" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release > "$log" 2>&1; then
    cat "$log" >&2
    exit 1
  fi
fi
build_type="$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build/CMakeCache.txt")"
sanitize="$(sed -n 's/^PAGELAB_SANITIZE:[A-Z]*=//p' "$build/CMakeCache.txt")"
if [[ "$build_type" != "Release" || -n "$sanitize" ]]; then
  echo "bench.sh: $build is a '${build_type:-default}' build${sanitize:+ with sanitizers ($sanitize)};" \
       "benchmarks need a plain Release build: pass --build-dir to another directory" >&2
  exit 1
fi
if ! cmake --build "$build" --target pagelab-bench > "$log" 2>&1; then
  cat "$log" >&2
  exit 1
fi

run_args=(--benchmark_out="$out" --benchmark_out_format=json)
if ((quick)); then
  # Before the caller's arguments, so theirs win. A bare number of seconds is
  # what Google Benchmark 1.7 accepts.
  run_args+=(--benchmark_min_time=0.02)
fi
mkdir -p "$(dirname "$out")"
"$build/bin/pagelab-bench" "${run_args[@]}" "${bench_args[@]}"

report_args=(--json "$out" --command "$invocation")
if ((write_doc)); then
  cxx="$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$build/CMakeCache.txt")"
  compiler="$("${cxx:-c++}" --version 2> /dev/null | head -n 1 || true)"
  commit="$(git -C "$repo" rev-parse --short HEAD 2> /dev/null || echo unknown)"
  if [[ -n "$(git -C "$repo" status --porcelain -- src bench 2> /dev/null)" ]]; then
    commit+=" with uncommitted changes in src/ or bench/"
  fi
  report_args+=(--doc "$repo/docs/BENCHMARKS.md"
                --info "Build: $build_type, ${compiler:-unknown compiler}, commit $commit")
fi
# Writes the table (unless --no-doc) and fails if any benchmark reported an error.
python3 "$repo/scripts/bench_report.py" "${report_args[@]}"

# Shootdown latency against CPU count, as a PNG next to the table.
if ((write_doc)) && grep -q '"BM_Shootdown/' "$out"; then
  "$repo/scripts/setup.sh" --plots
  # Debian's interpreter: matplotlib comes from its package, whatever python3 is first on PATH.
  plot_python=/usr/bin/python3
  [[ -x "$plot_python" ]] || plot_python=python3
  "$plot_python" "$repo/scripts/plot_shootdown.py" --json "$out" --out "$repo/docs/bench/shootdown.png"
fi
