#!/usr/bin/env bash
# Boots the pagelab kernel in QEMU, headless, with the serial console on
# standard output. The exit status is the kernel's verdict: 0 when every
# self-test passed, 1 on a failed test, bad input, a panic or a timeout.
#
#   scripts/boot.sh [--smp N] [--mem SIZE] [--accel kvm|tcg|auto]
#                   [--append "KERNEL ARGS"] [--timeout SECONDS] [--kernel PATH]
#
# --accel auto (the default) uses KVM when /dev/kvm can be opened, else TCG.
# Without --kernel, the kernel is built in build/ first if needed.
set -euo pipefail
cd "$(dirname "$0")/.."

smp=1
mem=128M
accel=auto
append=""
timeout_s=60
kernel=""

usage() {
  sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}
need_value() { [ $# -ge 2 ] || { echo "boot.sh: $1 needs a value" >&2; exit 2; }; }

while [ $# -gt 0 ]; do
  case $1 in
    --smp) need_value "$@"; smp=$2; shift 2 ;;
    --mem) need_value "$@"; mem=$2; shift 2 ;;
    --accel) need_value "$@"; accel=$2; shift 2 ;;
    --append) need_value "$@"; append=$2; shift 2 ;;
    --timeout) need_value "$@"; timeout_s=$2; shift 2 ;;
    --kernel) need_value "$@"; kernel=$2; shift 2 ;;
    -h|--help) usage ;;
    *) echo "boot.sh: unknown option '$1'" >&2; usage ;;
  esac
done

[[ $smp =~ ^[0-9]+$ ]] && [ "$smp" -ge 1 ] && [ "$smp" -le 64 ] ||
  { echo "boot.sh: --smp takes 1 to 64 CPUs, not '$smp'" >&2; exit 2; }
[[ $mem =~ ^[0-9]+[MG]$ ]] || { echo "boot.sh: --mem takes a size such as 128M or 4G, not '$mem'" >&2; exit 2; }
[[ $timeout_s =~ ^[0-9]+$ ]] || { echo "boot.sh: --timeout takes whole seconds, not '$timeout_s'" >&2; exit 2; }

kvm_usable() { [ -r /dev/kvm ] && [ -w /dev/kvm ]; }
case $accel in
  auto) if kvm_usable; then accel=kvm; else accel=tcg; fi ;;
  kvm) kvm_usable || { echo "boot.sh: --accel kvm, but /dev/kvm cannot be opened" >&2; exit 2; } ;;
  tcg) ;;
  *) echo "boot.sh: --accel takes kvm, tcg or auto, not '$accel'" >&2; exit 2 ;;
esac
case $accel in
  kvm) cpu=host,-arch-capabilities ;;  # nested KVM here cannot set that MSR
  tcg) cpu=max ;;
esac

if [ -z "$kernel" ]; then
  scripts/setup.sh
  scripts/build.sh build
  kernel=build/bin/pagelab-kernel.elf
fi
[ -f "$kernel" ] || { echo "boot.sh: no kernel image at $kernel" >&2; exit 2; }

set +e
timeout --foreground "$timeout_s" qemu-system-x86_64 \
  -kernel "$kernel" ${append:+-append "$append"} \
  -machine q35 -accel "$accel" -cpu "$cpu" -smp "$smp" -m "$mem" \
  -display none -serial stdio -monitor none -no-reboot \
  -device isa-debug-exit,iobase=0xf4,iosize=0x04
status=$?
set -e

case $status in
  33) exit 0 ;;                 # the kernel wrote ExitCode::Pass
  35) echo "boot.sh: the kernel reported failure" >&2 ;;
  37) echo "boot.sh: the kernel panicked" >&2 ;;
  124) echo "boot.sh: no verdict within ${timeout_s} s (hang)" >&2 ;;
  0) echo "boot.sh: QEMU stopped without a verdict (triple fault or reset)" >&2 ;;
  *) echo "boot.sh: QEMU exited with status $status" >&2 ;;
esac
exit 1
