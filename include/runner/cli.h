// runner's command line, parsed with CLI11 into plain values. Everything the
// user typed is checked here, before anything is opened or written.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "runner/cluster.h"
#include "runner/memory.h"
#include "runner/policy.h"
#include "runner/stream_log.h"

namespace runner {

constexpr ClusterId kMaxClusters = 9'223'372'036'854'775'807ULL;  // SQLite's INTEGER
constexpr std::uint32_t kMaxParallel = 100'000;

struct RunArgs {
  ClusterId clusters = 0;
  std::uint32_t parallel = 0;
  std::vector<std::string> command;
  std::filesystem::path db = "runner.db";
  std::optional<std::string> job;
  std::optional<std::filesystem::path> logs;
  // --log-format: each attempt's output in a file of its own, or appended by
  // the worker to one stream per run (stream_log.h).
  LogFormat log_format = LogFormat::kFiles;
  std::chrono::milliseconds grace{10'000};
  bool skip_failed = false;
  bool quiet = false;
  bool verbose = false;
  // Memory.
  std::optional<std::uint64_t> mem_limit;   // bytes
  std::optional<std::uint64_t> mem_budget;  // bytes; unset with mem_budget_auto
  bool mem_budget_auto = false;             // --mem-budget auto: what is available
  bool mem_overcommit = false;
  CapChoice cap = CapChoice::kAuto;
  // Reliability.
  std::optional<std::chrono::milliseconds> timeout;
  RetryPolicy retry;  // --retries, --retry-delay, --retry-on
  HaltPolicy halt;
  bool sync_full = false;
  // --orphans: wait for what a killed runner left running and record how it
  // ended (the default), or kill it and run it again.
  bool orphans_wait = true;
  // --worker: a worker process is the parent of every cluster and journals
  // how each ended (the default); off: runner itself is their parent.
  bool worker = true;
  // --on: where the clusters run, a planner's word (plan.h): here, over the
  // nodes of the Slurm allocation runner runs in, over SSH hosts.
  std::string on = "local";
  // --on ssh: the hosts (a file, or a comma-separated list) and the command
  // that reaches them.
  std::optional<std::string> hosts;
  std::optional<std::string> ssh;
  // --order: clusters that earlier jobs ran start longest first (the
  // default), or every cluster in numeric order (index).
  bool order_by_index = false;
  // --on-finish: run once through sh -c when the run ends, however it ends,
  // for at most on_finish_limit.
  std::optional<std::string> on_finish;
  // --metrics: the run's figures for node_exporter's textfile collector.
  std::optional<std::filesystem::path> metrics;
  std::chrono::milliseconds on_finish_limit{60'000};
};

struct ReportArgs {
  std::filesystem::path db = "runner.db";
  std::optional<std::string> job;
  enum class Format { kText, kCsv, kJson } format = Format::kText;
  std::optional<std::uint64_t> mem_budget;    // for the advice on P
  std::optional<std::filesystem::path> html;  // write the page of one job there
};

struct DoctorArgs {};

// runner worker: the process runner starts to run its clusters (not for people).
struct WorkerArgs {
  // Only kill this machine's processes of that run (RUNNER_RUN), and exit:
  // what a node's worker that died left there.
  std::optional<std::string> kill_run;
  // Only check that this node can run the job (the program, the folder),
  // print "ok <node>" or what is wrong, and exit.
  std::optional<std::string> check_program, check_dir;
  // ... and that it sees this file, which runner made in its log folder.
  std::optional<std::string> check_shared;
  // ... and say how many CPUs and how many bytes of memory it has for runner.
  bool check_resources = false;
  // ... and that no other job than this one (its DB's path, its name) has a
  // claim on this node of that allocation (see node_claim.h).
  std::optional<std::string> check_allocation, check_db, check_job;
  // Only print one attempt's output from a stream on this machine
  // (`<stream>#<cluster>.<attempt>`), for runner log over ssh.
  std::optional<std::string> cat_log;
};

struct StatusArgs {
  std::filesystem::path db = "runner.db";
  std::optional<std::string> job;
  bool json = false;  // every field of the text, as one JSON array of jobs
};

// runner unlock: clears a job's hold that its holder cannot clear itself.
struct UnlockArgs {
  std::filesystem::path db = "runner.db";
  std::string job;
};

// runner log: one attempt's output, wherever it ran.
struct LogArgs {
  std::filesystem::path db = "runner.db";
  std::optional<std::string> job;  // none: the DB's only job
  ClusterId cluster = 0;
  std::optional<std::uint32_t> attempt;  // none: the cluster's latest
  std::optional<std::string> ssh;        // how to reach the host it ran on (--on ssh's --ssh)
};

// --help or --version: text to print, then exit 0.
struct PrintAndExit {
  std::string text;
};

using Invocation = std::variant<RunArgs, StatusArgs, ReportArgs, DoctorArgs, UnlockArgs, LogArgs,
                                WorkerArgs, PrintAndExit>;

// args: the command line without the program name. Throws Error (exit code
// 2) with a one-line message naming the bad value.
Invocation parse_command_line(const std::vector<std::string>& args);

}  // namespace runner
