// The scheduler against a fake engine: no processes, every decision visible.
#include "runner/scheduler.h"

#include <SQLiteCpp/Database.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/eventfd.h>

#include <csignal>
#include <deque>
#include <functional>
#include <map>
#include <set>

#include "store_fixture.h"

namespace runner {
namespace {

namespace fs = std::filesystem;

// runner's own signals, raised by a test at a moment of its choosing.
class FakeSignals : public SignalSource {
 public:
  FakeSignals() : fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}
  int fd() const override { return fd_.get(); }
  std::vector<int> drain() override {
    std::uint64_t n = 0;
    if (::read(fd_.get(), &n, sizeof n) < 0) n = 0;
    return std::exchange(pending_, {});
  }
  void raise(int sig) {
    pending_.push_back(sig);
    std::uint64_t one = 1;
    EXPECT_EQ(::write(fd_.get(), &one, sizeof one), 8);
  }

 private:
  Fd fd_;
  std::vector<int> pending_;
};

// Runs nothing; remembers what it was asked. Each wait() first tells what
// start() and stop() decided, else ends the oldest running attempt with the
// exit code exit_for gives (shaped further by `shape`).
class FakeEngine : public Engine {
 public:
  std::vector<std::string> events;  // "start 3", "end 3", "SIGTERM 3" (graceful), "SIGKILL 3" (now)
  std::vector<AttemptSpec> specs;
  std::map<AttemptId, AttemptSpec> running;  // in the order they started
  std::size_t max_running = 0;
  std::function<int(ClusterId)> exit_for = [](ClusterId) { return 0; };
  std::function<std::optional<AttemptNotStarted>(const AttemptSpec&)> fail_start =
      [](const AttemptSpec&) { return std::nullopt; };
  std::function<void(const AttemptSpec&)> on_start = [](const AttemptSpec&) {};
  std::function<void(const AttemptSpec&, Outcome&)> shape = [](const AttemptSpec&, Outcome&) {};
  std::function<std::uint64_t(ClusterId)> usage_for;  // unset: no usage to report
  std::deque<std::function<void()>> script;           // run at the next waits, before anything ends
  bool hang = false;                                  // attempts end only when stopped
  bool ends_on_sigterm = true;                        // a graceful stop ends it at the next wait
  // When set, an attempt ends only at a wait whose deadline is at least this
  // far off (or that has none): the next end comes this long after the last.
  std::optional<Clock::duration> next_end_after;

  std::optional<EngineEvent> start(AttemptSpec spec) override {
    specs.push_back(spec);
    if (auto failed = fail_start(spec)) {
      failed->id = spec.id;
      return *failed;
    }
    on_start(spec);
    events.push_back("start " + std::to_string(spec.cluster));
    AttemptStarted started{spec.id,
                           {"host", 1000 + static_cast<std::int64_t>(spec.id)},
                           spec.log_dir + "/" + spec.log_name,
                           1.0,
                           "none"};
    running[spec.id] = std::move(spec);
    max_running = std::max(max_running, running.size());
    return started;
  }

  void stop(AttemptId id, StopMode mode) override {
    if (!running.contains(id)) return;  // its end is told already
    bool now = mode == StopMode::kNow;
    events.push_back((now ? "SIGKILL " : "SIGTERM ") + std::to_string(running.at(id).cluster));
    if (now || ends_on_sigterm) told_.push_back(end(id, std::nullopt, now ? SIGKILL : SIGTERM));
  }

  std::vector<EngineEvent> wait(std::optional<Clock::time_point> deadline, int) override {
    if (!script.empty()) {
      if (auto step = std::move(script.front())) step();
      script.pop_front();
    } else if (told_.empty() && !running.empty() && !hang &&
               (!next_end_after || !deadline || *deadline - Clock::now() >= *next_end_after)) {
      auto id = running.begin()->first;
      told_.push_back(end(id, exit_for(running.at(id).cluster), std::nullopt));
    } else if (told_.empty()) {
      EXPECT_TRUE(deadline.has_value()) << "the scheduler would sleep forever";
    }
    return std::exchange(told_, {});
  }

  std::optional<std::uint64_t> memory_in_use(AttemptId id) const override {
    if (!usage_for || !running.contains(id)) return std::nullopt;
    return usage_for(running.at(id).cluster);
  }
  std::optional<std::uint64_t> total_memory_in_use() const override {
    if (!usage_for) return std::nullopt;
    std::uint64_t total = 0;
    for (const auto& [id, spec] : running) total += usage_for(spec.cluster);
    return total;
  }

