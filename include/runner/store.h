// The durable log: one SQLite file (WAL mode) holding jobs, every attempt of
// every cluster, the done clusters as ranges, and which runner holds each job.
// The public face of the file is its two views, `progress` and `attempts`,
// which the README documents; the tables behind them are runner's own.
//
// A Store owns its connection. It is not thread-safe; runner has one thread.
#pragma once

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "runner/cluster.h"
#include "runner/intervals.h"
#include "runner/sysinfo.h"

namespace runner {

constexpr int kSchemaVersion = 5;
// status and report read logs from this version on as they are (version 3
// changed an index only; version 4 the view's times and a column they do
// without; version 5 added the DB's id and its runs, which they do not read).
constexpr int kOldestReadableSchema = 2;

enum class AttemptState { kRunning, kDone, kFailed, kInterrupted, kOom, kTimeout };
const char* to_string(AttemptState state);
// The state a row of the log holds; an unknown word reads as kFailed.
AttemptState parse_state(std::string_view text);

struct Job {
  std::int64_t id = 0;
  std::string name;
  ClusterId clusters = 0;
  std::string command;  // CommandTemplate::display()
};

// When a job was made, and when a run of it last ended with every cluster
// done (seconds since the epoch).
struct JobTimes {
  double created_at = 0;
  std::optional<double> last_success_at;
};

struct Holder {
  ProcessIdentity process;
  double since = 0;  // epoch seconds
};

struct AttemptStart {
  ClusterId cluster = 0;
  std::uint32_t attempt = 0;
  pid_t pid = 0;  // 0 when the start itself failed
  double started_at = 0;
  std::string log_path;
  std::string cap;  // the memory mechanism: "cgroup-v1", "rlimit", "none"
  std::optional<std::uint64_t> mem_limit_kib;
  std::optional<double> timeout_s;
  std::string host;  // where it ran; "" for a start that failed here
};

// An attempt a runner left `running`, to look for its process.
struct LeftRunning {
  ClusterId cluster = 0;
  pid_t pid = 0;
  double started_at = 0;  // epoch seconds
  std::string host;
};

struct AttemptEnd {
  AttemptState state = AttemptState::kDone;
  double finished_at = 0;
  std::optional<int> exit_code;
  std::optional<int> signal;
  double user_cpu_s = 0;
  double sys_cpu_s = 0;
  std::uint64_t peak_rss_kib = 0;
  std::optional<std::uint64_t> peak_cgroup_kib;
  std::string note;            // why, in words, where the state alone does not say
  bool wrote_nothing = false;  // no output was kept: its log_path becomes NULL
};

// One row of the `progress` view.
struct JobProgress {
  std::string job;
  ClusterId clusters = 0, done = 0, failed = 0, running = 0, pending = 0;
};

// A cluster whose latest attempt did not succeed.
struct FailedCluster {
  ClusterId cluster = 0;
  std::uint32_t attempt = 0;
  AttemptState state = AttemptState::kFailed;
  std::optional<int> exit_code;
  std::optional<int> signal;
  std::string log_path;
  std::optional<std::uint64_t> mem_limit_kib;
  std::uint64_t peak_kib = 0;  // the cgroup's peak where there was one, else the RSS peak
  std::string note;
  std::optional<double> finished_at;  // epoch seconds
};

// One cluster in `runner report`: its attempts, and the last one's outcome.
struct ClusterReport {
  ClusterId cluster = 0;
  std::uint32_t attempts = 0;
  AttemptState state = AttemptState::kRunning;  // of the latest attempt
  std::optional<double> duration_s;
  std::optional<std::uint64_t> peak_rss_kib;     // highest over its attempts, where recorded
  std::optional<std::uint64_t> peak_cgroup_kib;  // highest over its attempts
};

// One attempt as a picture of the run draws it; small, since a job may have
// a million. A figure not recorded is 0 (peaks, limit) or -1 (exit code).
struct AttemptSpan {
  double started_at = 0;
  double finished_at = 0;  // 0 while it runs
  ClusterId cluster = 0;
  std::uint64_t peak_rss_kib = 0, peak_cgroup_kib = 0;
  std::uint32_t attempt = 0;
  std::uint32_t host = 0;  // index into the hosts read with it
  std::int32_t exit_code = -1;
  std::int32_t signal = 0;
  AttemptState state = AttemptState::kRunning;
};

// Every attempt of a job, by start time, with the hosts they name; their log
// paths only where asked for (one per attempt).
struct AttemptSpans {
  std::vector<AttemptSpan> spans;
  std::vector<std::string> hosts;
  std::vector<std::string> log_paths;
  std::uint64_t largest_cap_kib = 0;  // the largest --mem-limit an attempt had; 0: none
};

class Store {
 public:
  enum class Access { kReadWrite, kReadOnly };
  // synchronous = NORMAL (a commit survives runner's death) or FULL (it also
  // survives the machine's).
  enum class Sync { kNormal, kFull };
  // While another connection holds the write lock: called with how often it
  // was called for this wait so far; returns whether to try again. The
  // caller decides how long to wait between tries and what to say. Without
  // one, a write that finds the DB locked fails at once.
  using BusyWait = std::function<bool(int tries)>;
  // Opens (and, read-write, creates) the log at path. Throws Error, naming the
  // path, for a file that is not SQLite, not runner's, or from a newer runner.
  Store(const std::filesystem::path& path, Access access, Sync sync = Sync::kNormal,
        BusyWait busy = {});
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  const std::filesystem::path& path() const { return path_; }
  // Whether the file is no longer the one at its path (deleted, renamed,
  // replaced). A batch refuses to commit then (Error, ExitCode::kLogLost).
  bool moved();

