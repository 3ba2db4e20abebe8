// runner --on slurm on a real Slurm: the 3-node test cluster that ctest
// starts (tests/slurm/cluster.sh) and names in SLURM_CONF.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <set>

#include "e2e_util.h"

namespace runner::testing {
namespace {

// The test cluster, or why there is none (only where ctest did not start one).
#define REQUIRE_SLURM()                                                              \
  if (const char* conf = std::getenv("SLURM_CONF"); !conf || !fs::exists(conf))      \
  GTEST_SKIP() << "no test Slurm: SLURM_CONF does not name a running test cluster; " \
                  "ctest starts one (tests/slurm/cluster.sh)"

// Whatever a test leaves in the test cluster (a failed assertion that left
// an allocation behind) is cancelled: its steps end, and with them the
// workers and their clusters.
class SlurmTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (std::getenv("SLURM_CONF")) run_shell("scancel --user=\"$(id -un)\" 2>/dev/null", "/");
  }
};

// runner started in an allocation of `nodes` nodes with `cpus` CPUs each
// (and what else salloc is given).
std::unique_ptr<RunnerProcess> start_in_allocation(int nodes, int cpus,
                                                   const std::vector<std::string>& runner_args,
                                                   const fs::path& cwd,
                                                   const std::vector<std::string>& salloc = {}) {
  std::vector<std::string> args = {"-N", std::to_string(nodes),
                                   "--ntasks-per-node=" + std::to_string(cpus)};
  args.insert(args.end(), salloc.begin(), salloc.end());
  args.push_back(runner_bin());
  args.insert(args.end(), runner_args.begin(), runner_args.end());
  return std::make_unique<RunnerProcess>(args, cwd, Streams(), "/usr/bin/salloc");
}

// The same, to the end.
Result in_allocation(int nodes, int cpus, const std::vector<std::string>& runner_args,
                     const fs::path& cwd) {
  auto p = start_in_allocation(nodes, cpus, runner_args, cwd);
  Result r;
  r.code = p->wait();
  r.out = p->out();
  r.err = p->err();
  return r;
}

// The most attempts that ran at once by the log's own times, overall and on
// each host.
struct Overlap {
  int most = 0;
  std::map<std::string, int> most_on;
};

Overlap overlap(const fs::path& db) {
  auto rows = query(db,
                    "select group_concat(host || ' ' || printf('%.6f', started_at) || ' ' || "
                    "printf('%.6f', finished_at), char(10)) from attempt");
  std::vector<std::tuple<double, int, std::string>> edges;
  std::istringstream in(rows);
  std::string host;
  double from = 0, to = 0;
  while (in >> host >> from >> to) {
    edges.emplace_back(from, +1, host);
    edges.emplace_back(to, -1, host);
  }
  // Ends before starts at the same instant: one cluster ending lets the next start.
  std::sort(edges.begin(), edges.end());
  Overlap o;
  int now = 0;
  std::map<std::string, int> on;
  for (auto& [at, step, h] : edges) {
    now += step;
    on[h] += step;
    o.most = std::max(o.most, now);
    o.most_on[h] = std::max(o.most_on[h], on[h]);
  }
  return o;
}

// The first live process, as this test sees it, for which `is` holds of its
// /proc folder; 0 if none.
pid_t find_process(const std::function<bool(const fs::path&)>& is) {
  for (const auto& entry : fs::directory_iterator("/proc")) {
    auto name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    if (is(entry.path()) && process_exists(std::stoi(name))) return std::stoi(name);
  }
  return 0;
}

// This run's worker on a node: the nodes share this machine, so the one
// whose environment names it.
pid_t worker_on(const std::string& node) {
  return find_process([&](const fs::path& proc) {
    return read_file(proc / "comm") == "runner-worker\n" &&
           read_file(proc / "environ").find("SLURMD_NODENAME=" + node + '\0') != std::string::npos;
  });
}

// Whether a process whose command line mentions `text` is alive.
bool any_process_mentions(const std::string& text) {
  return find_process([&](const fs::path& proc) {
           return read_file(proc / "cmdline").find(text) != std::string::npos;
         }) != 0;
}

