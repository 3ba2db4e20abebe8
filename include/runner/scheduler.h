// The pool loop: starts clusters that are not done, at most P at a time,
// starting the next one the moment one ends; records every attempt in the
// store; reacts to runner's own signals, --halt and memory pressure. What to
// start next is Admission's; how an ended attempt is judged is classify();
// how writes are grouped is CommitGroup's; how attempts run is the engine's.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "runner/admission.h"
#include "runner/cluster.h"
#include "runner/commit_group.h"
#include "runner/engine.h"
#include "runner/metrics.h"
#include "runner/policy.h"
#include "runner/progress.h"
#include "runner/run_summary.h"
#include "runner/signals.h"
#include "runner/store.h"

namespace runner {

struct SchedulerOptions {
  std::uint32_t parallel = 1;
  bool skip_failed = false;
  std::filesystem::path log_dir;            // this job's folder; must exist
  std::optional<std::uint64_t> mem_limit;   // bytes, each child's cap
  std::optional<std::uint64_t> mem_budget;  // bytes, all running children together
  bool mem_overcommit = false;
  std::optional<std::chrono::milliseconds> timeout;  // per attempt
  RetryPolicy retry;
  HaltPolicy halt;
  std::vector<SiteOptions> sites;  // under a budget over several nodes: each one's slots and budget
  std::uint64_t seed = 0;          // for the retries' jitter; 0: from the clock
  Order order = Order::kHistory;   // of first attempts
};

class Scheduler {
 public:
  Scheduler(Store& store, const Job& job, const CommandTemplate& command, Engine& engine,
            SignalSource& signals, Progress* progress, SchedulerOptions options);
  RunSummary run();
  // --metrics: refreshed as the run goes (the final write is the caller's).
  void set_metrics(MetricsWriter* metrics) { metrics_ = metrics; }
  MetricsFacts metrics_facts() const;

 private:
  // An attempt asked of the engine, until it has ended.
  struct Running {
    Candidate what;
    AttemptStart record;   // its row, as written once it started
    std::int64_t row = 0;  // 0 until it started
    Clock::time_point started{};
    bool stopped = false;                     // runner stopped it: its end is `interrupted`
    std::optional<std::uint64_t> evicted_at;  // bytes in use when evicted for the budget
  };
  // An end judged, not written yet: written once the freed slots are filled,
  // so that a new child starts without waiting on SQLite.
  struct Ended {
    std::int64_t row;
    ClusterId cluster;
    AttemptEnd end;
  };

  void handle(const EngineEvent& event);
  void on_started(const AttemptStarted& started);
  void on_not_started(const AttemptNotStarted& failure);
  void on_ended(const AttemptEnded& ended);
  void fill();
  void start(const Candidate& c);
  void record_failed_start(const Running& r, const AttemptNotStarted& failure);
  void after_budget_kill(const Running& r, std::uint64_t reached);
  void after_unsuccessful(const Running& r, AttemptState state, const Outcome& outcome);
  void retry_or_finish(const Running& r, AttemptState state, const Outcome& outcome);
  void run_again_for_budget(const Running& r, std::uint64_t reached, bool budget_oom = false);
  void write_ends();
  std::vector<EngineEvent> wait_for_events();
  bool signal_pending() const;
  void on_signal(int sig);
  void stop(const std::string& why, bool stop_running);
  void stop_all(StopMode mode);
  void watch_memory();
  std::optional<Clock::time_point> deadline() const;
  Snapshot snapshot() const;
  void show_progress();

  Store& store_;
  const Job& job_;
  const CommandTemplate& command_;
  Engine& engine_;
  SignalSource& signals_;
  Progress* progress_;
  MetricsWriter* metrics_ = nullptr;
  std::uint64_t attempts_started_ = 0;
  double started_wall_ = 0;
  SchedulerOptions options_;
  Admission admission_;
  CommitGroup group_;

  std::unordered_map<AttemptId, Running> running_;  // asked of the engine, not ended
  std::size_t n_started_ = 0;                       // of those, started
  AttemptId next_id_ = 1;
  std::vector<Ended> unwritten_ends_;
  std::uint32_t parallel_now_ = 1;  // P, or fewer when the engine is short of open files
  bool stopping_ = false;
  bool one_started_ = false;  // an attempt of this run has started
  bool pressure_ = false;     // real usage is near the budget: admit nothing
  Clock::time_point started_{};
  RunSummary summary_;
  std::optional<Clock::time_point> next_watch_;
  std::mt19937_64 rng_;
  std::uint64_t finished_ = 0;  // clusters with a final outcome in this run
  std::uint64_t final_failures_ = 0;
  std::optional<Clock::time_point> start_again_at_;  // after a fork failure
  std::chrono::milliseconds start_backoff_{0};
};

}  // namespace runner
