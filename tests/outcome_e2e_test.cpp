// A cluster that finished is never run again, even when runner was killed
// while it ran: its worker outlives runner and journals how it ended, and
// the next runner records that. End to end on the real binary.
#include <gtest/gtest.h>

#include <csignal>
#include <fstream>
#include <map>

#include "e2e_util.h"

namespace runner::testing {
namespace {

using Args = std::vector<std::string>;

// Per cluster, how many times it started and how many times it finished, by
// the children's own record.
struct Witness {
  std::map<long, int> starts, ends;
};

Witness witness(const fs::path& record) {
  Witness w;
  for (const auto& line : read_lines(record)) {
    long c = std::stol(line.substr(line.find(' ') + 1));
    (line.rfind("start ", 0) == 0 ? w.starts : w.ends)[c]++;
  }
  return w;
}

// Waits until `clusters` clusters run: each child says so in t/ready, and
// the log holds its start.
void wait_until_running(const TempDir& t, int clusters) {
  auto ready = t / "ready";
  ASSERT_TRUE(
      wait_until(ready, [&] { return fs::exists(ready / (std::to_string(clusters) + ".ready")); }));
  ASSERT_TRUE(wait_for_running(t.path(), clusters));
}

// A runner on `clusters` whose children wait for `go`; killed with SIGKILL
// once all of them run. Their worker lives on.
void kill_runner_while_clusters_run(TempDir& t, const Args& args, int clusters) {
  fs::create_directories(t / "ready");
  RunnerProcess first(args, t.path());
  wait_until_running(t, clusters);
  first.signal(SIGKILL);
  EXPECT_EQ(first.wait(), 128 + SIGKILL);
}

// Its children say when they run in t/ready (made here, before runner
// starts them) and hold until t/go exists.
Args child_args(TempDir& t, Args more = {}) {
  fs::create_directories(t / "ready");
  Args a = {"--record",    (t / "record").string(), "--ready-dir", (t / "ready").string(),
            "--hold-file", (t / "go").string(),     "--alloc-mib", "4"};
  a.insert(a.end(), more.begin(), more.end());
  return a;
}

// Once `clusters` clusters run, sends their worker `sig`; returns its pid.
pid_t signal_worker_once_running(TempDir& t, const RunnerProcess& runner, int clusters, int sig) {
  wait_until_running(t, clusters);
  auto worker = worker_of(runner.pid());
  EXPECT_GT(worker, 0);
  if (worker > 0) ::kill(worker, sig);
  return worker;
}

// Whether runner said `what` (waiting for it, as long as a test may).
bool runner_says(const TempDir& t, const RunnerProcess& runner, const std::string& what) {
  return wait_until(t.path(), [&] { return runner.err().find(what) != std::string::npos; });
}

// Each attempt of the job, in order, as "cluster.attempt" and `what` of it.
std::string attempts(const TempDir& t, const std::string& what) {
  return query(t / "runner.db", "SELECT group_concat(cluster || '.' || attempt || ' ' || " + what +
                                    ", ', ') FROM (SELECT * FROM attempts ORDER BY cluster, "
                                    "attempt)");
}

TEST(Outcome, ClustersThatFinishWhileRunnerIsDeadAreRecordedDoneAndNotRunAgain) {
  TempDir t;
  auto args = with_child({"4", "4", "--job", "j"}, child_args(t));
  kill_runner_while_clusters_run(t, args, 4);
  // runner is dead; its clusters finish, and their worker records it.
  std::ofstream((t / "go").string()).put('x');
  auto r = run_runner(args, t.path());
  EXPECT_EQ(r.code, 0) << r.err;
  auto w = witness(t / "record");
  for (long c = 1; c <= 4; ++c) {
    EXPECT_EQ(w.starts[c], 1) << "cluster " << c;
    EXPECT_EQ(w.ends[c], 1) << "cluster " << c;
  }
  EXPECT_EQ(query(t / "runner.db",
                  "SELECT count(*) FROM attempts WHERE attempt = 1 AND state = 'done' AND "
                  "exit_code = 0 AND finished >= started AND peak_rss_kib >= 4096"),
            "4");
  EXPECT_EQ(query(t / "runner.db", "SELECT count(*) FROM attempts"), "4");
  EXPECT_NE(r.err.find("4 attempt(s) ended while no runner recorded them (4 done)"),
            std::string::npos)
      << r.err;
}

TEST(Outcome, AClusterThatFailsWhileRunnerIsDeadIsRecordedFailedAndRunsAgainOnlyAsFailedOnesDo) {
  TempDir t;
  auto args = with_child({"2", "2", "--job", "j"}, child_args(t, {"--exit-for", "2=3"}));
  kill_runner_while_clusters_run(t, args, 2);
  std::ofstream((t / "go").string()).put('x');
  // Not with --skip-failed: cluster 2 is failed, with its exit code.
  auto skip =
      with_child({"2", "2", "--job", "j", "--skip-failed"}, child_args(t, {"--exit-for", "2=3"}));
  auto r = run_runner(skip, t.path());
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_EQ(
      query(t / "runner.db", "SELECT state || ' ' || exit_code FROM attempts WHERE cluster = 2"),
      "failed 3");
  EXPECT_EQ(witness(t / "record").starts[2], 1);
  // A plain run runs it again, as attempt 2.
  r = run_runner(args, t.path());
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_EQ(witness(t / "record").starts[2], 2);
  EXPECT_EQ(witness(t / "record").starts[1], 1);
  EXPECT_EQ(query(t / "runner.db", "SELECT max(attempt) FROM attempts WHERE cluster = 2"), "2");
}

// The worker itself is killed while runner lives: what it had journalled is
// recorded; the clusters it was running are killed and run again, once, by
// a new worker, and the job finishes.
// runner's worker: its child named "runner worker".

// The worker is killed while its clusters run: runner, their subreaper,
// adopts them. They finish once, each recorded done as attempt 1, and
// nothing runs twice.
TEST(Outcome, AKilledWorkersRunningClustersAreAdoptedAndFinishOnce) {
  TempDir t;
  fs::create_directory(t / "locks");
  auto args =
      with_child({"3", "3", "--job", "j"}, child_args(t, {"--exclusive", (t / "locks").string()}));
  RunnerProcess runner(args, t.path());
  auto worker = signal_worker_once_running(t, runner, 3, SIGKILL);
  ASSERT_GT(worker, 0);
  ASSERT_TRUE(runner_says(t, runner, "runner adopted the 3 cluster(s) the worker"));
  EXPECT_NE(runner.err().find("the worker (pid " + std::to_string(worker) +
                              ") is gone (it was killed by signal 9)"),
            std::string::npos)
      << runner.err();
  std::ofstream((t / "go").string()).put('x');
  EXPECT_EQ(runner.wait(), 0) << runner.err();
  EXPECT_EQ(query(t / "runner.db",
                  "SELECT count(*) FROM attempts WHERE attempt = 1 AND state = 'done' AND "
                  "exit_code = 0 AND peak_rss_kib >= 4096"),
            "3");
  EXPECT_EQ(query(t / "runner.db", "SELECT count(*) FROM attempts"), "3");
  auto w = witness(t / "record");
  EXPECT_EQ(w.starts, (std::map<long, int>{{1, 1}, {2, 1}, {3, 1}}));
  EXPECT_EQ(w.ends, (std::map<long, int>{{1, 1}, {2, 1}, {3, 1}}));
  EXPECT_FALSE(fs::exists(t / "locks" / "overlaps"));
}

// In the stream form a cluster's output goes through its worker, and is lost
// with it: what a killed worker left running is killed, and runs again.
TEST(Outcome, InTheStreamFormAKilledWorkersClustersAreKilledAndRunAgain) {
  TempDir t;
  fs::create_directory(t / "locks");
  auto args = with_child({"3", "3", "--job", "j", "--log-format", "stream"},
                         child_args(t, {"--exclusive", (t / "locks").string()}));
  RunnerProcess runner(args, t.path());
  auto worker = signal_worker_once_running(t, runner, 3, SIGKILL);
  ASSERT_GT(worker, 0);
  ASSERT_TRUE(
      runner_says(t, runner, "killed 3 process(es) of clusters its dead worker left running"));
  std::ofstream((t / "go").string()).put('x');
  EXPECT_EQ(runner.wait(), 0) << runner.err();
  EXPECT_EQ(query(t / "runner.db",
                  "SELECT count(*) FROM attempts WHERE attempt = 1 AND state = 'interrupted' AND "
                  "note LIKE 'its worker (pid % died while it ran'"),
            "3");
  EXPECT_EQ(query(t / "runner.db", "SELECT done FROM progress"), "3");
  EXPECT_FALSE(fs::exists(t / "locks" / "overlaps"));
}

// While runner waits for clusters it adopted, a new worker runs only the
// slots they leave: never more than P at once.
TEST(Outcome, AdoptedClustersKeepTheirSlotsFromTheNextWorker) {
  TempDir t;
  fs::create_directory(t / "release");
  auto args = with_child({"4", "2", "--job", "j"},
                         child_args(t, {"--live-count", (t / "live").string(), "--release-dir",
                                        (t / "release").string()}));
  RunnerProcess runner(args, t.path());
  auto worker = signal_worker_once_running(t, runner, 2, SIGKILL);
  ASSERT_GT(worker, 0);
  ASSERT_TRUE(runner_says(t, runner, "runner adopted the 2 cluster(s)"));
  // Cluster 1 ends: its slot is free, cluster 2's is not.
  std::ofstream((t / "release" / "1").string()).put('x');
  ASSERT_TRUE(runner_says(t, runner, "runs up to 1 cluster(s) at once beside the 1 runner adopted"))
      << runner.err();
  ASSERT_TRUE(wait_until(t / "ready", [&] { return fs::exists(t / "ready" / "3.ready"); }));
  std::ofstream((t / "go").string()).put('x');
  EXPECT_EQ(runner.wait(), 0) << runner.err();
  EXPECT_EQ(std::stol(read_file(t / "live.max")), 2);
  EXPECT_EQ(attempts(t, "state"), "1.1 done, 2.1 done, 3.1 done, 4.1 done");
}

// A stop (SIGTERM to runner) reaches the clusters runner adopted.
TEST(Outcome, AdoptedClustersAreStoppedByRunnersSigterm) {
  TempDir t;
  auto args = with_child({"2", "2", "--job", "j"}, child_args(t));
  RunnerProcess runner(args, t.path());
  auto worker = signal_worker_once_running(t, runner, 2, SIGKILL);
  ASSERT_GT(worker, 0);
  ASSERT_TRUE(runner_says(t, runner, "runner adopted the 2 cluster(s)"));
  runner.signal(SIGTERM);
  EXPECT_EQ(runner.wait(), 128 + SIGTERM) << runner.err();
  EXPECT_EQ(attempts(t, "state || ' ' || signal"), "1.1 interrupted 15, 2.1 interrupted 15");
}

// Clusters that ended while their worker could not journal them (it was
// stopped, then killed) are still zombies, which runner reads: each is
// recorded as it ended, with its exit code, and nothing runs again.
TEST(Outcome, ClustersThatEndedUnjournalledBeforeTheirWorkerDiedAreRecordedAsTheyEnded) {
  TempDir t;
  auto args = with_child({"2", "2", "--job", "j"}, child_args(t, {"--exit-for", "2=3"}));
  RunnerProcess runner(args, t.path());
  auto worker = signal_worker_once_running(t, runner, 2, SIGSTOP);
  ASSERT_GT(worker, 0);
  std::ofstream((t / "go").string()).put('x');
  // Both have exited; their stopped worker cannot reap or journal them.
  ASSERT_TRUE(wait_until(t.path(), [&] {
    auto w = witness(t / "record");
    return w.ends[1] == 1 && w.ends[2] == 1;
  }));
  ::kill(worker, SIGKILL);
  EXPECT_EQ(runner.wait(), 1) << runner.err();
  EXPECT_EQ(attempts(t, "state || ' ' || exit_code"), "1.1 done 0, 2.1 failed 3");
  EXPECT_EQ(witness(t / "record").starts, (std::map<long, int>{{1, 1}, {2, 1}}));
}

// A second worker that stops on a SIGTERM of its own leaves runner's
// adopted clusters alone: they run on in their cgroup and end as they
// would, and only the second worker's cluster runs again.
TEST(Outcome, AdoptedClustersOutliveTheNextWorkerStoppingOnItsOwnSigterm) {
  TempDir t;
  fs::create_directory(t / "release");
  auto args = with_child({"3", "2", "--job", "j"},
                         child_args(t, {"--release-dir", (t / "release").string()}));
  RunnerProcess runner(args, t.path());
  auto first = signal_worker_once_running(t, runner, 2, SIGKILL);
  ASSERT_GT(first, 0);
  ASSERT_TRUE(runner_says(t, runner, "runner adopted the 2 cluster(s)"));
  std::ofstream((t / "release" / "1").string()).put('x');
  ASSERT_TRUE(wait_until(t / "ready", [&] { return fs::exists(t / "ready" / "3.ready"); }));
  auto second = worker_of(runner.pid());
  ASSERT_GT(second, 0);
  ASSERT_NE(second, first);
  ::kill(second, SIGTERM);
  ASSERT_TRUE(runner_says(t, runner, "got SIGTERM and stopped its clusters")) << runner.err();
  std::ofstream((t / "go").string()).put('x');
  EXPECT_EQ(runner.wait(), 0) << runner.err();
  EXPECT_EQ(attempts(t, "state"), "1.1 done, 2.1 done, 3.1 interrupted, 3.2 done");
  auto w = witness(t / "record");
  EXPECT_EQ(w.starts, (std::map<long, int>{{1, 1}, {2, 1}, {3, 2}}));
}

// runner holds an adopted cluster to its timeout, and stops adopted ones
// with SIGTERM and the grace, as the worker would have.
TEST(Outcome, AdoptedClustersAreHeldToTheirTimeoutAndStoppedByRunner) {
  TempDir t;
  auto args = with_child({"2", "2", "--job", "j", "--timeout", "5s"}, child_args(t));
  RunnerProcess runner(args, t.path());
  auto worker = signal_worker_once_running(t, runner, 2, SIGKILL);
  ASSERT_GT(worker, 0);
  // No go file: only the timeout ends them.
  EXPECT_EQ(runner.wait(), 1) << runner.err();
  EXPECT_NE(runner.err().find("runner adopted the 2 cluster(s)"), std::string::npos)
      << runner.err();
  EXPECT_EQ(attempts(t, "state || ' ' || signal"), "1.1 timeout 15, 2.1 timeout 15");
}

// SIGTERM to the worker itself (systemd stopping the unit, Slurm ending the
// step): it stops its clusters gracefully and says so, and they run again
// with the next worker, no retry spent.
TEST(Outcome, AWorkerToldToStopBySigtermStopsItsClustersAndTheyRunAgain) {
  TempDir t;
  auto args = with_child({"4", "2", "--job", "j"}, child_args(t));
  RunnerProcess runner(args, t.path());
  auto worker = signal_worker_once_running(t, runner, 2, SIGTERM);
  ASSERT_GT(worker, 0);
  ASSERT_TRUE(runner_says(t, runner, "got SIGTERM and stopped its clusters"));
  std::ofstream((t / "go").string()).put('x');
  EXPECT_EQ(runner.wait(), 0) << runner.err();
  auto db = t / "runner.db";
  EXPECT_EQ(query(db,
                  "SELECT group_concat(cluster) FROM attempts WHERE attempt = 1 AND state = "
                  "'interrupted' AND signal = 15 AND note = 'its worker got SIGTERM and stopped "
                  "it'"),
            "1,2");
  EXPECT_EQ(query(db, "SELECT done FROM progress"), "4");
  // Stopped once and run once more; the others ran once.
  auto w = witness(t / "record");
  EXPECT_EQ(w.starts, (std::map<long, int>{{1, 2}, {2, 2}, {3, 1}, {4, 1}}));
  EXPECT_EQ(w.ends, (std::map<long, int>{{1, 1}, {2, 1}, {3, 1}, {4, 1}}));
}

// A cluster ended by a SIGTERM that neither runner nor its worker sent is
// the cluster's failure, as before, once the worker has made sure no
// SIGTERM of its own came with it.
TEST(Outcome, AClusterEndedBySomeoneElsesSigtermIsFailed) {
  TempDir t;
  auto r = run_runner(with_child({"3", "3"}, {"--signal-for", "2=15"}), t.path());
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_EQ(query(t / "runner.db",
                  "SELECT group_concat(cluster || ' ' || state || ' ' || ifnull(signal, '-')) "
                  "FROM (SELECT * FROM attempts ORDER BY cluster)"),
            "1 done -,2 failed 15,3 done -");
}

}  // namespace
}  // namespace runner::testing
