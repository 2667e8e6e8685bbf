#!/usr/bin/env bash
# The freestanding core may depend on nothing but what a kernel provides:
# the compiler's memory primitives, __cxa_pure_virtual, mm::panic, and the
# platform (here its archetype). Links the freestanding objects into one
# relocatable object and fails on any other undefined symbol.
#   check_symbols.sh OBJECT...
set -euo pipefail
out=$(mktemp)
trap 'rm -f "$out"' EXIT
ld -r -o "$out" "$@"
undefined=$(nm --undefined-only --demangle "$out" | awk '{ $1=""; sub(/^ /, ""); print }' | sort -u)
allowed='^(memset|memcpy|memmove|memcmp|__cxa_pure_virtual|mm::panic\(.*\)|mm::PlatformArchetype::.*)$'
bad=$(grep -Ev "$allowed" <<<"$undefined" || true)
if [ -n "$bad" ]; then
  echo "src/mm needs symbols a freestanding kernel does not provide:" >&2
  echo "$bad" >&2
  exit 1
fi
echo "freestanding core: $(wc -l <<<"$undefined") external symbols, all provided by the platform or the compiler"
