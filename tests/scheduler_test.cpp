// The scheduler against a fake launcher: no processes, every decision visible.
#include "runner/scheduler.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

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
  bool unkillable = false;      // signals fail with EPERM; it exits 0 after the SIGKILL
  // When set, a child ends only at a wait whose deadline is at least this far
  // off (or that has none): the next end comes this long after the last.
  std::optional<Clock::duration> next_end_after;
  std::vector<LaunchSpec> specs;
  // Memory: whether an attempt ends out of memory, and what a child uses.
  std::function<bool(ClusterId, std::uint32_t)> oom_for = [](ClusterId, std::uint32_t) {
    return false;
  };
  std::function<std::uint64_t(ClusterId)> usage_for;            // unset: no usage to report
  std::function<std::uint64_t(ClusterId)> cgroup_peak_kib_for;  // unset: no cgroup figures
  std::function<void(const LaunchSpec&)> on_start = [](const LaunchSpec&) {};
  std::map<pid_t, std::uint32_t> attempt_of;

  StartResult start(const LaunchSpec& spec) override {
    specs.push_back(spec);
    if (auto f = fail_start(spec.cluster)) return *f;
    on_start(spec);
    pid_t pid = next_pid_++;
    attempt_of[pid] = spec.attempt;
    running[pid] = spec.cluster;
    order.push_back(pid);
    max_running = std::max(max_running, running.size());
    events.push_back("start " + std::to_string(spec.cluster));
    return Started{pid, spec.log_path};
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
    if (next_end_after && deadline && *deadline - Clock::now() < *next_end_after) return w;
    if (!order.empty() && !stuck_) {
      auto pid = order.front();
      bool oom = oom_for(running[pid], attempt_of[pid]);
      w.exits.push_back(end(pid, oom ? std::nullopt : std::optional<int>(exit_for(running[pid])),
                            oom ? std::optional<int>(SIGKILL) : std::nullopt));
      w.exits.back().oom = oom;
      return w;
    }
    EXPECT_TRUE(deadline.has_value()) << "the scheduler would sleep forever";
    return w;  // the deadline passed
  }

  int signal(pid_t pid, int sig) override {
    events.push_back(std::string(sig == SIGTERM ? "SIGTERM " : "SIGKILL ") +
                     std::to_string(running.at(pid)));
    if (unkillable) {
      // It cannot be stopped; after the SIGKILL that failed, it ends by itself, well.
      if (sig == SIGKILL) {
        Wakeup w;
        w.exits.push_back(end(pid, 0, std::nullopt));
        script.push_back(w);
      }
      return EPERM;
    }
    if (sig == SIGKILL || ends_on_sigterm) pending_kill_.push_back(pid);
    return 0;
  }

  std::optional<std::uint64_t> memory_in_use(pid_t pid) const override {
    if (!usage_for || !running.contains(pid)) return std::nullopt;
    return usage_for(running.at(pid));
  }
  std::optional<std::uint64_t> total_memory_in_use() const override {
    if (!usage_for) return std::nullopt;
    std::uint64_t total = 0;
    for (const auto& [pid, c] : running) total += usage_for(c);
    return total;
  }

  // After this, children end only when signalled.
  void hang() { stuck_ = true; }

  ChildExit end(pid_t pid, std::optional<int> code, std::optional<int> sig) {
    auto cluster = running.at(pid);
    events.push_back("end " + std::to_string(cluster));
    running.erase(pid);
    order.erase(std::find(order.begin(), order.end(), pid));
    ChildExit e;
    e.pid = pid;
    e.exit_code = code;
    e.signal = sig;
    e.peak_rss_kib = 1234;
    if (cgroup_peak_kib_for) e.peak_cgroup_kib = cgroup_peak_kib_for(cluster);
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
    job_ = store_->open_job("job", n, "cmd");  // "cmd": as earlier jobs in these tests
    options.parallel = p;
    options.log_dir = dir_;
    Scheduler s(*store_, job_, command_, launcher_, nullptr, options);
    return s.run();
  }

  // What a reader of the log sees, through a connection of its own.
  std::string one(const std::string& sql) {
    SQLite::Database reader((dir_ / "runner.db").string(), SQLite::OPEN_READONLY);
    return reader.execAndGet(sql).getString();
  }
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

