#include "runner/store.h"

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iomanip>
#include <optional>
#include <random>

#include "runner/error.h"
#include "runner/job_lock.h"
#include "runner/words.h"

namespace runner {
namespace {

namespace fs = std::filesystem;

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/runner-store-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    path_ = dir_ / "runner.db";
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Records one finished attempt.
  void attempt(Store& s, const Job& j, ClusterId c, AttemptState state, int code = 0) {
    auto n = s.next_attempt(j, c);
    auto row = s.record_start(j, AttemptStart{c, n, 100, 1.0, "log"});
    AttemptEnd end;
    end.state = state;
    end.finished_at = 2.0;
    end.exit_code = code;
    if (state != AttemptState::kRunning) s.record_end(j, row, c, end);
  }

  // A change to the log by hand, as another program would make it.
  void edit(const std::string& sql) {
    SQLite::Database writer(path_.string(), SQLite::OPEN_READWRITE, 10'000);
    writer.exec(sql);
  }

  // A setting of the store's own connection (PRAGMA synchronous is per connection).
  std::string own_setting(Store& s, const std::string& pragma) {
    return s.connection_for_tests().execAndGet("PRAGMA " + pragma).getString();
  }

  // What a reader of the log sees, through a connection of its own.
  std::string one(Store&, const std::string& sql) {
    SQLite::Database reader(path_.string(), SQLite::OPEN_READONLY);
    return reader.execAndGet(sql).getString();
  }

  // "1" while the index is as schema 2 made it.
  std::string unsuccessful_index_has_in_list(Store& s) {
    return one(s,
               "SELECT sql LIKE '%state IN%' FROM sqlite_master "
               "WHERE name = 'attempt_unsuccessful'");
  }

  fs::path dir_, path_;
};

TEST_F(StoreTest, CreatesAVersionedSchemaWithTheDocumentedViews) {
  Store s(path_, Store::Access::kReadWrite);
  EXPECT_EQ(one(s, "PRAGMA user_version"), std::to_string(kSchemaVersion));
  EXPECT_EQ(one(s, "PRAGMA journal_mode"), "wal");
  SQLite::Database reader(path_.string(), SQLite::OPEN_READONLY);
  SQLite::Statement cols(reader,
                         "SELECT group_concat(name, ',') FROM pragma_table_info('attempts')");
  ASSERT_TRUE(cols.executeStep());
  EXPECT_EQ(
      cols.getColumn(0).getString(),
      "job,cluster,attempt,state,pid,host,started,finished,duration_s,exit_code,signal,"
      "user_cpu_s,sys_cpu_s,peak_rss_kib,peak_cgroup_kib,mem_limit_kib,cap,timeout_s,log_path,"
      "note");
  SQLite::Statement pcols(reader,
                          "SELECT group_concat(name, ',') FROM pragma_table_info('progress')");
  ASSERT_TRUE(pcols.executeStep());
  EXPECT_EQ(pcols.getColumn(0).getString(), "job,clusters,done,failed,running,pending");
}

TEST_F(StoreTest, SyncFullMakesEveryCommitDurable) {
  {
    Store normal(path_, Store::Access::kReadWrite);
    EXPECT_EQ(own_setting(normal, "synchronous"), "1");  // NORMAL
  }
  Store full(path_, Store::Access::kReadWrite, Store::Sync::kFull);
  EXPECT_EQ(own_setting(full, "synchronous"), "2");  // FULL
}

TEST_F(StoreTest, DoneClustersAreKeptAsMergedRanges) {
  Store s(path_, Store::Access::kReadWrite);
  auto j = s.open_job("j", 1'000'000'000, "cmd");
  for (ClusterId c : {5, 3, 4, 1, 2, 9, 7, 8}) attempt(s, j, c, AttemptState::kDone);
  EXPECT_EQ(one(s, "SELECT group_concat(lo || '-' || hi) FROM done_range"), "1-5,7-9");
  attempt(s, j, 6, AttemptState::kDone);
  EXPECT_EQ(one(s, "SELECT group_concat(lo || '-' || hi) FROM done_range"), "1-9");
  auto done = s.done_clusters(j);
  EXPECT_EQ(done.count(), 9u);
  EXPECT_EQ(done.ranges(), 1u);
  auto p = s.progress().at(0);
  EXPECT_EQ(p.done, 9u);
  EXPECT_EQ(p.pending, 1'000'000'000u - 9);
}

TEST_F(StoreTest, ProgressCountsAClusterByItsLatestAttempt) {
  Store s(path_, Store::Access::kReadWrite);
  auto j = s.open_job("j", 10, "cmd");
  attempt(s, j, 1, AttemptState::kFailed, 1);  // failed, then done: done
  attempt(s, j, 1, AttemptState::kDone);
  attempt(s, j, 2, AttemptState::kFailed, 1);  // failed twice: failed once
  attempt(s, j, 2, AttemptState::kFailed, 2);
  attempt(s, j, 3, AttemptState::kFailed, 1);  // failed, then running: running
  attempt(s, j, 3, AttemptState::kRunning);
  attempt(s, j, 4, AttemptState::kInterrupted);  // interrupted: pending
  auto p = s.progress().at(0);
  EXPECT_EQ(p.done, 1u);
  EXPECT_EQ(p.failed, 1u);
  EXPECT_EQ(p.running, 1u);
  EXPECT_EQ(p.pending, 7u);
  auto failed = s.failed_clusters(j);
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0].cluster, 2u);
  EXPECT_EQ(failed[0].attempt, 2u);
  EXPECT_EQ(failed[0].exit_code, 2);
}

TEST_F(StoreTest, AttemptsAreNumberedPerCluster) {
  Store s(path_, Store::Access::kReadWrite);
  auto j = s.open_job("j", 10, "cmd");
  EXPECT_EQ(s.next_attempt(j, 4), 1u);
  attempt(s, j, 4, AttemptState::kFailed, 1);
  EXPECT_EQ(s.next_attempt(j, 4), 2u);
  EXPECT_EQ(s.next_attempt(j, 5), 1u);
}

TEST_F(StoreTest, RecoveryMarksLeftoverRunningAttemptsInterrupted) {
  Store s(path_, Store::Access::kReadWrite);
  auto j = s.open_job("j", 10, "cmd");
  attempt(s, j, 1, AttemptState::kRunning);
  attempt(s, j, 2, AttemptState::kRunning);
  attempt(s, j, 3, AttemptState::kDone);
  EXPECT_EQ(s.recover_interrupted(j), 2u);
  EXPECT_EQ(one(s, "SELECT count(*) FROM attempts WHERE state = 'interrupted'"), "2");
  EXPECT_EQ(s.recover_interrupted(j), 0u);
}

TEST_F(StoreTest, AJobWithADifferentSizeOrCommandIsRefusedWithoutWriting) {
  Store s(path_, Store::Access::kReadWrite);
  auto j = s.open_job("j", 10, "./a --x=");
  EXPECT_EQ(s.open_job("j", 10, "./a --x=").id, j.id);
  auto changes = s.connection_for_tests().getTotalChanges();
  EXPECT_THROW(s.open_job("j", 11, "./a --x="), Error);
  EXPECT_THROW(s.open_job("j", 10, "./b --x="), Error);
  EXPECT_EQ(s.connection_for_tests().getTotalChanges(), changes);
  EXPECT_EQ(s.jobs().size(), 1u);
}

// The hold as runner takes it (JobHold), with the holder's pid in the refusal.
void take_hold(Store& s, const Job& j, const ProcessIdentity& who) {
  if (auto live = s.acquire_hold(j, who, holder_still_runs))
    throw Error("job '" + j.name + "' is held by pid " + std::to_string(live->process.pid));
}

TEST_F(StoreTest, AHoldIsRefusedWhileItsHolderLivesAndTakenOverWhenItDied) {
  Store s(path_, Store::Access::kReadWrite);
  auto j = s.open_job("j", 10, "cmd");
  // This test process is a live holder.
  auto self = current_process();
  take_hold(s, j, self);
  auto other = self;
  other.pid = self.pid + 1;
  try {
    take_hold(s, j, other);
    FAIL() << "a live hold was taken";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("pid " + std::to_string(self.pid)), std::string::npos);
  }
  // A holder that has exited: a child we start and reap.
  pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ProcessIdentity dead = self;
  dead.pid = child;
  dead.start_ticks = process_start_ticks(child).value_or(1);
  ::waitpid(child, nullptr, 0);
  s.release_hold(j, self);
  take_hold(s, j, dead);
  EXPECT_NO_THROW(take_hold(s, j, self));
  EXPECT_EQ(s.holder(j)->process.pid, self.pid);
  // A holder whose pid was reused by another process: a different start time.
  auto reused = self;
  reused.start_ticks = self.start_ticks + 1;
  s.release_hold(j, self);
  take_hold(s, j, reused);
  EXPECT_NO_THROW(take_hold(s, j, self));
  // After a reboot, no holder from before it is alive.
  auto before_boot = self;
  before_boot.boot_id = "another-boot";
  s.release_hold(j, self);
  take_hold(s, j, before_boot);
  EXPECT_NO_THROW(take_hold(s, j, self));
}

TEST_F(StoreTest, UpgradesALogFromSchemaOneKeepingEveryAttempt) {
  {
    // The tables as schema 1 had them, with one job and two attempts.
    SQLite::Database db(path_.string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    db.exec(R"SQL(
      CREATE TABLE job (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, clusters INTEGER NOT NULL,
        command TEXT NOT NULL, created_at REAL NOT NULL, holder_pid INTEGER, holder_host TEXT,
        holder_boot TEXT, holder_ticks INTEGER, holder_since REAL);
      CREATE TABLE attempt (id INTEGER PRIMARY KEY, job_id INTEGER NOT NULL REFERENCES job(id),
        cluster INTEGER NOT NULL, attempt INTEGER NOT NULL, state TEXT NOT NULL, pid INTEGER,
        host TEXT, started_at REAL NOT NULL, finished_at REAL, exit_code INTEGER, signal INTEGER,
        user_cpu_s REAL, sys_cpu_s REAL, peak_rss_kib INTEGER, log_path TEXT,
        UNIQUE (job_id, cluster, attempt));
      CREATE INDEX attempt_running ON attempt(job_id, cluster) WHERE state = 'running';
      CREATE INDEX attempt_unsuccessful ON attempt(job_id, cluster) WHERE state IN ('failed');
      CREATE TABLE done_range (job_id INTEGER NOT NULL, lo INTEGER NOT NULL, hi INTEGER NOT NULL,
        PRIMARY KEY (job_id, lo)) WITHOUT ROWID;
      CREATE VIEW attempts AS SELECT a.cluster FROM attempt a;
      CREATE VIEW progress AS SELECT name AS job FROM job;
      INSERT INTO job VALUES (1, 'old', 5, 'cmd', 1.0, NULL, NULL, NULL, NULL, NULL);
      INSERT INTO attempt (job_id, cluster, attempt, state, started_at, finished_at, exit_code,
        peak_rss_kib, log_path) VALUES (1, 1, 1, 'done', 1.0, 2.0, 0, 100, 'a'),
                                       (1, 2, 1, 'failed', 1.0, 2.0, 3, 200, 'b');
      INSERT INTO done_range VALUES (1, 1, 1);
      PRAGMA user_version = 1;
    )SQL");
  }
  Store s(path_, Store::Access::kReadWrite);
  EXPECT_EQ(one(s, "PRAGMA user_version"), std::to_string(kSchemaVersion));
  EXPECT_EQ(unsuccessful_index_has_in_list(s), "0");
  auto p = s.progress().at(0);
  EXPECT_EQ(p.job, "old");
  EXPECT_EQ(p.done, 1u);
  EXPECT_EQ(p.failed, 1u);
  EXPECT_EQ(p.pending, 3u);
  EXPECT_EQ(one(s, "SELECT count(*) FROM attempts WHERE peak_cgroup_kib IS NULL"), "2");
  EXPECT_EQ(s.failed_clusters(*s.find_job("old")).at(0).exit_code, 3);
}

// Every cluster's start and end run these statements. A temporary b-tree
// (an IN list of more than two values, in a statement or in the condition of
// a partial index that an insert or update must check) costs a dozen
// allocations and page-cache set-ups on each run.
TEST_F(StoreTest, NoStatementOfAClustersStartAndEndBuildsATemporaryBtree) {
  Store s(path_, Store::Access::kReadWrite);
  auto j = s.open_job("j", 10, "cmd");
  attempt(s, j, 1, AttemptState::kFailed, 3);
  attempt(s, j, 1, AttemptState::kDone);
  attempt(s, j, 2, AttemptState::kDone);
  EXPECT_EQ(s.peak_kib(s.related_jobs(j), 1), std::nullopt);
  EXPECT_EQ(s.failed_clusters(j).size(), 0u);
  std::vector<std::string> checked;
  for (sqlite3_stmt* st = sqlite3_next_stmt(s.connection_for_tests().getHandle(), nullptr);
       st != nullptr; st = sqlite3_next_stmt(s.connection_for_tests().getHandle(), st)) {
    std::string sql = sqlite3_sql(st);
    if (sql.starts_with("EXPLAIN")) continue;
    SQLite::Statement plan(s.connection_for_tests(), "EXPLAIN " + sql);
    while (plan.executeStep()) EXPECT_NE(plan.getColumn(1).getString(), "OpenEphemeral") << sql;
    checked.push_back(sql);
  }
  auto has = [&](const char* start) {
    return std::any_of(checked.begin(), checked.end(),
                       [&](const std::string& sql) { return sql.starts_with(start); });
  };
  EXPECT_TRUE(has("INSERT INTO attempt "));
  EXPECT_TRUE(has("UPDATE attempt SET state = ?"));
  EXPECT_TRUE(has("SELECT max(coalesce(peak_cgroup_kib"));
}

// The failed clusters are found through the partial index, which SQLite
// uses only when the query repeats the index's condition.
TEST_F(StoreTest, FailedClustersAreFoundThroughThePartialIndex) {
  Store s(path_, Store::Access::kReadWrite);
  SQLite::Statement plan(s.connection_for_tests(),
                         "EXPLAIN QUERY PLAN SELECT failed FROM progress");
  std::string steps;
  while (plan.executeStep()) steps += plan.getColumn(3).getString() + "\n";
  EXPECT_NE(steps.find("USING INDEX attempt_unsuccessful"), std::string::npos) << steps;
}

TEST_F(StoreTest, AVersionTwoLogIsReadAsItIsAndUpgradedByAWriter) {
  {
    Store s(path_, Store::Access::kReadWrite);
    auto j = s.open_job("j", 10, "cmd");
    attempt(s, j, 2, AttemptState::kFailed, 3);
    // Its index and its job table as version 2 made them.
    edit(
        "DROP INDEX attempt_unsuccessful; CREATE INDEX attempt_unsuccessful ON attempt(job_id, "
        "cluster) WHERE state IN ('failed', 'oom', 'timeout'); ALTER TABLE job DROP COLUMN "
        "last_success_at; DROP TABLE meta; DROP TABLE run; PRAGMA user_version = 2");
  }
  {
    Store reader(path_, Store::Access::kReadOnly);
    EXPECT_EQ(reader.progress().at(0).failed, 1u);
    EXPECT_EQ(one(reader, "PRAGMA user_version"), "2");
  }
  Store s(path_, Store::Access::kReadWrite);
  EXPECT_EQ(one(s, "PRAGMA user_version"), std::to_string(kSchemaVersion));
  EXPECT_EQ(unsuccessful_index_has_in_list(s), "0");
  EXPECT_EQ(s.failed_clusters(*s.find_job("j")).at(0).exit_code, 3);
  EXPECT_EQ(s.db_id().size(), 32u);
}

TEST_F(StoreTest, TheDbHasAnIdOfItsOwnThatStaysAndEveryRunIsKeptUntilItEnded) {
  std::string id;
  {
    Store s(path_, Store::Access::kReadWrite);
    id = s.db_id();
    EXPECT_EQ(id.size(), 32u);
    auto j = s.open_job("j", 10, "cmd");
    ProcessIdentity head{42, "h", "boot-1", 7};
    s.record_run(j, "42-7", head);
    s.record_run(j, "43-8", ProcessIdentity{43, "h", "boot-1", 8});
    s.record_run(j, "44-9", ProcessIdentity{44, "other", "boot-1", 9});
    s.end_runs(j, {"43-8"});
    // A hold cleared (runner unlock) forgets no run.
    s.clear_hold(j);
    EXPECT_EQ(s.open_runs(j, "h", "boot-1"), std::vector<std::string>{"42-7"});
    EXPECT_TRUE(s.open_runs(j, "h", "boot-2").empty());
    EXPECT_TRUE(s.has_run(j, "43-8"));
    EXPECT_FALSE(s.has_run(j, "45-1"));
  }
  Store again(path_, Store::Access::kReadWrite);
  EXPECT_EQ(again.db_id(), id);
  Store other(fs::path(path_).replace_filename("other.db"), Store::Access::kReadWrite);
  EXPECT_NE(other.db_id(), id);
}

// Sets TZ for as long as it lives, and puts the old one back.
class TimeZone {
 public:
  explicit TimeZone(const char* zone) {
    if (const char* old = std::getenv("TZ")) old_ = old;
    ::setenv("TZ", zone, 1);
    ::tzset();
  }
  ~TimeZone() {
    if (old_)
      ::setenv("TZ", old_->c_str(), 1);
    else
      ::unsetenv("TZ");
    ::tzset();
  }
  TimeZone(const TimeZone&) = delete;
  TimeZone& operator=(const TimeZone&) = delete;

 private:
  std::optional<std::string> old_;
};

// A log of version 3 showed local time without an offset; from version 4 the
// view shows UTC with its offset, the same in any zone and on either side of
// a change of daylight saving time. The instants themselves never changed.
TEST_F(StoreTest, UpgradesAVersionThreeLogToTimesInUtcWithTheirOffset) {
  // New York's rules, written out so that no zone file is needed. 2026-11-01
  // 05:30:00.250 UTC is 01:30:00.250 EDT; an hour later it is 01:30 again, EST.
  TimeZone zone("EST5EDT,M3.2.0,M11.1.0");
  const double before_change = 1793511000.25, after_change = before_change + 3600;
  {
    Store s(path_, Store::Access::kReadWrite);
    auto j = s.open_job("j", 10, "cmd");
    auto row = s.record_start(j, AttemptStart{1, 1, 100, before_change, "log"});
    AttemptEnd end;
    end.finished_at = after_change;
    s.record_end(j, row, 1, end);
  }
  // The log as version 3 left it: no last success, the view in local time.
  edit(R"SQL(
    ALTER TABLE job DROP COLUMN last_success_at;
    DROP TABLE meta;
    DROP TABLE run;
    DROP VIEW attempts;
    CREATE VIEW attempts AS SELECT j.name AS job, a.cluster, a.attempt, a.state,
      strftime('%Y-%m-%d %H:%M:%f', a.started_at, 'unixepoch', 'localtime') AS started,
      strftime('%Y-%m-%d %H:%M:%f', a.finished_at, 'unixepoch', 'localtime') AS finished,
      round(a.finished_at - a.started_at, 3) AS duration_s
    FROM attempt a JOIN job j ON j.id = a.job_id;
    PRAGMA user_version = 3;
  )SQL");
  {
    // Read as it is: the same clock time twice, an hour apart, and no last success.
    Store reader(path_, Store::Access::kReadOnly);
    EXPECT_EQ(one(reader, "SELECT started || ' ' || finished FROM attempts"),
              "2026-11-01 01:30:00.250 2026-11-01 01:30:00.250");
    EXPECT_FALSE(reader.job_times(*reader.find_job("j")).last_success_at);
  }
  Store s(path_, Store::Access::kReadWrite);
  EXPECT_EQ(one(s, "PRAGMA user_version"), std::to_string(kSchemaVersion));
  EXPECT_EQ(one(s, "SELECT started || ' ' || finished || ' ' || duration_s FROM attempts"),
            "2026-11-01T05:30:00.250Z 2026-11-01T06:30:00.250Z 3600.0");
  EXPECT_EQ(one(s, "SELECT started FROM attempts"), utc_time(before_change));
  // SQLite reads them back as the same instants, in the local zone if asked.
  EXPECT_EQ(one(s, "SELECT datetime(finished, 'localtime') FROM attempts"), "2026-11-01 01:30:00");
  EXPECT_EQ(one(s,
                "SELECT round((julianday(finished) - julianday(started)) * 86400)"
                " FROM attempts"),
            "3600.0");
  EXPECT_EQ(local_time(before_change), "2026-11-01T01:30:00-04:00");
  EXPECT_EQ(local_time(after_change), "2026-11-01T01:30:00-05:00");
  // Where a run ended all done, that is kept.
  auto j = *s.find_job("j");
  EXPECT_FALSE(s.job_times(j).last_success_at);
  s.record_success(j, after_change);
  EXPECT_EQ(s.job_times(j).last_success_at, after_change);
}

TEST_F(StoreTest, OomAndTimeoutCountAsFailedAndAreDescribedInWords) {
  Store s(path_, Store::Access::kReadWrite);
  auto j = s.open_job("j", 10, "cmd");
  auto row = s.record_start(j, AttemptStart{1, 1, 100, 1.0, "log", "cgroup-v1", 204800});
  AttemptEnd end;
  end.state = AttemptState::kOom;
  end.signal = 9;
  end.peak_rss_kib = 210000;
  end.peak_cgroup_kib = 204800;
  end.note = "the kernel killed 1 process(es) of it for memory";
  s.record_end(j, row, 1, end);
  EXPECT_EQ(s.progress().at(0).failed, 1u);
  auto f = s.failed_clusters(j).at(0);
  EXPECT_EQ(f.state, AttemptState::kOom);
  EXPECT_EQ(describe_failure(f),
            "out of memory at the 200.0 MiB cap (peak 200.0 MiB); the kernel killed 1 process(es) "
            "of it for memory");
  // History for the budget: the cgroup figure where there is one.
  EXPECT_EQ(s.peak_kib(s.related_jobs(j), 1), 204800u);
  EXPECT_EQ(s.peak_kib(s.related_jobs(j), 2), std::nullopt);
}

TEST_F(StoreTest, PeaksAreLearnedFromEarlierJobsWithTheSameCommandAndSize) {
  Store s(path_, Store::Access::kReadWrite);
  auto monday = s.open_job("monday", 10, "cmd");
  auto other = s.open_job("other", 10, "another cmd");
  auto tuesday = s.open_job("tuesday", 10, "cmd");
  attempt(s, monday, 3, AttemptState::kDone);
  edit("UPDATE attempt SET peak_rss_kib = 7777");
  attempt(s, other, 4, AttemptState::kDone);
  edit("UPDATE attempt SET peak_rss_kib = 9999 WHERE cluster = 4");
  auto related = s.related_jobs(tuesday);
  EXPECT_EQ(related, (std::vector<std::int64_t>{tuesday.id, monday.id}));
  EXPECT_EQ(s.peak_kib(related, 3), 7777u);
  EXPECT_EQ(s.peak_kib(related, 4), std::nullopt);
}

TEST_F(StoreTest, HistoryIsReadNewestJobFirstAndStopsOnceEnoughClustersAreCovered) {
  Store s(path_, Store::Access::kReadWrite);
  auto older = s.open_job("older", 10, "cmd");
  auto newer = s.open_job("newer", 10, "cmd");
  attempt(s, older, 1, AttemptState::kDone);
  attempt(s, older, 3, AttemptState::kDone);
  attempt(s, newer, 1, AttemptState::kDone);
  attempt(s, newer, 2, AttemptState::kDone);
  std::vector<ClusterId> handed;
  auto each = [&](const Store::ClusterHistory& h) { handed.push_back(h.cluster); };
  // All of it: the newer job's 1 and 2, then the older one's 3 (its 1 was
  // done again since, so the newer figure stands).
  s.cluster_history({newer.id, older.id}, 10, each);
  ASSERT_EQ(handed.size(), 3u);
  EXPECT_EQ(handed.back(), 3u);
  std::sort(handed.begin(), handed.end());
  EXPECT_EQ(handed, (std::vector<ClusterId>{1, 2, 3}));
  // Two clusters are enough: the older job is not read at all.
  handed.clear();
  s.cluster_history({newer.id, older.id}, 2, each);
  std::sort(handed.begin(), handed.end());
  EXPECT_EQ(handed, (std::vector<ClusterId>{1, 2}));
}

TEST_F(StoreTest, RefusesAFileThatIsNotSQLiteAndLeavesItAlone) {
  std::ofstream(path_.string()) << "hello\n";
  EXPECT_THROW(Store(path_, Store::Access::kReadWrite), Error);
  std::ifstream in(path_.string());
  std::string text((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(text, "hello\n");
}

TEST_F(StoreTest, RefusesADatabaseItDidNotCreateOrFromANewerRunner) {
  {
    SQLite::Database db(path_.string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    db.exec("CREATE TABLE users (id)");
  }
  EXPECT_THROW(Store(path_, Store::Access::kReadWrite), Error);
  {
    SQLite::Database db(path_.string(), SQLite::OPEN_READWRITE);
    db.exec("PRAGMA user_version = 7");
  }
  try {
    Store s(path_, Store::Access::kReadWrite);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("schema 7"), std::string::npos) << e.what();
  }
}

TEST_F(StoreTest, ReadOnlyNeverCreatesTheFile) {
  EXPECT_THROW(Store(path_, Store::Access::kReadOnly), Error);
  EXPECT_FALSE(fs::exists(path_));
}

TEST_F(StoreTest, AnUncommittedBatchIsRolledBack) {
  Store s(path_, Store::Access::kReadWrite);
  auto j = s.open_job("j", 10, "cmd");
  {
    Store::Batch batch(s);
    attempt(s, j, 1, AttemptState::kDone);
  }
  EXPECT_EQ(s.done_clusters(j).count(), 0u);
  {
    Store::Batch batch(s);
    attempt(s, j, 1, AttemptState::kDone);
    batch.commit();
  }
  EXPECT_EQ(s.done_clusters(j).count(), 1u);
}

}  // namespace
}  // namespace runner

namespace runner::testing {
namespace {

// runner's own UTC times (status --json, the page) and the attempts view
// name one instant alike, to the millisecond, wherever its fraction falls.
TEST(UtcTime, SaysWhatTheAttemptsViewSaysOfEveryInstant) {
  SQLite::Database db(":memory:", SQLite::OPEN_READWRITE);
  SQLite::Statement q(db, "SELECT strftime('%Y-%m-%dT%H:%M:%fZ', ?, 'unixepoch')");
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> when(1.7e9, 1.9e9);
  std::size_t differ = 0;
  for (int i = 0; i < 200'000; ++i) {
    // Half of them just beside a half millisecond, where rounding tells.
    double t = when(rng);
    if (i % 2) t = std::floor(t * 1000) / 1000 + 0.0005 + (i % 4 == 1 ? 1e-9 : -1e-9);
    q.bind(1, t);
    q.executeStep();
    if (q.getColumn(0).getString() != utc_time(t) && ++differ < 5)
      ADD_FAILURE() << std::setprecision(17) << t << ": " << q.getColumn(0).getString()
                    << " against " << utc_time(t);
    q.reset();
  }
  EXPECT_EQ(differ, 0u);
}

}  // namespace
}  // namespace runner::testing
