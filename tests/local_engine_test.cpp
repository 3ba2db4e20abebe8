// The local engine on its own, with real children (test_child): what it
// tells of a start and an end, and how it stops an attempt in steps.
#include "runner/local_engine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <fstream>
#include <map>

#include "e2e_util.h"
#include "runner/sysinfo.h"

namespace runner::testing {
namespace {

class LocalEngineTest : public ::testing::Test {
 protected:
  LocalEngineTest() { fs::create_directories(dir_ / "logs"); }

  // Its children start with SIGTERM blocked; test_child --term-record takes
  // it once its handler is in place, so no SIGTERM comes too early for it.
  std::unique_ptr<LocalEngine> engine(std::chrono::milliseconds grace) {
    sigset_t term, before;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    sigprocmask(SIG_BLOCK, &term, &before);
    LocalEngineOptions options;
    sigprocmask(SIG_SETMASK, &before, nullptr);
    options.grace = grace;
    return std::make_unique<LocalEngine>(std::move(options));
  }

  AttemptSpec spec(AttemptId id, std::vector<std::string> child_args) {
    AttemptSpec s;
    s.id = id;
    s.job = "j";
    s.cluster = id;
    s.clusters = 10;
    s.attempt = 1;
    s.argv = {child_bin()};
    s.argv.insert(s.argv.end(), child_args.begin(), child_args.end());
    s.log_dir = (dir_ / "logs").string();
    s.log_name = std::to_string(id) + ".1.log";
    return s;
  }

  // Waits (on the engine, at most a minute) for the end of attempt `id`.
  static std::optional<Outcome> end_of(LocalEngine& e, AttemptId id) {
    auto give_up = Clock::now() + std::chrono::seconds(60);
    while (Clock::now() < give_up)
      for (auto& event : e.wait(give_up, -1))
        if (auto* ended = std::get_if<AttemptEnded>(&event); ended && ended->id == id)
          return ended->outcome;
    return std::nullopt;
  }

  TempDir dir_;
};

TEST_F(LocalEngineTest, TellsWhereAnAttemptStartedAndHowItEnded) {
  auto e = engine(std::chrono::seconds(10));
  auto answer = e->start(spec(1, {"--print", "1", "--exit", "3"}));
  ASSERT_TRUE(answer);
  auto* started = std::get_if<AttemptStarted>(&*answer);
  ASSERT_TRUE(started);
  EXPECT_EQ(started->id, 1u);
  EXPECT_EQ(started->where.host, host_name());
  EXPECT_GT(started->where.process, 0);
  EXPECT_EQ(started->log_path, (dir_ / "logs" / "1.1.log").string());
  EXPECT_EQ(started->cap, "none");
  auto out = end_of(*e, 1);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->exit_code, 3);
  EXPECT_FALSE(out->killed_by);
  EXPECT_GT(out->rss_peak_kib.value_or(0), 0u);
  EXPECT_EQ(out->peak_source(), Source::kRusage);
  EXPECT_TRUE(out->user_cpu_s.has_value());
  EXPECT_NE(read_file(started->log_path).find("out line 0 of cluster 1"), std::string::npos);
}

// An end is told, rusage and all, while its process is still a zombie of
// the engine's: a worker journals it before it is reaped, and a worker
// killed in between leaves it for runner to read. It is reaped at the next
// wait().
TEST_F(LocalEngineTest, AnEndIsToldWithItsRusageBeforeItsProcessIsReaped) {
  auto e = engine(std::chrono::seconds(10));
  auto answer = e->start(spec(1, {"--alloc-mib", "40", "--exit", "3"}));
  ASSERT_TRUE(answer);
  auto pid = std::get<AttemptStarted>(*answer).where.process;
  auto out = end_of(*e, 1);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->exit_code, 3);
  EXPECT_GE(out->rss_peak_kib.value_or(0), 40u * 1024);
  EXPECT_GT(out->user_cpu_s.value_or(0) + out->sys_cpu_s.value_or(0), 0.0);
  auto stat = read_file(fs::path("/proc") / std::to_string(pid) / "stat");
  auto state = stat.substr(stat.rfind(')') + 2);
  EXPECT_EQ(state.substr(0, 1), "Z") << stat;
  EXPECT_EQ(std::stol(state.substr(2)), ::getpid()) << stat;
  EXPECT_TRUE(e->wait(Clock::now(), -1).empty());
  EXPECT_FALSE(fs::exists(fs::path("/proc") / std::to_string(pid))) << "not reaped";
}

// A worker releases an end once it has journalled it: until then the
// child stays a zombie, whatever wait() comes between.
TEST_F(LocalEngineTest, WithReapWhenReleasedAnEndedChildStaysUntilReleased) {
  LocalEngineOptions options;
  options.reap_when_released = true;
  LocalEngine e(std::move(options));
  auto answer = e.start(spec(1, {"--exit", "0"}));
  ASSERT_TRUE(answer);
  auto pid = std::get<AttemptStarted>(*answer).where.process;
  ASSERT_TRUE(end_of(e, 1));
  auto proc = fs::path("/proc") / std::to_string(pid);
  EXPECT_TRUE(e.wait(Clock::now(), -1).empty());
  EXPECT_TRUE(fs::exists(proc)) << "reaped before it was released";
  e.release(1);
  EXPECT_TRUE(e.wait(Clock::now(), -1).empty());
  EXPECT_FALSE(fs::exists(proc)) << "not reaped once released";
}

