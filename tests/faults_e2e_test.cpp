// Faults a hostile user found, end to end on the real binary: a reader of
// runner's output that goes away, logs planted as symbolic links, a DB that
// vanishes or fills its disk, clusters that could not even be started.
#include <SQLiteCpp/Database.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <fstream>

#include "e2e_util.h"

namespace runner::testing {
namespace {

using Args = std::vector<std::string>;

// `runner ... | head -1`: whoever reads runner's stdout (or stderr) goes
// away. runner stops printing there and finishes the run as if nothing
// happened; its children still get SIGPIPE's default disposition.
TEST(Faults, AReaderThatGoesAwayStopsThePrintingNotTheRun) {
  for (bool on_stdout : {true, false}) {
    SCOPED_TRACE(on_stdout ? "stdout" : "stderr");
    TempDir t;
    int fds[2];
    ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    ::close(fds[0]);  // nobody will ever read: every write fails with EPIPE
    Streams streams;
    (on_stdout ? streams.out : streams.err) = fds[1];
    // The progress line goes to stdout, the warning of cluster 3's failure to stderr.
    RunnerProcess runner(with_child({"30", "2"}, {"--exit-for", "3=1", "--args-to-stdout"}),
                         t.path(), streams);
    ::close(fds[1]);
    EXPECT_EQ(runner.wait(), 1) << runner.err();
    auto db = t / "runner.db";
    EXPECT_EQ(query(db, "SELECT done || ' ' || failed || ' ' || running FROM progress"), "29 1 0");
    EXPECT_EQ(query(db, "SELECT count(*) FROM job WHERE holder_pid IS NOT NULL"), "0");
    auto log = read_file(query(db, "SELECT log_path FROM attempts WHERE cluster = 1"));
    EXPECT_NE(log.find("sigpipe=default\n"), std::string::npos) << log;
  }
}

// A log is created new, never through a link nor over an existing file: a
// taken name gets a fresh one, and the attempt records where its log is.
TEST(Faults, LogsAreNeverWrittenThroughALinkNorOverAnExistingFile) {
  TempDir t;
  auto folder = t / "runner.logs" / "j";
  fs::create_directories(folder);
  auto victim = t / "victim";
  std::ofstream(victim.string()) << std::string(1000, 'v');
  fs::create_symlink(victim, folder / "1.1.log");
  fs::create_symlink(t / "created-through-a-link", folder / "2.1.log");
  std::ofstream((folder / "3.1.log").string()) << "an earlier DB's log\n";
  auto r = run_runner(with_child({"3", "1", "--job", "j"}, {"--print", "1"}), t.path());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(fs::file_size(victim), 1000u);
  EXPECT_FALSE(fs::exists(t / "created-through-a-link"));
  EXPECT_EQ(read_file(folder / "3.1.log"), "an earlier DB's log\n");
  auto db = t / "runner.db";
  for (int c = 1; c <= 3; ++c) {
    auto log = query(db, "SELECT log_path FROM attempts WHERE cluster = " + std::to_string(c));
    EXPECT_EQ(log, (folder / (std::to_string(c) + ".1-2.log")).string());
    EXPECT_NE(read_file(log).find("out line 0 of cluster " + std::to_string(c)), std::string::npos);
  }
}

// A DB deleted and made again: the new job's logs do not overwrite the old ones.
TEST(Faults, ANewDbBesideOldLogsKeepsThem) {
  TempDir t;
  ASSERT_EQ(run_runner(with_child({"2", "1", "--job", "j"}, {"--print", "1"}), t.path()).code, 0);
  auto first = query(t / "runner.db", "SELECT log_path FROM attempts WHERE cluster = 1");
  auto before = read_file(first);
  fs::remove(t / "runner.db");
  ASSERT_EQ(run_runner(with_child({"2", "1", "--job", "j"}, {"--exit", "0"}), t.path()).code, 0);
  EXPECT_EQ(read_file(first), before);
  EXPECT_NE(query(t / "runner.db", "SELECT log_path FROM attempts WHERE cluster = 1"), first);
}

TEST(Faults, AJobLogFolderThatIsALinkIsRefusedBeforeAnythingIsWritten) {
  TempDir t;
  fs::create_directories(t / "elsewhere");
  fs::create_directories(t / "runner.logs");
  fs::create_directory_symlink(t / "elsewhere", t / "runner.logs" / "j");
  auto r = run_runner(with_child({"2", "1", "--job", "j"}, {}), t.path());
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("log folder " + (t / "runner.logs" / "j").string() + " is a symbolic link"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(t / "runner.db"));
  EXPECT_TRUE(fs::is_empty(t / "elsewhere"));
}

// With too few open files for P children at once (a low `ulimit -Hn`),
// runner runs fewer at once and says so; no cluster is marked failed.
TEST(Faults, TooFewOpenFilesRunFewerAtOnceAndFailNoCluster) {
  TempDir t;
  auto r = run_shell(
      "ulimit -n 48 && exec " + runner_bin() + " 60 60 -- " + child_bin() + " --sleep-ms 20",
      t.path());
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(query(t / "runner.db", "SELECT done || ' ' || failed FROM progress"), "60 0");
  EXPECT_EQ(query(t / "runner.db", "SELECT count(*) FROM attempts WHERE state != 'done'"), "0");
  // Only a cgroup holds open files in runner while its cluster runs: where
  // none can be made (a container, a chroot), 48 are enough for 60 at once.
  auto cap = query(t / "runner.db", "SELECT group_concat(DISTINCT cap) FROM attempts");
  if (cap.rfind("cgroup", 0) != 0)
    GTEST_SKIP() << "no cgroup here (clusters ran with cap " << cap
                 << "): a running cluster holds no open file in runner, so the shortage this "
                    "test makes cannot happen; all 60 ran";
  EXPECT_NE(r.err.find("raise the open-file limit (ulimit -n) for more"), std::string::npos)
      << r.err;
}

// A runner whose DB is deleted under it stops at its next commit, with exit
// code 3; a second runner on the same job cannot start through a new file
// while the first lives.
TEST(Faults, ADeletedDbStopsTheRunAndItsJobCannotBeTakenTwice) {
  TempDir t;
  auto ready = t / "ready";
  fs::create_directory(ready);
  auto args = with_child({"10", "2", "--job", "j"},
                         {"--ready-dir", ready.string(), "--hold-file", (t / "go").string(),
                          "--record", (t / "record").string()});
  RunnerProcess first(args, t.path());
  ASSERT_TRUE(wait_until(ready, [&] { return fs::exists(ready / "2.ready"); }));
  ASSERT_TRUE(wait_for_running(t.path(), 2));
  for (const char* f : {"runner.db", "runner.db-wal", "runner.db-shm"}) fs::remove(t / f);

  auto second = run_runner(args, t.path());
  EXPECT_EQ(second.code, 2);
  EXPECT_NE(second.err.find("job 'j' in runner.db is already being run by pid " +
                            std::to_string(first.pid())),
            std::string::npos)
      << second.err;
  EXPECT_FALSE(fs::exists(t / "runner.db"));

  std::ofstream((t / "go").string()).put('x');
  EXPECT_EQ(first.wait(), 3);
  EXPECT_NE(first.err().find("runner: --db runner.db: the file was deleted, moved or replaced "
                             "while runner ran"),
            std::string::npos)
      << first.err();
  // It noticed before asking for anything more. Its worker may have started
  // the four it had been handed ahead (2 × P), clusters 3 to 6; nothing after.
  for (const auto& line : read_lines(t / "record")) {
    if (line.rfind("start ", 0) != 0) continue;
    EXPECT_LE(std::stol(line.substr(6)), 6) << line;
  }
}

TEST(Faults, AMovedDbStopsTheRunWithExitCode3) {
  TempDir t;
  auto ready = t / "ready";
  fs::create_directory(ready);
  RunnerProcess runner(
      with_child({"4", "2"}, {"--ready-dir", ready.string(), "--hold-file", (t / "go").string()}),
      t.path());
  ASSERT_TRUE(wait_until(ready, [&] { return fs::exists(ready / "2.ready"); }));
  ASSERT_TRUE(wait_for_running(t.path(), 2));
  fs::rename(t / "runner.db", t / "moved.db");
  std::ofstream((t / "go").string()).put('x');
  EXPECT_EQ(runner.wait(), 3);
  EXPECT_NE(runner.err().find("the file was deleted, moved or replaced"), std::string::npos)
      << runner.err();
}

// The DB's filesystem fills up: runner stops with a documented exit code and
// message, leaves no child running, and the next run (with room again)
// finishes the job from a sound DB.
TEST(Faults, AFullDbFilesystemEndsTheRunWithExitCode3AndNothingRunning) {
  TempDir t;
  auto dbfs = t / "dbfs";
  fs::create_directory(dbfs);
  if (::mount("none", dbfs.c_str(), "tmpfs", 0, "size=16m") != 0)
    GTEST_SKIP() << "cannot mount a small tmpfs here: " << std::strerror(errno);
  auto record = t / "record";
  auto args = with_child(
      {"400", "2", "--db", (dbfs / "runner.db").string(), "--logs", (t / "logs").string()},
      {"--sleep-ms", "5", "--record", record.string()});
  RunnerProcess runner(args, t.path());
  ASSERT_TRUE(wait_until(dbfs, [&] {
    try {
      return std::stoi(query(dbfs / "runner.db", "SELECT done FROM progress")) >= 10;
    } catch (const std::exception&) {
      return false;
    }
  }));
  {
    std::ofstream fill((dbfs / "filler").string());
    std::string block(4096, 'x');
    while (fill.write(block.data(), block.size())) {
    }
  }
  int code = runner.wait();
  EXPECT_EQ(code, 3) << runner.err();
  EXPECT_NE(runner.err().find("cannot write the log: database or disk is full"), std::string::npos)
      << runner.err();
  for (const auto& line : read_lines(record))
    if (line.rfind("start ", 0) == 0) {
      auto pid = std::stoi(line.substr(line.rfind(' ') + 1));
      EXPECT_FALSE(process_exists(pid)) << line;
    }
  fs::remove(dbfs / "filler");
  auto again = run_runner(args, t.path());
  EXPECT_EQ(again.code, 0) << again.err;
  EXPECT_EQ(query(dbfs / "runner.db", "PRAGMA integrity_check"), "ok");
  EXPECT_EQ(query(dbfs / "runner.db", "SELECT done FROM progress"), "400");
  ::umount2(dbfs.c_str(), MNT_DETACH);
}

// Job A's runner is killed with clusters running in their cgroups; a runner
// of another job in the same cgroup leaves them alone. A's own next runner
// kills them.
TEST(Faults, AnotherJobsOrphansAreNotThisRunnersToKill) {
  REQUIRE_CGROUP(dir);
  TempDir t;
  auto ready = t / "ready";
  fs::create_directory(ready);
  auto a_args = with_child({"2", "2", "--db", "a.db", "--job", "A"},
                           {"--ready-dir", ready.string(), "--hold-file", (t / "go").string(),
                            "--record", (t / "record").string()});
  {
    RunnerProcess a(a_args, t.path());
    ASSERT_TRUE(wait_until(
        ready, [&] { return fs::exists(ready / "1.ready") && fs::exists(ready / "2.ready"); }));
    a.signal(SIGKILL);
    a.wait();
  }
  std::vector<pid_t> orphans;
  for (const auto& line : read_lines(t / "record"))
    orphans.push_back(std::stoi(line.substr(line.rfind(' ') + 1)));
  ASSERT_EQ(orphans.size(), 2u);

  auto b = run_runner({"1", "1", "--db", "b.db", "--job", "B", "--", "true"}, t.path());
  EXPECT_EQ(b.code, 0) << b.err;
  for (pid_t pid : orphans) EXPECT_TRUE(process_exists(pid)) << pid;

  // A's own next runner, with --orphans kill, kills them (and the worker
  // that ran them) and says so.
  auto a_kill = a_args;
  a_kill.insert(a_kill.begin(), {"--orphans", "kill"});
  RunnerProcess a2(a_kill, t.path());
  EXPECT_TRUE(wait_until(
      t.path(), [&] { return std::none_of(orphans.begin(), orphans.end(), process_exists); }));
  std::ofstream((t / "go").string()).put('x');
  EXPECT_EQ(a2.wait(), 0) << a2.err();
  EXPECT_NE(a2.err().find("warning: killing the worker (pid "), std::string::npos) << a2.err();
  EXPECT_NE(a2.err().find("killed 2 process(es) of clusters an earlier runner left running"),
            std::string::npos)
      << a2.err();
}

// A cluster that made itself unkillable by runner (a set-user-ID root program
// that takes all its uids, runner running as an ordinary user) runs past its
// timeout: recorded `timeout` however it ends, with a warning that says why.
TEST(Faults, ATimeoutThatCannotBeEnforcedIsRecordedAsATimeout) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to make a set-user-ID root program";
  TempDir t;
  fs::permissions(t.path(), fs::perms::all);
  auto suid_child = t / "suid_child";
  fs::copy_file(child_bin(), suid_child);
  ASSERT_EQ(::chmod(suid_child.c_str(), 04755), 0);
  auto script = "exec setpriv --reuid=65534 --regid=65534 --clear-groups " + runner_bin() +
                " 1 1 --cap none --timeout 200ms --grace 200ms -- " + suid_child.string() +
                " --become-root --ignore-term --hold-file " + (t / "go").string();
  RunnerProcess runner({"-c", script}, t.path(), Streams(), "/bin/sh");
  ASSERT_TRUE(wait_until(t.path(), [&] {
    return runner.err().find("could not stop it (SIGTERM refused") != std::string::npos;
  })) << runner.err();
  std::ofstream((t / "go").string()).put('x');  // it ends by itself, with exit code 0
  EXPECT_EQ(runner.wait(), 1) << runner.err();
  EXPECT_NE(runner.err().find("Operation not permitted"), std::string::npos) << runner.err();
  EXPECT_EQ(query(t / "runner.db", "SELECT state || ' ' || exit_code FROM attempts"), "timeout 0");
}

TEST(Faults, AScriptWithoutAShebangIsRefusedBeforeAnythingIsWritten) {
  if (!fs::is_empty("/proc/sys/fs/binfmt_misc"))
    GTEST_SKIP() << "binfmt_misc handlers may run files without #!";
  TempDir t;
  std::ofstream((t / "script").string()) << "echo hello\n";
  fs::permissions(t / "script", fs::perms::owner_all);
  auto r = run_runner({"3", "1", "--", "./script"}, t.path());
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("cannot execute ./script: Exec format error"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(t / "runner.db"));
  EXPECT_FALSE(fs::exists(t / "runner.logs"));
}

TEST(Faults, TheSummaryOfAStopCountsClustersWaitingToRunAgain) {
  TempDir t;
  // Clusters 1-3 fail and wait an hour for their retry; cluster 4 runs until stopped.
  auto go = (t / "never").string();
  RunnerProcess runner(
      {"4", "4", "--retries", "1", "--retry-delay", "1h", "--", "sh", "-c",
       "[ $RUNNER_CLUSTER = 4 ] || exit 1; while [ ! -e " + go + " ]; do sleep 0.05; done"},
      t.path());
  ASSERT_TRUE(wait_until(t.path(), [&] {
    try {
      return query(t / "runner.db", "SELECT count(*) FROM attempts WHERE state = 'failed'") == "3";
    } catch (const std::exception&) {
      return false;
    }
  }));
  runner.signal(SIGINT);
  EXPECT_EQ(runner.wait(), 130);
  EXPECT_NE(runner.out().find("of the 4 left, 1 interrupted, 3 waiting to run again;"),
            std::string::npos)
      << runner.out();
}

TEST(Faults, StatusEscapesControlCharactersOfTheLog) {
  TempDir t;
  auto r = run_runner({"1", "1", "--job", "j", "--", "sh", "-c", "exit 3", "\x1b]0;owned\x07\nx"},
                      t.path());
  ASSERT_EQ(r.code, 1) << r.err;
  auto status = run_runner({"status"}, t.path());
  EXPECT_EQ(status.code, 0);
  EXPECT_EQ(status.out.find('\x1b'), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("\\x1b]0;owned\\x07\\nx"), std::string::npos) << status.out;
}

TEST(Faults, StatusRefusesAProgressViewReplacedByATable) {
  TempDir t;
  ASSERT_EQ(run_runner({"1", "1", "--", "true"}, t.path()).code, 0);
  {
    SQLite::Database db((t / "runner.db").string(), SQLite::OPEN_READWRITE);
    db.exec("DROP VIEW progress; CREATE TABLE progress (job TEXT)");
  }
  auto status = run_runner({"status"}, t.path());
  EXPECT_EQ(status.code, 2);
  EXPECT_NE(status.err.find("'progress' is a table, not the view runner made"), std::string::npos)
      << status.err;
}

TEST(Faults, UnlockClearsAHoldOnlyWhenItsHolderIsNotKnownToRun) {
  TempDir t;
  ASSERT_EQ(run_runner({"1", "1", "--job", "j", "--", "true"}, t.path()).code, 0);
  auto db = t / "runner.db";
  auto hold = [&](const std::string& host, pid_t pid, const std::string& boot) {
    SQLite::Database d(db.string(), SQLite::OPEN_READWRITE);
    d.exec("UPDATE job SET holder_pid = " + std::to_string(pid) + ", holder_host = '" + host +
           "', holder_boot = '" + boot + "', holder_ticks = 1, holder_since = 0");
  };
  // On another host: cleared, with a warning that says what it risks.
  hold("elsewhere.example", 4242, "x");
  auto r = run_runner({"unlock", "--job", "j"}, t.path());
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("cannot tell from here whether it still runs"), std::string::npos) << r.err;
  EXPECT_EQ(query(db, "SELECT holder_pid IS NULL FROM job"), "1");
  // A live holder on this host is refused: stop it instead.
  TempDir other;
  auto ready = t / "ready";
  fs::create_directory(ready);
  RunnerProcess live(with_child({"1", "1", "--job", "j2"}, {"--ready-dir", ready.string(),
                                                            "--hold-file", (t / "go").string()}),
                     t.path());
  ASSERT_TRUE(wait_until(ready, [&] { return fs::exists(ready / "1.ready"); }));
  r = run_runner({"unlock", "--job", "j2"}, t.path());
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("is held by pid " + std::to_string(live.pid()) + " on this host"),
            std::string::npos)
      << r.err;
  std::ofstream((t / "go").string()).put('x');
  EXPECT_EQ(live.wait(), 0);
}

}  // namespace
}  // namespace runner::testing
