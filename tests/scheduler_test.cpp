// The scheduler against a fake launcher: no processes, every decision visible.
#include "runner/scheduler.h"

#include <gtest/gtest.h>

#include <csignal>
#include <deque>
#include <functional>
#include <map>

namespace runner {
namespace {

namespace fs = std::filesystem;

// Starts nothing; remembers what it was asked. By default each wait() ends the
// oldest running child, with the exit code that exit_for(cluster) gives.
class FakeLauncher : public Launcher {
 public:
  std::vector<std::string> events;  // "start 3", "end 3", "SIGTERM 3", ...
  std::map<pid_t, ClusterId> running;
  std::deque<pid_t> order;
  std::size_t max_running = 0;
  std::function<int(ClusterId)> exit_for = [](ClusterId) { return 0; };
  std::function<std::optional<StartFailed>(ClusterId)> fail_start = [](ClusterId) {
    return std::optional<StartFailed>{};
  };
  // Scripted wakeups come first; then the default behaviour.
  std::deque<Wakeup> script;
  bool ends_on_sigterm = true;  // a child that gets SIGTERM ends at the next wait
  std::vector<LaunchSpec> specs;

  StartResult start(const LaunchSpec& spec) override {
    specs.push_back(spec);
    if (auto f = fail_start(spec.cluster)) return *f;
    pid_t pid = next_pid_++;
    running[pid] = spec.cluster;
    order.push_back(pid);
    max_running = std::max(max_running, running.size());
    events.push_back("start " + std::to_string(spec.cluster));
    return Started{pid};
  }

  Wakeup wait(std::optional<Clock::time_point> deadline) override {
    if (!script.empty()) {
      auto w = std::move(script.front());
      script.pop_front();
      return w;
    }
    Wakeup w;
    for (auto pid : pending_kill_) w.exits.push_back(end(pid, std::nullopt, SIGTERM));
    pending_kill_.clear();
    if (!w.exits.empty()) return w;
    if (!order.empty() && !stuck_) {
      auto pid = order.front();
      w.exits.push_back(end(pid, exit_for(running[pid]), std::nullopt));
      return w;
    }
    EXPECT_TRUE(deadline.has_value()) << "the scheduler would sleep forever";
    return w;  // the deadline passed
  }

  void signal(pid_t pid, int sig) override {
    events.push_back(std::string(sig == SIGTERM ? "SIGTERM " : "SIGKILL ") +
                     std::to_string(running.at(pid)));
    if (sig == SIGKILL || ends_on_sigterm) pending_kill_.push_back(pid);
  }

  // After this, children end only when signalled.
  void hang() { stuck_ = true; }

  ChildExit end(pid_t pid, std::optional<int> code, std::optional<int> sig) {
    events.push_back("end " + std::to_string(running.at(pid)));
    running.erase(pid);
    order.erase(std::find(order.begin(), order.end(), pid));
    ChildExit e;
    e.pid = pid;
    e.exit_code = code;
    e.signal = sig;
    e.peak_rss_kib = 1234;
    return e;
  }

 private:
  pid_t next_pid_ = 1000;
  std::vector<pid_t> pending_kill_;
  bool stuck_ = false;
};

class SchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/runner-sched-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    store_ = std::make_unique<Store>(dir_ / "runner.db", Store::Access::kReadWrite);
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(dir_);
  }

  RunSummary run(ClusterId n, std::uint32_t p, SchedulerOptions options = {}) {
    job_ = store_->open_job("job", n, "cmd");
    options.parallel = p;
    options.log_dir = dir_;
    Scheduler s(*store_, job_, command_, launcher_, nullptr, options);
    return s.run();
  }

  std::string one(const std::string& sql) { return store_->db().execAndGet(sql).getString(); }
  std::vector<std::string> starts() const {
    std::vector<std::string> out;
    for (const auto& e : launcher_.events)
      if (e.rfind("start", 0) == 0) out.push_back(e);
    return out;
  }

  fs::path dir_;
  std::unique_ptr<Store> store_;
  Job job_;
  CommandTemplate command_{{"./migrate", "--cluster="}};
  FakeLauncher launcher_;
};