// Many children that end together are each told once (more of them than one
// look at the pidfds would take in small batches).
TEST_F(LocalEngineTest, SeventyChildrenEndingTogetherAreEachToldOnce) {
  LocalEngineOptions options;
  options.parallel = 70;
  LocalEngine e(std::move(options));
  auto go = dir_ / "go";
  std::vector<std::int64_t> pids;
  for (AttemptId id = 1; id <= 70; ++id) {
    auto answer = e.start(spec(id, {"--hold-file", go.string()}));
    ASSERT_TRUE(answer && std::holds_alternative<AttemptStarted>(*answer));
    pids.push_back(std::get<AttemptStarted>(*answer).where.process);
  }
  std::ofstream(go.string()).put('x');
  // All have ended before the engine looks.
  auto is_zombie = [](std::int64_t pid) {
    auto stat = read_file(fs::path("/proc") / std::to_string(pid) / "stat");
    return stat.substr(stat.rfind(')') + 2, 1) == "Z";
  };
  ASSERT_TRUE(
      wait_until(dir_.path(), [&] { return std::all_of(pids.begin(), pids.end(), is_zombie); }));
  std::map<AttemptId, int> told;
  auto give_up = Clock::now() + std::chrono::seconds(60);
  while (told.size() < 70 && Clock::now() < give_up)
    for (auto& event : e.wait(give_up, -1))
      if (auto* ended = std::get_if<AttemptEnded>(&event)) ++told[ended->id];
  ASSERT_EQ(told.size(), 70u);
  for (const auto& [id, n] : told) EXPECT_EQ(n, 1) << "attempt " << id;
}

// A graceful stop: SIGTERM first; a child that shrugs it off is killed once
// the grace has passed.
TEST_F(LocalEngineTest, AGracefulStopTermsThenKillsAfterTheGrace) {
  auto e = engine(std::chrono::milliseconds(100));
  auto terms = dir_ / "terms";
  e->start(spec(1, {"--term-record", terms.string(), "--ready-dir", dir_.path().string(),
                    "--hold-file", (dir_ / "never").string()}));
  ASSERT_TRUE(wait_until(dir_.path(), [&] { return fs::exists(dir_ / "1.ready"); }));
  e->stop(1, StopMode::kGraceful);
  auto out = end_of(*e, 1);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->killed_by, SIGKILL);
  EXPECT_FALSE(out->timed_out);
  EXPECT_EQ(read_file(terms), "term\n");
}

TEST_F(LocalEngineTest, AStopNowKillsAtOnce) {
  auto e = engine(std::chrono::hours(1));
  auto terms = dir_ / "terms";
  e->start(spec(1, {"--term-record", terms.string(), "--ready-dir", dir_.path().string(),
                    "--hold-file", (dir_ / "never").string()}));
  ASSERT_TRUE(wait_until(dir_.path(), [&] { return fs::exists(dir_ / "1.ready"); }));
  e->stop(1, StopMode::kNow);
  auto out = end_of(*e, 1);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->killed_by, SIGKILL);
  EXPECT_EQ(read_file(terms), "");
}

// Its timeout passed: SIGTERM, then SIGKILL after the grace, and the
// outcome says it timed out.
TEST_F(LocalEngineTest, ATimeoutTermsThenKillsAndSaysSo) {
  auto e = engine(std::chrono::milliseconds(100));
  auto terms = dir_ / "terms";
  auto s = spec(1, {"--term-record", terms.string(), "--hold-file", (dir_ / "never").string()});
  s.timeout = std::chrono::milliseconds(100);
  e->start(s);
  auto out = end_of(*e, 1);
  ASSERT_TRUE(out);
  EXPECT_TRUE(out->timed_out);
  EXPECT_EQ(out->killed_by, SIGKILL);
  EXPECT_EQ(read_file(terms), "term\n");
}

TEST_F(LocalEngineTest, ACommandThatCannotExecuteIsNotStartedAndItsLogSaysWhy) {
  auto e = engine(std::chrono::seconds(10));
  auto script = dir_ / "script";
  std::ofstream(script.string()) << "#!/nonexistent/interpreter\n";
  fs::permissions(script, fs::perms::owner_all);
  auto s = spec(1, {});
  s.argv = {script.string()};
  auto answer = e->start(s);
  ASSERT_TRUE(answer);
  auto* failed = std::get_if<AttemptNotStarted>(&*answer);
  ASSERT_TRUE(failed);
  EXPECT_EQ(failed->why, AttemptNotStarted::Why::kCommand);
  EXPECT_EQ(failed->message, "cannot execute " + script.string() + ": No such file or directory");
  EXPECT_EQ(read_file(failed->log_path), "runner: " + failed->message + "\n");
}

TEST(WhoseLimit, AKillWellBelowItsOwnCapIsTheRunsLimit) {
  constexpr std::uint64_t MiB = 1ULL << 20;
  EXPECT_EQ(whose_limit(400 * MiB, 400 * MiB, true), MemoryKill::kOwnCap);
  EXPECT_EQ(whose_limit(395 * MiB, 400 * MiB, true), MemoryKill::kOwnCap);  // within a few pages
  EXPECT_EQ(whose_limit(100 * MiB, 400 * MiB, true), MemoryKill::kPool);
  EXPECT_EQ(whose_limit(100 * MiB, 400 * MiB, false), MemoryKill::kOwnCap);  // no run limit
  EXPECT_EQ(whose_limit(100 * MiB, std::nullopt, true), MemoryKill::kOwnCap);
}

}  // namespace
}  // namespace runner::testing
