#include "runner/signals.h"

#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

namespace runner {

SignalChannel::SignalChannel(std::initializer_list<int> signals) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  for (int s : signals) sigaddset(&set, s);
  if (sigprocmask(SIG_BLOCK, &set, &original_) != 0)
    throw std::system_error(errno, std::generic_category(), "sigprocmask");
  fd_ = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (fd_ < 0) {
    int err = errno;
    sigprocmask(SIG_SETMASK, &original_, nullptr);
    throw std::system_error(err, std::generic_category(), "signalfd");
  }
  // A write to a pipe nobody reads then fails with EPIPE, which the output
  // code takes as "stop printing".
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  sigaction(SIGPIPE, &ignore, &original_pipe_);
}

SignalChannel::~SignalChannel() {
  ::close(fd_);
  // SIGPIPE stays ignored: what runner prints after the run (the summary, an
  // error line) must not kill it either when its reader is gone.
  sigprocmask(SIG_SETMASK, &original_, nullptr);
}

int SignalChannel::restore_in_child() const noexcept {
  // An ignored signal stays ignored across exec; a caught one becomes default.
  if (sigaction(SIGPIPE, &original_pipe_, nullptr) != 0) return errno;
  if (sigprocmask(SIG_SETMASK, &original_, nullptr) != 0) return errno;
  return 0;
}

std::vector<int> SignalChannel::drain() {
  std::vector<int> out;
  signalfd_siginfo info[16];
  for (;;) {
    ssize_t n = ::read(fd_, info, sizeof info);
    if (n <= 0) break;  // EAGAIN: nothing more pending
    for (ssize_t i = 0; i < n / static_cast<ssize_t>(sizeof info[0]); ++i)
      out.push_back(static_cast<int>(info[i].ssi_signo));
  }
  return out;
}

}  // namespace runner
