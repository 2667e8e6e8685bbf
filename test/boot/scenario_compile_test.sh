#!/usr/bin/env bash
# pagelab-scenario-compile on scenarios the kernel must skip, and on bad input.
#   scenario_compile_test.sh COMPILER CXX
# Each skip reason must reach the generated table; a parse error must stop
# the build with the emulator's FILE:LINE:COL message and exit 2.
set -uo pipefail
compiler=$1 cxx=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "scenario_compile_test: $*"; exit 1; }

cat >"$work/unsafe.scenario" <<'S'
machine cpus=2 ram=16M
option shootdown=unsafe-no-flush
space a
S
cat >"$work/kernel_exec.scenario" <<'S'
machine cpus=1 ram=8M
space a
map a 0x10000000 4K rx
cpu 0
  use a
  repeat 2
    exec 0x10000000
    mode kernel
  end
end
S
cat >"$work/upper_half.scenario" <<'S'
machine cpus=1 ram=8M
space a
cpu 0
  use a
  read 0xffff800000000000 expect segv
end
S
cat >"$work/fine.scenario" <<'S'
machine cpus=2 ram=16M tlb=tiny pcid=on
option pmm=bitmap
space a
map a 0x40000000 2M rw phys=0xE00000
cpu 0
  use a
  repeat 3
    barrier b
  end
end
cpu 1
  use a
  repeat 3
    barrier b
  end
end
check frames leaked == 0
S
"$compiler" --out "$work/out.cpp" --root "$work" "$work"/*.scenario || fail "the compiler failed on valid input"
out=$work/out.cpp
grep -q '"unsafe", "unsafe.scenario", "the unsafe shootdown policy .unsafe-no-flush.' "$out" || fail "no skip for an unsafe policy"
grep -q '"kernel_exec", "kernel_exec.scenario", "line 7: exec in kernel mode' "$out" || fail "no skip for kernel-mode exec (mode set late in a repeat)"
grep -q '"upper_half", "upper_half.scenario", "line 5: an access to the upper half' "$out" || fail "no skip for an upper-half access"
grep -q '"fine", "fine.scenario", nullptr, 2,' "$out" || fail "a runnable scenario was skipped"
grep -q 'tlb=tiny is ignored' "$out" && grep -q 'pcid=on runs without PCIDs' "$out" && grep -q 'pmm=bitmap is ignored' "$out" ||
  fail "missing notes"
grep -q 'OpCode::Map, ExpectKind::Ok, 0, 3, 0, 3, 0, 0, 4, 0, 0x40000000, 0x200000, 0x200000}' "$out" ||
  fail "phys= is not an offset into the device window [12M, 16M)"
grep -q 'OpCode::Repeat, ExpectKind::Ok, 0, 0, 0, 0, 0, 0, 7, 3, 0x0, 0x3, 0x0}' "$out" || fail "repeat does not jump to its end"
grep -A2 '"fine", "fine.scenario"' "$out" | grep -q ' 0x400000, 0x0},' || fail "no device window for phys="
"$cxx" -std=c++20 -fsyntax-only -I"$(dirname "$0")/../../src" -I"$(dirname "$0")/../../src/kernel" "$out" ||
  fail "the generated source does not compile"

printf 'machine cpus=1 ram=8M\nspace a\nmapp a 0x1000 4K rw\n' >"$work/bad.scenario"
"$compiler" --out "$work/bad.cpp" "$work/bad.scenario" 2>"$work/err"
[ $? -eq 2 ] || fail "a parse error must exit 2"
grep -q "bad.scenario:3:1: error: unknown keyword 'mapp'" "$work/err" || { cat "$work/err"; fail "no FILE:LINE:COL message"; }
# phys= outside the emulator's device window is the parser's error (it
# would name the kernel's own RAM), not a skip.
mkdir "$work/outside"
printf 'machine cpus=1 ram=16M\nspace a\nmap a 0x40000000 2M rw phys=0x200000\n' >"$work/outside/phys.scenario"
"$compiler" --out "$work/outside.cpp" "$work/outside/phys.scenario" 2>"$work/err"
[ $? -eq 2 ] || fail "phys= outside the device window must exit 2"
grep -q "phys.scenario:3:29: error: phys= range \[0x200000, 0x400000) is outside the device window" "$work/err" ||
  { cat "$work/err"; fail "no FILE:LINE:COL message for phys= outside the window"; }
# Binary or endless input is an error at once, not a hang.
timeout 10 "$compiler" --out "$work/zero.cpp" /dev/zero 2>"$work/err"
[ $? -eq 2 ] || fail "/dev/zero must exit 2"
grep -q "^/dev/zero:1:1: error: binary data" "$work/err" || { cat "$work/err"; fail "no message for /dev/zero"; }
# Every bundled scenario compiles (the kernel's build compiles them all).
source_dir=$(cd "$(dirname "$0")/../.." && pwd)
"$compiler" --out "$work/all.cpp" --root "$source_dir" "$source_dir"/examples/*.scenario "$source_dir"/examples/races/*.scenario \
  "$source_dir"/test/boot/scenarios/*.scenario || fail "a bundled scenario does not compile"
echo "scenario_compile_test: ok"