// runner --on slurm on `clusters` clusters at P = 6, whose children (with
// `more`) hold until `hold` exists and say in t/ready when they run.
std::vector<std::string> holding(TempDir& t, int clusters, const fs::path& hold,
                                 std::vector<std::string> more = {}) {
  fs::create_directories(t / "ready");
  std::vector<std::string> child = {"--ready-dir", (t / "ready").string(), "--hold-file",
                                    hold.string()};
  child.insert(child.end(), more.begin(), more.end());
  return with_child({"--on", "slurm", std::to_string(clusters), "6"}, child);
}

// Those started over 3 nodes of 2 CPUs; returned once the first six run
// (none if they never do).
std::unique_ptr<RunnerProcess> six_running(TempDir& t, const std::vector<std::string>& args) {
  auto runner = start_in_allocation(3, 2, args, t.path());
  if (!wait_until(t / "ready", [&] { return fs::exists(t / "ready" / "6.ready"); }) ||
      !wait_for_running(t.path(), 6)) {
    ADD_FAILURE() << "six clusters never ran at once: " << runner->err();
    return nullptr;
  }
  return runner;
}

TEST_F(SlurmTest, ThreeHundredClustersRunOverThreeNodesAtMostPAtOnce) {
  REQUIRE_SLURM();
  TempDir t;
  auto r = in_allocation(
      3, 2,
      with_child({"--on", "slurm", "300", "6"}, {"--sleep-ms", "20", "--print", "1", "--live-count",
                                                 (t / "live").string(), "--args-to-stdout"}),
      t.path());
  ASSERT_EQ(r.code, 0) << r.err;
  auto db = t / "runner.db";
  EXPECT_EQ(query(db, "select done from progress"), "300");
  EXPECT_EQ(query(db,
                  "select group_concat(host) from (select distinct host from attempts "
                  "order by host)"),
            "n1,n2,n3");
  // Never more than P at once, nor more on a node than its 2 CPUs: counted
  // by the children themselves, and from the log's times.
  EXPECT_LE(std::stoi(read_file(t / "live.max")), 6);
  auto o = overlap(db);
  EXPECT_LE(o.most, 6);
  for (const auto& [host, most] : o.most_on) EXPECT_LE(most, 2) << host;
  // Every log is where attempts.log_path says, readable here.
  EXPECT_EQ(query(db, "select count(*) from attempts where log_path like '" + t.path().string() +
                          "/runner.logs/%'"),
            "300");
  // Each cluster knows its node.
  auto log = read_file(query(db, "select log_path from attempts where cluster = 7"));
  EXPECT_NE(
      log.find("RUNNER_SITE=" + query(db, "select host from attempts where cluster = 7") + "\n"),
      std::string::npos)
      << log;
}

// In stream form each node's worker keeps its own stream in the shared log
// folder; runner log reads any attempt's frames from the head.
TEST_F(SlurmTest, EachNodeKeepsAStreamAndEveryAttemptsOutputIsReadFromTheHead) {
  REQUIRE_SLURM();
  TempDir t;
  auto r = in_allocation(
      3, 2, with_child({"--on", "slurm", "--log-format", "stream", "30", "6"}, {"--print", "3"}),
      t.path());
  ASSERT_EQ(r.code, 0) << r.err;
  auto db = t / "runner.db";
  EXPECT_EQ(query(db,
                  "select count(distinct substr(log_path, 1, instr(log_path, '#'))) from "
                  "attempts where log_path like '%.stream#%'"),
            "3");
  for (int c = 1; c <= 30; ++c) {
    auto log = run_runner({"log", std::to_string(c)}, t.path());
    EXPECT_EQ(log.code, 0) << log.err;
    std::string expected;
    for (int i = 0; i < 3; ++i) expected += fmt::format("err line {} of cluster {}\n", i, c);
    for (int i = 0; i < 3; ++i) expected += fmt::format("out line {} of cluster {}\n", i, c);
    EXPECT_EQ(log.out, expected) << "cluster " << c;
  }
}

