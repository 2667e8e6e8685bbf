#!/usr/bin/env bash
# One boot of the kernel as a ctest case.
#   boot_test.sh KERNEL pass|fail|panic REGEX [boot.sh options...]
# Boots KERNEL with scripts/boot.sh, then requires the verdict (pass: exit 0;
# fail: the kernel's own failure verdict; panic: its panic or fatal-exception
# verdict; never a hang or a triple fault) and a console line matching REGEX. A KVM boot on a host without usable KVM is skipped (77).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
kernel=$1 expect=$2 regex=$3
shift 3

if [[ " $* " == *" --accel kvm "* ]] && ! { [ -r /dev/kvm ] && [ -w /dev/kvm ]; }; then
  echo "skipped: /dev/kvm is not usable here"
  exit 77
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
"$here/../../scripts/boot.sh" --kernel "$kernel" "$@" >"$log" 2>&1
status=$?
cat "$log"

if [ "$expect" = pass ] && [ $status -ne 0 ]; then
  echo "boot_test: expected the boot to pass, boot.sh exited $status"
  exit 1
fi
verdict_line() {
  case $1 in
    fail) echo "the kernel reported failure" ;;
    panic) echo "the kernel panicked" ;;
  esac
}
if [ "$expect" != pass ]; then
  if [ $status -eq 0 ]; then
    echo "boot_test: expected the kernel to refuse this boot, but it passed"
    exit 1
  fi
  if ! grep -q "$(verdict_line "$expect")" "$log"; then
    echo "boot_test: expected the verdict '$(verdict_line "$expect")', not another failure, a hang or a reset"
    exit 1
  fi
fi
if ! grep -Eq -- "$regex" "$log"; then
  echo "boot_test: no console line matches: $regex"
  exit 1
fi
exit 0
