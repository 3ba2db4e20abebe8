// The pool loop: starts clusters that are not done, at most P at a time,
// starting the next one the moment a slot frees; records every attempt in the
// store; stops in steps (SIGTERM, grace, SIGKILL) when runner is signalled.
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "runner/cluster.h"
#include "runner/error.h"
#include "runner/intervals.h"
#include "runner/launcher.h"
#include "runner/progress.h"
#include "runner/store.h"

namespace runner {

struct SchedulerOptions {
  std::uint32_t parallel = 1;
  std::chrono::milliseconds grace{10'000};
  bool skip_failed = false;
  std::filesystem::path log_dir;  // this job's folder; must exist
};

// What one run did, for the summary and the exit code.
struct RunSummary {
  ClusterId clusters = 0;
  ClusterId done = 0;  // done clusters of the job at the end
  ClusterId done_this_run = 0;
  ClusterId failed_this_run = 0;
  ClusterId interrupted = 0;                 // attempts stopped by runner's own shutdown
  ClusterId recovered = 0;                   // attempts a dead runner had left `running`
  ClusterId skipped_failed = 0;              // left alone by --skip-failed
  std::optional<int> stop_signal;            // set when a signal stopped the run
  std::optional<std::string> setup_failure;  // the command cannot be executed at all
  std::chrono::milliseconds elapsed{0};

  int exit_code() const;
};

class Scheduler {
 public:
  Scheduler(Store& store, const Job& job, const CommandTemplate& command, Launcher& launcher,
            Progress* progress, SchedulerOptions options);
  RunSummary run();

 private:
  struct Running {
    ClusterId cluster = 0;
    std::uint32_t attempt = 0;
    std::int64_t row = 0;
    std::string log_path;
    bool signalled = false;  // runner asked it to stop: its end is `interrupted`
  };

  std::optional<ClusterId> next_cluster();
  void fill();
  void start(ClusterId cluster);
  void finish(const ChildExit& exit);
  void on_signal(int sig);
  void signal_all(int sig);
  std::optional<Clock::time_point> deadline() const;
  Snapshot snapshot() const;

  Store& store_;
  const Job& job_;
  const CommandTemplate& command_;
  Launcher& launcher_;
  Progress* progress_;
  SchedulerOptions options_;

  IntervalSet done_;
  std::set<ClusterId> skip_;  // failed clusters left alone (--skip-failed)
  ClusterId cursor_ = 1;      // every cluster below it has been started or skipped
  bool more_ = true;          // clusters remain to be started
  std::map<pid_t, Running> running_;
  bool stopping_ = false;
  std::optional<Clock::time_point> kill_at_;  // end of the grace period
  Clock::time_point started_{};
  RunSummary summary_;
};

}  // namespace runner