 private:
  AttemptEnded end(AttemptId id, std::optional<int> code, std::optional<int> sig) {
    auto spec = running.at(id);
    running.erase(id);
    events.push_back("end " + std::to_string(spec.cluster));
    AttemptEnded e{id, {}};
    e.outcome.exit_code = code;
    e.outcome.killed_by = sig;
    e.outcome.rss_peak_kib = 1234;
    shape(spec, e.outcome);
    return e;
  }

  std::vector<EngineEvent> told_;
};

class SchedulerTest : public StoreFixture {
 protected:
  RunSummary run(ClusterId n, std::uint32_t p, SchedulerOptions options = {}) {
    job_ = store_->open_job("job", n, "cmd");  // "cmd": as earlier jobs in these tests
    options.parallel = p;
    options.log_dir = dir_;
    Scheduler s(*store_, job_, command_, engine_, signals_, nullptr, options);
    return s.run();
  }

  // What a reader of the log sees, through a connection of its own.
  std::string one(const std::string& sql) {
    SQLite::Database reader((dir_ / "runner.db").string(), SQLite::OPEN_READONLY);
    return reader.execAndGet(sql).getString();
  }
  std::vector<std::string> starts() const {
    std::vector<std::string> out;
    for (const auto& e : engine_.events)
      if (e.rfind("start", 0) == 0) out.push_back(e);
    return out;
  }

