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

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "runner/fd.h"
#include "runner/memory.h"
#include "runner/signals.h"

namespace runner {

// A line a starting process appends to a file of runner's before it execs,
// its pid and a newline added: how a journal names the process of a start
// before that process can end (see journal.h).
struct ProcessNote {
  int fd = -1;  // -1: none
  std::string line;
};

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
  const ProcessNote* note = nullptr;  // null: none
};

struct SpawnResult {
  pid_t pid = -1;
  int error = 0;             // errno, when it failed
  bool exec_failed = false;  // a process was made, but it could not exec
};

// vfork and exec, with the child's set-up between them. The caller reaps
// the child (wait4, waitpid): Boost.Process's own wait is not used.
SpawnResult spawn_child(const SpawnRequest& request);

// A descriptor that becomes readable once process `pid` has ended; empty
// where the kernel offers none (before 5.3, or a seccomp filter refuses
// pidfd_open).
Fd open_pidfd(pid_t pid);

// How a child of runner ended, read without collecting it: until it is
// reaped (waitpid), it stays a zombie that keeps its pid, and its process
// group's id, from being reused. nullopt while it runs, or when it is not
// runner's child.
struct ChildEnd {
  int status = 0;  // as wait4 gives it
  rusage usage{};  // its own and its reaped descendants', as wait4 gives them
};
std::optional<ChildEnd> peek_end(pid_t pid);

// The same look, also telling a child that runs from a process that is not
// runner's child, in one call: nothing can end between the two.
struct ChildLook {
  bool mine = false;
  std::optional<ChildEnd> end;  // mine and ended
};
ChildLook look_at_child(pid_t pid);

// Collects a child of runner that has ended (waitpid, waiting for it).
void reap_child(pid_t pid);

// Collects runner's children that have ended, but those `keep` names
// (whose end their owner reads first). The kernel shows only the first
// ended child without collecting it: at a kept one, the rest wait for the
// next call.
void reap_ended_children(const std::function<bool(pid_t)>& keep);

}  // namespace runner
