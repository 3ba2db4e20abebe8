// The engine that runs attempts as processes on this machine. Each child gets
// its own process group, stdin from /dev/null, stdout and stderr into its log
// (its own file, or a pipe the engine reads into the run's stream: see
// stream_log.h), the RUNNER_* variables, the signal state runner was started with, and
// a cage of its own (a cgroup, or an rlimit) that it enters before exec. Its
// end is read with its rusage (CPU time, peak RSS of the tree), exact, but
// it is reaped only once the caller has acted on the end: at the next
// wait(), or, with reap_when_released, once the caller releases it (a
// worker, once it has journalled the end). Should the caller die first, the
// ended child is still there for whoever adopts it to read how it ended
// (see worker_engine.h). runner becomes a child subreaper: descendants that daemonise are
// reparented to it and killed once their cluster has ended. Timeouts and the
// steps of a stop (SIGTERM, the grace, SIGKILL) are enforced here, each child
// on its own monotonic clock.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "runner/engine.h"
#include "runner/fd.h"
#include "runner/memory.h"
#include "runner/signals.h"
#include "runner/spawn.h"
#include "runner/stream_log.h"
#include "runner/sysinfo.h"

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

// Whose limit killed an attempt the kernel killed for memory. A cgroup that
// hits its own limit peaks within a few pages of it (the charge that failed);
// one killed further below its cap was stopped by the run's limit.
MemoryKill whose_limit(std::uint64_t peak_bytes, std::optional<std::uint64_t> own_cap,
                       bool run_is_limited);

// What any child's end tells, read with peek_end: its exit code or signal,
// when, its CPU time and the largest RSS of its tree.
Outcome outcome_of_end(const ChildEnd& end);

struct LocalEngineOptions {
  std::unique_ptr<MemoryCaps> caps;         // null: no caps, and no cgroup peaks
  std::optional<std::uint64_t> run_limit;   // bytes: all cages together (the budget)
  std::chrono::milliseconds grace{10'000};  // between SIGTERM and SIGKILL
  std::size_t parallel = 1;                 // the most children at once, for open files
  InheritedSignals inherited;               // what children get back before exec
  std::string run;   // the run's id its processes carry (RUNNER_RUN); "": this process's
  std::string site;  // the node or host its children run on (RUNNER_SITE); "": none said
  LogFormat log_format = LogFormat::kFiles;
  // The line each child writes of itself before it execs (a worker's
  // journal), if any.
  std::function<ProcessNote(const AttemptSpec&)> process_note;
  // An ended child is reaped only once release() is called for it.
  bool reap_when_released = false;
};

class LocalEngine : public Engine {
 public:
  explicit LocalEngine(LocalEngineOptions options);
  ~LocalEngine() override;  // kills and collects whatever still runs
  LocalEngine(const LocalEngine&) = delete;
  LocalEngine& operator=(const LocalEngine&) = delete;

  std::optional<EngineEvent> start(AttemptSpec spec) override;
  void stop(AttemptId id, StopMode mode) override;
  std::vector<EngineEvent> wait(std::optional<Clock::time_point> deadline, int wake_fd) override;
  std::optional<std::vector<FoundExecution>> settle(const Leftovers& left, LeftoverPolicy policy,
                                                    int wake_fd) override;
  std::optional<std::uint64_t> memory_in_use(AttemptId id) const override;
  std::optional<std::uint64_t> total_memory_in_use() const override;
  // With reap_when_released: the end of `id` is acted on; its process goes.
  void release(AttemptId id);

  // What this run's processes carry in RUNNER_RUN: how a later runner finds them.
  const std::string& run_id() const { return run_id_; }
  // Where an attempt's output will be: its file, or its place in the stream.
  std::string log_path_for(const AttemptSpec& spec);

 private:
  struct Child {
    AttemptSpec spec;
    std::unique_ptr<Cage> cage;
    std::string log_path;
    std::string log_name;  // files form: its file in the log folder
    Fd output;             // stream form: the read end of its stdout and stderr, until EOF
    bool wrote = false;    // stream form: some output of it is in the stream
    std::string tail;      // stream form, under an rlimit cap: the end of its output
    Fd ended;              // its pidfd: readable once it has ended (empty: none to be had)
    std::optional<Clock::time_point> timeout_at;
    std::optional<Clock::time_point> kill_at;  // SIGKILL then, if still there
    bool timed_out = false;
    std::string unstoppable;
  };

  // Where a starting child's output goes, and where the engine reads it.
  struct Output {
    std::string log_path, log_name;
    Fd child_end;  // its stdout and stderr
    Fd read_end;   // stream form
  };

  EngineEvent try_start(const AttemptSpec& spec);
  EngineEvent exec_failed(const AttemptSpec& spec, const Output& out, int error);
  std::optional<AttemptNotStarted> open_log_folder(const AttemptSpec& spec);
  std::optional<AttemptNotStarted> open_stream(const AttemptSpec& spec);
  std::optional<AttemptNotStarted> open_output(const AttemptSpec& spec, Output& out);
  void watch_end(pid_t pid, Child& child);
  void watch_output(pid_t pid, const Child& child);
  void read_outputs();
  void read_output(Child& child, bool to_the_end);
  void keep_output(Child& child, std::string_view data);
  void drop_empty_log(const Child& child, Outcome& out);
  std::optional<AttemptNotStarted> resolve(const AttemptSpec& spec);
  void reserve_descriptors(std::size_t parallel);
  void send(pid_t pid, Child& child, int sig);
  void reap();
  std::vector<pid_t> ended_children();
  void end_child(pid_t pid, const ChildEnd& end);
  void reap_adopted_descendants();
  Outcome outcome_of(Child& child, const ChildEnd& end);
  void judge_memory(Child& child, Outcome& outcome);
  void enforce_deadlines();
  std::optional<Clock::time_point> next_deadline() const;
  void kill_strays(bool all);
  bool has_cgroups() const;
  std::string cap_name() const;

  LocalEngineOptions options_;
  BlockedSignal child_ended_{SIGCHLD};
  Fd dev_null_;
  std::string run_id_;
  std::string run_var_;          // RUNNER_RUN=<run id>
  std::string site_var_;         // RUNNER_SITE=<site>, where there is one
  std::vector<char*> base_env_;  // runner's environment minus RUNNER_*, plus those two
  std::unordered_map<pid_t, Child> children_;
  std::unordered_map<AttemptId, pid_t> pid_of_;
  Fd ends_;                     // epoll: the children's pidfds
  std::size_t unwatched_ = 0;   // children without a pidfd, looked at on every SIGCHLD
  std::vector<pid_t> to_reap_;  // ended children told of, reaped at the next wait()
  std::unordered_map<AttemptId, pid_t> unreleased_;  // with reap_when_released
  std::vector<EngineEvent> events_;                  // told at the next wait()
  std::string resolved_name_, resolved_path_;        // the last program looked up
  std::string log_dir_;                              // the open log folder
  std::string host_ = host_name();                   // where its clusters run
  Fd log_dir_fd_;
  std::optional<rlimit> children_nofile_;  // set when runner raised its own
  // Stream form: the run's stream, and an epoll set of the children's pipes.
  std::unique_ptr<StreamWriter> stream_;
  std::string stream_dir_;
  Fd outputs_;
  std::vector<char> buffer_;
  bool stream_failed_ = false;  // said once
};

}  // namespace runner
