#!/usr/bin/env bash
# Installs what pagelab needs to build, test and boot, from Debian's packages.
# Idempotent and silent when everything is already there.
#
#   scripts/setup.sh           what building, testing and booting need
#   scripts/setup.sh --plots   also what scripts/bench.sh draws its plots with
#   scripts/setup.sh --fuzz    also what scripts/fuzz-inputs.sh builds with (Clang 14 and its
#                              libFuzzer, ASan and UBSan runtimes) and what
#                              scripts/fuzz-coverage.sh reports with (llvm-cov-14)
# The flags combine: scripts/setup.sh --plots --fuzz.
set -euo pipefail

packages=(
  cmake ninja-build g++ binutils python3
  libgtest-dev libbenchmark-dev libspdlog-dev libboost-dev libcli11-dev nlohmann-json3-dev
  qemu-system-x86
)
for flag in "$@"; do
  case $flag in
    --plots) packages+=(python3-matplotlib) ;;
    --fuzz) packages+=(clang-14 libclang-rt-14-dev llvm-14) ;;
    *) echo "setup: unknown option '$flag' (try --plots, --fuzz)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "setup: installing ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