TEST_F(SchedulerTest, RunsEveryClusterOnceInOrderAtMostPAtATime) {
  auto s = run(10, 3);
  EXPECT_EQ(s.exit_code(), 0);
  EXPECT_EQ(s.done, 10u);
  EXPECT_EQ(launcher_.max_running, 3u);
  ASSERT_EQ(launcher_.specs.size(), 10u);
  for (ClusterId c = 1; c <= 10; ++c) {
    const auto& spec = launcher_.specs[c - 1];
    EXPECT_EQ(spec.cluster, c);
    EXPECT_EQ(spec.argv.back(), "--cluster=" + std::to_string(c) + "/10");
    EXPECT_EQ(spec.attempt, 1u);
    EXPECT_EQ(spec.job, "job");
    EXPECT_EQ(spec.log_path, (dir_ / (std::to_string(c) + ".1.log")).string());
  }
  EXPECT_EQ(one("SELECT count(*) FROM attempts WHERE state = 'done' AND peak_rss_kib = 1234"),
            "10");
}

TEST_F(SchedulerTest, StartsTheNextClusterTheMomentOneEnds) {
  run(6, 3);
  // No waves: each end is followed by a start before any other end.
  EXPECT_EQ(launcher_.events,
            (std::vector<std::string>{"start 1", "start 2", "start 3", "end 1", "start 4", "end 2",
                                      "start 5", "end 3", "start 6", "end 4", "end 5", "end 6"}));
}

TEST_F(SchedulerTest, PLargerThanNIsFine) {
  auto s = run(2, 50);
  EXPECT_EQ(s.done, 2u);
  EXPECT_EQ(launcher_.max_running, 2u);
}

TEST_F(SchedulerTest, FailedAndSignalledClustersAreRecordedAndTheExitCodeIsOne) {
  launcher_.exit_for = [](ClusterId c) { return c == 2 ? 5 : 0; };
  auto s = run(4, 2);
  EXPECT_EQ(s.exit_code(), 1);
  EXPECT_EQ(s.failed_this_run, 1u);
  EXPECT_EQ(one("SELECT state || ' ' || exit_code FROM attempts WHERE cluster = 2"), "failed 5");
  EXPECT_EQ(one("SELECT failed FROM progress"), "1");
}

TEST_F(SchedulerTest, ResumeRunsOnlyWhatIsNotDoneAndSkipFailedLeavesFailuresAlone) {
  launcher_.exit_for = [](ClusterId c) { return c % 3 == 0 ? 1 : 0; };
  run(9, 2);
  launcher_.events.clear();
  launcher_.exit_for = [](ClusterId) { return 0; };
  SchedulerOptions skip;
  skip.skip_failed = true;
  auto s = run(9, 2, skip);
  EXPECT_TRUE(starts().empty());
  EXPECT_EQ(s.skipped_failed, 3u);
  EXPECT_EQ(s.exit_code(), 1);

  s = run(9, 2);
  EXPECT_EQ(starts(), (std::vector<std::string>{"start 3", "start 6", "start 9"}));
  EXPECT_EQ(s.exit_code(), 0);
  EXPECT_EQ(one("SELECT group_concat(attempt) FROM attempts WHERE cluster = 6"), "1,2");
}

TEST_F(SchedulerTest, AttemptsLeftRunningByADeadRunnerRunAgain) {
  job_ = store_->open_job("job", 3, "cmd");
  store_->record_start(job_, AttemptStart{2, 1, 4242, 1.0, "x"});
  auto s = run(3, 1);
  EXPECT_EQ(s.recovered, 1u);
  EXPECT_EQ(s.done, 3u);
  EXPECT_EQ(one("SELECT group_concat(state) FROM attempts WHERE cluster = 2"), "interrupted,done");
}

TEST_F(SchedulerTest, ASignalStopsStartsTermsChildrenAndRecordsThemInterrupted) {
  Wakeup sig;
  sig.signals.push_back(SIGINT);
  launcher_.script.push_back(sig);
  auto s = run(10, 3);
  EXPECT_EQ(s.exit_code(), 130);
  EXPECT_EQ(starts().size(), 3u);
  EXPECT_EQ(std::count_if(launcher_.events.begin(), launcher_.events.end(),
                          [](const std::string& e) { return e.rfind("SIGTERM", 0) == 0; }),
            3);
  EXPECT_EQ(one("SELECT count(*) FROM attempts WHERE state = 'interrupted'"), "3");
  EXPECT_EQ(one("SELECT pending FROM progress"), "10");
}

