#include "runner/store.h"

#include <SQLiteCpp/Exception.h>
#include <fmt/format.h>
#include <sqlite3.h>

#include <algorithm>
#include <unordered_map>

#include "runner/error.h"

namespace runner {
namespace {

// States in which a cluster ran and did not succeed, as a condition on the
// column named. The partial index and the queries use this same condition,
// for SQLite uses the index only for a query that repeats it. It is written
// with = and OR: SQLite checks an IN list of more than two values through a
// temporary b-tree, built anew by every insert and update of an attempt.
#define RUNNER_UNSUCCESSFUL(column) \
  "(" column " = 'failed' OR " column " = 'oom' OR " column " = 'timeout')"

// Version 1: the tables. Later versions change them by migration steps below;
// the views and the partial index are always made anew at the latest version.
constexpr const char* kTablesV1 = R"SQL(
CREATE TABLE job (
  id            INTEGER PRIMARY KEY,
  name          TEXT NOT NULL UNIQUE,
  clusters      INTEGER NOT NULL,
  command       TEXT NOT NULL,
  created_at    REAL NOT NULL,
  holder_pid    INTEGER,
  holder_host   TEXT,
  holder_boot   TEXT,
  holder_ticks  INTEGER,
  holder_since  REAL
);
CREATE TABLE attempt (
  id            INTEGER PRIMARY KEY,
  job_id        INTEGER NOT NULL REFERENCES job(id),
  cluster       INTEGER NOT NULL,
  attempt       INTEGER NOT NULL,
  state         TEXT NOT NULL,
  pid           INTEGER,
  host          TEXT,
  started_at    REAL NOT NULL,
  finished_at   REAL,
  exit_code     INTEGER,
  signal        INTEGER,
  user_cpu_s    REAL,
  sys_cpu_s     REAL,
  peak_rss_kib  INTEGER,
  log_path      TEXT,
  UNIQUE (job_id, cluster, attempt)
);
CREATE INDEX attempt_running ON attempt(job_id, cluster) WHERE state = 'running';
-- Done clusters as disjoint ranges: resume reads a handful of rows, not N.
CREATE TABLE done_range (
  job_id  INTEGER NOT NULL,
  lo      INTEGER NOT NULL,
  hi      INTEGER NOT NULL,
  PRIMARY KEY (job_id, lo)
) WITHOUT ROWID;
)SQL";

// Version 2: memory caps and the cgroup's own peak; timeouts.
constexpr const char* kMigrationV2 = R"SQL(
ALTER TABLE attempt ADD COLUMN cap TEXT;
ALTER TABLE attempt ADD COLUMN mem_limit_kib INTEGER;
ALTER TABLE attempt ADD COLUMN peak_cgroup_kib INTEGER;
ALTER TABLE attempt ADD COLUMN note TEXT;
ALTER TABLE attempt ADD COLUMN timeout_s REAL;
)SQL";

// Version 3: the condition of attempt_unsuccessful without an IN list. The
// index is made anew with the views; no table changes.
constexpr const char* kMigrationV3 = "";

// Version 4: times in the `attempts` view are UTC in ISO 8601 with the
// offset ("2026-12-05T23:03:52.566Z"), where they were local time without
// one; the tables always held seconds since the epoch, so no row changes.
// And when each job last ran to the end with every cluster done.
constexpr const char* kMigrationV4 = R"SQL(
ALTER TABLE job ADD COLUMN last_success_at REAL;
)SQL";

// Version 5: the DB's own id, which its workers' journals and lock files
// carry; and every run of a job, kept after the run (runner unlock clears a
// hold, never a run): the runs not known to have ended are those whose
// processes may still live and whose journals may still be collected.
constexpr const char* kMigrationV5 = R"SQL(
CREATE TABLE meta (
  key    TEXT PRIMARY KEY,
  value  TEXT NOT NULL
);
INSERT INTO meta (key, value) VALUES ('db_id', lower(hex(randomblob(16))));
CREATE TABLE run (
  id          INTEGER PRIMARY KEY,
  job_id      INTEGER NOT NULL REFERENCES job(id),
  name        TEXT NOT NULL,
  host        TEXT NOT NULL,
  boot        TEXT,
  started_at  REAL NOT NULL,
  ended_at    REAL,
  UNIQUE (job_id, name, host)
);
)SQL";

constexpr const char* kMigrations[] = {kTablesV1, kMigrationV2, kMigrationV3, kMigrationV4,
                                       kMigrationV5};
static_assert(std::size(kMigrations) == kSchemaVersion, "kSchemaVersion counts the migrations");

constexpr const char* kViews = R"SQL(
DROP INDEX IF EXISTS attempt_unsuccessful;
CREATE INDEX attempt_unsuccessful ON attempt(job_id, cluster)
WHERE )SQL" RUNNER_UNSUCCESSFUL("state") R"SQL(;

DROP VIEW IF EXISTS attempts;
CREATE VIEW attempts AS
SELECT j.name AS job, a.cluster, a.attempt, a.state, a.pid, a.host,
       strftime('%Y-%m-%dT%H:%M:%fZ', a.started_at, 'unixepoch') AS started,
       strftime('%Y-%m-%dT%H:%M:%fZ', a.finished_at, 'unixepoch') AS finished,
       round(a.finished_at - a.started_at, 3) AS duration_s,
       a.exit_code, a.signal, a.user_cpu_s, a.sys_cpu_s, a.peak_rss_kib, a.peak_cgroup_kib,
       a.mem_limit_kib, a.cap, a.timeout_s, a.log_path, a.note
FROM attempt a JOIN job j ON j.id = a.job_id;

-- A cluster counts as failed while its latest attempt is unsuccessful.
DROP VIEW IF EXISTS progress;
CREATE VIEW progress AS
SELECT name AS job, clusters, done, failed, running,
       clusters - done - failed - running AS pending
FROM (
  SELECT j.name, j.clusters,
    (SELECT coalesce(sum(d.hi - d.lo + 1), 0) FROM done_range d WHERE d.job_id = j.id) AS done,
    (SELECT count(*) FROM attempt r WHERE r.job_id = j.id AND r.state = 'running') AS running,
    (SELECT count(*) FROM attempt f
      WHERE f.job_id = j.id AND )SQL" RUNNER_UNSUCCESSFUL("f.state") R"SQL(
        AND NOT EXISTS (SELECT 1 FROM attempt l WHERE l.job_id = f.job_id
                        AND l.cluster = f.cluster AND l.attempt > f.attempt)) AS failed
  FROM job j
);
)SQL";