TEST_F(SlurmTest, ACapAndATimeoutHoldOnTheNodes) {
  REQUIRE_SLURM();
  TempDir t;
  REQUIRE_CGROUP(cg);
  auto r =
      in_allocation(3, 1,
                    with_child({"--on", "slurm", "--mem-limit", "64M", "--timeout", "2s", "3", "3"},
                               {"--alloc-for", "1=200", "--hold-ms", "100", "--hold-file",
                                (t / "never").string(), "--exit-for", "1=0"}),
                    t.path());
  // Cluster 1 goes over its cap; 2 and 3 wait for a file that never comes
  // and are stopped at their timeout.
  EXPECT_EQ(r.code, 1) << r.err;
  auto db = t / "runner.db";
  EXPECT_EQ(query(db, "select state from attempts where cluster = 1"), "oom");
  EXPECT_GE(std::stoll(query(db, "select peak_cgroup_kib from attempts where cluster = 1")),
            60 * 1024);
  EXPECT_EQ(query(db, "select group_concat(state) from attempts where cluster > 1"),
            "timeout,timeout");
  EXPECT_EQ(query(db, "select count(distinct host) from attempts"), "3");
}

TEST_F(SlurmTest, AWorkerThatDiesOnANodeHasItsClustersRunElsewhere) {
  REQUIRE_SLURM();
  TempDir t;
  auto runner = six_running(t, holding(t, 12, t / "go", {"--exclusive", t.path().string()}));
  ASSERT_TRUE(runner);
  auto& p = *runner;
  // The worker on n2 (the cluster's daemons share this machine: the one
  // whose environment names n2).
  auto worker = worker_on("n2");
  ASSERT_GT(worker, 1);
  ASSERT_EQ(::kill(worker, SIGKILL), 0);
  // Its clusters are interrupted, named after the node, and run again on
  // the others; once they run, the rest may end.
  ASSERT_TRUE(wait_until(t.path(), [&] {
    return query(t / "runner.db", "select count(*) from attempts where state = 'interrupted'") ==
           "2";
  }));
  std::ofstream((t / "go").string()).put('x');
  EXPECT_EQ(p.wait(), 0) << p.err();
  auto db = t / "runner.db";
  EXPECT_EQ(query(db, "select done from progress"), "12");
  EXPECT_EQ(query(db,
                  "select count(*) from attempts where state = 'interrupted' and note like "
                  "'%worker on n2%'"),
            "2");
  // No work went to n2 after its worker died, and no cluster ran twice at once.
  EXPECT_EQ(query(db, "select count(*) from attempts where host = 'n2' and state = 'done'"), "0");
  EXPECT_FALSE(fs::exists(t / "overlaps"));
  EXPECT_NE(p.err().find("the worker on n2"), std::string::npos) << p.err();
}

TEST_F(SlurmTest, RunnerStopsSayingSoOnlyWhenNoNodeIsLeft) {
  REQUIRE_SLURM();
  TempDir t;
  auto runner = six_running(t, holding(t, 12, t / "never"));
  ASSERT_TRUE(runner);
  auto& p = *runner;
  // Two nodes lost: the run goes on with the third.
  for (const char* node : {"n1", "n2"}) {
    auto worker = worker_on(node);
    ASSERT_GT(worker, 1) << node;
    ASSERT_EQ(::kill(worker, SIGKILL), 0);
  }
  auto db = t / "runner.db";
  ASSERT_TRUE(wait_until(t.path(), [&] {
    return query(db, "select count(*) from attempts where state = 'interrupted'") == "4";
  }));
  EXPECT_TRUE(process_exists(p.pid()));
  EXPECT_EQ(p.err().find("no node of the allocation is left"), std::string::npos) << p.err();
  // The last one lost: runner stops, says why, and leaves the rest pending.
  auto last = worker_on("n3");
  ASSERT_GT(last, 1);
  ASSERT_EQ(::kill(last, SIGKILL), 0);
  EXPECT_EQ(p.wait(), 1) << p.err();
  EXPECT_NE(p.err().find("stopping: no node of the allocation is left to run it"),
            std::string::npos)
      << p.err();
  EXPECT_EQ(query(db, "select count(*) from attempts where state = 'interrupted'"), "6");
  EXPECT_EQ(query(db, "select count(*) from attempts where state = 'running'"), "0");
  EXPECT_EQ(query(db, "select done || ' ' || pending from progress"), "0 12");
  EXPECT_FALSE(any_process_mentions((t / "ready").string()))
      << "a cluster outlived its node's worker";
}