TEST_F(SchedulerTest, AChildThatOutlivesTheGraceIsKilled) {
  launcher_.hang();
  launcher_.ends_on_sigterm = false;
  Wakeup sig;
  sig.signals.push_back(SIGTERM);
  launcher_.script.push_back(sig);
  SchedulerOptions o;
  o.grace = std::chrono::milliseconds(0);
  auto s = run(5, 2, o);
  EXPECT_EQ(s.exit_code(), 143);
  EXPECT_EQ(launcher_.events,
            (std::vector<std::string>{"start 1", "start 2", "SIGTERM 1", "SIGTERM 2", "SIGKILL 1",
                                      "SIGKILL 2", "end 1", "end 2"}));
}

TEST_F(SchedulerTest, ASecondSignalKillsWithoutWaitingForTheGrace) {
  launcher_.hang();
  launcher_.ends_on_sigterm = false;
  Wakeup first, second;
  first.signals.push_back(SIGINT);
  second.signals.push_back(SIGINT);
  launcher_.script.push_back(first);
  launcher_.script.push_back(second);
  SchedulerOptions o;
  o.grace = std::chrono::hours(1);
  auto s = run(5, 1, o);
  EXPECT_EQ(s.exit_code(), 130);
  EXPECT_EQ(launcher_.events,
            (std::vector<std::string>{"start 1", "SIGTERM 1", "SIGKILL 1", "end 1"}));
}

TEST_F(SchedulerTest, AChildThatFinishesWellDuringTheStopCountsAsDone) {
  Wakeup w;
  w.signals.push_back(SIGINT);
  launcher_.script.push_back(w);
  launcher_.ends_on_sigterm = false;
  // After the signal, the default wait ends the oldest child with exit 0.
  auto s = run(4, 2);
  EXPECT_EQ(s.exit_code(), 130);
  EXPECT_EQ(one("SELECT group_concat(state) FROM attempts ORDER BY cluster"), "done,done");
}

TEST_F(SchedulerTest, AStartFailureBeforeAnySuccessStopsTheRun) {
  launcher_.fail_start = [](ClusterId) {
    return std::optional<StartFailed>(
        StartFailed{ENOEXEC, "cannot execute ./migrate: Exec format error"});
  };
  auto s = run(1000, 4);
  EXPECT_EQ(s.exit_code(), 2);
  ASSERT_TRUE(s.setup_failure);
  EXPECT_EQ(*s.setup_failure, "cannot execute ./migrate: Exec format error");
  EXPECT_EQ(launcher_.specs.size(), 1u);
  EXPECT_EQ(one("SELECT state || ' ' || exit_code || ' ' || (pid IS NULL) FROM attempts"),
            "failed 127 1");
}

TEST_F(SchedulerTest, AStartFailureAfterASuccessIsOneFailedCluster) {
  launcher_.fail_start = [](ClusterId c) {
    return c == 3 ? std::optional<StartFailed>(StartFailed{EACCES, "cannot execute: denied"})
                  : std::nullopt;
  };
  auto s = run(5, 1);
  EXPECT_EQ(s.exit_code(), 1);
  EXPECT_FALSE(s.setup_failure);
  EXPECT_EQ(s.done, 4u);
  EXPECT_EQ(one("SELECT exit_code FROM attempts WHERE cluster = 3"), "127");
}

TEST_F(SchedulerTest, AHugeJobKeepsNoPerClusterState) {
  // A billion clusters: pending ones are never written; stop after a thousand.
  std::size_t ended = 0;
  launcher_.exit_for = [&](ClusterId) {
    if (++ended == 1000) {
      Wakeup w;
      w.signals.push_back(SIGTERM);
      launcher_.script.push_back(w);
    }
    return 0;
  };
  auto s = run(1'000'000'000, 4);
  EXPECT_EQ(s.exit_code(), 143);
  EXPECT_EQ(s.done, 1000u);
  EXPECT_EQ(one("SELECT count(*) FROM done_range"), "1");
  EXPECT_EQ(one("SELECT count(*) FROM attempt"), "1004");
  EXPECT_EQ(one("SELECT pending FROM progress"), std::to_string(1'000'000'000 - 1000));
}

}  // namespace
}  // namespace runner