  Job job_;
  CommandTemplate command_{{"./migrate", "--cluster="}};
  FakeEngine engine_;
  FakeSignals signals_;
};

// What the engine says of an attempt the kernel killed for memory.
void killed_for_memory(Outcome& o, MemoryKill whose) {
  o.exit_code.reset();
  o.killed_by = SIGKILL;
  o.memory_kill = whose;
}

TEST_F(SchedulerTest, RunsEveryClusterOnceInOrderAtMostPAtATime) {
  auto s = run(10, 3);
  EXPECT_EQ(s.exit_code(), 0);
  EXPECT_EQ(s.done, 10u);
  EXPECT_EQ(engine_.max_running, 3u);
  ASSERT_EQ(engine_.specs.size(), 10u);
  for (ClusterId c = 1; c <= 10; ++c) {
    const auto& spec = engine_.specs[c - 1];
    EXPECT_EQ(spec.cluster, c);
    EXPECT_EQ(spec.argv.back(), "--cluster=" + std::to_string(c) + "/10");
    EXPECT_EQ(spec.attempt, 1u);
    EXPECT_EQ(spec.job, "job");
    EXPECT_EQ(spec.log_dir + "/" + spec.log_name, (dir_ / (std::to_string(c) + ".1.log")).string());
  }
  EXPECT_EQ(one("SELECT count(*) FROM attempts WHERE state = 'done' AND peak_rss_kib = 1234"),
            "10");
}

TEST_F(SchedulerTest, StartsTheNextClusterTheMomentOneEnds) {
  run(6, 3);
  // No waves: each end is followed by a start before any other end.
  EXPECT_EQ(engine_.events,
            (std::vector<std::string>{"start 1", "start 2", "start 3", "end 1", "start 4", "end 2",
                                      "start 5", "end 3", "start 6", "end 4", "end 5", "end 6"}));
}

// A commit costs more than the start of a small cluster: ends and starts that
// come within a moment of each other share one.
TEST_F(SchedulerTest, EndsAndStartsThatComeWithinAMomentShareACommit) {
  engine_.next_end_after = std::chrono::microseconds(500);
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
  EXPECT_EQ(engine_.max_running, 2u);
}

TEST_F(SchedulerTest, FailedAndSignalledClustersAreRecordedAndTheExitCodeIsOne) {
  engine_.exit_for = [](ClusterId c) { return c == 2 ? 5 : 0; };
  auto s = run(4, 2);
  EXPECT_EQ(s.exit_code(), 1);
  EXPECT_EQ(s.failed_this_run, 1u);
  EXPECT_EQ(one("SELECT state || ' ' || exit_code FROM attempts WHERE cluster = 2"), "failed 5");
  EXPECT_EQ(one("SELECT failed FROM progress"), "1");
}

TEST_F(SchedulerTest, ResumeRunsOnlyWhatIsNotDoneAndSkipFailedLeavesFailuresAlone) {
  engine_.exit_for = [](ClusterId c) { return c % 3 == 0 ? 1 : 0; };
  run(9, 2);
  engine_.events.clear();
  engine_.exit_for = [](ClusterId) { return 0; };
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
  engine_.script.push_back([&] { signals_.raise(SIGINT); });
  auto s = run(10, 3);
  EXPECT_EQ(s.exit_code(), 130);
  EXPECT_EQ(starts().size(), 3u);
  EXPECT_EQ(std::count_if(engine_.events.begin(), engine_.events.end(),
                          [](const std::string& e) { return e.rfind("SIGTERM", 0) == 0; }),
            3);
  EXPECT_EQ(one("SELECT count(*) FROM attempts WHERE state = 'interrupted'"), "3");
  EXPECT_EQ(one("SELECT pending FROM progress"), "10");
}

// (A child that outlives the grace is killed: the engine's business, in
// local_engine_test.cpp.)

TEST_F(SchedulerTest, ASecondSignalKillsWithoutWaitingForTheGrace) {
  engine_.hang = true;
  engine_.ends_on_sigterm = false;
  engine_.script.push_back([&] { signals_.raise(SIGINT); });
  engine_.script.push_back([&] { signals_.raise(SIGINT); });
  auto s = run(5, 1);
  EXPECT_EQ(s.exit_code(), 130);
  EXPECT_EQ(engine_.events,
            (std::vector<std::string>{"start 1", "SIGTERM 1", "SIGKILL 1", "end 1"}));
}

TEST_F(SchedulerTest, AChildThatFinishesWellDuringTheStopCountsAsDone) {
  engine_.script.push_back([&] { signals_.raise(SIGINT); });
  engine_.ends_on_sigterm = false;
  // After the signal, the default wait ends the oldest child with exit 0.
  auto s = run(4, 2);
  EXPECT_EQ(s.exit_code(), 130);
  EXPECT_EQ(one("SELECT group_concat(state) FROM attempts ORDER BY cluster"), "done,done");
}

TEST_F(SchedulerTest, AStartFailureBeforeAnySuccessStopsTheRun) {
  engine_.fail_start = [](const AttemptSpec&) {
    return std::optional<AttemptNotStarted>(AttemptNotStarted{
        0, AttemptNotStarted::Why::kCommand, "cannot execute ./migrate: Exec format error"});
  };
  auto s = run(1000, 4);
  EXPECT_EQ(s.exit_code(), 2);
  ASSERT_TRUE(s.setup_failure);
  EXPECT_EQ(*s.setup_failure, "cannot execute ./migrate: Exec format error");
  EXPECT_EQ(engine_.specs.size(), 1u);
  EXPECT_EQ(one("SELECT state || ' ' || exit_code || ' ' || (pid IS NULL) FROM attempts"),
            "failed 127 1");
}

TEST_F(SchedulerTest, AStartFailureAfterASuccessIsOneFailedCluster) {
  engine_.fail_start = [](const AttemptSpec& spec) {
    return spec.cluster == 3 ? std::optional<AttemptNotStarted>(AttemptNotStarted{
                                   0, AttemptNotStarted::Why::kCommand, "cannot execute: denied"})
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
  std::uint64_t most = 0;
  std::size_t most_running = 0;
  engine_.on_start = [&](const AttemptSpec& spec) {
    // What the budget reserves: the recorded peak with its 5% margin.
    std::uint64_t in_use = 0;
    for (const auto& [id, other] : engine_.running)
      in_use += (other.cluster % 5 == 0 ? 350 : 100) * 105 / 100;
    in_use += (spec.cluster % 5 == 0 ? 350 : 100) * 105 / 100;
    most = std::max(most, in_use);
    most_running = std::max(most_running, engine_.running.size() + 1);
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
  engine_.on_start = [&](const AttemptSpec& spec) { EXPECT_EQ(spec.mem_limit, 400 * MiB); };
  auto s = run(10, 8, o);
  EXPECT_EQ(s.exit_code(), 0);
  EXPECT_EQ(engine_.max_running, 2u);
}

TEST_F(SchedulerTest, AnOomUnderABudgetRunsOnceMoreAloneWithTheWholeBudget) {
  // Whether the first attempt reserved its cap or a learned guess.
  for (bool overcommit : {false, true}) {
    SCOPED_TRACE(overcommit ? "overcommit" : "caps");
    TearDown();
    SetUp();
    engine_ = FakeEngine{};
    SchedulerOptions o;
    o.mem_budget = 1000 * MiB;
    o.mem_limit = 200 * MiB;
    o.mem_overcommit = overcommit;
    engine_.shape = [](const AttemptSpec& spec, Outcome& out) {
      if (spec.cluster == 2 && spec.attempt == 1) killed_for_memory(out, MemoryKill::kOwnCap);
    };
    std::vector<std::pair<std::uint32_t, std::size_t>> starts_of_2;  // attempt, others running
    std::size_t started_beside_alone = 0;
    engine_.on_start = [&](const AttemptSpec& spec) {
      for (const auto& [id, other] : engine_.running)
        if (other.cluster == 2 && other.attempt == 2) ++started_beside_alone;
      if (spec.cluster == 2) {
        starts_of_2.emplace_back(spec.attempt, engine_.running.size());
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
  engine_.shape = [](const AttemptSpec& spec, Outcome& out) {
    out.cgroup_peak_kib = 100 * 1024;
    if (spec.cluster == 2 && spec.attempt == 1) killed_for_memory(out, MemoryKill::kPool);
  };
  std::vector<std::pair<std::uint32_t, std::size_t>> starts_of_2;  // attempt, others running
  engine_.on_start = [&](const AttemptSpec& spec) {
    if (spec.cluster != 2) return;
    starts_of_2.emplace_back(spec.attempt, engine_.running.size());
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
  engine_.shape = [](const AttemptSpec& spec, Outcome& out) {
    out.cgroup_peak_kib = 100 * 1024;
    if (spec.cluster == 2) killed_for_memory(out, MemoryKill::kPool);
  };
  std::vector<std::uint64_t> limits_of_2;
  engine_.on_start = [&](const AttemptSpec& spec) {
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
  engine_.shape = [](const AttemptSpec& spec, Outcome& out) {
    if (spec.cluster == 2) killed_for_memory(out, MemoryKill::kOwnCap);
  };
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
  engine_.usage_for = [](ClusterId c) { return (c == 4 ? 900 : 50) * MiB; };
  std::vector<ClusterId> started;
  engine_.on_start = [&](const AttemptSpec& spec) { started.push_back(spec.cluster); };
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

TEST_F(SchedulerTest, OvercommitStartsHalfOfPOnGuessesUntilAPeakIsKnown) {
  // The first wave is half of P: if the unknown clusters need twice their
  // share of the budget, it still fits. Once one has ended, the peaks decide.
  SchedulerOptions o;
  o.mem_budget = 8000 * MiB;
  o.mem_overcommit = true;
  std::vector<std::size_t> running_at_start;
  engine_.on_start = [&](const AttemptSpec&) {
    running_at_start.push_back(engine_.running.size());
  };
  engine_.shape = [](const AttemptSpec&, Outcome& out) { out.cgroup_peak_kib = 150 * 1024; };
  auto s = run(40, 8, o);
  EXPECT_EQ(s.exit_code(), 0);
  ASSERT_GE(running_at_start.size(), 5u);
  // Four start beside 0, 1, 2 and 3 others; the fifth only once one ended.
  EXPECT_EQ(std::vector<std::size_t>(running_at_start.begin(), running_at_start.begin() + 4),
            (std::vector<std::size_t>{0, 1, 2, 3}));
  EXPECT_EQ(std::count(engine_.events.begin(), engine_.events.begin() + 5, "end 1"), 1)
      << "the fifth started before any ended";
  EXPECT_EQ(engine_.max_running, 8u);  // then the learned peaks let all P run
}

TEST_F(SchedulerTest, OvercommitEvictsNoMoreWhileItsVictimIsStillExiting) {
  SchedulerOptions o;
  o.mem_budget = 1000 * MiB;
  o.mem_overcommit = true;
  // Four first guesses (P = 8: two shares of 125 MiB each) use 300: one
  // must go. Its memory stays in the total until it has exited, which takes
  // three more wakeups here.
  engine_.usage_for = [](ClusterId) { return 300 * MiB; };
  engine_.script.resize(3);  // three wakeups at which nothing happens
  auto s = run(4, 8, o);
  EXPECT_EQ(s.exit_code(), 0);
  EXPECT_EQ(s.evicted, 1u);
  EXPECT_EQ(std::count_if(engine_.events.begin(), engine_.events.end(),
                          [](const std::string& e) { return e.rfind("SIGKILL", 0) == 0; }),
            1);
  EXPECT_EQ(one("SELECT done FROM progress WHERE job = 'job'"), "4");
}

// The engine stops an attempt at its timeout (local_engine_test.cpp shows
// SIGTERM, then SIGKILL after the grace); runner records it `timeout`.
TEST_F(SchedulerTest, ATimeoutIsRecordedTimeoutWithTheLimit) {
  engine_.shape = [](const AttemptSpec& spec, Outcome& out) {
    EXPECT_EQ(spec.timeout, std::chrono::milliseconds(0));
    out.exit_code.reset();
    out.killed_by = SIGKILL;
    out.timed_out = true;
  };
  SchedulerOptions o;
  o.timeout = std::chrono::milliseconds(0);
  auto s = run(1, 1, o);
  EXPECT_EQ(s.exit_code(), 1);
  EXPECT_EQ(s.timed_out, 1u);
  EXPECT_EQ(one("SELECT state || ' ' || timeout_s || ' ' || note FROM attempts"),
            "timeout 0.0 timed out after 0.0s");
}

TEST_F(SchedulerTest, ATimeoutThatCannotBeEnforcedIsStillATimeout) {
  // It could not be stopped, and went on to exit 0.
  engine_.shape = [](const AttemptSpec&, Outcome& out) {
    out.timed_out = true;
    out.unstoppable = "SIGTERM refused: Operation not permitted";
  };
  SchedulerOptions o;
  o.timeout = std::chrono::milliseconds(0);
  auto s = run(1, 1, o);
  EXPECT_EQ(s.exit_code(), 1);
  EXPECT_EQ(s.timed_out, 1u);
  EXPECT_EQ(one("SELECT state || ' ' || exit_code || ' ' || note FROM attempts"),
            "timeout 0 timed out after 0.0s; it could not be stopped and ran on until it ended");
}

TEST_F(SchedulerTest, FailedClustersAreRetriedUpToKTimesAsNewAttempts) {
  engine_.exit_for = [this](ClusterId c) {
    // Cluster 2 fails on its first two attempts, cluster 4 always.
    auto attempts =
        std::count(engine_.events.begin(), engine_.events.end(), "start " + std::to_string(c));
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
  engine_.exit_for = [](ClusterId c) { return c == 1 ? 75 : c == 2 ? 1 : 0; };
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
  engine_.exit_for = [](ClusterId) { return 1; };
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
  engine_.exit_for = [](ClusterId c) { return c <= 2 ? 1 : 0; };
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
  engine_.exit_for = [](ClusterId c) { return c == 1 ? 1 : 0; };
  SchedulerOptions o;
  o.halt = *HaltPolicy::parse("now,fail=1");
  auto s = run(20, 3, o);
  EXPECT_EQ(s.exit_code(), 1);
  EXPECT_TRUE(s.halted);
  EXPECT_EQ(std::count_if(engine_.events.begin(), engine_.events.end(),
                          [](const std::string& e) { return e.rfind("SIGTERM", 0) == 0; }),
            2);  // clusters 2 and 3, running when 1 failed; nothing started after
  EXPECT_EQ(one("SELECT count(*) FROM attempts WHERE state = 'interrupted'"), "2");
  EXPECT_EQ(starts().size(), 3u);
}

TEST_F(SchedulerTest, AForkFailureBacksOffAndRetriesTheStartWithoutFailingTheCluster) {
  int refusals = 3;
  engine_.fail_start = [&](const AttemptSpec&) -> std::optional<AttemptNotStarted> {
    if (refusals-- > 0)
      return AttemptNotStarted{0, AttemptNotStarted::Why::kNoProcess,
                               "cannot start x: fork failed"};
    return std::nullopt;
  };
  auto s = run(3, 2);
  EXPECT_EQ(s.exit_code(), 0);
  EXPECT_EQ(one("SELECT count(*) || ' ' || sum(state = 'done') FROM attempts"), "3 3");
}

TEST_F(SchedulerTest, AFullLogFolderStopsTheRunCleanly) {
  engine_.fail_start = [](const AttemptSpec& spec) -> std::optional<AttemptNotStarted> {
    if (spec.cluster == 3)
      return AttemptNotStarted{0, AttemptNotStarted::Why::kEnvironment,
                               "log folder /x/ is full: No space left on device"};
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
  engine_.fail_start = [&](const AttemptSpec&) -> std::optional<AttemptNotStarted> {
    if (engine_.running.size() >= 3)
      return AttemptNotStarted{0, AttemptNotStarted::Why::kShortOfFiles,
                               "cannot create log: Too many open files"};
    return std::nullopt;
  };
  auto s = run(20, 8);
  EXPECT_EQ(s.exit_code(), 0);
  EXPECT_EQ(engine_.max_running, 3u);
  EXPECT_EQ(one("SELECT count(*) || ' ' || sum(state = 'done') FROM attempts"), "20 20");
}

// Under a budget over several nodes, the scheduler names the node; one that
// is gone takes no more and its cluster goes elsewhere; none left ends the run.
TEST_F(SchedulerTest, ASiteThatIsGoneTakesNoMoreAndNoneLeftStopsTheRun) {
  std::set<std::size_t> gone = {1};
  std::map<std::size_t, int> started_at;
  engine_.fail_start = [&](const AttemptSpec& spec) -> std::optional<AttemptNotStarted> {
    EXPECT_TRUE(spec.site.has_value());
    if (gone.contains(spec.site.value_or(99)))
      return AttemptNotStarted{0, AttemptNotStarted::Why::kSiteGone,
                               "node n2: its worker is gone; it takes no more clusters"};
    ++started_at[*spec.site];
    return std::nullopt;
  };
  SchedulerOptions o;
  o.mem_limit = 100 * MiB;
  o.sites = {{2, 1000 * MiB}, {2, 1000 * MiB}};
  auto s = run(10, 4, o);
  EXPECT_EQ(s.exit_code(), 0);
  EXPECT_EQ(started_at[0], 10);
  EXPECT_EQ(started_at[1], 0);
  EXPECT_EQ(engine_.max_running, 2u);  // the one site left: its 2 slots
  EXPECT_EQ(one("SELECT done FROM progress"), "10");

  // Every node gone: the run stops, saying so, and the clusters stay pending.
  gone = {0, 1};
  engine_ = FakeEngine();
  engine_.fail_start = [&](const AttemptSpec& spec) -> std::optional<AttemptNotStarted> {
    return AttemptNotStarted{0, AttemptNotStarted::Why::kSiteGone,
                             fmt::format("node n{}: its worker is gone", *spec.site + 1)};
  };
  job_ = store_->open_job("other", 5, "cmd2");
  o.parallel = 4;
  o.log_dir = dir_;
  Scheduler again(*store_, job_, command_, engine_, signals_, nullptr, o);
  auto stopped = again.run();
  EXPECT_EQ(stopped.exit_code(), 1);
  ASSERT_TRUE(stopped.halted);
  EXPECT_NE(stopped.halted->find("no node is left"), std::string::npos) << *stopped.halted;
  EXPECT_EQ(one("SELECT count(*) FROM attempts WHERE job = 'other'"), "0");
}

TEST_F(SchedulerTest, NoOpenFileForEvenOneChildStopsWithTheClustersPending) {
  engine_.fail_start = [](const AttemptSpec&) -> std::optional<AttemptNotStarted> {
    return AttemptNotStarted{0, AttemptNotStarted::Why::kShortOfFiles,
                             "cannot create log: Too many open files"};
  };
  auto s = run(5, 2);
  EXPECT_EQ(s.exit_code(), 1);
  ASSERT_TRUE(s.halted);
  EXPECT_NE(s.halted->find("raise the open-file limit"), std::string::npos) << *s.halted;
  EXPECT_EQ(one("SELECT count(*) FROM attempts"), "0");
}

std::vector<std::string> starts_of(std::initializer_list<ClusterId> clusters) {
  std::vector<std::string> out;
  for (auto c : clusters) out.push_back("start " + std::to_string(c));
  return out;
}

TEST_F(SchedulerTest, WithHistoryTheLongestStartFirstAndTiesGoByIndex) {
  auto last_night = store_->open_job("last-night", 6, "cmd");
  for (auto [c, seconds] : {std::pair{1, 1.0}, {2, 5.0}, {3, 1.0}, {4, 9.0}, {5, 5.0}, {6, 1.0}})
    remember_run(*store_, last_night, c, seconds);
  auto s = run(6, 1);
  EXPECT_EQ(s.exit_code(), 0);
  EXPECT_EQ(starts(), starts_of({4, 2, 5, 1, 3, 6}));
}

TEST_F(SchedulerTest, EqualDurationsGoLargerPeakFirstThenByIndex) {
  auto last_night = store_->open_job("last-night", 4, "cmd");
  remember_run(*store_, last_night, 1, 3.0, 100);
  remember_run(*store_, last_night, 2, 3.0, 300);
  remember_run(*store_, last_night, 3, 3.0, 100);
  remember_run(*store_, last_night, 4, 1.0, 900);
  run(4, 1);
  EXPECT_EQ(starts(), starts_of({2, 1, 3, 4}));
}

TEST_F(SchedulerTest, ClustersWithoutHistoryFollowInIndexOrder) {
  // Partial history: 3 and 6 are known; the rest run after them, 1, 2, 4 …
  auto last_night = store_->open_job("last-night", 7, "cmd");
  remember_run(*store_, last_night, 3, 2.0);
  remember_run(*store_, last_night, 6, 4.0);
  run(7, 2);
  EXPECT_EQ(starts(), starts_of({6, 3, 1, 2, 4, 5, 7}));
}

TEST_F(SchedulerTest, HistoryComesFromTheNewestJobWithTheSameCommandAndN) {
  auto older = store_->open_job("older", 4, "cmd");
  remember_run(*store_, older, 1, 9.0);
  auto newer = store_->open_job("newer", 4, "cmd");
  remember_run(*store_, newer, 1, 1.0);
  remember_run(*store_, newer, 2, 3.0);
  // Only successful attempts count: one that failed after long says nothing.
  auto row = store_->record_start(newer, AttemptStart{4, 1, 1, 1000.0, "log"});
  AttemptEnd failed;
  failed.state = AttemptState::kFailed;
  failed.exit_code = 1;
  failed.finished_at = 1100.0;
  store_->record_end(newer, row, 4, failed);
  // Neither another command nor another N says anything of this job.
  auto other = store_->open_job("other-command", 4, "other");
  remember_run(*store_, other, 4, 50.0);
  auto bigger = store_->open_job("other-n", 5, "cmd");
  remember_run(*store_, bigger, 3, 50.0);
  run(4, 1);
  EXPECT_EQ(starts(), starts_of({2, 1, 3, 4}));
}

TEST_F(SchedulerTest, OrderIndexKeepsNumericOrderWhateverTheHistory) {
  auto last_night = store_->open_job("last-night", 5, "cmd");
  for (ClusterId c = 1; c <= 5; ++c) remember_run(*store_, last_night, c, static_cast<double>(c));
  SchedulerOptions o;
  o.order = Order::kIndex;
  run(5, 2, o);
  EXPECT_EQ(starts(), starts_of({1, 2, 3, 4, 5}));
}

TEST_F(SchedulerTest, AResumeOrdersOnlyWhatIsLeftAndTheJobsOwnDoneClustersNeverRun) {
  auto last_night = store_->open_job("last-night", 6, "cmd");
  for (ClusterId c = 1; c <= 6; ++c) remember_run(*store_, last_night, c, static_cast<double>(c));
  // Tonight's job stopped after its two longest.
  auto tonight = store_->open_job("job", 6, "cmd");
  remember_run(*store_, tonight, 6, 6.0);
  remember_run(*store_, tonight, 5, 5.0);
  auto s = run(6, 1);
  EXPECT_EQ(s.exit_code(), 0);
  EXPECT_EQ(starts(), starts_of({4, 3, 2, 1}));
}

TEST_F(SchedulerTest, ARetryKeepsItsTurnAndIsNotMovedAheadByItsHistory) {
  // 2 is the longest and 1 the next; both fail once. Retries and first
  // attempts take turns as under --order index: the history orders only
  // first attempts.
  auto last_night = store_->open_job("last-night", 4, "cmd");
  for (auto [c, seconds] : {std::pair{1, 5.0}, {2, 9.0}, {3, 1.0}, {4, 1.0}})
    remember_run(*store_, last_night, c, seconds);
  engine_.exit_for = [this](ClusterId c) {
    auto attempts =
        std::count(engine_.events.begin(), engine_.events.end(), "start " + std::to_string(c));
    return c <= 2 && attempts == 1 ? 1 : 0;
  };
  SchedulerOptions o;
  o.retry.retries = 1;
  o.retry.delay = std::chrono::milliseconds(0);
  auto s = run(4, 1, o);
  EXPECT_EQ(s.exit_code(), 0);
  EXPECT_EQ(starts(), starts_of({2, 2, 1, 1, 3, 4}));
  engine_.events.clear();
  o.order = Order::kIndex;
  o.parallel = 1;
  o.log_dir = dir_;
  job_ = store_->open_job("by-index", 4, "cmd");
  Scheduler by_index(*store_, job_, command_, engine_, signals_, nullptr, o);
  by_index.run();
  EXPECT_EQ(starts(), starts_of({1, 1, 2, 2, 3, 4}));
}

// Six small clusters that run long and two large short ones, from last night.
void remember_small_long_and_large_short(Store& store) {
  auto last_night = store.open_job("last-night", 8, "cmd");
  for (ClusterId c = 1; c <= 8; ++c)
    remember_run(store, last_night, c, c >= 7 ? 1.0 : 2.0, c >= 7 ? 400 : 100);
}

TEST_F(SchedulerTest, WhereMemoryBindsTheLargestStartFirstAndTheBudgetHolds) {
  // Over a budget of 1000 MiB their memory-seconds (2.1 s) outweigh their
  // seconds over P (14 s over 8 slots: 1.75 s): the two large ones go first.
  remember_small_long_and_large_short(*store_);
  std::uint64_t most = 0;
  engine_.on_start = [&](const AttemptSpec& spec) {
    auto need = [](ClusterId c) -> std::uint64_t { return (c >= 7 ? 400 : 100) * 105 / 100; };
    std::uint64_t reserved = need(spec.cluster);
    for (const auto& [id, other] : engine_.running) reserved += need(other.cluster);
    most = std::max(most, reserved);
  };
  SchedulerOptions o;
  o.mem_budget = 1000 * MiB;
  auto s = run(8, 8, o);
  EXPECT_EQ(s.exit_code(), 0);
  auto order = starts();
  ASSERT_EQ(order.size(), 8u);
  EXPECT_EQ(std::vector<std::string>(order.begin(), order.begin() + 2), starts_of({7, 8}));
  EXPECT_LE(most, 1000u);
}

TEST_F(SchedulerTest, WhereTheBudgetHoldsThemAllTheLongestStartFirst) {
  remember_small_long_and_large_short(*store_);
  SchedulerOptions o;
  o.mem_budget = 8000 * MiB;
  run(8, 8, o);
  EXPECT_EQ(starts(), starts_of({1, 2, 3, 4, 5, 6, 7, 8}));
}

TEST_F(SchedulerTest, WherePBindsTheHeavyLongOnesAreSpreadThroughTheLongestFirstOrder) {
  // 11 and 12 are the longest (3 s) and each needs more than an equal share
  // of the budget (4000 MiB ÷ 4); the other ten take 1 s and 100 MiB. P
  // binds (16 s over 4 slots against 10,500 MiB·s over 4000 MiB), so the
  // order is longest first, but with at most one heavy cluster among any
  // four starts (2 of 12, times 4, rounded up): 12 starts four places after
  // 11 instead of beside it. (Without a budget nothing is heavy: 11, 12, 1 …)
  auto last_night = store_->open_job("last-night", 12, "cmd");
  for (ClusterId c = 1; c <= 12; ++c)
    remember_run(*store_, last_night, c, c >= 11 ? 3.0 : 1.0, c >= 11 ? 1500 : 100);
  SchedulerOptions o;
  o.mem_budget = 4000 * MiB;
  auto s = run(12, 4, o);
  EXPECT_EQ(s.exit_code(), 0);
  EXPECT_EQ(starts(), starts_of({11, 1, 2, 3, 12, 4, 5, 6, 7, 8, 9, 10}));
}

TEST_F(SchedulerTest, AHugeJobKeepsNoPerClusterState) {
  // A billion clusters: pending ones are never written; stop after a thousand.
  std::size_t ended = 0;
  engine_.exit_for = [&](ClusterId) {
    if (++ended == 1000) engine_.script.push_back([&] { signals_.raise(SIGTERM); });
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
