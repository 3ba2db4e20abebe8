// Cgroup v1 cages on this machine's kernel, one attempt after another: a
// cgroup its attempt left empty cages the next one, with the peak and the OOM
// count starting afresh; one that still holds anything is replaced. The check
// waits for MemoryCaps::tidy(), which runner calls before it sleeps.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <fstream>
#include <set>
#include <thread>

#include "e2e_util.h"
#include "runner/memory.h"

namespace runner::testing {
namespace {

// What an attempt's end does with its cage: measure, then give it back.
MemoryUse collect(Cage& cage) {
  auto use = cage.measure();
  cage.release();
  return use;
}

constexpr std::uint64_t kMiB = 1 << 20;

class CgroupReuse : public ::testing::Test {
 protected:
  void SetUp() override {
    probe_ = probe_memory();
    if (!probe_.v1_dir) GTEST_SKIP() << "no cgroup v1 memory cgroup here: " << probe_.v1_why_not;
    caps_ = make_memory_caps(CapMechanism::kCgroupV1, probe_);
  }

  // Runs body in a forked child inside the cage; returns its wait status.
  template <class Body>
  static int in_cage(const Cage& cage, Body body) {
    pid_t pid = ::fork();
    if (pid == 0) {
      if (cage.enter() != 0) ::_exit(99);
      body();
      ::_exit(0);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    return status;
  }

  static void touch_mib(std::uint64_t mib) {
    auto bytes = mib * kMiB;
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) ::_exit(98);
    for (std::uint64_t i = 0; i < bytes; i += 4096) static_cast<volatile char*>(p)[i] = 1;
  }

  // Written pages stay in the page cache, charged to the cgroup that wrote them.
  static void write_mib(const std::string& file, int mib) {
    int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    std::string block(kMiB, 'x');
    for (int i = 0; i < mib; ++i)
      if (::write(fd, block.data(), block.size()) < 0) ::_exit(97);
    ::close(fd);
  }

  // An attempt in a fresh cage that writes mib MiB of page cache to file and
  // ends; runner then tidies. Sets folder to the cage's cgroup.
  void end_attempt_leaving_page_cache(const std::string& file, int mib, std::string& folder) {
    auto cage = caps_->cage(std::nullopt);
    folder = cage->cgroup();
    ASSERT_EQ(in_cage(*cage, [&] { write_mib(file, mib); }), 0);
    collect(*cage);
    caps_->tidy();
  }

  // An attempt that touches 4 MiB in cage: its peak counts that much, and
  // less than below, so nothing of an earlier attempt.
  static void expect_peak_of_a_4_mib_attempt(Cage& cage, std::uint64_t below) {
    ASSERT_EQ(in_cage(cage, [] { touch_mib(4); }), 0);
    auto peak = collect(cage).peak_bytes.value_or(0);
    EXPECT_GE(peak, 4 * kMiB);
    EXPECT_LT(peak, below);
  }