TEST_F(SlurmTest, SigtermStopsTheClustersOnEveryNodeAndRecordsThemInterrupted) {
  REQUIRE_SLURM();
  TempDir t;
  auto runner = six_running(t, holding(t, 12, t / "never"));
  ASSERT_TRUE(runner);
  auto& p = *runner;
  // runner status shows where they run.
  auto status = run_runner({"status"}, t.path());
  EXPECT_NE(status.out.find("running by node: n1 2, n2 2, n3 2"), std::string::npos) << status.out;
  // runner itself (salloc's child) holds the job.
  auto head = std::stoi(query(t / "runner.db", "select holder_pid from job"));
  ASSERT_EQ(::kill(head, SIGTERM), 0);
  EXPECT_EQ(p.wait(), 143) << p.err();
  auto db = t / "runner.db";
  EXPECT_EQ(query(db, "select count(*) from attempts where state = 'interrupted'"), "6");
  EXPECT_EQ(query(db, "select group_concat(distinct signal) from attempt"), "15");
  // Stopped on every node, by the SIGTERM each worker sent its clusters.
  EXPECT_EQ(query(db, "select count(distinct host) from attempts"), "3");
  EXPECT_EQ(query(db, "select count(*) from attempt where signal = 15"), "6");
}

TEST_F(SlurmTest, AKilledHeadLeavesNothingRunningAndTheNextStartRedoesNothingDone) {
  REQUIRE_SLURM();
  TempDir t;
  auto record = t / "record";
  // Clusters 1-6 hold until a file exists; the rest end at once.
  auto args =
      holding(t, 30, t / "go", {"--record", record.string(), "--exclusive", t.path().string()});
  {
    auto runner = six_running(t, args);
    ASSERT_TRUE(runner);
    auto& p = *runner;
    auto head = std::stoi(query(t / "runner.db", "select holder_pid from job"));
    ASSERT_EQ(::kill(head, SIGKILL), 0);
    p.wait();
  }
  // The allocation ended with its head: Slurm ends its steps, and with them
  // the workers and their clusters. Nothing of the run is left.
  auto gone = [&] {
    return run_shell("test -z \"$(squeue -h -o %i)\"", "/").code == 0 &&
           !any_process_mentions(t.path().string() + "/ready");
  };
  ASSERT_TRUE(wait_until(t.path(), gone)) << "a step or a cluster outlived the killed head";

  // The next start, in a new allocation, finishes the job.
  std::ofstream((t / "go").string()).put('x');
  auto r = in_allocation(3, 2, args, t.path());
  EXPECT_EQ(r.code, 0) << r.err;
  auto db = t / "runner.db";
  EXPECT_EQ(query(db, "select done from progress"), "30");
  // Every cluster ended (exit 0) exactly once, and never two copies at once.
  std::map<int, int> ends;
  for (const auto& line : read_lines(record))
    if (line.rfind("end ", 0) == 0) ++ends[std::stoi(line.substr(4))];
  EXPECT_EQ(ends.size(), 30u);
  for (const auto& [cluster, n] : ends) EXPECT_EQ(n, 1) << "cluster " << cluster;
  EXPECT_FALSE(fs::exists(t / "overlaps"));
}

