// cgroup v2 as users have it, end to end on a real v2 kernel: runner in the
// root cgroup, in a cgroup delegated to it that also holds other processes,
// and as an ordinary user in the subtree systemd delegates to each user (the
// cgroup v2 guest, tests/v2vm, runs these in each). Skipped where the
// machine has no usable v2 memory controller (this project's machines bind
// it to v1), except in the guest, where that fails them.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>

#include "e2e_util.h"
#include "runner/memory.h"

namespace runner::testing {
namespace {

using Args = std::vector<std::string>;

#define REQUIRE_V2(probe)                                                                 \
  auto probe = probe_memory();                                                            \
  if (!probe.v2_dir && cgroup_required()) FAIL() << "no cgroup v2: " << probe.v2_why_not; \
  if (!probe.v2_dir) GTEST_SKIP() << "no usable cgroup v2 memory controller: " << probe.v2_why_not

// What a cgroup looks like from outside: its children's names and what it
// enables for them.
struct Shape {
  std::set<std::string> children;
  std::string subtree_control;
  bool operator==(const Shape&) const = default;
};

Shape shape_of(const fs::path& dir) {
  Shape s;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_directory()) s.children.insert(e.path().filename().string());
  s.subtree_control = read_file(dir / "cgroup.subtree_control");
  return s;
}

std::string own_cgroup() {
  return read_file("/proc/self/cgroup");
}

bool holds(const fs::path& cgroup, pid_t pid) {
  for (const auto& line : read_lines(cgroup / "cgroup.procs"))
    if (line == std::to_string(pid)) return true;
  return false;
}

TEST(MemoryV2, ACapEndsOomAtTheCapWithPeaksUnderItAndOneKillForOneProcess) {
  REQUIRE_V2(probe);
  for (std::string worker : {"on", "off"}) {
    TempDir t;
    auto r = run_runner(with_child({"4", "2", "--mem-limit", "64M", "--worker", worker},
                                   {"--alloc-mib", "40", "--alloc-for", "3=200", "--alloc-for",
                                    "4=200", "--hold-ms", "20"}),
                        t.path());
    EXPECT_EQ(r.code, 1) << r.err;
    auto db = t / "runner.db";
    EXPECT_EQ(query(db,
                    "SELECT group_concat(cluster || ':' || state, ' ') FROM "
                    "(SELECT * FROM attempts WHERE cap = 'cgroup-v2' ORDER BY cluster)"),
              "1:done 2:done 3:oom 4:oom")
        << worker;
    EXPECT_EQ(query(db,
                    "SELECT count(*) FROM attempts WHERE state = 'done' "
                    "AND peak_cgroup_kib BETWEEN 40 * 1024 AND 64 * 1024"),
              "2")
        << worker;
    // One python (here: test_child) killed alone is one process, though
    // memory.oom.group makes the kernel count it twice.
    EXPECT_EQ(query(db,
                    "SELECT count(*) FROM attempts WHERE state = 'oom' "
                    "AND note LIKE '%the kernel killed 1 process(es) of it for memory%'"),
              "2")
        << worker << ": " << query(db, "SELECT group_concat(note, ' | ') FROM attempts");
    // The figures, for the guest's summary of each placement.
    std::printf("figures: worker %s: %s\n", worker.c_str(),
                query(db,
                      "SELECT group_concat(cluster || ' ' || state || ' ' || "
                      "coalesce(peak_cgroup_kib / 1024, '-') || ' MiB', ', ') FROM "
                      "(SELECT * FROM attempts ORDER BY cluster)")
                    .c_str());
  }
}

TEST(MemoryV2, TheCgroupIsLeftAsItWasFoundAndRunnerWaitsBesideItsClustersMeanwhile) {
  REQUIRE_V2(probe);
  auto home = *probe.v2_dir;
  auto before = shape_of(home);
  auto self_before = own_cgroup();
  TempDir t;
  auto ready = t / "ready";
  fs::create_directory(ready);
  RunnerProcess runner(
      with_child({"2", "2", "--mem-limit", "100M"},
                 {"--ready-dir", ready.string(), "--hold-file", (t / "go").string()}),
      t.path());
  ASSERT_TRUE(wait_until(ready, [&] { return fs::exists(ready / "2.ready"); }));
  // While it runs: memory is on for the cgroup's children, the run folder
  // is there, and (but in the root cgroup) runner and every process that
  // was in the cgroup are in the leaf beside it.
  EXPECT_NE(read_file(home / "cgroup.subtree_control").find("memory"), std::string::npos);
  auto during = shape_of(home);
  EXPECT_TRUE(std::any_of(during.children.begin(), during.children.end(), [&](const auto& c) {
    return c.rfind("runner-" + std::to_string(runner.pid()) + "-", 0) == 0;
  }));
  if (probe.v2_placement != V2Placement::kRoot) {
    EXPECT_TRUE(holds(home / "runner-leaf", runner.pid()));
    EXPECT_TRUE(holds(home / "runner-leaf", ::getpid()));
    EXPECT_TRUE(read_file(home / "cgroup.procs").empty());
  }
  std::ofstream((t / "go").string()).put('x');
  EXPECT_EQ(runner.wait(), 0) << runner.err();
  EXPECT_EQ(query(t / "runner.db", "SELECT count(*) FROM attempts WHERE peak_cgroup_kib > 0"), "2");
  EXPECT_EQ(shape_of(home), before) << "left: " << [&] {
    std::string s;
    for (const auto& c : shape_of(home).children) s += c + " ";
    return s;
  }();
  EXPECT_EQ(own_cgroup(), self_before);
}

TEST(MemoryV2, TwoRunnersShareTheCgroupAndTheLastToLeavePutsItBack) {
  REQUIRE_V2(probe);
  auto home = *probe.v2_dir;
  auto before = shape_of(home);
  TempDir a, b;
  for (const auto* t : {&a, &b}) fs::create_directory(*t / "ready");
  auto job = [](const TempDir& t) {
    return with_child({"2", "2", "--mem-limit", "100M"},
                      {"--alloc-mib", "20", "--ready-dir", (t / "ready").string(), "--hold-file",
                       (t / "go").string()});
  };
  RunnerProcess first(job(a), a.path());
  ASSERT_TRUE(wait_until(a / "ready", [&] { return fs::exists(a / "ready/2.ready"); }));
  RunnerProcess second(job(b), b.path());
  ASSERT_TRUE(wait_until(b / "ready", [&] { return fs::exists(b / "ready/2.ready"); }));
  // The first to end leaves memory on: the second's clusters still use it.
  std::ofstream((a / "go").string()).put('x');
  EXPECT_EQ(first.wait(), 0) << first.err();
  EXPECT_NE(read_file(home / "cgroup.subtree_control").find("memory"), std::string::npos);
  std::ofstream((b / "go").string()).put('x');
  EXPECT_EQ(second.wait(), 0) << second.err();
  for (const auto* t : {&a, &b})
    EXPECT_EQ(query(*t / "runner.db",
                    "SELECT count(*) FROM attempts WHERE state = 'done' AND cap = 'cgroup-v2' "
                    "AND peak_cgroup_kib >= 20 * 1024"),
              "2");
  EXPECT_EQ(shape_of(home), before);
}

TEST(MemoryV2, DoctorNamesThePlacementAndTheFixWhereItFallsBack) {
  // In the guest the placement is known; elsewhere doctor must agree with
  // what a run would find.
  const char* expected = std::getenv("RUNNER_TEST_PLACEMENT");
  TempDir t;
  auto r = run_runner({"doctor"}, t.path());
  ASSERT_EQ(r.code, 0) << r.err;
  auto probe = probe_memory();
  if (expected) {
    EXPECT_NE(r.out.find(std::string("cgroup v2 placement: ") + expected + ":"), std::string::npos)
        << r.out;
    if (std::string(expected) == "none") {
      EXPECT_NE(r.out.find("runner will use: rlimit"), std::string::npos) << r.out;
      EXPECT_NE(r.out.find("the fix: systemd-run --user --scope -p Delegate=yes runner"),
                std::string::npos)
          << r.out;
    } else {
      EXPECT_NE(r.out.find("runner will use: cgroup-v2"), std::string::npos) << r.out;
    }
  } else if (probe.v2_dir) {
    EXPECT_NE(r.out.find("cgroup v2 placement: " + to_string(probe.v2_placement) + ":"),
              std::string::npos)
        << r.out;
  } else if (probe.v1_dir) {
    EXPECT_EQ(r.out.find("cgroup v2 placement"), std::string::npos) << r.out;
  } else {
    EXPECT_NE(r.out.find("the fix: " + probe.v2_fix), std::string::npos) << r.out;
  }
}

TEST(MemoryV2, DoctorTellsAnOrdinaryUserWithoutACgroupWhatWouldGiveThemOne) {
  if (std::getenv("RUNNER_TEST_PLACEMENT"))
    GTEST_SKIP() << "the cgroup v2 guest's placement 'none' is this case, as a real user";
  if (::geteuid() != 0) GTEST_SKIP() << "needs root, to run doctor as another user";
  TempDir t;
  auto r = run_shell(
      "setpriv --reuid=65534 --regid=65534 --clear-groups " + runner_bin() + " doctor", t.path());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("runner will use: rlimit"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\nthe fix: "), std::string::npos) << r.out;
}

// Where nothing is delegated (a login session's scope), a run with a cap
// still runs every cluster, under a per-process limit, and says so with
// the fix that would give it cgroups.
TEST(MemoryV2, WithNoCgroupToHaveACappedRunFallsBackToRlimitAndSaysWhatWouldGiveOne) {
  auto probe = probe_memory();
  if (probe.v2_dir || probe.v1_dir) GTEST_SKIP() << "a memory cgroup can be had here";
  TempDir t;
  auto r =
      run_runner(with_child({"2", "2", "--mem-limit", "200M"}, {"--alloc-mib", "20"}), t.path());
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(query(t / "runner.db",
                  "SELECT count(*) FROM attempts WHERE state = 'done' AND cap = 'rlimit' "
                  "AND peak_cgroup_kib IS NULL"),
            "2");
  EXPECT_NE(r.err.find("capped instead (RLIMIT_DATA"), std::string::npos) << r.err;
  if (!probe.v2_fix.empty()) {
    EXPECT_NE(r.err.find("the fix: " + probe.v2_fix), std::string::npos) << r.err;
  }
}

}  // namespace
}  // namespace runner::testing
