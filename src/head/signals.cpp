#include "runner/signals.h"

#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

namespace runner {

InheritedSignals::InheritedSignals() {
  sigprocmask(SIG_SETMASK, nullptr, &mask_);
  sigaction(SIGPIPE, nullptr, &pipe_);
}

InheritedSignals::InheritedSignals(const std::vector<int>& blocked, bool pipe_ignored) {
  sigemptyset(&mask_);
  for (int sig : blocked) sigaddset(&mask_, sig);
  pipe_.sa_handler = pipe_ignored ? SIG_IGN : SIG_DFL;
  sigemptyset(&pipe_.sa_mask);
}

std::vector<int> InheritedSignals::blocked() const {
  std::vector<int> out;
  for (int sig = 1; sig < NSIG; ++sig)
    if (sigismember(&mask_, sig) == 1) out.push_back(sig);
  return out;
}

int InheritedSignals::restore() const noexcept {
  // An ignored signal stays ignored across exec; a caught one becomes default.
  if (sigaction(SIGPIPE, &pipe_, nullptr) != 0) return errno;
  if (sigprocmask(SIG_SETMASK, &mask_, nullptr) != 0) return errno;
  return 0;
}

namespace {

// Blocks `set` and opens a non-blocking signalfd for it; `before` gets the
// mask as it was.
Fd block_and_open(const sigset_t& set, sigset_t& before) {
  if (sigprocmask(SIG_BLOCK, &set, &before) != 0)
    throw std::system_error(errno, std::generic_category(), "sigprocmask");
  Fd fd(signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
  if (!fd) {
    int err = errno;
    sigprocmask(SIG_SETMASK, &before, nullptr);
    throw std::system_error(err, std::generic_category(), "signalfd");
  }
  return fd;
}

// Reads every pending signal off a signalfd.
std::vector<int> read_pending(int fd) {
  std::vector<int> out;
  signalfd_siginfo info[16];
  for (;;) {
    ssize_t n = ::read(fd, info, sizeof info);
    if (n <= 0) break;  // EAGAIN: nothing more pending
    for (ssize_t i = 0; i < n / static_cast<ssize_t>(sizeof info[0]); ++i)
      out.push_back(static_cast<int>(info[i].ssi_signo));
  }
  return out;
}

}  // namespace

SignalChannel::SignalChannel(std::initializer_list<int> signals) {
  sigset_t set;
  sigemptyset(&set);
  for (int s : signals) sigaddset(&set, s);
  fd_ = block_and_open(set, before_);
  // A write to a pipe nobody reads then fails with EPIPE, which the output
  // code takes as "stop printing".
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  sigaction(SIGPIPE, &ignore, nullptr);
}

SignalChannel::~SignalChannel() {
  fd_.reset();
  // SIGPIPE stays ignored: what runner prints after the run (the summary, an
  // error line) must not kill it either when its reader is gone.
  sigprocmask(SIG_SETMASK, &before_, nullptr);
}

std::vector<int> SignalChannel::drain() {
  return read_pending(fd_.get());
}

BlockedSignal::BlockedSignal(int sig) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, sig);
  fd_ = block_and_open(set, before_);
}

BlockedSignal::~BlockedSignal() {
  fd_.reset();
  sigprocmask(SIG_SETMASK, &before_, nullptr);
}

bool BlockedSignal::drain() {
  return !read_pending(fd_.get()).empty();
}

}  // namespace runner
