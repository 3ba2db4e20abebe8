// Signals runner handles in its wait loop rather than in a handler: they are
// blocked for the whole process and read from a signalfd, so there is no race
// between checking for a signal and going to sleep. SIGPIPE is ignored from
// the moment the channel opens: a reader of runner's output that goes away
// (`| head`) must not kill runner and strand its children. Children get the signal state
// runner was started with (see restore_in_child()).
#pragma once

#include <signal.h>

#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

namespace runner {

class SignalChannel {
 public:
  // Blocks the given signals (and SIGCHLD) and opens a signalfd for them.
  explicit SignalChannel(std::initializer_list<int> signals);
  ~SignalChannel();  // closes the fd, restores the original mask (SIGPIPE stays ignored)
  SignalChannel(const SignalChannel&) = delete;
  SignalChannel& operator=(const SignalChannel&) = delete;

  int fd() const { return fd_; }
  // In a child between fork and exec (async-signal-safe): the mask and the
  // SIGPIPE disposition runner was started with. Returns 0 or an errno.
  int restore_in_child() const noexcept;
  // Every signal pending now, without blocking; SIGCHLD included.
  std::vector<int> drain();

 private:
  int fd_ = -1;
  sigset_t original_{};
  struct sigaction original_pipe_ {};
};

}  // namespace runner
