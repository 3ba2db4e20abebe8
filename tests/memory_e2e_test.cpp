// Memory end to end: real caps on this machine's kernel (cgroup v1 here, v2
// where a machine has it, rlimit everywhere), real OOM kills, real peaks.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <map>

#include "e2e_util.h"
#include "runner/memory.h"

namespace runner::testing {
namespace {

using Args = std::vector<std::string>;

std::size_t run_folders_of(const fs::path& dir, pid_t runner_pid) {
  std::size_t n = 0;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().rfind("runner-" + std::to_string(runner_pid) + "-", 0) == 0)
      ++n;
  return n;
}

TEST(Memory, ClustersOverTheCapEndOomWithPeaksNearTheCapInWords) {
  REQUIRE_CGROUP(dir);
  TempDir t;
  RunnerProcess runner(with_child({"20", "4", "--mem-limit", "200M"}, {"--alloc-mib", "500"}),
                       t.path());
  EXPECT_EQ(runner.wait(), 1);
  auto db = t / "runner.db";
  EXPECT_EQ(query(db, "SELECT count(*) FROM attempts WHERE state = 'oom'"), "20");
  EXPECT_EQ(query(db,
                  "SELECT count(*) FROM attempts WHERE mem_limit_kib = 204800 "
                  "AND peak_cgroup_kib BETWEEN 190 * 1024 AND 200 * 1024 "
                  "AND cap LIKE 'cgroup-v_'"),
            "20");
  EXPECT_NE(runner.out().find("cluster 1: out of memory at the 200.0 MiB cap (peak "),
            std::string::npos)
      << runner.out();
  auto status = run_runner({"status"}, t.path());
  EXPECT_NE(status.out.find("out of memory at the 200.0 MiB cap"), std::string::npos) << status.out;
  EXPECT_EQ(run_folders_of(*dir, runner.pid()), 0u);
}

TEST(Memory, ASegfaultAndAnExitCodeAreFailuresNotOom) {
  REQUIRE_CGROUP(dir);
  TempDir t;
  auto r =
      run_runner(with_child({"3", "3", "--mem-limit", "200M"},
                            {"--alloc-mib", "20", "--signal-for", "1=11", "--exit-for", "2=1"}),
                 t.path());
  EXPECT_EQ(r.code, 1);
  auto db = t / "runner.db";
  EXPECT_EQ(query(db, "SELECT state || ' ' || signal FROM attempts WHERE cluster = 1"),
            "failed 11");
  EXPECT_EQ(query(db, "SELECT state || ' ' || exit_code FROM attempts WHERE cluster = 2"),
            "failed 1");
  EXPECT_EQ(query(db, "SELECT state FROM attempts WHERE cluster = 3"), "done");
  EXPECT_NE(r.out.find("cluster 1: killed by SIGSEGV"), std::string::npos) << r.out;
}

TEST(Memory, AFiveMillisecondSpikeIsMeasured) {
  REQUIRE_CGROUP(dir);
  TempDir t;
  // 300 MiB held for 5 ms and freed, then the child lives on: a poller would
  // miss it, the kernel's peaks do not.
  auto r = run_runner(
      with_child({"1", "1"}, {"--alloc-mib", "300", "--hold-ms", "5", "--sleep-ms", "50"}),
      t.path());
  ASSERT_EQ(r.code, 0) << r.err;
  auto db = t / "runner.db";
  EXPECT_EQ(query(db, "SELECT peak_rss_kib >= 300 * 1024 FROM attempts"), "1");
  EXPECT_EQ(query(db, "SELECT peak_cgroup_kib >= 300 * 1024 FROM attempts"), "1");
}

TEST(Memory, EachAttemptHasItsOwnPeakThoughOneCgroupCagesThemInTurn) {
  REQUIRE_CGROUP(dir);
  TempDir t;
  auto r = run_runner(with_child({"2", "1"}, {"--alloc-for", "1=200"}), t.path());
  ASSERT_EQ(r.code, 0) << r.err;
  auto db = t / "runner.db";
  EXPECT_EQ(query(db, "SELECT peak_cgroup_kib >= 200 * 1024 FROM attempts WHERE cluster = 1"), "1");
  EXPECT_EQ(query(db, "SELECT peak_cgroup_kib < 50 * 1024 FROM attempts WHERE cluster = 2"), "1");
}

TEST(Memory, ManyClustersAtOnceGetTheDescriptorsTheirCgroupsNeed) {
  REQUIRE_CGROUP(dir);
  TempDir t;
  fs::create_directory(t / "limits");
  // 40 clusters alive at once, under a soft limit of 64 open files: their
  // cgroups alone need more. Each child says which limit it was given.
  auto script = "ulimit -Sn > limits/$RUNNER_CLUSTER; exec " + child_bin() + " --live-count " +
                (t / "live").string() + " --barrier 40";
  rlimit given{};
  ::getrlimit(RLIMIT_NOFILE, &given);
  rlimit low = given;
  low.rlim_cur = 64;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  RunnerProcess runner({"40", "40", "--", "sh", "-c", script}, t.path());
  ::setrlimit(RLIMIT_NOFILE, &given);
  ASSERT_EQ(runner.wait(), 0) << runner.err();
  EXPECT_EQ(query(t / "runner.db", "SELECT done FROM progress"), "40");
  for (int c = 1; c <= 40; ++c) EXPECT_EQ(read_file(t / "limits" / std::to_string(c)), "64\n") << c;
}

TEST(Memory, TheCgroupPeakCountsGrandchildren) {
  REQUIRE_CGROUP(dir);
  TempDir t;
  // sh forks the allocating child and waits: the tree's peak is the child's.
  auto r =
      run_runner({"1", "1", "--", "sh", "-c", child_bin() + " --alloc-mib 100; true"}, t.path());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(query(t / "runner.db", "SELECT peak_cgroup_kib >= 100 * 1024 FROM attempts"), "1");
}

TEST(Memory, RlimitCapsAndNamesALikelyOom) {
  TempDir t;
  auto r = run_runner(
      with_child({"2", "2", "--cap", "rlimit", "--mem-limit", "200M"}, {"--alloc-mib", "500"}),
      t.path());
  EXPECT_EQ(r.code, 1);
  auto db = t / "runner.db";
  EXPECT_EQ(query(db,
                  "SELECT count(*) FROM attempts WHERE state = 'oom' AND cap = 'rlimit' "
                  "AND peak_cgroup_kib IS NULL AND note LIKE 'likely:%Cannot allocate memory%'"),
            "2");
  EXPECT_NE(r.out.find("out of memory at the 200.0 MiB cap"), std::string::npos) << r.out;
  // Under the cap the child runs as usual.
  r = run_runner(with_child({"1", "1", "--cap", "rlimit", "--mem-limit", "200M", "--job", "small"},
                            {"--alloc-mib", "50"}),
                 t.path());
  EXPECT_EQ(r.code, 0) << r.err;
}

TEST(Memory, NoCgroupIsLeftAfterCtrlC) {
  REQUIRE_CGROUP(dir);
  TempDir t;
  auto ready = t / "ready";
  fs::create_directory(ready);
  RunnerProcess runner(
      with_child({"4", "2", "--mem-limit", "100M"},
                 {"--ready-dir", ready.string(), "--hold-file", (t / "never").string()}),
      t.path());
  ASSERT_TRUE(wait_until(ready, [&] { return fs::exists(ready / "2.ready"); }));
  EXPECT_EQ(run_folders_of(*dir, runner.pid()), 1u);
  runner.signal(SIGINT);
  EXPECT_EQ(runner.wait(), 130);
  EXPECT_EQ(run_folders_of(*dir, runner.pid()), 0u);
}

TEST(Memory, CgroupsLeftByAKilledRunnerAreRemovedOnRestart) {
  REQUIRE_CGROUP(dir);
  TempDir t;
  auto ready = t / "ready";
  fs::create_directory(ready);
  auto args = with_child({"4", "2", "--mem-limit", "100M"},
                         {"--ready-dir", ready.string(), "--hold-file", (t / "go").string()});
  pid_t first_pid = 0;
  {
    RunnerProcess first(args, t.path());
    first_pid = first.pid();
    ASSERT_TRUE(wait_until(ready, [&] { return fs::exists(ready / "2.ready"); }));
    first.signal(SIGKILL);
    first.wait();
  }
  // Its children live on, in its cgroups.
  EXPECT_EQ(run_folders_of(*dir, first_pid), 1u);
  std::ofstream((t / "go").string()).put('x');
  RunnerProcess second(args, t.path());
  EXPECT_EQ(second.wait(), 0) << second.err();
  EXPECT_EQ(run_folders_of(*dir, first_pid), 0u);
  EXPECT_EQ(run_folders_of(*dir, second.pid()), 0u);
}

TEST(Memory, AProbeFolderLeftByAKilledRunnerIsRemovedOnRestart) {
  REQUIRE_CGROUP(dir);
  TempDir t;
  // A runner killed between making its probe folder and removing it.
  pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  ::waitpid(dead, nullptr, 0);
  auto probe = *dir / ("runner-probe-" + std::to_string(dead));
  ASSERT_TRUE(fs::create_directory(probe));
  auto r = run_runner({"1", "1", "--", "true"}, t.path());
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_FALSE(fs::exists(probe));
  if (fs::exists(probe)) fs::remove(probe);
}

// Replays a children's record of "start C MIB" and "end C MIB" lines and
// returns the most memory they held at once, and the most of them at once.
std::pair<long, int> most_at_once(const fs::path& record) {
  long held = 0, most = 0;
  int n = 0, most_n = 0;
  for (const auto& line : read_lines(record)) {
    long c = 0, mib = 0;
    char what[8] = {};
    if (std::sscanf(line.c_str(), "%7s %ld %ld", what, &c, &mib) != 3) continue;
    bool start = std::string(what) == "start";
    held += start ? mib : -mib;
    n += start ? 1 : -1;
    most = std::max(most, held);
    most_n = std::max(most_n, n);
  }
  return {most, most_n};
}

TEST(Memory, ABudgetKeepsLargeClustersFromOverlappingBeyondIt) {
  REQUIRE_CGROUP(dir);
  TempDir t;
  auto record = t / "mem";
  // Every third cluster holds 300 MiB, the others 40 MiB; two large ones
  // together would pass the 600 MiB budget.
  Args child = {"--alloc-mib", "40",          "--alloc-for",  "3=300",        "--alloc-for",
                "6=300",       "--alloc-for", "9=300",        "--alloc-for",  "12=300",
                "--hold-ms",   "100",         "--mem-record", record.string()};
  auto first = run_runner(
      with_child({"12", "4", "--mem-budget", "600M", "--mem-limit", "400M", "--job", "first"},
                 child),
      t.path());
  ASSERT_EQ(first.code, 0) << first.err;
  // Nothing is known on the first run: each cluster reserves its 400M cap.
  EXPECT_EQ(most_at_once(record).second, 1);

  // The second job with the same command knows every cluster's peak.
  fs::remove(record);
  auto second = run_runner(
      with_child({"12", "4", "--mem-budget", "600M", "--mem-limit", "400M", "--job", "second"},
                 child),
      t.path());
  ASSERT_EQ(second.code, 0) << second.err;
  auto [most_mib, most_n] = most_at_once(record);
  EXPECT_LE(most_mib, 600);
  EXPECT_GE(most_n, 2) << "the budget should let small clusters run together";
}

TEST(Memory, TheKernelHoldsTheWholeRunToTheBudget) {
  REQUIRE_CGROUP(dir);
  TempDir t;
  auto ready = t / "ready";
  fs::create_directory(ready);
  RunnerProcess runner(
      with_child({"2", "2", "--mem-budget", "600M", "--mem-limit", "200M"},
                 {"--ready-dir", ready.string(), "--hold-file", (t / "go").string()}),
      t.path());
  ASSERT_TRUE(wait_until(ready, [&] { return fs::exists(ready / "2.ready"); }));
  // The run's own cgroup, parent of every attempt's, is limited to the budget.
  std::string limit;
  for (const auto& e : fs::directory_iterator(*dir))
    if (e.path().filename().string().rfind("runner-" + std::to_string(runner.pid()) + "-", 0) == 0)
      limit = read_file(e.path() / (fs::exists(e.path() / "memory.max") ? "memory.max"
                                                                        : "memory.limit_in_bytes"));
  EXPECT_EQ(limit, std::to_string(600ULL << 20) + "\n");
  std::ofstream((t / "go").string()).put('x');
  EXPECT_EQ(runner.wait(), 0) << runner.err();
}

TEST(Memory, AnOomUnderABudgetIsRetriedOnceAloneWithTheWholeBudget) {
  REQUIRE_CGROUP(dir);
  TempDir t;
  auto record = t / "mem";
  // Cluster 2 needs 300 MiB, more than its 200M cap but less than the budget.
  auto r = run_runner(with_child({"4", "2", "--mem-budget", "500M", "--mem-limit", "200M"},
                                 {"--alloc-mib", "20", "--alloc-for", "2=300", "--hold-ms", "50",
                                  "--mem-record", record.string()}),
                      t.path());
  EXPECT_EQ(r.code, 0) << r.err;
  auto db = t / "runner.db";
  EXPECT_EQ(query(db,
                  "SELECT group_concat(state || ':' || mem_limit_kib) FROM attempts "
                  "WHERE cluster = 2 ORDER BY attempt"),
            "oom:204800,done:512000");
  // The retry ran alone: nothing else was holding memory while it did.
  bool alone = true;
  int others = 0;
  for (const auto& line : read_lines(record)) {
    if (line.rfind("start 2 300", 0) == 0 && others > 0) alone = false;
    if (line.rfind("start", 0) == 0 && line.rfind("start 2 ", 0) != 0) ++others;
    if (line.rfind("end", 0) == 0 && line.rfind("end 2 ", 0) != 0) --others;
  }
  EXPECT_TRUE(alone);
}

TEST(Memory, ReportGivesCsvAndAdviceOnP) {
  TempDir t;
  auto r =
      run_runner(with_child({"6", "3"}, {"--alloc-mib", "30", "--alloc-for", "6=120"}), t.path());
  ASSERT_EQ(r.code, 0) << r.err;
  auto csv = run_runner({"report", "--csv"}, t.path());
  EXPECT_EQ(csv.code, 0) << csv.err;
  std::vector<std::string> rows;
  std::string row;
  for (char c : csv.out) {
    if (c == '\n') {
      rows.push_back(row);
      row.clear();
    } else {
      row += c;
    }
  }
  ASSERT_EQ(rows.size(), 7u) << csv.out;
  EXPECT_EQ(rows[0], "job,cluster,attempts,state,duration_s,peak_mib,peak_rss_mib,peak_cgroup_mib");
  EXPECT_NE(rows[6].find(",6,1,done,"), std::string::npos) << rows[6];
  auto text = run_runner({"report", "--mem-budget", "1G"}, t.path());
  EXPECT_EQ(text.code, 0) << text.err;
  EXPECT_NE(text.out.find("p95"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("cluster 6:"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("with a 1.0 GiB budget: P = "), std::string::npos) << text.out;
  auto json = run_runner({"report", "--json"}, t.path());
  EXPECT_EQ(json.out.front(), '[');
  EXPECT_NE(json.out.find("\"per_cluster\""), std::string::npos);
}

TEST(Memory, DoctorExplainsTheMachine) {
  TempDir t;
  auto r = run_runner({"doctor"}, t.path());
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("cgroup v2: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("cgroup v1: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("runner will use: "), std::string::npos) << r.out;
  auto probe = probe_memory();
  auto expect = probe.v2_dir ? "cgroup-v2" : probe.v1_dir ? "cgroup-v1" : "rlimit";
  EXPECT_NE(r.out.find(std::string("runner will use: ") + expect), std::string::npos) << r.out;
}

TEST(Memory, CgroupV2WhereTheMachineHasIt) {
  auto probe = probe_memory();
  if (!probe.v2_dir) GTEST_SKIP() << "no usable cgroup v2 memory controller: " << probe.v2_why_not;
  TempDir t;
  auto r = run_runner(
      with_child({"2", "2", "--cap", "cgroup", "--mem-limit", "100M"}, {"--alloc-mib", "300"}),
      t.path());
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(query(t / "runner.db",
                  "SELECT count(*) FROM attempts WHERE state = 'oom' "
                  "AND cap = 'cgroup-v2'"),
            "2");
}

}  // namespace
}  // namespace runner::testing
