#!/usr/bin/env bash
# Sets up, builds and runs every test with ctest.
#   scripts/test.sh                         Release build in build/
#   scripts/test.sh --sanitize address,undefined   ASan + UBSan build in build-asan/
#   scripts/test.sh --sanitize thread       TSan build in build-tsan/
#   scripts/test.sh --all                   all three, one after another
set -euo pipefail
cd "$(dirname "$0")/.."

run_suite() {  # run_suite DIR SKIPPED_LABEL [cmake options...]
  local dir=$1 skipped=$2
  shift 2
  scripts/build.sh "$dir" -DPAGELAB_WERROR=ON "$@"
  echo "== ctest in $dir"
  ctest --test-dir "$dir" -j "$(nproc)" --output-on-failure --timeout 600 ${skipped:+-LE "$skipped"}
}

# The kernel is built without sanitizers in every tree, so its QEMU boots
# (label "boot") run once, in the Release suite; so do the fuzzing budgets
# (label "fuzz"), which are long runs, not tests of sanitizer-visible code
# paths the unit tests miss.
# They leave the kernel out (PAGELAB_BUILD_KERNEL=OFF) and compile at -O1
# with line tables only (-g1): what a sanitizer's stack trace needs, at about
# half the compile time of -O2 -g, since CI builds both trees every time.
sanitized=(-DPAGELAB_BUILD_BENCH=OFF -DPAGELAB_BUILD_KERNEL=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo
  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG")
asan=(build-asan "boot|fuzz" -DPAGELAB_SANITIZE=address,undefined "${sanitized[@]}")
tsan=(build-tsan "boot|fuzz" -DPAGELAB_SANITIZE=thread "${sanitized[@]}")

mode=release
case "${1:-}" in
  "") ;;
  --sanitize)
    case "${2:-}" in
      address,undefined) mode=asan ;;
      thread) mode=tsan ;;
      *) echo "test.sh: --sanitize takes 'address,undefined' or 'thread', not '${2:-}'" >&2; exit 2 ;;
    esac ;;
  --all) mode=all ;;
  *) echo "test.sh: unknown option '$1' (try --sanitize address,undefined | --sanitize thread | --all)" >&2; exit 2 ;;
esac

scripts/setup.sh

# Sanitizer builds skip the benchmark program: it is not a test.
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
case $mode in
  release) run_suite build "" ;;
  asan) run_suite "${asan[@]}" ;;
  tsan) run_suite "${tsan[@]}" ;;
  all) run_suite build "" && run_suite "${asan[@]}" && run_suite "${tsan[@]}" ;;
esac
