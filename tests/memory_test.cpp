// Memory mechanisms against a fake cgroup tree: the parsing, the choice, and
// what a v2 cage writes and reads. The real kernel is exercised end to end in
// memory_e2e_test.cpp.
#include "runner/memory.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include "engines/memory_internal.h"
#include "runner/error.h"

namespace runner {
namespace {

// What an attempt's end does with its cage: measure, then give it back.
MemoryUse collect(Cage& cage) {
  auto use = cage.measure();
  cage.release();
  return use;
}

namespace fs = std::filesystem;

class FakeCgroupTree : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/runner-cgfake-XXXXXX";
    root_ = ::mkdtemp(tmpl);
  }
  void TearDown() override { fs::remove_all(root_); }
  void write(const fs::path& p, const std::string& text) {
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
  }
  ProbeSources sources() {
    return ProbeSources{root_ / "proc-self-cgroup", root_ / "proc-mounts", false};
  }
  fs::path root_;
};

TEST_F(FakeCgroupTree, FindsAV1MemoryCgroup) {
  write(root_ / "proc-self-cgroup", "4:memory:/jobs/a\n0::/\n");
  write(root_ / "proc-mounts",
        "cgroup " + (root_ / "mem").string() + " cgroup rw,relatime,memory 0 0\n");
  fs::create_directories(root_ / "mem/jobs/a");
  auto probe = probe_memory(sources());
  ASSERT_TRUE(probe.v1_dir);
  EXPECT_EQ(*probe.v1_dir, root_ / "mem/jobs/a");
  EXPECT_FALSE(probe.v2_dir);
  EXPECT_NE(probe.v2_why_not.find("no cgroup v2"), std::string::npos);
  EXPECT_EQ(choose_mechanism(CapChoice::kAuto, probe), CapMechanism::kCgroupV1);
  EXPECT_EQ(choose_mechanism(CapChoice::kRlimit, probe), CapMechanism::kRlimit);
}

TEST_F(FakeCgroupTree, PrefersV2WhenItsMemoryControllerIsDelegated) {
  write(root_ / "proc-self-cgroup", "0::/user.slice/runner.scope\n");
  write(root_ / "proc-mounts", "cgroup2 " + (root_ / "unified").string() + " cgroup2 rw 0 0\n");
  write(root_ / "unified/user.slice/runner.scope/cgroup.controllers", "cpu io memory pids\n");
  auto probe = probe_memory(sources());
  ASSERT_TRUE(probe.v2_dir);
  EXPECT_EQ(choose_mechanism(CapChoice::kAuto, probe), CapMechanism::kCgroupV2);
  EXPECT_EQ(choose_mechanism(CapChoice::kCgroup, probe), CapMechanism::kCgroupV2);
}

TEST_F(FakeCgroupTree, SaysWhyV2IsNotUsableAndFallsBackToRlimit) {
  write(root_ / "proc-self-cgroup", "0::/\n");
  write(root_ / "proc-mounts", "cgroup2 " + (root_ / "unified").string() + " cgroup2 rw 0 0\n");
  write(root_ / "unified/cgroup.controllers", "hugetlb\n");
  auto probe = probe_memory(sources());
  EXPECT_FALSE(probe.v2_dir);
  EXPECT_NE(probe.v2_why_not.find("memory controller is not offered"), std::string::npos)
      << probe.v2_why_not;
  EXPECT_NE(probe.v2_why_not.find("hugetlb"), std::string::npos);
  EXPECT_EQ(choose_mechanism(CapChoice::kAuto, probe), CapMechanism::kRlimit);
  EXPECT_THROW(choose_mechanism(CapChoice::kCgroup, probe), Error);
}

TEST_F(FakeCgroupTree, AV2CageCapsWithoutSwapKillsAsAGroupAndReadsPeakAndOomKills) {
  fs::create_directories(root_ / "own");
  auto caps = make_cgroup_caps(cgroupfs::Version::kV2, root_ / "own");
  ASSERT_EQ(caps->mechanism(), CapMechanism::kCgroupV2);
  fs::path run;
  for (const auto& e : fs::directory_iterator(root_ / "own")) run = e.path();
  ASSERT_EQ(run.filename().string().rfind("runner-", 0), 0u) << run;
  EXPECT_EQ(cgroupfs::read_text(run / "cgroup.subtree_control"), "+memory");
  EXPECT_TRUE(caps->set_total_limit(8ULL << 30));
  EXPECT_EQ(cgroupfs::read_text(run / "memory.max"), "8589934592");

  auto cage = caps->cage(200ULL << 20);
  auto dir = run / "s1";
  EXPECT_EQ(cage->cgroup(), dir.string());
  EXPECT_EQ(cgroupfs::read_text(dir / "memory.max"), "209715200");
  EXPECT_EQ(cgroupfs::read_text(dir / "memory.swap.max"), "0");
  EXPECT_EQ(cgroupfs::read_text(dir / "memory.oom.group"), "1");
  // What the kernel would have written by the attempt's end:
  std::ofstream(dir / "memory.peak") << "209711104\n";
  std::ofstream(dir / "memory.events") << "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\n";
  std::ofstream(dir / "memory.current") << "1000\n";
  EXPECT_EQ(cage->current_bytes(), 1000u);
  // A plain folder with files in it cannot be rmdir'ed like a cgroup; only
  // the figures are checked here (killing what is left is tested end to end).
  auto use = collect(*cage);
  EXPECT_EQ(use.peak_bytes, 209711104u);
  EXPECT_EQ(use.oom_kills, 1u);
  fs::remove_all(dir);
}

