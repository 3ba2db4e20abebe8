// Reliability end to end: timeouts, retries, halting, and faults a real
// machine throws at runner (stubborn and stopped children, daemonising
// grandchildren, floods of output, a full disk, a locked DB, no processes to
// spare, signal storms).
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "e2e_util.h"
#include "runner/memory.h"

namespace runner::testing {
namespace {

using Args = std::vector<std::string>;

TEST(Reliability, ATimeoutStopsTheChildAndRecordsTimeoutWithTheLimit) {
  TempDir t;
  auto r = run_runner(
      with_child({"2", "2", "--timeout", "200ms"}, {"--hold-file", (t / "never").string()}),
      t.path());
  EXPECT_EQ(r.code, 1);
  auto db = t / "runner.db";
  EXPECT_EQ(query(db,
                  "SELECT count(*) FROM attempts WHERE state = 'timeout' AND timeout_s = 0.2 "
                  "AND signal = 15 AND note = 'timed out after 0.2s'"),
            "2");
  EXPECT_NE(r.out.find("cluster 1: timed out, killed by SIGTERM"), std::string::npos) << r.out;
}

TEST(Reliability, AChildIgnoringSigtermIsKilledAfterTheGraceOnTimeout) {
  TempDir t;
  auto r = run_runner(with_child({"1", "1", "--timeout", "100ms", "--grace", "100ms"},
                                 {"--ignore-term", "--hold-file", (t / "never").string()}),
                      t.path());
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(query(t / "runner.db", "SELECT state || ' ' || signal FROM attempts"), "timeout 9");
}

TEST(Reliability, ATimeoutFiresWhileTheChildIsStopped) {
  TempDir t;
  auto r = run_runner(
      with_child({"1", "1", "--timeout", "100ms", "--grace", "5s"}, {"--stop-self"}), t.path());
  EXPECT_EQ(r.code, 1);
  // SIGTERM reached it because runner continued it: no need for the SIGKILL.
  EXPECT_EQ(query(t / "runner.db", "SELECT state || ' ' || signal FROM attempts"), "timeout 15");
}

TEST(Reliability, RetriesRunFailedClustersAgainAsNewAttemptsWithNewLogs) {
  TempDir t;
  auto r = run_runner(with_child({"3", "3", "--retries", "2", "--retry-delay", "10ms"},
                                 {"--exit-for", "2=4", "--print", "1"}),
                      t.path());
  EXPECT_EQ(r.code, 1);
  auto db = t / "runner.db";
  EXPECT_EQ(query(db,
                  "SELECT count(*) || ' ' || count(DISTINCT log_path) FROM attempts "
                  "WHERE cluster = 2"),
            "3 3");
  EXPECT_EQ(query(db, "SELECT group_concat(attempt) FROM attempts WHERE cluster = 2"), "1,2,3");
  r = run_runner(with_child({"3", "3", "--retries", "2", "--retry-on", "exit:5", "--job", "narrow"},
                            {"--exit-for", "2=4"}),
                 t.path());
  EXPECT_EQ(query(db, "SELECT count(*) FROM attempts WHERE job = 'narrow' AND cluster = 2"), "1");
}

TEST(Reliability, HaltSoonSaysWhyItStopped) {
  TempDir t;
  auto r = run_runner(with_child({"50", "1", "--halt", "soon,fail=2"}, {"--exit", "3"}), t.path());
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(query(t / "runner.db", "SELECT count(*) FROM attempts"), "2");
  EXPECT_NE(r.out.find("stopped early: --halt: 2 cluster(s) failed"), std::string::npos) << r.out;
}

TEST(Reliability, ADaemonisingGrandchildDiesWithItsCluster) {
  for (std::string cap : {"auto", "none"}) {
    TempDir t;
    auto pids = t / "daemons";
    fs::create_directory(pids);
    auto r =
        run_runner(with_child({"3", "3", "--cap", cap}, {"--daemon", pids.string()}), t.path());
    ASSERT_EQ(r.code, 0) << cap << r.err;
    for (int c = 1; c <= 3; ++c) {
      auto pid = std::stoi(read_file(pids / (std::to_string(c) + ".pid")));
      EXPECT_FALSE(process_exists(pid)) << "--cap " << cap << ": pid " << pid << " lives";
    }
  }
}

TEST(Reliability, NoProcessOutlivesCtrlC) {
  TempDir t;
  auto ready = t / "ready";
  fs::create_directory(ready);
  auto pids = t / "daemons";
  fs::create_directory(pids);
  RunnerProcess runner(with_child({"4", "2", "--cap", "none"},
                                  {"--daemon", pids.string(), "--ready-dir", ready.string(),
                                   "--hold-file", (t / "never").string()}),
                       t.path());
  // Both clusters, each of which may be ready before the other.
  ASSERT_TRUE(wait_until(
      ready, [&] { return fs::exists(ready / "1.ready") && fs::exists(ready / "2.ready"); }));
  runner.signal(SIGINT);
  EXPECT_EQ(runner.wait(), 130);
  for (int c = 1; c <= 2; ++c) {
    auto pid = std::stoi(read_file(pids / (std::to_string(c) + ".pid")));
    EXPECT_FALSE(process_exists(pid)) << pid;
  }
}

// Starts a runner whose 3 clusters wait for `go`, kills it with SIGKILL once
// all three run, and returns the pids of its children, which live on.
std::vector<pid_t> orphan_three(TempDir& t, const Args& runner_args) {
  auto ready = t / "ready";
  fs::create_directories(ready);
  RunnerProcess first(runner_args, t.path());
  EXPECT_TRUE(wait_until(ready, [&] { return fs::exists(ready / "3.ready"); }));
  // Starts are committed in groups: kill it once the log shows all three.
  EXPECT_TRUE(wait_for_running(t.path(), 3));
  first.signal(SIGKILL);
  first.wait();
  std::vector<pid_t> pids;
  for (const auto& line : read_lines(t / "record"))
    if (line.rfind("start ", 0) == 0) pids.push_back(std::stoi(line.substr(line.rfind(' ') + 1)));
  for (pid_t pid : pids) EXPECT_TRUE(process_exists(pid)) << pid;
  return pids;
}

TEST(Reliability, OrphansOfAKilledRunnerAreKilledBeforeTheirClustersRunAgain) {
  TempDir t;
  fs::create_directory(t / "locks");
  auto args =
      with_child({"3", "3", "--cap", "none", "--orphans", "kill"},
                 {"--record", (t / "record").string(), "--ready-dir", (t / "ready").string(),
                  "--hold-file", (t / "go").string(), "--exclusive", (t / "locks").string()});
  auto orphans = orphan_three(t, args);
  RunnerProcess second(args, t.path());
  // The clusters wait for `go`: the orphans can only end by being killed.
  EXPECT_TRUE(wait_until(
      t.path(), [&] { return std::none_of(orphans.begin(), orphans.end(), process_exists); }));
  std::ofstream((t / "go").string()).put('x');
  EXPECT_EQ(second.wait(), 0) << second.err();
  EXPECT_NE(second.err().find("killed 3 process(es) of clusters an earlier runner left running"),
            std::string::npos)
      << second.err();
  EXPECT_FALSE(fs::exists(t / "locks" / "overlaps"));
  EXPECT_EQ(query(t / "runner.db", "SELECT done FROM progress"), "3");
  // Killed, they ran again: --orphans kill gives up what they had done.
  EXPECT_EQ(
      query(t / "runner.db", "SELECT count(*) FROM attempts WHERE attempt = 2 AND state = 'done'"),
      "3");
}

// The worker of a killed runner still runs its clusters when the next runner
// starts: the next runner waits for it, then records what it journalled. No
// cluster runs twice, and none twice at once.
TEST(Reliability, WithOrphansWaitTheNextRunnerWaitsForThemToEnd) {
  TempDir t;
  fs::create_directory(t / "locks");
  auto args =
      with_child({"3", "3", "--cap", "none", "--orphans", "wait"},
                 {"--record", (t / "record").string(), "--ready-dir", (t / "ready").string(),
                  "--hold-file", (t / "go").string(), "--exclusive", (t / "locks").string()});
  auto orphans = orphan_three(t, args);
  RunnerProcess second(args, t.path());
  // It must not start anything while the orphans live: release them only
  // once it says it waits.
  ASSERT_TRUE(wait_until(t.path(), [&] {
    return second.err().find("waiting for the worker (pid ") != std::string::npos;
  }));
  EXPECT_EQ(count_lines(t / "record"), 3u);
  std::ofstream((t / "go").string()).put('x');
  EXPECT_EQ(second.wait(), 0) << second.err();
  auto lines = read_lines(t / "record");
  // The 3 orphans start and end, and nothing more runs: their worker
  // journalled how they ended, and the second runner recorded it.
  ASSERT_EQ(lines.size(), 6u);
  for (int i = 3; i < 6; ++i) EXPECT_EQ(lines[i].rfind("end ", 0), 0u) << lines[i];
  EXPECT_EQ(query(t / "runner.db",
                  "SELECT count(*) FROM attempts WHERE attempt = 1 AND state = 'done' AND "
                  "exit_code = 0 AND finished IS NOT NULL AND note LIKE '%journal%'"),
            "3");
  EXPECT_FALSE(fs::exists(t / "locks" / "overlaps"));
}

TEST(Reliability, AChildThatClosesItsStdoutIsFine) {
  TempDir t;
  auto r = run_runner({"2", "2", "--", "sh", "-c", "exec 1>&-; echo lost 2>/dev/null; exit 0"},
                      t.path());
  EXPECT_EQ(r.code, 0) << r.err;
}

TEST(Reliability, TwoHundredMebibytesOfOutputGoStraightToTheLog) {
  TempDir t;
  auto r = run_runner(with_child({"1", "1"}, {"--print-mib", "200"}), t.path());
  EXPECT_EQ(r.code, 0) << r.err;
  auto log = query(t / "runner.db", "SELECT log_path FROM attempts");
  EXPECT_EQ(fs::file_size(log), 200u << 20);
}

TEST(Reliability, AFullLogFilesystemStopsTheRunCleanly) {
  TempDir t;
  auto logs = t / "logs";
  fs::create_directory(logs);
  if (::mount("none", logs.c_str(), "tmpfs", 0, "size=256k") != 0)
    GTEST_SKIP() << "cannot mount a small tmpfs here: " << std::strerror(errno);
  {
    std::ofstream fill((logs / "filler").string());
    std::string block(4096, 'x');
    while (fill.write(block.data(), block.size())) {
    }
  }
  auto r = run_runner(with_child({"5", "2", "--logs", logs.string()}, {}), t.path());
  // The worker's journal is kept there too: without it a cluster that ends
  // while runner is killed would run again, so nothing starts.
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find((logs / "test_child-5-").string()), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("No space left on device"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("or run with --worker off"), std::string::npos) << r.err;
  auto db = t / "runner.db";
  EXPECT_EQ(query(db, "PRAGMA integrity_check"), "ok");
  EXPECT_EQ(query(db, "SELECT count(*) FROM attempts"), "0");
  // Without a worker, the full folder stops the run cleanly at the first log.
  r = run_runner(with_child({"5", "2", "--logs", logs.string(), "--worker", "off"}, {}), t.path());
  ::umount2(logs.c_str(), MNT_DETACH);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("stopped early: log folder " + logs.string()), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("is full: No space left on device"), std::string::npos) << r.out;
  EXPECT_EQ(query(db, "PRAGMA integrity_check"), "ok");
  EXPECT_EQ(query(db, "SELECT count(*) FROM attempts WHERE state = 'running'"), "0");
}

TEST(Reliability, ADbLockedByAnotherWriterMakesRunnerWaitAndLoseNothing) {
  TempDir t;
  auto ready = t / "ready";
  fs::create_directory(ready);
  auto go = t / "go";
  RunnerProcess runner(
      with_child({"3", "3"}, {"--ready-dir", ready.string(), "--hold-file", go.string()}),
      t.path());
  ASSERT_TRUE(wait_until(ready, [&] { return fs::exists(ready / "3.ready"); }));
  ASSERT_TRUE(wait_for_running(t.path(), 3));
  // Another writer takes the DB's write lock and holds it until told to stop.
  auto locked = t / "locked";
  auto release = t / "release";
  auto script =
      "import sqlite3, os, time\n"
      "c = sqlite3.connect('" +
      (t / "runner.db").string() +
      "', isolation_level=None)\n"
      "c.execute('BEGIN IMMEDIATE')\n"
      "open('" +
      locked.string() +
      "', 'w').close()\n"
      "while not os.path.exists('" +
      release.string() +
      "'): time.sleep(0.01)\n"
      "c.execute('COMMIT')\n";
  std::ofstream((t / "locker.py").string()) << script;
  FILE* locker = ::popen(("python3 " + (t / "locker.py").string()).c_str(), "r");
  ASSERT_TRUE(wait_until(t.path(), [&] { return fs::exists(locked); }));
  // The clusters end while the lock is held: runner cannot record them yet.
  std::ofstream(go.string()).put('x');
  auto db = t / "runner.db";
  EXPECT_EQ(query(db, "SELECT running FROM progress"), "3");
  std::ofstream(release.string()).put('x');
  EXPECT_EQ(::pclose(locker), 0);
  EXPECT_EQ(runner.wait(), 0) << runner.err();
  EXPECT_EQ(query(db, "SELECT done || ' ' || running FROM progress"), "3 0");
}

TEST(Reliability, AForkFailureBacksOffInsteadOfFailingClusters) {
  // A pids cgroup with room for runner and two more processes.
  std::ifstream self("/proc/self/cgroup");
  std::string line, own;
  for (std::string l; std::getline(self, l);)
    if (l.find(":pids:") != std::string::npos) own = l.substr(l.rfind(':') + 1);
  fs::path base = "/sys/fs/cgroup/pids" + own;
  auto dir = base / ("runner-test-" + std::to_string(::getpid()));
  if (own.empty() || ::mkdir(dir.c_str(), 0755) != 0)
    GTEST_SKIP() << "cannot create a pids cgroup here: " << std::strerror(errno);
  std::ofstream(dir / "pids.max") << "3\n";
  TempDir t;
  auto cmd = "echo $$ > " + (dir / "cgroup.procs").string() + " && exec " + runner_bin() +
             " 8 6 --cap none -- " + child_bin() + " --sleep-ms 20";
  auto r =
      run_runner({"1", "1", "--cap", "none", "--job", "wrapper", "--", "sh", "-c", cmd}, t.path());
  ::rmdir(dir.c_str());
  EXPECT_EQ(r.code, 0) << r.err;
  auto inner_log =
      read_file(query(t / "runner.db", "SELECT log_path FROM attempts WHERE job = 'wrapper'"));
  EXPECT_NE(inner_log.find("fork failed: Resource temporarily unavailable; trying again"),
            std::string::npos)
      << inner_log;
  EXPECT_EQ(
      query(t / "runner.db", "SELECT done || ' ' || failed FROM progress WHERE job != 'wrapper'"),
      "8 0");
}

TEST(Reliability, ASignalStormWhileShortClustersStartAndEnd) {
  TempDir t;
  auto record = t / "record";
  RunnerProcess runner(with_child({"300", "4"}, {"--record", record.string()}), t.path());
  // Harmless signals by the thousand while clusters churn.
  ASSERT_TRUE(wait_until(t.path(), [&] { return count_lines(record) >= 20; }));
  for (int i = 0; i < 2000; ++i) {
    runner.signal(SIGCHLD);
    runner.signal(SIGWINCH);
  }
  EXPECT_EQ(runner.wait(), 0) << runner.err();
  auto db = t / "runner.db";
  EXPECT_EQ(query(db, "SELECT done FROM progress"), "300");
  // Then a storm of Ctrl-C in a second run: one clean stop.
  RunnerProcess second(
      with_child({"300", "4", "--job", "again"}, {"--record", record.string(), "--sleep-ms", "5"}),
      t.path());
  auto lines = count_lines(record);
  ASSERT_TRUE(wait_until(t.path(), [&] { return count_lines(record) >= lines + 20; }));
  for (int i = 0; i < 50; ++i) second.signal(SIGINT);
  EXPECT_EQ(second.wait(), 130);
  EXPECT_EQ(query(db, "SELECT count(*) FROM attempts WHERE state = 'running'"), "0");
  EXPECT_EQ(query(db, "PRAGMA integrity_check"), "ok");
  auto again = run_runner(
      with_child({"300", "4", "--job", "again"}, {"--record", record.string(), "--sleep-ms", "5"}),
      t.path());
  EXPECT_EQ(again.code, 0) << again.err;
}

}  // namespace
}  // namespace runner::testing