TEST_F(SlurmTest, TheAllocationsEndStopsTheClustersAndTheNextStartFinishes) {
  REQUIRE_SLURM();
  TempDir t;
  auto args = holding(t, 12, t / "go");
  {
    auto runner = six_running(t, args);
    ASSERT_TRUE(runner);
    auto& p = *runner;
    // The allocation ends (cancelled here; a time limit does the same):
    // Slurm sends SIGTERM to every step, and each worker stops its clusters.
    ASSERT_EQ(run_shell("scancel \"$(squeue -h -o %i)\"", "/").code, 0);
    EXPECT_EQ(p.wait(), 1) << p.err();
    EXPECT_NE(p.err().find("the worker on n1 got SIGTERM: stopping its 2 cluster(s)"),
              std::string::npos)
        << p.err();
  }
  auto db = t / "runner.db";
  EXPECT_EQ(query(db,
                  "select count(*) || ' ' || count(distinct host) from attempts where state = "
                  "'interrupted' and signal = 15 and note like 'its worker on n_ got SIGTERM%'"),
            "6 3");
  EXPECT_EQ(query(db, "select count(*) from attempts where state <> 'interrupted'"), "0")
      << query(db,
               "select group_concat(cluster || ' ' || state || ' ' || ifnull(signal, '-') || "
               "' ' || ifnull(note, '-'), char(10)) from attempts");
  auto gone = [&] {
    return run_shell("test -z \"$(squeue -h -o %i)\"", "/").code == 0 &&
           !any_process_mentions((t / "ready").string());
  };
  ASSERT_TRUE(wait_until(t.path(), gone)) << "a step or a cluster outlived the allocation";
  // The next allocation finishes the job; the interrupted ones spent no retry.
  std::ofstream((t / "go").string()).put('x');
  auto r = in_allocation(3, 2, args, t.path());
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(query(db, "select done from progress"), "12");
}

// In a mount namespace of its own, the head sees a folder that the nodes do
// not (a tmpfs mounted over it there only): what is missing on the nodes is
// there on the head, as when a path is not shared.
Result head_sees_more(const fs::path& cwd, const std::string& script) {
  return run_shell("unshare --mount --propagation private sh -ec '" + script + "'", cwd);
}

TEST_F(SlurmTest, WhatANodeLacksIsNamedBeforeAnythingIsWritten) {
  REQUIRE_SLURM();
  TempDir t;
  // The head's view needs a mount namespace whose mounts stay its own, for
  // which unshare makes / private: not possible where / is no mount point
  // (a chroot).
  if (auto own = run_shell("unshare --mount --propagation private true 2>&1", t.path());
      own.code != 0)
    GTEST_SKIP() << "no mount namespace of the head's own can be made here: " << own.out;
  fs::create_directory(t / "private");
  auto salloc = "salloc -Q -N 3 --ntasks-per-node=1 ";
  auto mount = "mount -t tmpfs none " + (t / "private").string() + "; ";
  // runner's binary where only the head has it.
  auto bin = head_sees_more(t.path(), mount + "cp " + runner_bin() + " private/runner; " + salloc +
                                          "private/runner --on slurm 3 3 -- true");
  EXPECT_EQ(bin.code, 2) << bin.err;
  EXPECT_NE(bin.err.find("cannot run on every node of the allocation"), std::string::npos)
      << bin.err;
  // The command where only the head has it.
  auto cmd = head_sees_more(t.path(), mount + "cp /bin/true private/job; " + salloc + runner_bin() +
                                          " --on slurm 3 3 -- private/job");
  EXPECT_EQ(cmd.code, 2) << cmd.err;
  // Named by the first node to answer, whichever it is.
  EXPECT_NE(cmd.err.find("--on slurm: on node n"), std::string::npos) << cmd.err;
  EXPECT_NE(cmd.err.find(": cannot execute private/job: No such file"), std::string::npos)
      << cmd.err;
  // The working folder where only the head has it.
  auto dir = head_sees_more(t.path(), mount + "mkdir private/work; cd private/work; " + salloc +
                                          runner_bin() + " --on slurm 3 3 --db " +
                                          (t / "runner.db").string() + " -- true");
  EXPECT_EQ(dir.code, 2) << dir.err;
  EXPECT_NE(dir.err.find("--on slurm: on node n"), std::string::npos) << dir.err;
  EXPECT_NE(dir.err.find(": the working folder " + (t / "private/work").string() +
                         " does not exist there"),
            std::string::npos)
      << dir.err;
  // The log folder where only the head has it: the nodes' logs and journals
  // would be lost to it.
  auto logs = head_sees_more(t.path(), mount + salloc + runner_bin() + " --on slurm --logs " +
                                           (t / "private/logs").string() + " 3 3 -- true");
  EXPECT_EQ(logs.code, 2) << logs.err;
  EXPECT_NE(logs.err.find("--on slurm: on node n"), std::string::npos) << logs.err;
  EXPECT_NE(
      logs.err.find(": the log folder " + (t / "private").string() + " is not shared with it"),
      std::string::npos)
      << logs.err;
  // Nothing was written, and the file the nodes looked for is gone.
  EXPECT_FALSE(fs::exists(t / "runner.db"));
  EXPECT_FALSE(fs::exists(t / "runner.logs"));
  auto ok = in_allocation(3, 1, {"--on", "slurm", "3", "3", "--", "true"}, t.path());
  EXPECT_EQ(ok.code, 0) << ok.err;
  for (const auto& entry : fs::directory_iterator(t.path()))
    EXPECT_EQ(entry.path().filename().string().find(".runner-shared"), std::string::npos)
        << entry.path();
}