  MemoryProbe probe_;
  std::unique_ptr<MemoryCaps> caps_;
};

TEST_F(CgroupReuse, AnEmptyCgroupCagesTheNextAttemptWithItsPeakReset) {
  auto first = caps_->cage(std::nullopt);
  auto folder = first->cgroup();
  ASSERT_EQ(in_cage(*first, [] { touch_mib(64); }), 0);
  EXPECT_GE(collect(*first).peak_bytes.value_or(0), 64 * kMiB);

  caps_->tidy();
  auto second = caps_->cage(std::nullopt);
  EXPECT_EQ(second->cgroup(), folder);
  expect_peak_of_a_4_mib_attempt(*second, 16 * kMiB);
}

TEST_F(CgroupReuse, OomKillsAreCountedForTheAttemptThatHadThem) {
  auto first = caps_->cage(32 * kMiB);
  auto folder = first->cgroup();
  int status = in_cage(*first, [] { touch_mib(128); });
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  EXPECT_EQ(collect(*first).oom_kills, 1u);

  caps_->tidy();
  auto second = caps_->cage(32 * kMiB);
  EXPECT_EQ(second->cgroup(), folder);
  ASSERT_EQ(in_cage(*second, [] { touch_mib(4); }), 0);
  EXPECT_EQ(collect(*second).oom_kills, 0u);
}

TEST_F(CgroupReuse, ACgroupStillHoldingAProcessIsReplacedAndTheProcessKilled) {
  auto first = caps_->cage(std::nullopt);
  auto folder = first->cgroup();
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  // The attempt's process leaves a grandchild behind in the cgroup.
  ASSERT_EQ(in_cage(*first,
                    [&] {
                      pid_t left = ::fork();
                      if (left == 0) {
                        ::pause();
                        ::_exit(0);
                      }
                      if (::write(fds[1], &left, sizeof left) != sizeof left) ::_exit(97);
                    }),
            0);
  pid_t left = 0;
  ASSERT_EQ(::read(fds[0], &left, sizeof left), static_cast<ssize_t>(sizeof left));
  ::close(fds[0]);
  ::close(fds[1]);
  collect(*first);
  EXPECT_TRUE(fs::exists(folder));  // the next start does not wait for this
  caps_->tidy();
  EXPECT_FALSE(fs::exists(folder));
  // Gone, or a zombie waiting for whoever adopted it.
  std::ifstream stat("/proc/" + std::to_string(left) + "/stat");
  std::string pid, name, state;
  if (stat >> pid >> name >> state) {
    EXPECT_EQ(state, "Z");
  }

  auto second = caps_->cage(std::nullopt);
  EXPECT_NE(second->cgroup(), folder);
}

TEST_F(CgroupReuse, ACgroupLeftWithPageCacheIsReplaced) {
  TempDir t;
  auto file = (t / "out").string();
  std::string folder;
  ASSERT_NO_FATAL_FAILURE(end_attempt_leaving_page_cache(file, 8, folder));
  auto second = caps_->cage(std::nullopt);
  EXPECT_NE(second->cgroup(), folder);
  EXPECT_FALSE(fs::exists(folder));
}

// What an exited process leaves charged is mostly freed a moment later: a
// cgroup a little over the mark rests, and is used again once it has fallen.
// Page cache stands in for that charge here; deleting its file frees it.
TEST_F(CgroupReuse, ACgroupALittleOverTheMarkRestsAndIsUsedAgainOnceItFell) {
  TempDir t;
  auto file = (t / "out").string();
  std::string folder;
  ASSERT_NO_FATAL_FAILURE(end_attempt_leaving_page_cache(file, 2, folder));
  auto second = caps_->cage(std::nullopt);
  EXPECT_NE(second->cgroup(), folder);
  EXPECT_TRUE(fs::exists(folder));  // resting, not removed

  // With the second still running, the next start looks at the resting one.
  ASSERT_EQ(::unlink(file.c_str()), 0);
  auto third = caps_->cage(std::nullopt);
  EXPECT_EQ(third->cgroup(), folder);
  expect_peak_of_a_4_mib_attempt(*third, 8 * kMiB);
}

// A charge that does not fall (page cache whose file stays) is not waited for
// long: after kRestFor (100 ms) the resting cgroup is removed.
TEST_F(CgroupReuse, ACgroupThatStaysOverTheMarkIsRemovedAfterResting) {
  TempDir t;
  auto file = (t / "out").string();
  std::string folder;
  ASSERT_NO_FATAL_FAILURE(end_attempt_leaving_page_cache(file, 2, folder));
  auto second = caps_->cage(std::nullopt);
  EXPECT_TRUE(fs::exists(folder));
  // Elapsed time, not a race: the rest is measured on the same clock.
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  auto third = caps_->cage(std::nullopt);
  EXPECT_NE(third->cgroup(), folder);
  EXPECT_FALSE(fs::exists(folder));
}

// Two starts back to back: the second does not wait for the first one's
// cgroup to be checked, and the slots stay one more than ever ran at once.
TEST_F(CgroupReuse, TheNextStartTakesASpareCgroupWhileTheLastOneWaitsForTidy) {
  std::set<std::string> folders;
  auto cage = caps_->cage(std::nullopt);
  for (int i = 0; i < 6; ++i) {
    auto folder = cage->cgroup();
    folders.insert(folder);
    ASSERT_EQ(in_cage(*cage, [] {}), 0);
    collect(*cage);
    auto next = caps_->cage(std::nullopt);
    EXPECT_NE(next->cgroup(), folder);
    caps_->tidy();
    cage = std::move(next);
  }
  EXPECT_EQ(folders.size(), 2u);
}

TEST_F(CgroupReuse, TheCapOfAReusedCgroupFallsAndRisesWithSwapKeptOff) {
  std::string folder;
  auto limits = [&] {
    auto memsw = fs::path(folder) / "memory.memsw.limit_in_bytes";
    return read_file(fs::path(folder) / "memory.limit_in_bytes") + "/" +
           (fs::exists(memsw) ? read_file(memsw)
                              : read_file(fs::path(folder) / "memory.limit_in_bytes"));
  };
  auto cage = caps_->cage(64 * kMiB);
  folder = cage->cgroup();
  EXPECT_EQ(limits(), "67108864\n/67108864\n");
  for (auto [cap, expected] : std::vector<std::pair<std::optional<std::uint64_t>, std::string>>{
           {32 * kMiB, "33554432\n/33554432\n"},
           {128 * kMiB, "134217728\n/134217728\n"},
           {std::nullopt, "9223372036854771712\n/9223372036854771712\n"},
           {16 * kMiB, "16777216\n/16777216\n"}}) {
    collect(*cage);
    caps_->tidy();
    cage = caps_->cage(cap);
    EXPECT_EQ(cage->cgroup(), folder);
    EXPECT_EQ(limits(), expected);
  }
  // The cap holds: the kernel kills past 16 MiB.
  int status = in_cage(*cage, [] { touch_mib(64); });
  EXPECT_TRUE(WIFSIGNALED(status)) << status;
  EXPECT_EQ(collect(*cage).oom_kills, 1u);
}

}  // namespace
}  // namespace runner::testing
