// InterruptScope: the first SIGINT or SIGTERM while it lives becomes a
// number in an atomic (signal()), which a long command polls to stop at a
// clean point (explore: no more seeds handed out, then its summary).
//
// The handler is async-signal-safe: one lock-free atomic store, sigaction(2)
// to put both signals' default action back (so a second signal ends the
// process at once, as it would have without the scope) and one write(2) of
// `notice` to stderr. A signal that was ignored when the scope began (a
// background job of a script without job control) stays ignored. The
// previous actions come back when the scope ends. One scope at a time.
#pragma once

#include <signal.h>

#include <atomic>

namespace pagelab::emu {

class InterruptScope {
 public:
  // `notice` (a string literal: the handler writes it) says what happens now.
  explicit InterruptScope(const char* notice);
  ~InterruptScope();
  InterruptScope(const InterruptScope&) = delete;
  InterruptScope& operator=(const InterruptScope&) = delete;

  // The signal that came (SIGINT or SIGTERM), or 0.
  const std::atomic<int>& signal() const;

 private:
  struct sigaction previous_[2] {};
};

// "SIGINT", "SIGTERM", else "a signal".
const char* interrupt_signal_name(int signal);

}  // namespace pagelab::emu
