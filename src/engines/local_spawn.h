// Inside the local engine: making one child process and its log file.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <string>
#include <vector>

#include "runner/memory.h"
#include "runner/signals.h"

namespace runner {

struct SpawnRequest {
  std::string path;                      // resolved
  const std::vector<std::string>* argv;  // argv[0] is replaced by nothing: it is the name given
  char** envp;
  int log_fd;
  int null_fd;
  const InheritedSignals* signals;
  const Cage* cage;      // null: none
  const rlimit* nofile;  // the descriptor limit to give back, if runner raised its own
};

struct SpawnResult {
  pid_t pid = -1;
  int error = 0;             // errno, when it failed
  bool exec_failed = false;  // a process was made, but it could not exec
};

// vfork and exec, with the child's set-up between them.
SpawnResult spawn_child(const SpawnRequest& request);

// Creates an attempt's log in its folder, new: never through a symbolic link
// and never over a file that exists, whoever made it (an earlier DB that
// shared this log folder, a link planted there). A taken name gets a fresh
// one beside it: 3.1.log, then 3.1-2.log, 3.1-3.log, ... `name` is updated.
// Returns the fd, or -1 with errno set.
int create_log(int dir_fd, std::string& name);

}  // namespace runner