// The memory cgroup a process of this machine is in.
fs::path memory_cgroup_of(pid_t pid) {
  for (const auto& line : read_lines(fs::path("/proc") / std::to_string(pid) / "cgroup"))
    if (auto at = line.find(":memory:"); at != std::string::npos)
      return fs::path("/sys/fs/cgroup/memory") / line.substr(at + 8).substr(1);
  return {};
}

TEST_F(SlurmTest, ABudgetHoldsOnEachNodeAtWhatSlurmAllocatedThere) {
  REQUIRE_SLURM();
  REQUIRE_CGROUP(cg);
  TempDir t;
  auto ready = t / "ready";
  fs::create_directory(ready);
  // 4 CPUs and 400 MiB on each node; each cluster reserves its 150 MiB cap:
  // two at once on each node, six in all (one pool of 400 MiB would run two).
  auto args =
      with_child({"--on", "slurm", "--mem-budget", "auto", "--mem-limit", "150M", "24", "12"},
                 {"--ready-dir", ready.string(), "--hold-file", (t / "go").string()});
  auto runner = start_in_allocation(3, 4, args, t.path(), {"--mem-per-cpu=100"});
  auto& p = *runner;
  auto count_ready = [&] {
    return std::distance(fs::directory_iterator(ready), fs::directory_iterator());
  };
  ASSERT_TRUE(wait_until(ready, [&] { return count_ready() >= 6; })) << p.err();
  ASSERT_TRUE(wait_for_running(t.path(), 6));
  // The kernel holds each node to it too: the clusters' cgroups sit in one
  // per node's worker, limited to the node's 400 MiB.
  std::set<fs::path> pools;
  find_process([&](const fs::path& proc) {
    if (read_file(proc / "cmdline").find(ready.string()) != std::string::npos &&
        read_file(proc / "comm") == "test_child\n")
      pools.insert(memory_cgroup_of(std::stoi(proc.filename().string())).parent_path());
    return false;
  });
  EXPECT_EQ(pools.size(), 3u);
  for (const auto& pool : pools)
    EXPECT_EQ(read_file(pool / "memory.limit_in_bytes"), std::to_string(400ULL << 20) + "\n")
        << pool;
  std::ofstream((t / "go").string()).put('x');
  ASSERT_EQ(p.wait(), 0) << p.err();
  auto db = t / "runner.db";
  EXPECT_EQ(query(db, "select done from progress"), "24");
  for (const auto& [host, most] : overlap(db).most_on) EXPECT_LE(most, 2) << host;
  EXPECT_NE(p.err().find("memory budget 400.0 MiB per node"), std::string::npos) << p.err();

  // A cap no node's budget can hold: refused before anything is written.
  TempDir u;
  auto big = start_in_allocation(
      3, 4,
      with_child({"--on", "slurm", "--mem-budget", "auto", "--mem-limit", "600M", "6", "3"}, {}),
      u.path(), {"--mem-per-cpu=100"});
  EXPECT_EQ(big->wait(), 2);
  EXPECT_NE(big->err().find("--mem-limit 600.0 MiB is more than the --mem-budget 400.0 MiB"),
            std::string::npos)
      << big->err();
  EXPECT_FALSE(fs::exists(u / "runner.db"));
}

