// How runner starts every process that lives beside it: the clusters, its
// workers, the --on-finish command. One way: Boost.Process with vfork (the
// child borrows runner's memory until it execs: no page tables copied, no
// copy-on-write faults, most of what a start costs), and the child's set-up
// between vfork and exec done by one handler: its descriptors, its process
// group, the signal state runner was started with, its cage and its
// descriptor limit. Short commands whose output runner reads (scontrol, a
// check over ssh) use Boost.Process's own pipes instead.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <string>
#include <vector>

#include "runner/memory.h"
#include "runner/signals.h"

namespace runner {

struct SpawnRequest {
  static constexpr int kSameAsOut = -2;  // err_fd: stderr where stdout goes
  static constexpr int kKeep = -1;       // err_fd: runner's own stderr

  std::string path;                      // resolved
  const std::vector<std::string>* argv;  // argv[0] is replaced by nothing: it is the name given
  char** envp;                           // null: runner's own environment
  int out_fd;                            // its stdout (and stderr, unless err_fd says otherwise)
  int in_fd;                             // its stdin
  // The signal state runner was started with, given back before exec; null:
  // runner's own kept (a worker leaves SIGINT from the terminal to runner).
  const InheritedSignals* signals;
  const Cage* cage = nullptr;      // null: none
  const rlimit* nofile = nullptr;  // the descriptor limit to give back, if runner raised its own
  int err_fd = kSameAsOut;
  // A process group of its own: Ctrl-C in the terminal reaches it only
  // through runner, and runner signals its whole tree at once.
  bool own_group = true;
};

struct SpawnResult {
  pid_t pid = -1;
  int error = 0;             // errno, when it failed
  bool exec_failed = false;  // a process was made, but it could not exec
};

// vfork and exec, with the child's set-up between them. The caller reaps
// the child (wait4, waitpid): Boost.Process's own wait is not used.
SpawnResult spawn_child(const SpawnRequest& request);

}  // namespace runner