// The latest attempt of each cluster whose latest attempt did not succeed.
#define RUNNER_FAILED_CLUSTERS \
  " FROM attempt f WHERE f.job_id = ? AND " RUNNER_UNSUCCESSFUL("f.state")          \
  " AND NOT EXISTS (SELECT 1 FROM attempt l WHERE l.job_id = f.job_id"              \
  " AND l.cluster = f.cluster AND l.attempt > f.attempt)"

constexpr const char* kFailedQuery =
    "SELECT f.cluster, f.attempt, f.state, f.exit_code, f.signal, f.log_path, f.mem_limit_kib, "
    "coalesce(f.peak_cgroup_kib, f.peak_rss_kib, 0), f.note, f.finished_at" RUNNER_FAILED_CLUSTERS
    " ORDER BY f.cluster LIMIT ?";
constexpr const char* kFailedCount = "SELECT count(*)" RUNNER_FAILED_CLUSTERS;

std::int64_t as_db(std::uint64_t v) {
  return static_cast<std::int64_t>(v);
}

int open_flags(Store::Access access) {
  return access == Store::Access::kReadOnly ? SQLite::OPEN_READONLY
                                            : SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE;
}

// SQLite reports a foreign file only when it first reads a page.
SQLite::Database open_database(const std::filesystem::path& path, Store::Access access) {
  if (access == Store::Access::kReadOnly && !std::filesystem::exists(path))
    throw Error(
        fmt::format("--db {}: no such file; pass the --db that the job ran with", path.string()));
  try {
    return SQLite::Database(path.string(), open_flags(access), 60'000);
  } catch (const SQLite::Exception& e) {
    throw Error(fmt::format("--db {}: cannot open: {}", path.string(), e.what()));
  }
}

}  // namespace

const char* to_string(AttemptState state) {
  switch (state) {
    case AttemptState::kRunning:
      return "running";
    case AttemptState::kDone:
      return "done";
    case AttemptState::kFailed:
      return "failed";
    case AttemptState::kInterrupted:
      return "interrupted";
    case AttemptState::kOom:
      return "oom";
    case AttemptState::kTimeout:
      return "timeout";
  }
  return "unknown";
}

AttemptState parse_state(std::string_view text) {
  for (auto state : {AttemptState::kRunning, AttemptState::kDone, AttemptState::kFailed,
                     AttemptState::kInterrupted, AttemptState::kOom, AttemptState::kTimeout})
    if (text == to_string(state)) return state;
  return AttemptState::kFailed;
}

