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

#include "runner/fd.h"

namespace runner {

// The signal state runner was started with: the mask, and SIGPIPE's
// disposition (an ignored signal stays ignored across exec). Its children get
// it back between fork and exec.
class InheritedSignals {
 public:
  InheritedSignals();  // captures them as they are now
  // As another process captured them (a worker is told them by runner).
  InheritedSignals(const std::vector<int>& blocked, bool pipe_ignored);
  // In a child between fork and exec (async-signal-safe). Returns 0 or an errno.
  int restore() const noexcept;
  // What they are, to tell another process.
  std::vector<int> blocked() const;
  bool pipe_ignored() const { return pipe_.sa_handler == SIG_IGN; }
  const sigset_t& mask() const { return mask_; }

 private:
  sigset_t mask_{};
  struct sigaction pipe_ {};
};

// Where runner's own signals come from: a descriptor that is readable while
// one is pending, and the pending ones.
class SignalSource {
 public:
  virtual ~SignalSource() = default;
  virtual int fd() const = 0;
  // Every signal pending now, without blocking.
  virtual std::vector<int> drain() = 0;
};

class SignalChannel : public SignalSource {
 public:
  // Blocks the given signals and opens a signalfd for them; ignores SIGPIPE.
  explicit SignalChannel(std::initializer_list<int> signals);
  ~SignalChannel() override;  // closes the fd, restores the mask (SIGPIPE stays ignored)
  SignalChannel(const SignalChannel&) = delete;
  SignalChannel& operator=(const SignalChannel&) = delete;

  int fd() const override { return fd_.get(); }
  std::vector<int> drain() override;
  // The signal state from before the channel opened, for children.
  const InheritedSignals& inherited() const { return inherited_; }

 private:
  InheritedSignals inherited_;
  sigset_t before_{};
  Fd fd_;
};

// Blocks `sig` while it lives and reads it from a signalfd of its own:
// SIGCHLD for an engine that waits for its children.
class BlockedSignal {
 public:
  explicit BlockedSignal(int sig);
  ~BlockedSignal();
  BlockedSignal(const BlockedSignal&) = delete;
  BlockedSignal& operator=(const BlockedSignal&) = delete;
  int fd() const { return fd_.get(); }
  // Reads what is pending; returns whether anything was.
  bool drain();

 private:
  sigset_t before_{};
  Fd fd_;
};

}  // namespace runner
