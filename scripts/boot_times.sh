#!/usr/bin/env bash
# Measures kernel boot times and records them in docs/BENCHMARKS.md.
#   scripts/boot_times.sh [--runs N] [--no-doc]
# For each configuration (TCG at -smp 1, 2 and 4, KVM at -smp 4 when /dev/kvm is
# usable) it boots the kernel N times (default 5) and reports medians of:
#   wall      the whole QEMU process, from exec to exit (host time)
#   kmain     in-guest time from the first kernel instruction to kmain
#   cpus up   in-guest time when every CPU is online
#   done      in-guest time of the self-test summary line
#   shootdown the kernel's own one-page shootdown (its boot summary line:
#             TSC from before the first IPI to the last acknowledgement),
#             to 1 target and to all N-1 others, in microseconds
# The in-guest figures come from the TSC, calibrated against the PIT.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=5
write_doc=1
while [ $# -gt 0 ]; do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --no-doc) write_doc=0; shift ;;
    *) echo "boot_times.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
done

scripts/setup.sh
scripts/build.sh build
kernel=build/bin/pagelab-kernel.elf

configs=("tcg 1" "tcg 2" "tcg 4")
if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then configs+=("kvm 4"); fi

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

table="| accelerator | CPUs | wall (ms) | kmain (us) | all CPUs up (ms) | self-tests done (ms) | shootdown, 1 target (us) | shootdown, N-1 targets (us) |
|---|---:|---:|---:|---:|---:|---:|---:|"
for config in "${configs[@]}"; do
  read -r accel smp <<<"$config"
  walls=() kmains=() ups=() dones=() firsts=() alls=()
  for ((i = 0; i < runs; i++)); do
    log=$(mktemp)
    start=$(date +%s%N)
    scripts/boot.sh --kernel "$kernel" --accel "$accel" --smp "$smp" >"$log" 2>&1 ||
      { cat "$log" >&2; echo "boot_times.sh: boot failed ($accel, -smp $smp)" >&2; exit 1; }
    end=$(date +%s%N)
    walls+=($(((end - start) / 1000000)))
    kmains+=($(sed -n 's/.*kmain reached \([0-9]*\) us.*/\1/p' "$log"))
    ups+=($(sed -n 's/^smp: .* CPUs online at \([0-9]*\) us.*/\1/p' "$log"))
    dones+=($(sed -n 's/.*self-tests done at \([0-9]*\) us.*/\1/p' "$log"))
    firsts+=($(sed -n 's/^boot: shootdown of one page.*: 1 target \([0-9]*\) ns.*/\1/p' "$log"))
    alls+=($(sed -n 's/^boot: shootdown of one page.* \([0-9]*\) ns (of [0-9]*).*/\1/p' "$log"))
    rm -f "$log"
  done
  wall=$(printf '%s\n' "${walls[@]}" | median)
  kmain=$(printf '%s\n' "${kmains[@]}" | median)
  up=$(printf '%s\n' "${ups[@]}" | median)
  done_us=$(printf '%s\n' "${dones[@]}" | median)
  # One CPU has no other TLB: no shootdown line.
  first=-; all=-
  if [ ${#firsts[@]} -gt 0 ]; then
    first=$(printf '%s\n' "${firsts[@]}" | median | awk '{ printf "%.1f", $1 / 1000 }')
    all=$(printf '%s\n' "${alls[@]}" | median | awk '{ printf "%.1f", $1 / 1000 }')
  fi
  row=$(awk -v a="$accel" -v s="$smp" -v w="$wall" -v k="$kmain" -v u="$up" -v d="$done_us" -v f="$first" -v l="$all" \
    'BEGIN { printf "| %s | %s | %d | %d | %.1f | %.1f | %s | %s |", a, s, w, k, u / 1000, d / 1000, f, l }')
  table+=$'\n'"$row"
done

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
section="### Kernel boot

- Command: \`scripts/boot_times.sh --runs $runs\` (medians of $runs boots each)
- Host: $cpu, $(nproc) CPUs; QEMU $(qemu-system-x86_64 --version | head -1 | awk '{print $4}'), 128 MiB guest
- Date: $(date -u '+%Y-%m-%d %H:%M:%S') UTC

$table

Targets (in-guest): kmain under 1 ms; all CPUs up and self-tests done at -smp 4
under 100 ms on KVM and under 1 s on TCG."
echo "$section"

if [ $write_doc -eq 1 ]; then
  python3 - "$section" <<'PY'
import re, sys
path = "docs/BENCHMARKS.md"
text = open(path).read()
block = "<!-- boot:begin -->\n" + sys.argv[1] + "\n<!-- boot:end -->"
if "<!-- boot:begin -->" in text:
    text = re.sub(r"<!-- boot:begin -->.*?<!-- boot:end -->", lambda m: block, text, flags=re.S)
else:
    text = text.rstrip("\n") + "\n\n" + block + "\n"
open(path, "w").write(text)
PY
fi
