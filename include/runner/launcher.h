// The seam between the scheduler and the processes it runs. The scheduler
// decides what runs and when; a Launcher starts children, signals them, and
// reports when they end. LocalLauncher does it with real processes; tests use
// a fake one, and later launchers (memory caps, Slurm) slot in behind this.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "runner/cluster.h"

namespace runner {

using Clock = std::chrono::steady_clock;

// What to start: one attempt of one cluster.
struct LaunchSpec {
  ClusterId cluster = 0;
  ClusterId clusters = 0;
  std::uint32_t attempt = 0;
  std::string job;
  std::vector<std::string> argv;  // argv[0] is a path (resolved by the caller)
  std::string log_path;           // stdout and stderr go here, or beside it if the name is taken
  std::optional<std::uint64_t> mem_limit;  // bytes; the launcher's mechanism enforces it
};

struct Started {
  pid_t pid = 0;
  std::string log_path;  // where the log really is
};

// The start itself failed. `error` is the errno.
struct StartFailed {
  enum class Kind {
    kCommand,       // the program could not be executed: the attempt failed (127)
    kTransient,     // no process could be made now (fork: EAGAIN): try again later
    kShortOfFiles,  // runner has no open file to spare (EMFILE, ENFILE): run fewer at once
    kEnvironment,   // runner's own means failed (log folder full, cgroup): stop starting
  };
  int error = 0;
  std::string message;  // "cannot execute ./migrat: No such file or directory"
  Kind kind = Kind::kCommand;
  std::string log_path;  // kCommand: the attempt's log, which says why; "" if none
};

using StartResult = std::variant<Started, StartFailed>;

// How a child ended, with what wait4 measured for its process tree.
struct ChildExit {
  pid_t pid = 0;
  std::optional<int> exit_code;  // set when it exited
  std::optional<int> signal;     // set when a signal killed it
  double user_cpu_s = 0;
  double sys_cpu_s = 0;
  std::uint64_t peak_rss_kib = 0;
  std::optional<std::uint64_t> peak_cgroup_kib;  // where the launcher has a cgroup
  bool oom = false;      // it died for want of memory (certain, or likely: see note)
  std::string oom_note;  // the evidence, in words
};

// What woke the scheduler: children that ended, and signals runner received.
struct Wakeup {
  std::vector<ChildExit> exits;
  std::vector<int> signals;
};

class Launcher {
 public:
  virtual ~Launcher() = default;
  virtual StartResult start(const LaunchSpec& spec) = 0;
  // Blocks until a child ends, a signal arrives, or the deadline passes.
  virtual Wakeup wait(std::optional<Clock::time_point> deadline) = 0;
  // Sends sig to the child's whole process group (and its cgroup, if any).
  // Returns 0, or the errno when not one of its processes could be signalled
  // (EPERM: it made itself runner's superior, a setuid program say).
  virtual int signal(pid_t pid, int sig) = 0;

  // Memory: the mechanism that caps children ("cgroup-v1", "rlimit", "none"),
  // and, where it can be read cheaply, what a child and all of them use now.
  virtual std::string cap_name() const { return "none"; }
  virtual std::optional<std::uint64_t> memory_in_use(pid_t) const { return std::nullopt; }
  virtual std::optional<std::uint64_t> total_memory_in_use() const { return std::nullopt; }
};

}  // namespace runner