// A commit costs more than the start of a small cluster: ends and starts that
// come within a moment of each other share one.
TEST_F(SchedulerTest, EndsAndStartsThatComeWithinAMomentShareACommit) {
  launcher_.next_end_after = std::chrono::microseconds(500);
  int commits = 0;
  auto count = [](void* n) {
    ++*static_cast<int*>(n);
    return 0;
  };
  sqlite3_commit_hook(store_->connection_for_tests().getHandle(), count, &commits);
  auto s = run(40, 2);
  sqlite3_commit_hook(store_->connection_for_tests().getHandle(), nullptr, nullptr);
  EXPECT_EQ(s.done, 40u);
  EXPECT_EQ(one("SELECT done FROM progress"), "40");
  // 80 ends and starts: a commit each time runner had to wait would be 40 or more.
  EXPECT_GE(commits, 2);  // at most 64 to a group
  EXPECT_LE(commits, 10);
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

constexpr std::uint64_t MiB = 1ULL << 20;

// Records a finished attempt with a peak in an earlier job of the same command.
void remember_peak(Store& store, const Job& job, ClusterId c, std::uint64_t peak_mib) {
  auto row = store.record_start(job, AttemptStart{c, 1, 1, 1.0, "log"});
  AttemptEnd end;
  end.state = AttemptState::kDone;
  end.exit_code = 0;
  end.peak_rss_kib = peak_mib * 1024;
  store.record_end(job, row, c, end);
}

TEST_F(SchedulerTest, ABudgetNeverLetsReservationsPassIt) {
  auto yesterday = store_->open_job("yesterday", 40, "cmd");
  for (ClusterId c = 1; c <= 40; ++c) remember_peak(*store_, yesterday, c, c % 5 == 0 ? 350 : 100);
  std::map<pid_t, std::uint64_t> need;
  std::uint64_t most = 0;
  std::size_t most_running = 0;
  launcher_.on_start = [&](const LaunchSpec& spec) {
    // What the budget reserves: the recorded peak with its 5% margin.
    std::uint64_t in_use = 0;
    for (const auto& [pid, c] : launcher_.running) in_use += (c % 5 == 0 ? 350 : 100) * 105 / 100;
    in_use += (spec.cluster % 5 == 0 ? 350 : 100) * 105 / 100;
    most = std::max(most, in_use);
    most_running = std::max(most_running, launcher_.running.size() + 1);
    EXPECT_EQ(spec.mem_limit, 1000 * MiB);  // no --mem-limit: capped at the budget
  };
  SchedulerOptions o;
  o.mem_budget = 1000 * MiB;
  auto s = run(40, 8, o);
  EXPECT_EQ(s.exit_code(), 0);
  EXPECT_LE(most, 1000u);
  EXPECT_GE(most_running, 5u);  // memory, not P, decided how many ran
  EXPECT_LT(most_running, 9u);
}

TEST_F(SchedulerTest, WithoutHistoryEachClusterReservesItsCap) {
  SchedulerOptions o;
  o.mem_budget = 1000 * MiB;
  o.mem_limit = 400 * MiB;
  launcher_.on_start = [&](const LaunchSpec& spec) { EXPECT_EQ(spec.mem_limit, 400 * MiB); };
  auto s = run(10, 8, o);
  EXPECT_EQ(s.exit_code(), 0);
  EXPECT_EQ(launcher_.max_running, 2u);
}

TEST_F(SchedulerTest, AnOomUnderABudgetRunsOnceMoreAloneWithTheWholeBudget) {
  // Whether the first attempt reserved its cap or a learned guess.
  for (bool overcommit : {false, true}) {
    SCOPED_TRACE(overcommit ? "overcommit" : "caps");
    TearDown();
    SetUp();
    launcher_ = FakeLauncher{};
    SchedulerOptions o;
    o.mem_budget = 1000 * MiB;
    o.mem_limit = 200 * MiB;
    o.mem_overcommit = overcommit;
    launcher_.oom_for = [](ClusterId c, std::uint32_t attempt) { return c == 2 && attempt == 1; };
    std::vector<std::pair<std::uint32_t, std::size_t>> starts_of_2;  // attempt, others running
    std::size_t started_beside_alone = 0;
    launcher_.on_start = [&](const LaunchSpec& spec) {
      for (const auto& [pid, c] : launcher_.running)
        if (c == 2 && launcher_.attempt_of[pid] == 2) ++started_beside_alone;
      if (spec.cluster == 2) {
        starts_of_2.emplace_back(spec.attempt, launcher_.running.size());
        EXPECT_EQ(spec.mem_limit, spec.attempt == 1 ? 200 * MiB : 1000 * MiB);
      }
    };
    auto s = run(12, 4, o);
    EXPECT_EQ(s.exit_code(), 0);
    ASSERT_EQ(starts_of_2.size(), 2u);
    EXPECT_EQ(starts_of_2[1].second, 0u);  // alone
    EXPECT_EQ(started_beside_alone, 0u);
    EXPECT_EQ(one("SELECT group_concat(state) FROM attempts WHERE cluster = 2 ORDER BY attempt"),
              "oom,done");
  }
}

TEST_F(SchedulerTest, AnOomKillAtTheBudgetRunsAgainBesideTheOthersUnderItsOwnCap) {
  SchedulerOptions o;
  o.mem_budget = 1000 * MiB;
  o.mem_limit = 400 * MiB;
  // Killed at 100 MiB of its 400 MiB cap: the pool's limit did it, not its own.
  launcher_.oom_for = [](ClusterId c, std::uint32_t attempt) { return c == 2 && attempt == 1; };
  launcher_.cgroup_peak_kib_for = [](ClusterId) { return 100 * 1024; };
  std::vector<std::pair<std::uint32_t, std::size_t>> starts_of_2;  // attempt, others running
  launcher_.on_start = [&](const LaunchSpec& spec) {
    if (spec.cluster != 2) return;
    starts_of_2.emplace_back(spec.attempt, launcher_.running.size());
    EXPECT_EQ(spec.mem_limit, 400 * MiB);
  };
  auto s = run(6, 2, o);
  EXPECT_EQ(s.exit_code(), 0);
  EXPECT_EQ(s.budget_ooms, 1u);
  EXPECT_EQ(s.failed_this_run, 0u);
  ASSERT_EQ(starts_of_2.size(), 2u);
  EXPECT_EQ(starts_of_2[1].second, 1u);  // beside another cluster, not alone
  EXPECT_EQ(one("SELECT group_concat(state) FROM attempts WHERE cluster = 2 ORDER BY attempt"),
            "oom,done");
  EXPECT_EQ(one("SELECT note LIKE '%reached the 1000.0 MiB budget, at 100.0 MiB of its 400.0 MiB "
                "cap%' FROM attempts WHERE cluster = 2 AND attempt = 1"),
            "1");
}

TEST_F(SchedulerTest, ASecondOomKillAtTheBudgetTakesTheAlonePath) {
  SchedulerOptions o;
  o.mem_budget = 1000 * MiB;
  o.mem_limit = 400 * MiB;
  launcher_.oom_for = [](ClusterId c, std::uint32_t) { return c == 2; };
  launcher_.cgroup_peak_kib_for = [](ClusterId) { return 100 * 1024; };
  std::vector<std::uint64_t> limits_of_2;
  launcher_.on_start = [&](const LaunchSpec& spec) {
    if (spec.cluster == 2) limits_of_2.push_back(*spec.mem_limit / MiB);
  };
  auto s = run(4, 2, o);
  EXPECT_EQ(s.exit_code(), 1);
  EXPECT_EQ(s.budget_ooms, 1u);
  EXPECT_EQ(limits_of_2, (std::vector<std::uint64_t>{400, 400, 1000}));
  EXPECT_EQ(one("SELECT group_concat(state) FROM attempts WHERE cluster = 2 ORDER BY attempt"),
            "oom,oom,oom");
}

TEST_F(SchedulerTest, ASecondOomStaysOom) {
  SchedulerOptions o;
  o.mem_budget = 1000 * MiB;
  launcher_.oom_for = [](ClusterId c, std::uint32_t) { return c == 2; };
  auto s = run(3, 2, o);
  EXPECT_EQ(s.exit_code(), 1);
  EXPECT_EQ(one("SELECT group_concat(state) FROM attempts WHERE cluster = 2 ORDER BY attempt"),
            "oom,oom");
  EXPECT_EQ(one("SELECT failed FROM progress WHERE job = 'job'"), "1");
}

TEST_F(SchedulerTest, AClusterLargerThanTheBudgetIsReportedNotStarted) {
  auto yesterday = store_->open_job("yesterday", 3, "cmd");
  remember_peak(*store_, yesterday, 2, 5000);
  SchedulerOptions o;
  o.mem_budget = 1000 * MiB;
  auto s = run(3, 2, o);
  EXPECT_EQ(s.too_big, 1u);
  EXPECT_EQ(s.exit_code(), 1);
  EXPECT_EQ(starts(), (std::vector<std::string>{"start 1", "start 3"}));
}

TEST_F(SchedulerTest, OvercommitEvictsTheYoungestGuessAndRunsItAgainWithoutFailing) {
  SchedulerOptions o;
  o.mem_budget = 1000 * MiB;
  o.mem_overcommit = true;
  // Cluster 4 turns out to need 900 MiB; the rest 50.
  launcher_.usage_for = [](ClusterId c) { return (c == 4 ? 900 : 50) * MiB; };
  std::vector<ClusterId> started;
  launcher_.on_start = [&](const LaunchSpec& spec) { started.push_back(spec.cluster); };
  auto s = run(8, 8, o);
  EXPECT_EQ(s.exit_code(), 0);
  // The one that outgrew its guess went, not the youngest of all.
  EXPECT_EQ(s.evicted, 1u);
  EXPECT_EQ(one("SELECT cluster FROM attempts WHERE state = 'interrupted'"), "4");
  EXPECT_EQ(std::count(started.begin(), started.end(), 4), 2);
  EXPECT_EQ(s.failed_this_run, 0u);
  EXPECT_EQ(one("SELECT count(*) FROM attempts WHERE state = 'interrupted' AND note LIKE "
                "'evicted at % to keep the pool within the memory budget'"),
            std::to_string(s.evicted));
  EXPECT_EQ(one("SELECT done FROM progress WHERE job = 'job'"), "8");
}

TEST_F(SchedulerTest, OvercommitEvictsNoMoreWhileItsVictimIsStillExiting) {
  SchedulerOptions o;
  o.mem_budget = 1000 * MiB;
  o.mem_overcommit = true;
  // Four guesses of 250 MiB each use 300: one must go. Its memory stays in the
  // total until it has exited, which takes three more wakeups here.
  launcher_.usage_for = [](ClusterId) { return 300 * MiB; };
  launcher_.script.resize(3);
  auto s = run(4, 4, o);
  EXPECT_EQ(s.exit_code(), 0);
  EXPECT_EQ(s.evicted, 1u);
  EXPECT_EQ(std::count_if(launcher_.events.begin(), launcher_.events.end(),
                          [](const std::string& e) { return e.rfind("SIGKILL", 0) == 0; }),
            1);
  EXPECT_EQ(one("SELECT done FROM progress WHERE job = 'job'"), "4");
}

TEST_F(SchedulerTest, ATimeoutTermsThenKillsAndRecordsTimeout) {
  launcher_.hang();
  launcher_.ends_on_sigterm = false;
  SchedulerOptions o;
  o.timeout = std::chrono::milliseconds(0);
  o.grace = std::chrono::milliseconds(0);
  auto s = run(1, 1, o);
  EXPECT_EQ(s.exit_code(), 1);
  EXPECT_EQ(s.timed_out, 1u);
  EXPECT_EQ(launcher_.events,
            (std::vector<std::string>{"start 1", "SIGTERM 1", "SIGKILL 1", "end 1"}));
  EXPECT_EQ(one("SELECT state || ' ' || timeout_s || ' ' || note FROM attempts"),
            "timeout 0.0 timed out after 0.0s");
}

TEST_F(SchedulerTest, ATimeoutThatCannotBeEnforcedIsStillATimeout) {
  launcher_.hang();
  launcher_.unkillable = true;
  SchedulerOptions o;
  o.timeout = std::chrono::milliseconds(0);
  o.grace = std::chrono::milliseconds(0);
  auto s = run(1, 1, o);
  EXPECT_EQ(s.exit_code(), 1);
  EXPECT_EQ(s.timed_out, 1u);
  EXPECT_EQ(one("SELECT state || ' ' || exit_code || ' ' || note FROM attempts"),
            "timeout 0 timed out after 0.0s; it could not be stopped and ran on until it ended");
}

TEST_F(SchedulerTest, FailedClustersAreRetriedUpToKTimesAsNewAttempts) {
  launcher_.exit_for = [this](ClusterId c) {
    // Cluster 2 fails on its first two attempts, cluster 4 always.
    auto attempts =
        std::count(launcher_.events.begin(), launcher_.events.end(), "start " + std::to_string(c));
    return (c == 2 && attempts <= 2) || c == 4 ? 1 : 0;
  };
  SchedulerOptions o;
  o.retry.retries = 2;
  o.retry.delay = std::chrono::milliseconds(0);
  auto s = run(5, 2, o);
  EXPECT_EQ(s.exit_code(), 1);
  EXPECT_EQ(s.retried, 4u);
  EXPECT_EQ(one("SELECT group_concat(state) FROM attempts WHERE cluster = 2 ORDER BY attempt"),
            "failed,failed,done");
  EXPECT_EQ(one("SELECT group_concat(state) FROM attempts WHERE cluster = 4 ORDER BY attempt"),
            "failed,failed,failed");
  EXPECT_EQ(
      one("SELECT group_concat(DISTINCT log_path) IS NOT NULL AND count(DISTINCT log_path) = 3 "
          "FROM attempts WHERE cluster = 4"),
      "1");
}

TEST_F(SchedulerTest, RetryOnLeavesOtherFailuresAlone) {
  launcher_.exit_for = [](ClusterId c) { return c == 1 ? 75 : c == 2 ? 1 : 0; };
  SchedulerOptions o;
  o.retry = *RetryPolicy::parse_on("exit:75");
  o.retry.retries = 1;
  o.retry.delay = std::chrono::milliseconds(0);
  run(2, 1, o);
  EXPECT_EQ(one("SELECT count(*) FROM attempts WHERE cluster = 1"), "2");
  EXPECT_EQ(one("SELECT count(*) FROM attempts WHERE cluster = 2"), "1");
}

TEST_F(SchedulerTest, RetriesNeverStarveFirstAttempts) {
  // Every attempt fails and is retried three times at once: with P = 1, new
  // clusters must still start every other time, not after all the retries.
  launcher_.exit_for = [](ClusterId) { return 1; };
  SchedulerOptions o;
  o.retry.retries = 3;
  o.retry.delay = std::chrono::milliseconds(0);
  run(6, 1, o);
  auto s = starts();
  EXPECT_EQ(s.size(), 24u);
  std::vector<std::size_t> first_start;
  for (ClusterId c = 1; c <= 6; ++c)
    first_start.push_back(static_cast<std::size_t>(
        std::find(s.begin(), s.end(), "start " + std::to_string(c)) - s.begin()));
  for (std::size_t i = 1; i < first_start.size(); ++i)
    EXPECT_EQ(first_start[i] - first_start[i - 1], 2u) << "cluster " << i + 1;
}

TEST_F(SchedulerTest, HaltSoonStopsStartingAndLetsRunningOnesFinish) {
  launcher_.exit_for = [](ClusterId c) { return c <= 2 ? 1 : 0; };
  SchedulerOptions o;
  o.halt = *HaltPolicy::parse("soon,fail=2");
  auto s = run(20, 3, o);
  EXPECT_EQ(s.exit_code(), 1);
  ASSERT_TRUE(s.halted);
  EXPECT_EQ(*s.halted, "--halt: 2 cluster(s) failed");
  // Clusters 1-3 started; 1 and 2 failed, 4 started in between; 3 and 4 finished.
  EXPECT_EQ(starts(), (std::vector<std::string>{"start 1", "start 2", "start 3", "start 4"}));
  EXPECT_EQ(one("SELECT count(*) FROM attempts WHERE state = 'done'"), "2");
}

TEST_F(SchedulerTest, HaltNowAlsoStopsTheRunningOnes) {
  launcher_.exit_for = [](ClusterId c) { return c == 1 ? 1 : 0; };
  SchedulerOptions o;
  o.halt = *HaltPolicy::parse("now,fail=1");
  auto s = run(20, 3, o);
  EXPECT_EQ(s.exit_code(), 1);
  EXPECT_TRUE(s.halted);
  EXPECT_EQ(std::count_if(launcher_.events.begin(), launcher_.events.end(),
                          [](const std::string& e) { return e.rfind("SIGTERM", 0) == 0; }),
            2);  // clusters 2 and 3, running when 1 failed; nothing started after
  EXPECT_EQ(one("SELECT count(*) FROM attempts WHERE state = 'interrupted'"), "2");
  EXPECT_EQ(starts().size(), 3u);
}

TEST_F(SchedulerTest, AForkFailureBacksOffAndRetriesTheStartWithoutFailingTheCluster) {
  int refusals = 3;
  launcher_.fail_start = [&](ClusterId) -> std::optional<StartFailed> {
    if (refusals-- > 0)
      return StartFailed{EAGAIN, "cannot start x: fork failed", StartFailed::Kind::kTransient};
    return std::nullopt;
  };
  auto s = run(3, 2);
  EXPECT_EQ(s.exit_code(), 0);
  EXPECT_EQ(one("SELECT count(*) || ' ' || sum(state = 'done') FROM attempts"), "3 3");
}

TEST_F(SchedulerTest, AFullLogFolderStopsTheRunCleanly) {
  launcher_.fail_start = [](ClusterId c) -> std::optional<StartFailed> {
    if (c == 3)
      return StartFailed{ENOSPC, "log folder /x/ is full: No space left on device",
                         StartFailed::Kind::kEnvironment};
    return std::nullopt;
  };
  auto s = run(10, 2);
  EXPECT_EQ(s.exit_code(), 1);
  ASSERT_TRUE(s.halted);
  EXPECT_EQ(*s.halted, "log folder /x/ is full: No space left on device");
  // Cluster 3 never started: not a failure of it, nothing recorded; it stays
  // pending for the next run (and --skip-failed would not skip it).
  EXPECT_EQ(one("SELECT count(*) FROM attempts WHERE cluster = 3"), "0");
  EXPECT_EQ(one("SELECT done || ' ' || failed || ' ' || pending FROM progress"), "2 0 8");
  EXPECT_EQ(starts().size(), 2u);  // 1 and 2; 3 could not start, nothing after it
}

TEST_F(SchedulerTest, ShortOfOpenFilesRunsFewerAtOnceAndFailsNoCluster) {
  // Room for three children at once, whatever P says.
  launcher_.fail_start = [&](ClusterId) -> std::optional<StartFailed> {
    if (launcher_.running.size() >= 3)
      return StartFailed{EMFILE, "cannot create log: Too many open files",
                         StartFailed::Kind::kShortOfFiles};
    return std::nullopt;
  };
  auto s = run(20, 8);
  EXPECT_EQ(s.exit_code(), 0);
  EXPECT_EQ(launcher_.max_running, 3u);
  EXPECT_EQ(one("SELECT count(*) || ' ' || sum(state = 'done') FROM attempts"), "20 20");
}

TEST_F(SchedulerTest, NoOpenFileForEvenOneChildStopsWithTheClustersPending) {
  launcher_.fail_start = [](ClusterId) -> std::optional<StartFailed> {
    return StartFailed{EMFILE, "cannot create log: Too many open files",
                       StartFailed::Kind::kShortOfFiles};
  };
  auto s = run(5, 2);
  EXPECT_EQ(s.exit_code(), 1);
  ASSERT_TRUE(s.halted);
  EXPECT_NE(s.halted->find("raise the open-file limit"), std::string::npos) << *s.halted;
  EXPECT_EQ(one("SELECT count(*) FROM attempts"), "0");
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
