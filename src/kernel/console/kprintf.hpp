// printf for the kernel console: %s %c %d %u %x %p %%, with l/ll length,
// a field width, 0-padding (%016lx) and a string precision (%.*s). One call prints atomically with
// respect to other CPUs.
#pragma once

namespace kernel {

[[gnu::format(printf, 1, 2)]] void kprintf(const char* format, ...);

}  // namespace kernel