// Kernels before 5.19 have no memory.peak: no group peak is made up (the
// attempt's peak_cgroup_kib stays empty), and the OOM kills are still read.
TEST_F(FakeCgroupTree, AV2KernelWithoutMemoryPeakGivesNoGroupPeakAndStillCountsKills) {
  fs::create_directories(root_ / "own");
  auto caps = make_cgroup_caps(cgroupfs::Version::kV2, root_ / "own");
  auto cage = caps->cage(64ULL << 20);
  fs::path dir = cage->cgroup();
  ASSERT_FALSE(fs::exists(dir / "memory.peak"));
  std::ofstream(dir / "memory.events") << "oom 1\noom_kill 1\n";
  std::ofstream(dir / "memory.current") << "4096\n";
  auto use = collect(*cage);
  EXPECT_FALSE(use.peak_bytes.has_value()) << *use.peak_bytes;
  EXPECT_EQ(use.oom_kills, 1u);
  cage.reset();
  fs::remove_all(dir);
}

TEST_F(FakeCgroupTree, AV2GroupKillCountsTheVictimOnceThoughTheKernelCountsItTwice) {
  fs::create_directories(root_ / "own");
  auto caps = make_cgroup_caps(cgroupfs::Version::kV2, root_ / "own");
  // What 6.1 wrote for one process killed under memory.oom.group; for three
  // killed together; and, on a kernel without oom_group_kill, for one.
  for (auto [events, killed] : {std::pair{"oom 1\noom_kill 2\noom_group_kill 1\n", 1u},
                                std::pair{"oom 1\noom_kill 4\noom_group_kill 1\n", 3u},
                                std::pair{"oom 1\noom_kill 2\n", 1u},
                                std::pair{"oom 1\noom_kill 1\noom_group_kill 1\n", 1u},
                                std::pair{"oom 0\noom_kill 0\noom_group_kill 0\n", 0u}}) {
    auto cage = caps->cage(64ULL << 20);
    fs::path dir = cage->cgroup();
    std::ofstream(dir / "memory.events") << events;
    EXPECT_EQ(collect(*cage).oom_kills, killed) << events;
    cage.reset();
    fs::remove_all(dir);
  }
}

TEST_F(FakeCgroupTree, TheChildJoinsItsCgroupAsItselfByTasksOnV1AndCgroupProcsOnV2) {
  // On v1 the child moves itself as a thread ("0" to tasks): that takes no
  // lock over every process of the machine, as a write to cgroup.procs
  // does. A v2 memory cgroup takes processes only, by cgroup.procs.
  for (auto [version, file] : {std::pair{cgroupfs::Version::kV1, "tasks"},
                               std::pair{cgroupfs::Version::kV2, "cgroup.procs"}}) {
    auto own = root_ / (version == cgroupfs::Version::kV1 ? "v1" : "v2");
    fs::create_directories(own);
    auto caps = make_cgroup_caps(version, own);
    auto cage = caps->cage(std::nullopt);
    pid_t pid = ::fork();
    if (pid == 0) ::_exit(cage->enter() == 0 ? 0 : 1);
    int status = 0;
    ::waitpid(pid, &status, 0);
    EXPECT_EQ(WEXITSTATUS(status), 0);
    fs::path run;
    for (const auto& e : fs::directory_iterator(own)) run = e.path();
    EXPECT_EQ(cgroupfs::read_text(run / "s1" / file), "0") << file;
    fs::remove_all(run / "s1");
  }
}

TEST(RlimitCage, SetsRlimitDataInTheChild) {
  auto caps = make_memory_caps(CapMechanism::kRlimit, MemoryProbe{});
  auto cage = caps->cage(64ULL << 20);
  pid_t pid = ::fork();
  if (pid == 0) {
    if (cage->enter() != 0) ::_exit(2);
    rlimit r{};
    ::getrlimit(RLIMIT_DATA, &r);
    ::_exit(r.rlim_cur == (64ULL << 20) ? 0 : 1);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(make_memory_caps(CapMechanism::kNone, MemoryProbe{}), nullptr);
}

TEST_F(FakeCgroupTree, AllocationFailureSignsAreFoundAtTheEndOfALog) {
  auto log = root_ / "a.log";
  std::ofstream(log) << std::string(200 * 1024, 'x') << "\nTraceback...\nMemoryError\n";
  EXPECT_EQ(allocation_failure_sign(log), "MemoryError");
  std::ofstream(log) << "terminate called after throwing an instance of 'std::bad_alloc'\n";
  EXPECT_EQ(allocation_failure_sign(log), "std::bad_alloc");
  std::ofstream(log) << "Segmentation fault\n";
  EXPECT_EQ(allocation_failure_sign(log), std::nullopt);
  EXPECT_EQ(allocation_failure_sign(root_ / "missing.log"), std::nullopt);
}

TEST(CapChoice, ParsesTheFourChoices) {
  EXPECT_EQ(parse_cap_choice("auto"), CapChoice::kAuto);
  EXPECT_EQ(parse_cap_choice("cgroup"), CapChoice::kCgroup);
  EXPECT_EQ(parse_cap_choice("rlimit"), CapChoice::kRlimit);
  EXPECT_EQ(parse_cap_choice("none"), CapChoice::kNone);
  EXPECT_EQ(parse_cap_choice("cgroups"), std::nullopt);
}

}  // namespace
}  // namespace runner