  // Jobs. open_job refuses (Error, nothing written) a name that exists with a
  // different N or command.
  std::optional<Job> find_job(const std::string& name);
  Job open_job(const std::string& name, ClusterId clusters, const std::string& command);
  std::vector<Job> jobs();
  JobTimes job_times(const Job& job);
  // A run of the job ended with every cluster done, at `at`.
  void record_success(const Job& job, double at);

  // One runner per job. Takes the hold unless a holder is recorded that
  // `still_holds` says is there; returns that holder then. (A holder that
  // is gone has its hold taken over.) release_hold only clears a hold this
  // process owns.
  std::optional<Holder> acquire_hold(const Job& job, const ProcessIdentity& self,
                                     const std::function<bool(const Holder&)>& still_holds);
  void release_hold(const Job& job, const ProcessIdentity& self);
  std::optional<Holder> holder(const Job& job);
  // Clears whatever hold the job has (runner unlock).
  void clear_hold(const Job& job);

  // The DB's own id, which its workers' journals carry.
  std::string db_id();
  // Runs: each run of a job is recorded before its worker starts, and ended
  // once nothing of it can still run. open_runs lists those of a host and
  // boot not known to have ended (this one among them, while it runs).
  void record_run(const Job& job, const std::string& run, const ProcessIdentity& head);
  void end_runs(const Job& job, const std::vector<std::string>& runs);
  std::vector<std::string> open_runs(const Job& job, const std::string& host,
                                     const std::string& boot);
  bool has_run(const Job& job, const std::string& run);

  // Resume. Attempts left `running` by a runner that died become `interrupted`;
  // left_running lists them first, so that their processes can be found.
  std::vector<LeftRunning> left_running(const Job& job);
  std::uint64_t recover_interrupted(const Job& job);
  IntervalSet done_clusters(const Job& job);
  std::vector<FailedCluster> failed_clusters(const Job& job, std::size_t limit = SIZE_MAX);

  // Memory history: this job and earlier jobs with the same command and N
  // (nightly jobs repeat), this job first; and a cluster's highest recorded
  // peak (the larger of the two figures) among them.
  std::vector<std::int64_t> related_jobs(const Job& job);
  std::optional<std::uint64_t> peak_kib(const std::vector<std::int64_t>& jobs, ClusterId cluster);
  // What the done attempts of `jobs` (newest first) say of each cluster,
  // handed to `each` one cluster at a time, the newest job's figures only
  // (an older job's are skipped where a newer one has the cluster done).
  // Stops once `enough` clusters were handed (a job's N is enough); keeps
  // nothing per cluster.
  struct ClusterHistory {
    ClusterId cluster = 0;
    double seconds = 0;          // how long its successful attempt took
    std::uint64_t peak_kib = 0;  // its peak (the larger of the two figures)
  };
  void cluster_history(const std::vector<std::int64_t>& jobs, std::uint64_t enough,
                       const std::function<void(const ClusterHistory&)>& each);

  // Attempts. record_start returns the row id that record_end takes.
  std::uint32_t next_attempt(const Job& job, ClusterId cluster);
  // The highest cluster with any attempt: every cluster above it starts at attempt 1.
  ClusterId highest_attempted(const Job& job);
  std::int64_t record_start(const Job& job, const AttemptStart& start);
  // An attempt's row and state, where the log has it.
  struct AttemptRow {
    std::int64_t row = 0;
    AttemptState state = AttemptState::kRunning;
    std::optional<std::uint64_t> mem_limit_kib;
    std::optional<double> timeout_s;
    pid_t pid = 0;  // 0: none recorded
    double started_at = 0;
  };
  std::optional<AttemptRow> find_attempt(const Job& job, ClusterId cluster, std::uint32_t attempt);
  // Where an attempt ran and where its log is: the one named, or the
  // cluster's latest.
  struct AttemptLog {
    std::uint32_t attempt = 0;
    AttemptState state = AttemptState::kRunning;
    std::string host, log_path;
    bool wrote_nothing = false;  // log_path is NULL: it ended having written nothing
  };
  std::optional<AttemptLog> attempt_log(const Job& job, ClusterId cluster,
                                        std::optional<std::uint32_t> attempt);
  // What an attempt's start turned out to be, for one recorded before its
  // process existed (from a journalled start).
  void set_started(std::int64_t row, pid_t pid, double started_at, const std::string& log_path,
                   const std::string& cap);
  void record_end(const Job& job, std::int64_t row, ClusterId cluster, const AttemptEnd& end);

