#include "emu/cli/interrupt_scope.hpp"

#include <unistd.h>

#include <cstring>

namespace pagelab::emu {

namespace {

// Process-wide because a signal handler can reach nothing else.
std::atomic<int> g_signal{0};
const char* g_notice = "";
static_assert(std::atomic<int>::is_always_lock_free, "a signal handler stores it");
constexpr int kSignals[2] = {SIGINT, SIGTERM};

void on_signal(int signal) {
  g_signal.store(signal);
  struct sigaction fallback {};
  fallback.sa_handler = SIG_DFL;
  sigemptyset(&fallback.sa_mask);
  for (const int s : kSignals) sigaction(s, &fallback, nullptr);
  const char* text = g_notice;
  for (std::size_t left = std::strlen(text); left > 0;) {
    const ssize_t n = ::write(STDERR_FILENO, text, left);
    if (n <= 0) break;
    text += n;
    left -= static_cast<std::size_t>(n);
  }
}

}  // namespace

InterruptScope::InterruptScope(const char* notice) {
  g_signal.store(0);
  g_notice = notice;
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  for (int i = 0; i < 2; ++i) {
    sigaction(kSignals[i], nullptr, &previous_[i]);
    if (previous_[i].sa_handler != SIG_IGN) sigaction(kSignals[i], &action, nullptr);
  }
}

InterruptScope::~InterruptScope() {
  for (int i = 0; i < 2; ++i) sigaction(kSignals[i], &previous_[i], nullptr);
}

const std::atomic<int>& InterruptScope::signal() const { return g_signal; }

const char* interrupt_signal_name(int signal) {
  return signal == SIGINT ? "SIGINT" : signal == SIGTERM ? "SIGTERM" : "a signal";
}

}  // namespace pagelab::emu
