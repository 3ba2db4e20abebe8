// Runs children as real processes on this machine, through Boost.Process.
// Each child gets its own process group, stdin from /dev/null, stdout and
// stderr into its log file, the RUNNER_* variables, and the signal mask runner
// had before it blocked its own signals, and, given MemoryCaps, a cage of its
// own (a cgroup, or an rlimit) that it enters before exec. Children are reaped
// with wait4, so their rusage (CPU time, peak RSS of the tree) is exact.
#pragma once

#include <sys/resource.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "runner/launcher.h"
#include "runner/memory.h"
#include "runner/signals.h"

namespace runner {

// Where the program named by argv[0] is: a name with a '/' as it is, any other
// name looked up in PATH as execvp would. Returns the errno of the failure.
struct Resolved {
  std::string path;
  int error = 0;
};
Resolved resolve_program(const std::string& name);

// Whether the kernel can execute the file at `path` as it is: an ELF program
// or a script with a #! line; anything else fails with ENOEXEC (a script
// without its #! line), unless the machine has binfmt_misc handlers, which
// may take other formats. Returns 0 or ENOEXEC.
int check_executable_format(const std::string& path);

class LocalLauncher : public Launcher {
 public:
  // caps may be null: no caps, and no cgroup peaks.
  // runner becomes a child subreaper: descendants that daemonise (setsid,
  // double fork) are reparented to it, and killed once their cluster ended.
  LocalLauncher(SignalChannel& signals, MemoryCaps* caps);
  ~LocalLauncher() override;
  LocalLauncher(const LocalLauncher&) = delete;
  LocalLauncher& operator=(const LocalLauncher&) = delete;

  // Makes room for `parallel` clusters at once: each holds a few descriptors
  // in runner (its log while starting; with cgroups, its cgroup folder,
  // cgroup.procs, peak and OOM count). Raises the soft RLIMIT_NOFILE as far
  // as the hard limit allows when it is too low; children get the original.
  void reserve_descriptors(std::size_t parallel);

  StartResult start(const LaunchSpec& spec) override;
  Wakeup wait(std::optional<Clock::time_point> deadline) override;
  int signal(pid_t pid, int sig) override;
  std::string cap_name() const override;
  std::optional<std::uint64_t> memory_in_use(pid_t pid) const override;
  std::optional<std::uint64_t> total_memory_in_use() const override;

 private:
  struct Child {
    std::unique_ptr<Cage> cage;
    std::string log_path;
    std::optional<std::uint64_t> mem_limit;
    std::string env_tag;  // "RUNNER_CLUSTER=3\0RUNNER_ATTEMPT=1": how its descendants are known
  };
  StartResult try_start(const LaunchSpec& spec);
  std::optional<StartFailed> open_log_folder(const std::string& folder);
  std::optional<StartFailed> resolve(const std::string& program);
  StartResult spawn(const LaunchSpec& spec, int log_fd, const Cage* cage);
  void reap(Wakeup& into);
  void kill_strays(bool all);
  bool has_cgroups() const;
  void judge_memory(Child& child, ChildExit& exit);

  SignalChannel& signals_;
  int dev_null_ = -1;
  std::string run_var_;          // RUNNER_RUN=<pid>-<start>
  std::vector<char*> base_env_;  // runner's environment minus RUNNER_*, plus run_var_
  MemoryCaps* caps_;
  std::unordered_map<pid_t, Child> children_;
  std::string resolved_name_, resolved_path_;  // the last program looked up
  std::string log_dir_;                        // the open log folder, and its fd
  int log_dir_fd_ = -1;
  std::optional<rlimit> children_nofile_;  // set when runner raised its own
};

}  // namespace runner