  // Every cluster that ran, in order, for `runner report`; each_cluster_report
  // hands them to `each` one at a time and keeps none.
  std::vector<ClusterReport> cluster_report(const Job& job);
  void each_cluster_report(const Job& job, const std::function<void(const ClusterReport&)>& each);
  // The peak each cluster is judged by (its cgroup's where recorded, else
  // its RSS: judged_peak_kib), those above 0, smallest first.
  void each_cluster_peak(const Job& job, const std::function<void(std::uint64_t kib)>& each);
  AttemptSpans attempt_spans(const Job& job, bool with_log_paths);
  // The same attempts by start time, handed to `each` one at a time with the
  // hosts named so far (span.host indexes them) and the attempt's log path
  // ("" unless asked for); nothing is kept but the hosts.
  using EachSpan = std::function<void(
      const AttemptSpan& span, const std::vector<std::string>& hosts, const std::string& log_path)>;
  void each_attempt_span(const Job& job, bool with_log_paths, const EachSpan& each);
  // A job's attempts as a whole: what a reader of them one by one must know
  // before the first. "Ended" is as AttemptSpan has it: a finished_at above 0.
  struct AttemptTotals {
    std::uint64_t attempts = 0, clusters = 0;
    double first_start = 0;                 // the earliest start; 0 without attempts
    std::optional<double> last_end;         // the latest end of those that ended
    std::optional<double> last_open_start;  // the latest start of those that did not
    std::uint64_t largest_cap_kib = 0;      // the largest --mem-limit an attempt had; 0: none
    // Those recorded as ending before they started (the clock was set back
    // while they ran), as (end, start): rare, and read whole.
    std::vector<std::pair<double, double>> backward;
  };
  AttemptTotals attempt_totals(const Job& job);
  // How many clusters failed_clusters would list without a limit.
  std::uint64_t failed_count(const Job& job);

  // Reading for `runner status`.
  std::vector<JobProgress> progress();
  // Done clusters finished at or after `since`, for a rate.
  std::uint64_t done_since(const Job& job, double since);
  // Its running attempts, counted by host (by node under --on slurm).
  std::vector<std::pair<std::string, std::uint64_t>> running_by_host(const Job& job);

  // Groups writes into one transaction (BEGIN IMMEDIATE); rolled back unless committed.
  class Batch {
   public:
    explicit Batch(Store& store);
    ~Batch();
    void commit();
    Batch(const Batch&) = delete;
    Batch& operator=(const Batch&) = delete;

   private:
    Store& store_;
    bool open_ = true;
  };

  // While one lives, every read sees the log as one moment left it, whatever
  // a running job commits meanwhile: figures read apart agree with each other.
  class Snapshot {
   public:
    explicit Snapshot(Store& store);
    ~Snapshot();
    Snapshot(const Snapshot&) = delete;
    Snapshot& operator=(const Snapshot&) = delete;

   private:
    Store& store_;
  };

  // The connection itself, for tests of what SQLite does with it (plans,
  // prepared statements, commits); nothing else reaches into it.
  SQLite::Database& connection_for_tests() { return db_; }

 private:
  void check_and_create_schema(Access access);
  void check_views();
  void refuse_if_moved();
  static int on_busy(void* self, int count);
  void mark_done(const Job& job, ClusterId cluster);
  void write_done_range(const Job& job, std::int64_t c, std::optional<std::int64_t> before_lo,
                        std::optional<std::int64_t> after_hi);

  std::filesystem::path path_;
  SQLite::Database db_;
  int version_ = 0;  // the schema as it is (read-only: as an older runner left it)
  std::string host_;
  BusyWait busy_;
  // Done ranges of the jobs whose ranges were loaded, kept in step with the
  // table, so that marking a cluster done needs no reads. Only the job's
  // holder writes them, so nothing else changes them underneath.
  std::map<std::int64_t, IntervalSet> done_mirror_;
  // Prepared statements on the hot path: one start and one end per cluster.
  // A batch begins and commits often: parsed once.
  std::unique_ptr<SQLite::Statement> begin_, commit_;
  std::unique_ptr<SQLite::Statement> next_attempt_, insert_attempt_, update_attempt_, peak_;
  std::unique_ptr<SQLite::Statement> done_before_, done_after_, done_insert_, done_extend_,
      done_delete_;
};

}  // namespace runner