Store::Store(const std::filesystem::path& path, Access access, Sync sync, BusyWait busy)
    : path_(path), db_(open_database(path, access)), host_(host_name()), busy_(std::move(busy)) {
  if (busy_) sqlite3_busy_handler(db_.getHandle(), &Store::on_busy, this);
  begin_ = std::make_unique<SQLite::Statement>(db_, "BEGIN IMMEDIATE");
  commit_ = std::make_unique<SQLite::Statement>(db_, "COMMIT");
  check_and_create_schema(access);
  if (access == Access::kReadWrite) {
    // WAL lets sqlite3 readers look at progress while runner writes, and a
    // reader holding a transaction open never blocks runner's commits.
    db_.exec("PRAGMA journal_mode = WAL");
    db_.exec(sync == Sync::kFull ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL");
  }
  next_attempt_ = std::make_unique<SQLite::Statement>(
      db_, "SELECT coalesce(max(attempt), 0) + 1 FROM attempt WHERE job_id = ? AND cluster = ?");
  peak_ = std::make_unique<SQLite::Statement>(
      db_,
      "SELECT max(coalesce(peak_cgroup_kib, peak_rss_kib)) FROM attempt "
      "WHERE job_id = ? AND cluster = ? AND (state = 'done' OR " RUNNER_UNSUCCESSFUL("state") ")");
  if (access == Access::kReadOnly) return;
  insert_attempt_ = std::make_unique<SQLite::Statement>(
      db_,
      "INSERT INTO attempt (job_id, cluster, attempt, state, pid, host, started_at, log_path, "
      "cap, mem_limit_kib, timeout_s) VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?)");
  update_attempt_ = std::make_unique<SQLite::Statement>(
      db_,
      "UPDATE attempt SET state = ?, finished_at = ?, exit_code = ?, signal = ?, user_cpu_s = ?, "
      "sys_cpu_s = ?, peak_rss_kib = ?, peak_cgroup_kib = ?, note = ?, "
      "log_path = CASE WHEN ? THEN NULL ELSE log_path END WHERE id = ?");
  done_before_ = std::make_unique<SQLite::Statement>(
      db_, "SELECT lo, hi FROM done_range WHERE job_id = ? AND lo <= ? ORDER BY lo DESC LIMIT 1");
  done_after_ = std::make_unique<SQLite::Statement>(
      db_, "SELECT hi FROM done_range WHERE job_id = ? AND lo = ?");
  done_insert_ = std::make_unique<SQLite::Statement>(
      db_, "INSERT INTO done_range (job_id, lo, hi) VALUES (?, ?, ?)");
  done_extend_ = std::make_unique<SQLite::Statement>(
      db_, "UPDATE done_range SET hi = ? WHERE job_id = ? AND lo = ?");
  done_delete_ = std::make_unique<SQLite::Statement>(
      db_, "DELETE FROM done_range WHERE job_id = ? AND lo = ?");
}

Store::~Store() = default;

int Store::on_busy(void* self, int count) {
  return static_cast<Store*>(self)->busy_(count) ? 1 : 0;
}

void Store::check_and_create_schema(Access access) {
  int version = 0;
  int objects = 0;
  try {
    version = db_.execAndGet("PRAGMA user_version").getInt();
    objects = db_.execAndGet("SELECT count(*) FROM sqlite_master").getInt();
  } catch (const SQLite::Exception& e) {
    if (e.getErrorCode() == SQLITE_NOTADB)
      throw Error(fmt::format("--db {}: not a SQLite database; pass a new file or a runner log",
                              path_.string()));
    throw Error(fmt::format("--db {}: cannot read: {}", path_.string(), e.what()));
  }
  if (version > kSchemaVersion)
    throw Error(
        fmt::format("--db {}: written by a newer runner (schema {}, this runner reads up to {}); "
                    "upgrade runner",
                    path_.string(), version, kSchemaVersion));
  version_ = version;
  if (access == Access::kReadOnly && version >= kOldestReadableSchema) {
    check_views();
    return;
  }
  if (version == kSchemaVersion) return;
  if (version == 0 && objects > 0)
    throw Error(fmt::format(
        "--db {}: a SQLite database that runner did not create; pass a new file", path_.string()));
  if (access == Access::kReadOnly) {
    if (version == 0) throw Error(fmt::format("--db {}: holds no runner jobs yet", path_.string()));
    throw Error(
        fmt::format("--db {}: written by an older runner (schema {}); run a job on it once "
                    "to upgrade it",
                    path_.string(), version));
  }
  // A second runner may be upgrading at the same moment: the immediate
  // transaction serialises us, and the re-read sees its work.
  Batch batch(*this);
  version = db_.execAndGet("PRAGMA user_version").getInt();
  if (version < kSchemaVersion) {
    for (int v = version; v < kSchemaVersion; ++v) db_.exec(kMigrations[v]);
    db_.exec(kViews);
    db_.exec(fmt::format("PRAGMA user_version = {}", kSchemaVersion));
  }
  batch.commit();
  version_ = kSchemaVersion;
}

bool Store::moved() {
  int moved = 0;
  return sqlite3_file_control(db_.getHandle(), "main", SQLITE_FCNTL_HAS_MOVED, &moved) ==
             SQLITE_OK &&
         moved != 0;
}

// status and report read the public views: one a person replaced with a
// table of their own would answer with whatever it holds.
void Store::check_views() {
  for (const char* view : {"progress", "attempts"}) {
    SQLite::Statement q(db_, "SELECT type FROM sqlite_master WHERE name = ?");
    q.bind(1, view);
    auto type = q.executeStep() ? q.getColumn(0).getString() : std::string("nothing");
    if (type != "view")
      throw Error(fmt::format(
          "--db {}: '{}' is a {}, not the view runner made: the file was changed by hand; drop "
          "or rename that {}, and the next run of a job on this DB makes the view again",
          path_.string(), view, type, type));
  }
}

// What is committed into a file no longer at its path is lost to every later
// reader: say so rather than carry on recording into nothing.
void Store::refuse_if_moved() {
  if (moved())
    throw Error(fmt::format("--db {}: the file was deleted, moved or replaced while runner ran; "
                            "nothing more can be recorded in it",
                            path_.string()),
                ExitCode::kLogLost);
}

std::optional<Job> Store::find_job(const std::string& name) {
  SQLite::Statement q(db_, "SELECT id, name, clusters, command FROM job WHERE name = ?");
  q.bind(1, name);
  if (!q.executeStep()) return std::nullopt;
  return Job{q.getColumn(0).getInt64(), q.getColumn(1).getString(),
             static_cast<ClusterId>(q.getColumn(2).getInt64()), q.getColumn(3).getString()};
}

std::vector<Job> Store::jobs() {
  std::vector<Job> out;
  SQLite::Statement q(db_, "SELECT id, name, clusters, command FROM job ORDER BY id");
  while (q.executeStep())
    out.push_back(Job{q.getColumn(0).getInt64(), q.getColumn(1).getString(),
                      static_cast<ClusterId>(q.getColumn(2).getInt64()),
                      q.getColumn(3).getString()});
  return out;
}

Job Store::open_job(const std::string& name, ClusterId clusters, const std::string& command) {
  Batch batch(*this);
  if (auto job = find_job(name)) {
    if (job->clusters != clusters || job->command != command)
      throw Error(fmt::format(
          "job '{}' in {} has {} clusters and command `{}`, but this run asks for {} clusters and "
          "`{}`; rerun the original command to resume it, or pass --job NEW_NAME to start a new "
          "job",
          name, path_.string(), job->clusters, job->command, clusters, command));
    return *job;
  }
  SQLite::Statement insert(
      db_, "INSERT INTO job (name, clusters, command, created_at) VALUES (?, ?, ?, ?)");
  insert.bind(1, name);
  insert.bind(2, as_db(clusters));
  insert.bind(3, command);
  insert.bind(4, wall_clock_now());
  insert.exec();
  Job job{db_.getLastInsertRowid(), name, clusters, command};
  batch.commit();
  return job;
}

JobTimes Store::job_times(const Job& job) {
  // A log older than version 4 (read as it is) has no last success.
  SQLite::Statement q(db_, version_ >= 4
                               ? "SELECT created_at, last_success_at FROM job WHERE id = ?"
                               : "SELECT created_at, NULL FROM job WHERE id = ?");
  q.bind(1, job.id);
  JobTimes times;
  if (!q.executeStep()) return times;
  times.created_at = q.getColumn(0).getDouble();
  if (!q.getColumn(1).isNull()) times.last_success_at = q.getColumn(1).getDouble();
  return times;
}

void Store::record_success(const Job& job, double at) {
  Batch batch(*this);
  SQLite::Statement q(db_, "UPDATE job SET last_success_at = ? WHERE id = ?");
  q.bind(1, at);
  q.bind(2, job.id);
  q.exec();
  batch.commit();
}

std::optional<Holder> Store::holder(const Job& job) {
  SQLite::Statement q(db_,
                      "SELECT holder_pid, holder_host, holder_boot, holder_ticks, holder_since "
                      "FROM job WHERE id = ? AND holder_pid IS NOT NULL");
  q.bind(1, job.id);
  if (!q.executeStep()) return std::nullopt;
  Holder h;
  h.process.pid = q.getColumn(0).getInt();
  h.process.host = q.getColumn(1).getString();
  h.process.boot_id = q.getColumn(2).getString();
  h.process.start_ticks = static_cast<std::uint64_t>(q.getColumn(3).getInt64());
  h.since = q.getColumn(4).getDouble();
  return h;
}

std::optional<Holder> Store::acquire_hold(const Job& job, const ProcessIdentity& self,
                                          const std::function<bool(const Holder&)>& still_holds) {
  Batch batch(*this);
  if (auto h = holder(job); h && still_holds(*h)) return h;
  SQLite::Statement q(db_,
                      "UPDATE job SET holder_pid = ?, holder_host = ?, holder_boot = ?, "
                      "holder_ticks = ?, holder_since = ? WHERE id = ?");
  q.bind(1, self.pid);
  q.bind(2, self.host);
  q.bind(3, self.boot_id);
  q.bind(4, as_db(self.start_ticks));
  q.bind(5, wall_clock_now());
  q.bind(6, job.id);
  q.exec();
  batch.commit();
  return std::nullopt;
}

void Store::clear_hold(const Job& job) {
  SQLite::Statement q(db_,
                      "UPDATE job SET holder_pid = NULL, holder_host = NULL, holder_boot = NULL, "
                      "holder_ticks = NULL, holder_since = NULL WHERE id = ?");
  q.bind(1, job.id);
  q.exec();
}

void Store::release_hold(const Job& job, const ProcessIdentity& self) {
  SQLite::Statement q(db_,
                      "UPDATE job SET holder_pid = NULL, holder_host = NULL, holder_boot = NULL, "
                      "holder_ticks = NULL, holder_since = NULL "
                      "WHERE id = ? AND holder_pid = ? AND holder_host = ? AND holder_ticks = ?");
  q.bind(1, job.id);
  q.bind(2, self.pid);
  q.bind(3, self.host);
  q.bind(4, as_db(self.start_ticks));
  q.exec();
}

std::vector<LeftRunning> Store::left_running(const Job& job) {
  std::vector<LeftRunning> out;
  SQLite::Statement q(db_,
                      "SELECT cluster, pid, started_at, host FROM attempt WHERE job_id = ? "
                      "AND state = 'running' AND pid IS NOT NULL");
  q.bind(1, job.id);
  while (q.executeStep())
    out.push_back(LeftRunning{static_cast<ClusterId>(q.getColumn(0).getInt64()),
                              q.getColumn(1).getInt(), q.getColumn(2).getDouble(),
                              q.getColumn(3).getString()});
  return out;
}

std::uint64_t Store::recover_interrupted(const Job& job) {
  // Read first: a write would wait for the DB's lock even with nothing to do.
  SQLite::Statement any(db_,
                        "SELECT 1 FROM attempt WHERE job_id = ? AND state = 'running' LIMIT 1");
  any.bind(1, job.id);
  if (!any.executeStep()) return 0;
  any.reset();
  SQLite::Statement q(
      db_,
      "UPDATE attempt SET state = 'interrupted', finished_at = coalesce(finished_at, ?), "
      "note = coalesce(note, 'its runner and worker were killed while it ran (or as it "
      "started): how it ended is not known') WHERE job_id = ? AND state = 'running'");
  q.bind(1, wall_clock_now());
  q.bind(2, job.id);
  return static_cast<std::uint64_t>(q.exec());
}

IntervalSet Store::done_clusters(const Job& job) {
  IntervalSet done;
  SQLite::Statement q(db_, "SELECT lo, hi FROM done_range WHERE job_id = ?");
  q.bind(1, job.id);
  while (q.executeStep())
    done.insert(static_cast<std::uint64_t>(q.getColumn(0).getInt64()),
                static_cast<std::uint64_t>(q.getColumn(1).getInt64()));
  done_mirror_[job.id] = done;
  return done;
}

std::vector<FailedCluster> Store::failed_clusters(const Job& job, std::size_t limit) {
  std::vector<FailedCluster> out;
  SQLite::Statement q(db_, kFailedQuery);
  q.bind(1, job.id);
  q.bind(2, limit == SIZE_MAX ? std::int64_t{-1} : static_cast<std::int64_t>(limit));
  while (q.executeStep()) {
    FailedCluster f;
    f.cluster = static_cast<ClusterId>(q.getColumn(0).getInt64());
    f.attempt = static_cast<std::uint32_t>(q.getColumn(1).getInt());
    f.state = parse_state(q.getColumn(2).getString());
    if (!q.getColumn(3).isNull()) f.exit_code = q.getColumn(3).getInt();
    if (!q.getColumn(4).isNull()) f.signal = q.getColumn(4).getInt();
    f.log_path = q.getColumn(5).getString();
    if (!q.getColumn(6).isNull())
      f.mem_limit_kib = static_cast<std::uint64_t>(q.getColumn(6).getInt64());
    f.peak_kib = static_cast<std::uint64_t>(q.getColumn(7).getInt64());
    f.note = q.getColumn(8).getString();
    if (!q.getColumn(9).isNull()) f.finished_at = q.getColumn(9).getDouble();
    out.push_back(std::move(f));
  }
  return out;
}

std::uint64_t Store::failed_count(const Job& job) {
  SQLite::Statement q(db_, kFailedCount);
  q.bind(1, job.id);
  q.executeStep();
  return static_cast<std::uint64_t>(q.getColumn(0).getInt64());
}

std::vector<std::int64_t> Store::related_jobs(const Job& job) {
  std::vector<std::int64_t> ids{job.id};
  SQLite::Statement q(db_,
                      "SELECT id FROM job WHERE command = ? AND clusters = ? AND id != ? "
                      "ORDER BY id DESC LIMIT 10");
  q.bind(1, job.command);
  q.bind(2, as_db(job.clusters));
  q.bind(3, job.id);
  while (q.executeStep()) ids.push_back(q.getColumn(0).getInt64());
  return ids;
}

std::optional<std::uint64_t> Store::peak_kib(const std::vector<std::int64_t>& jobs,
                                             ClusterId cluster) {
  std::optional<std::uint64_t> best;
  auto& q = *peak_;
  for (auto id : jobs) {
    q.reset();
    q.bind(1, id);
    q.bind(2, as_db(cluster));
    if (q.executeStep() && !q.getColumn(0).isNull() && q.getColumn(0).getInt64() > 0)
      best = std::max(best.value_or(0), static_cast<std::uint64_t>(q.getColumn(0).getInt64()));
  }
  q.reset();
  return best;
}

void Store::cluster_history(const std::vector<std::int64_t>& jobs, std::uint64_t enough,
                            const std::function<void(const ClusterHistory&)>& each) {
  SQLite::Statement q(db_,
                      "SELECT cluster, finished_at - started_at, "
                      "max(coalesce(peak_cgroup_kib, 0), coalesce(peak_rss_kib, 0)) "
                      "FROM attempt WHERE job_id = ? AND state = 'done'");
  SQLite::Statement ranges(db_, "SELECT lo, hi FROM done_range WHERE job_id = ?");
  IntervalSet newer;  // done in a newer job read already
  std::uint64_t handed = 0;
  for (auto id : jobs) {
    if (handed >= enough) break;
    q.reset();
    q.bind(1, id);
    while (q.executeStep()) {
      auto cluster = static_cast<ClusterId>(q.getColumn(0).getInt64());
      if (newer.contains(cluster)) continue;
      each({cluster, std::max(0.0, q.getColumn(1).getDouble()),
            static_cast<std::uint64_t>(std::max<std::int64_t>(0, q.getColumn(2).getInt64()))});
      ++handed;
    }
    ranges.reset();
    ranges.bind(1, id);
    while (ranges.executeStep())
      newer.insert(static_cast<std::uint64_t>(ranges.getColumn(0).getInt64()),
                   static_cast<std::uint64_t>(ranges.getColumn(1).getInt64()));
  }
}

ClusterId Store::highest_attempted(const Job& job) {
  SQLite::Statement q(db_, "SELECT coalesce(max(cluster), 0) FROM attempt WHERE job_id = ?");
  q.bind(1, job.id);
  q.executeStep();
  return static_cast<ClusterId>(q.getColumn(0).getInt64());
}

std::uint32_t Store::next_attempt(const Job& job, ClusterId cluster) {
  auto& q = *next_attempt_;
  q.reset();
  q.bind(1, job.id);
  q.bind(2, as_db(cluster));
  q.executeStep();
  auto attempt = static_cast<std::uint32_t>(q.getColumn(0).getInt());
  q.reset();  // an unfinished SELECT would hold its read transaction open
  return attempt;
}

std::int64_t Store::record_start(const Job& job, const AttemptStart& start) {
  auto& q = *insert_attempt_;
  q.reset();
  q.bind(1, job.id);
  q.bind(2, as_db(start.cluster));
  q.bind(3, start.attempt);
  if (start.pid > 0)
    q.bind(4, start.pid);
  else
    q.bind(4);
  q.bind(5, start.host.empty() ? host_ : start.host);
  q.bind(6, start.started_at);
  q.bind(7, start.log_path);
  q.bind(8, start.cap);
  if (start.mem_limit_kib)
    q.bind(9, as_db(*start.mem_limit_kib));
  else
    q.bind(9);
  if (start.timeout_s)
    q.bind(10, *start.timeout_s);
  else
    q.bind(10);
  q.exec();
  return db_.getLastInsertRowid();
}

std::optional<Store::AttemptRow> Store::find_attempt(const Job& job, ClusterId cluster,
                                                     std::uint32_t attempt) {
  SQLite::Statement q(db_,
                      "SELECT id, state, mem_limit_kib, timeout_s, pid, started_at FROM attempt "
                      "WHERE job_id = ? AND cluster = ? AND attempt = ?");
  q.bind(1, job.id);
  q.bind(2, as_db(cluster));
  q.bind(3, attempt);
  if (!q.executeStep()) return std::nullopt;
  AttemptRow r;
  r.row = q.getColumn(0).getInt64();
  r.state = parse_state(q.getColumn(1).getString());
  if (!q.getColumn(2).isNull())
    r.mem_limit_kib = static_cast<std::uint64_t>(q.getColumn(2).getInt64());
  if (!q.getColumn(3).isNull()) r.timeout_s = q.getColumn(3).getDouble();
  if (!q.getColumn(4).isNull()) r.pid = static_cast<pid_t>(q.getColumn(4).getInt64());
  r.started_at = q.getColumn(5).getDouble();
  return r;
}

std::optional<Store::AttemptLog> Store::attempt_log(const Job& job, ClusterId cluster,
                                                    std::optional<std::uint32_t> attempt) {
  SQLite::Statement q(db_,
                      "SELECT attempt, state, host, log_path FROM attempt WHERE job_id = ? AND "
                      "cluster = ? AND (? IS NULL OR attempt = ?) ORDER BY attempt DESC LIMIT 1");
  q.bind(1, job.id);
  q.bind(2, as_db(cluster));
  if (attempt) {
    q.bind(3, *attempt);
    q.bind(4, *attempt);
  }
  if (!q.executeStep()) return std::nullopt;
  AttemptLog log;
  log.attempt = static_cast<std::uint32_t>(q.getColumn(0).getInt64());
  log.state = parse_state(q.getColumn(1).getString());
  log.host = q.getColumn(2).getString();
  log.log_path = q.getColumn(3).getString();
  log.wrote_nothing = q.getColumn(3).isNull();
  return log;
}

void Store::set_started(std::int64_t row, pid_t pid, double started_at, const std::string& log_path,
                        const std::string& cap) {
  SQLite::Statement q(db_,
                      "UPDATE attempt SET pid = ?, started_at = ?, log_path = ?, cap = ? "
                      "WHERE id = ?");
  q.bind(1, pid);
  q.bind(2, started_at);
  q.bind(3, log_path);
  q.bind(4, cap);
  q.bind(5, row);
  q.exec();
}

std::string Store::db_id() {
  return db_.execAndGet("SELECT value FROM meta WHERE key = 'db_id'").getString();
}

void Store::record_run(const Job& job, const std::string& run, const ProcessIdentity& head) {
  SQLite::Statement q(db_,
                      "INSERT OR REPLACE INTO run (job_id, name, host, boot, started_at) "
                      "VALUES (?, ?, ?, ?, ?)");
  q.bind(1, job.id);
  q.bind(2, run);
  q.bind(3, head.host);
  q.bind(4, head.boot_id);
  q.bind(5, wall_clock_now());
  q.exec();
}

void Store::end_runs(const Job& job, const std::vector<std::string>& runs) {
  SQLite::Statement q(db_, "UPDATE run SET ended_at = ? WHERE job_id = ? AND name = ?");
  for (const auto& run : runs) {
    q.reset();
    q.bind(1, wall_clock_now());
    q.bind(2, job.id);
    q.bind(3, run);
    q.exec();
  }
}

std::vector<std::string> Store::open_runs(const Job& job, const std::string& host,
                                          const std::string& boot) {
  SQLite::Statement q(db_,
                      "SELECT name FROM run WHERE job_id = ? AND ended_at IS NULL AND host = ? "
                      "AND boot IS ? ORDER BY id");
  q.bind(1, job.id);
  q.bind(2, host);
  q.bind(3, boot);
  std::vector<std::string> out;
  while (q.executeStep()) out.push_back(q.getColumn(0).getString());
  return out;
}

bool Store::has_run(const Job& job, const std::string& run) {
  SQLite::Statement q(db_, "SELECT 1 FROM run WHERE job_id = ? AND name = ?");
  q.bind(1, job.id);
  q.bind(2, run);
  return q.executeStep();
}

void Store::record_end(const Job& job, std::int64_t row, ClusterId cluster, const AttemptEnd& end) {
  auto& q = *update_attempt_;
  q.reset();
  q.bind(1, to_string(end.state));
  q.bind(2, end.finished_at);
  if (end.exit_code)
    q.bind(3, *end.exit_code);
  else
    q.bind(3);
  if (end.signal)
    q.bind(4, *end.signal);
  else
    q.bind(4);
  q.bind(5, end.user_cpu_s);
  q.bind(6, end.sys_cpu_s);
  q.bind(7, as_db(end.peak_rss_kib));
  if (end.peak_cgroup_kib)
    q.bind(8, as_db(*end.peak_cgroup_kib));
  else
    q.bind(8);
  if (end.note.empty())
    q.bind(9);
  else
    q.bind(9, end.note);
  q.bind(10, end.wrote_nothing ? 1 : 0);
  q.bind(11, row);
  q.exec();
  if (end.state == AttemptState::kDone) mark_done(job, cluster);
}

// Adds one cluster to the job's done ranges, merging with its neighbours, so
// that the table keeps one row per run of consecutive done clusters.
void Store::mark_done(const Job& job, ClusterId cluster) {
  auto c = as_db(cluster);
  std::optional<std::int64_t> before_lo;
  std::optional<std::int64_t> after_hi;
  // With the ranges in memory (the job's holder loaded them), no reads needed.
  if (auto mirror = done_mirror_.find(job.id); mirror != done_mirror_.end()) {
    auto& set = mirror->second;
    if (set.contains(cluster)) return;
    const auto& ranges = set.raw();
    if (auto it = ranges.upper_bound(cluster);
        it != ranges.begin() && std::prev(it)->second == cluster - 1)
      before_lo = as_db(std::prev(it)->first);
    if (auto it = ranges.find(cluster + 1); it != ranges.end()) after_hi = as_db(it->second);
    set.insert(cluster);
    write_done_range(job, c, before_lo, after_hi);
    return;
  }
  auto& before = *done_before_;
  before.reset();
  before.bind(1, job.id);
  before.bind(2, c);
  if (before.executeStep()) {
    auto lo = before.getColumn(0).getInt64(), hi = before.getColumn(1).getInt64();
    before.reset();
    if (hi >= c) return;  // already done
    if (hi == c - 1) before_lo = lo;
  }
  auto& after = *done_after_;
  after.reset();
  after.bind(1, job.id);
  after.bind(2, c + 1);
  if (after.executeStep()) after_hi = after.getColumn(0).getInt64();
  after.reset();
  write_done_range(job, c, before_lo, after_hi);
}

// Cluster c joins the range ending just before it (starting at before_lo)
// and the one starting just after it (ending at after_hi), where they exist.
void Store::write_done_range(const Job& job, std::int64_t c, std::optional<std::int64_t> before_lo,
                             std::optional<std::int64_t> after_hi) {
  auto run = [&](SQLite::Statement& q, std::initializer_list<std::int64_t> values) {
    q.reset();
    int i = 1;
    for (auto v : values) q.bind(i++, v);
    q.exec();
  };
  if (after_hi) run(*done_delete_, {job.id, c + 1});
  if (before_lo)
    run(*done_extend_, {after_hi.value_or(c), job.id, *before_lo});
  else
    run(*done_insert_, {job.id, c, after_hi.value_or(c)});
}

std::vector<ClusterReport> Store::cluster_report(const Job& job) {
  std::vector<ClusterReport> out;
  each_cluster_report(job, [&](const ClusterReport& r) { out.push_back(r); });
  return out;
}

void Store::each_cluster_report(const Job& job,
                                const std::function<void(const ClusterReport&)>& each) {
  SQLite::Statement q(
      db_,
      "SELECT a.cluster, c.n, a.state, a.finished_at - a.started_at, c.rss, c.cg FROM "
      "(SELECT cluster, count(*) AS n, max(attempt) AS last, max(peak_rss_kib) AS rss, "
      "        max(peak_cgroup_kib) AS cg FROM attempt WHERE job_id = ?1 GROUP BY cluster) c "
      "JOIN attempt a ON a.job_id = ?1 AND a.cluster = c.cluster AND a.attempt = c.last "
      "ORDER BY a.cluster");
  q.bind(1, job.id);
  while (q.executeStep()) {
    ClusterReport r;
    r.cluster = static_cast<ClusterId>(q.getColumn(0).getInt64());
    r.attempts = static_cast<std::uint32_t>(q.getColumn(1).getInt());
    r.state = parse_state(q.getColumn(2).getString());
    if (!q.getColumn(3).isNull()) r.duration_s = q.getColumn(3).getDouble();
    if (!q.getColumn(4).isNull())
      r.peak_rss_kib = static_cast<std::uint64_t>(q.getColumn(4).getInt64());
    if (!q.getColumn(5).isNull())
      r.peak_cgroup_kib = static_cast<std::uint64_t>(q.getColumn(5).getInt64());
    each(r);
  }
}

void Store::each_cluster_peak(const Job& job, const std::function<void(std::uint64_t kib)>& each) {
  // SQLite sorts them, on disk past its cache: the peaks need not fit in memory.
  SQLite::Statement q(db_,
                      "SELECT peak FROM (SELECT coalesce(max(peak_cgroup_kib), max(peak_rss_kib), "
                      "0) AS peak FROM attempt WHERE job_id = ? GROUP BY cluster) "
                      "WHERE peak > 0 ORDER BY peak");
  q.bind(1, job.id);
  while (q.executeStep()) each(static_cast<std::uint64_t>(q.getColumn(0).getInt64()));
}

Store::AttemptTotals Store::attempt_totals(const Job& job) {
  AttemptTotals out;
  SQLite::Statement q(
      db_,
      "SELECT count(*), ifnull(min(started_at), 0), "
      "max(CASE WHEN finished_at > 0 THEN finished_at END), "
      "max(CASE WHEN finished_at > 0 THEN NULL ELSE started_at END), "
      "ifnull(max(mem_limit_kib), 0), "
      "(SELECT count(*) FROM (SELECT 1 FROM attempt WHERE job_id = ?1 GROUP BY cluster)) "
      "FROM attempt WHERE job_id = ?1");
  q.bind(1, job.id);
  q.executeStep();
  out.attempts = static_cast<std::uint64_t>(q.getColumn(0).getInt64());
  out.first_start = q.getColumn(1).getDouble();
  if (!q.getColumn(2).isNull()) out.last_end = q.getColumn(2).getDouble();
  if (!q.getColumn(3).isNull()) out.last_open_start = q.getColumn(3).getDouble();
  out.largest_cap_kib = static_cast<std::uint64_t>(q.getColumn(4).getInt64());
  out.clusters = static_cast<std::uint64_t>(q.getColumn(5).getInt64());
  SQLite::Statement backward(db_,
                             "SELECT finished_at, started_at FROM attempt WHERE job_id = ? "
                             "AND finished_at > 0 AND finished_at < started_at");
  backward.bind(1, job.id);
  while (backward.executeStep())
    out.backward.emplace_back(backward.getColumn(0).getDouble(), backward.getColumn(1).getDouble());
  return out;
}

AttemptSpans Store::attempt_spans(const Job& job, bool with_log_paths) {
  AttemptSpans out;
  SQLite::Statement cap(db_, "SELECT ifnull(max(mem_limit_kib), 0) FROM attempt WHERE job_id = ?");
  cap.bind(1, job.id);
  cap.executeStep();
  out.largest_cap_kib = static_cast<std::uint64_t>(cap.getColumn(0).getInt64());
  each_attempt_span(job, with_log_paths,
                    [&](const AttemptSpan& s, const std::vector<std::string>& hosts,
                        const std::string& log_path) {
                      // A host is named first by the attempt that ran on it first.
                      if (hosts.size() > out.hosts.size()) out.hosts.push_back(hosts.back());
                      if (with_log_paths) out.log_paths.push_back(log_path);
                      out.spans.push_back(s);
                    });
  return out;
}

void Store::each_attempt_span(const Job& job, bool with_log_paths, const EachSpan& each) {
  // SQLite sorts them, on disk past its cache: the attempts need not fit in
  // memory. A log path not asked for is not carried through the sort.
  SQLite::Statement q(db_, fmt::format("SELECT started_at, finished_at, cluster, peak_rss_kib, "
                                       "peak_cgroup_kib, attempt, host, exit_code, signal, state, "
                                       "{} FROM attempt WHERE job_id = ? ORDER BY started_at, id",
                                       with_log_paths ? "log_path" : "NULL"));
  q.bind(1, job.id);
  std::vector<std::string> hosts;
  std::unordered_map<std::string, std::uint32_t> host_index;
  auto count = [&](int column) -> std::uint64_t {
    return q.getColumn(column).isNull()
               ? 0
               : static_cast<std::uint64_t>(q.getColumn(column).getInt64());
  };
  while (q.executeStep()) {
    AttemptSpan s;
    s.started_at = q.getColumn(0).getDouble();
    s.finished_at = q.getColumn(1).isNull() ? 0 : q.getColumn(1).getDouble();
    s.cluster = static_cast<ClusterId>(q.getColumn(2).getInt64());
    s.peak_rss_kib = count(3);
    s.peak_cgroup_kib = count(4);
    s.attempt = static_cast<std::uint32_t>(q.getColumn(5).getInt());
    auto host = q.getColumn(6).getString();
    auto [it, added] = host_index.try_emplace(host, static_cast<std::uint32_t>(hosts.size()));
    if (added) hosts.push_back(host);
    s.host = it->second;
    if (!q.getColumn(7).isNull()) s.exit_code = q.getColumn(7).getInt();
    if (!q.getColumn(8).isNull()) s.signal = q.getColumn(8).getInt();
    s.state = parse_state(q.getColumn(9).getString());
    each(s, hosts, q.getColumn(10).getString());
  }
}

std::vector<JobProgress> Store::progress() {
  std::vector<JobProgress> out;
  SQLite::Statement q(db_, "SELECT job, clusters, done, failed, running, pending FROM progress");
  while (q.executeStep()) {
    JobProgress p;
    p.job = q.getColumn(0).getString();
    p.clusters = static_cast<ClusterId>(q.getColumn(1).getInt64());
    p.done = static_cast<ClusterId>(q.getColumn(2).getInt64());
    p.failed = static_cast<ClusterId>(q.getColumn(3).getInt64());
    p.running = static_cast<ClusterId>(q.getColumn(4).getInt64());
    p.pending = static_cast<ClusterId>(q.getColumn(5).getInt64());
    out.push_back(std::move(p));
  }
  return out;
}

std::uint64_t Store::done_since(const Job& job, double since) {
  SQLite::Statement q(db_,
                      "SELECT count(*) FROM attempt WHERE job_id = ? AND state = 'done' "
                      "AND finished_at >= ?");
  q.bind(1, job.id);
  q.bind(2, since);
  q.executeStep();
  return static_cast<std::uint64_t>(q.getColumn(0).getInt64());
}

std::vector<std::pair<std::string, std::uint64_t>> Store::running_by_host(const Job& job) {
  SQLite::Statement q(db_,
                      "SELECT coalesce(host, ''), count(*) FROM attempt WHERE job_id = ? AND "
                      "state = 'running' GROUP BY host ORDER BY host");
  q.bind(1, job.id);
  std::vector<std::pair<std::string, std::uint64_t>> out;
  while (q.executeStep())
    out.emplace_back(q.getColumn(0).getString(),
                     static_cast<std::uint64_t>(q.getColumn(1).getInt64()));
  return out;
}

// A deferred transaction: its snapshot is taken by the first read in it.
// Nothing is written in it; its end is a rollback.
Store::Snapshot::Snapshot(Store& store) : store_(store) {
  store_.db_.exec("BEGIN");
}

Store::Snapshot::~Snapshot() {
  store_.db_.tryExec("ROLLBACK");
}

Store::Batch::Batch(Store& store) : store_(store) {
  // Checked at both ends of a batch: nothing is started into a file that is gone.
  store_.refuse_if_moved();
  store_.begin_->reset();
  store_.begin_->exec();
}

Store::Batch::~Batch() {
  if (open_) store_.db_.tryExec("ROLLBACK");
}

void Store::Batch::commit() {
  store_.refuse_if_moved();
  store_.commit_->reset();
  store_.commit_->exec();
  open_ = false;
}

}  // namespace runner
