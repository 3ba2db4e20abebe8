// The pool loop: starts clusters that are not done, at most P at a time,
// starting the next one the moment a slot frees; records every attempt in the
// store; keeps the pool within a memory budget when one is given; enforces
// timeouts, retries and --halt; stops in steps (SIGTERM, grace, SIGKILL) when
// runner is signalled.
#pragma once

#include <chrono>
#include <deque>
#include <filesystem>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>

#include "runner/budget.h"
#include "runner/cluster.h"
#include "runner/error.h"
#include "runner/intervals.h"
#include "runner/launcher.h"
#include "runner/policy.h"
#include "runner/progress.h"
#include "runner/store.h"

namespace runner {

struct SchedulerOptions {
  std::uint32_t parallel = 1;
  std::chrono::milliseconds grace{10'000};
  bool skip_failed = false;
  std::filesystem::path log_dir;            // this job's folder; must exist
  std::optional<std::uint64_t> mem_limit;   // bytes, each child's cap
  std::optional<std::uint64_t> mem_budget;  // bytes, all running children together
  bool mem_overcommit = false;
  std::optional<std::chrono::milliseconds> timeout;  // per attempt
  RetryPolicy retry;
  HaltPolicy halt;
  std::uint64_t seed = 0;  // for the retries' jitter; 0: from the clock
};

// What one run did, for the summary and the exit code.
struct RunSummary {
  ClusterId clusters = 0;
  ClusterId done = 0;  // done clusters of the job at the end
  ClusterId done_this_run = 0;
  ClusterId failed_this_run = 0;  // attempts that ended failed, oom or timeout
  ClusterId oom_this_run = 0;
  ClusterId timed_out = 0;
  ClusterId retried = 0;              // attempts started again by --retries
  ClusterId interrupted = 0;          // attempts stopped by runner's own shutdown
  ClusterId waiting_again = 0;        // queued to run again (a retry, an eviction) when a stop came
  ClusterId recovered = 0;            // attempts a dead runner had left `running`
  ClusterId skipped_failed = 0;       // left alone by --skip-failed
  ClusterId too_big = 0;              // need more than the whole budget: not started
  ClusterId evicted = 0;              // stopped and requeued to keep within the budget
  ClusterId budget_ooms = 0;          // killed by the kernel at the budget and requeued
  std::optional<int> stop_signal;     // set when a signal stopped the run
  std::optional<std::string> halted;  // why the run stopped early otherwise
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
  // A cluster about to start, with what to reserve for it and what to cap it at.
  struct Candidate {
    ClusterId cluster = 0;
    std::uint32_t retry = 0;         // retries of it so far in this run
    std::uint32_t last_attempt = 0;  // its latest attempt's number, where known
    std::uint64_t need = 0;          // bytes reserved from the budget
    bool guessed = false;            // need is a learned guess (overcommit)
    bool alone = false;              // a retry after OOM: the whole budget to itself
    bool budget_oom = false;         // the kernel killed an earlier attempt at the budget
    std::optional<std::uint64_t> cap;
  };
  struct Running {
    Candidate what;
    std::uint32_t attempt = 0;
    std::int64_t row = 0;
    std::string log_path;
    Clock::time_point started{};
    bool signalled = false;                   // runner stopped it: its end is `interrupted`
    bool timed_out = false;                   // --timeout expired: its end is `timeout`
    bool unreachable = false;                 // a signal to it failed (said once)
    std::optional<std::uint64_t> evicted_at;  // bytes in use when evicted for the budget
    std::optional<Clock::time_point> timeout_at;
    std::optional<Clock::time_point> kill_at;  // SIGKILL if still there by then
  };

  std::optional<ClusterId> next_cluster();
  std::optional<Candidate> next_candidate();
  std::optional<Candidate> take_first_attempt();
  std::optional<Candidate> take_ready_retry();
  Candidate candidate_for(ClusterId cluster);
  bool fits(const Candidate& c) const;
  bool has_work() const {
    return more_ || !deferred_.empty() || !requeue_.empty() || !ready_retries_.empty() ||
           !retry_at_.empty();
  }
  void fill();
  void start(const Candidate& c);
  void after_failed_start(const Candidate& c, const AttemptStart& record,
                          const StartFailed& failure);
  void finish(const ChildExit& exit);
  void after_unsuccessful(const Running& r, AttemptState state, const ChildExit& exit);
  bool killed_at_budget(const Running& r, const ChildExit& exit) const;
  void run_again_for_budget(const Running& r, std::uint64_t reached);
  void on_signal(int sig);
  void stop(const std::string& why, bool kill_running);
  void terminate(pid_t pid, Running& r);
  void send(pid_t pid, Running& r, int sig);
  void enforce_deadlines();
  void watch_memory();
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
  ClusterId fresh_from_ = 1;  // clusters from here on were never attempted
  bool more_ = true;          // clusters remain below N to be started
  std::map<pid_t, Running> running_;
  // Ends decided but not yet written: written once the freed slots are
  // filled, so that a new child starts without waiting on SQLite.
  struct Ended {
    std::int64_t row;
    ClusterId cluster;
    AttemptEnd end;
  };
  std::vector<Ended> unwritten_ends_;
  std::uint32_t parallel_now_ = 1;  // P, or fewer when runner is short of open files
  bool stopping_ = false;
  Clock::time_point started_{};
  RunSummary summary_;

  // Memory budget, when there is one.
  std::optional<MemoryBudget> budget_;
  std::vector<std::int64_t> history_jobs_;
  std::deque<Candidate> requeue_;   // to run again in this run; nothing passes them
  std::deque<Candidate> deferred_;  // did not fit yet; later clusters may pass them
  std::size_t head_passed_ = 0;     // how often the oldest deferred one was passed
  bool pressure_ = false;           // real usage is near the budget: admit nothing
  std::optional<Clock::time_point> next_watch_;

  // Retries, halting, and starts that must wait for the machine.
  std::multimap<Clock::time_point, Candidate> retry_at_;  // waiting out their backoff
  std::deque<Candidate> ready_retries_;
  bool retry_turn_ = false;  // retries and first attempts take turns
  std::mt19937_64 rng_;
  ClusterId finished_ = 0;  // clusters with a final outcome in this run
  ClusterId final_failures_ = 0;
  std::optional<Clock::time_point> start_again_at_;  // after a fork failure
  std::chrono::milliseconds start_backoff_{0};
};

}  // namespace runner