TEST_F(SlurmTest, PBeyondTheAllocationIsSaidOnce) {
  REQUIRE_SLURM();
  TempDir t;
  // 3 nodes of 1 CPU: P = 12 runs 3 at once, and says how to get 12.
  auto r = in_allocation(3, 1, with_child({"--on", "slurm", "6", "12"}, {}), t.path());
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("P is 12 but Slurm job "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("has 3 CPU(s) on 3 node(s): at most 3 cluster(s) run at once; for 12, "
                       "ask for salloc -N 3 --ntasks-per-node=4"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(query(t / "runner.db", "select done from progress"), "6");
}

// Two runners in one allocation would each spread their P over the same
// CPUs: the second is refused before it writes anything, naming the job
// that has the nodes, and the first goes on untouched.
TEST_F(SlurmTest, ASecondRunnerInTheSameAllocationIsRefusedNamingTheFirst) {
  REQUIRE_SLURM();
  TempDir t;
  fs::create_directories(t / "ready");
  std::ofstream(t / "both.sh") << R"(set -u
"$1" --on slurm 6 6 --db a.db --job a -- "$2" --ready-dir ready --hold-file go &
a=$!
i=0
while [ ! -e ready/6.ready ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i + 1)); done
ls /tmp | grep -c "^runner-claim-$(id -u)-$SLURM_JOB_ID-" > claims
"$1" --on slurm 4 6 --db b.db --job b -- "$2" > b.out 2> b.err; echo $? > b.code
touch go
wait $a; echo $? > a.code
ls /tmp | grep -c "^runner-claim-$(id -u)-$SLURM_JOB_ID-" > claims.after
exit 0
)";
  RunnerProcess both(
      {"-N", "3", "--ntasks-per-node=2", "sh", (t / "both.sh").string(), runner_bin(), child_bin()},
      t.path(), Streams(), "/usr/bin/salloc");
  EXPECT_EQ(both.wait(), 0) << both.err();
  EXPECT_EQ(read_file(t / "claims"), "3\n") << "each node's worker claims its node";
  EXPECT_EQ(read_file(t / "b.code"), "2\n");
  auto said = read_file(t / "b.err");
  EXPECT_NE(said.find("already runs job a of " + (t / "a.db").string() + " on node n"),
            std::string::npos)
      << said;
  EXPECT_NE(said.find("run this job in an allocation of its own"), std::string::npos) << said;
  EXPECT_FALSE(fs::exists(t / "b.db"));
  EXPECT_EQ(read_file(t / "a.code"), "0\n");
  EXPECT_EQ(query(t / "a.db", "select done from progress"), "6");
  EXPECT_EQ(read_file(t / "claims.after"), "0\n") << "the claims go with the workers";
}

TEST(SlurmOutside, OutsideAnAllocationItRefusesAndWritesNothing) {
  TempDir t;
  ::unsetenv("SLURM_JOB_ID");
  auto r = run_runner(with_child({"--on", "slurm", "10", "4"}, {}), t.path());
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--on slurm: runner is not inside a Slurm allocation"), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("salloc -N 4 --ntasks-per-node=1 runner --on slurm"), std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(t / "runner.db"));
  EXPECT_FALSE(fs::exists(t / "runner.logs"));
}

}  // namespace
}  // namespace runner::testing
