// The fault-injection suite's core: cuts one job at many random moments, each
// cut one of four kinds, with a random P each time, restarting runner after
// each cut. The kinds: runner killed (kill -9: its worker lives on); its
// worker killed (runner lives on and replaces it); both killed; runner
// stopped (SIGSTOP) for a while, then killed or let go on. The children are
// left running by each cut, so each restart must deal with them. From the
// children's own record it proves: every cluster ends done; no cluster whose
// `done` was committed ever ran again; no two copies of a cluster were ever
// alive at once; every execution has its row in the log; where runner or
// its worker was cut, but not both, no cluster that completed ran again (a
// living worker journalled the end for the next runner; a living runner
// read how the dead worker's clusters ended, or adopted them); the log
// passes PRAGMA integrity_check; nothing is left over at the end. Where
// both were killed, a cluster whose child completed between its worker's
// death and the journal line runs again: the figure is counted and printed,
// with each such run named.
//
// RUNNER_TORTURE_CUTS=N runs N cuts of each kind instead (make torture);
// RUNNER_TORTURE_SEED=S repeats the cuts of seed S (the machine's timing
// aside); RUNNER_TORTURE_SHOW=1 names each rerun and prints what each
// runner said.
#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <set>

#include "e2e_util.h"
#include "runner/memory.h"

namespace runner::testing {
namespace {

enum class Cut { kRunner, kWorker, kBoth, kStopped };

const char* name_of(Cut cut) {
  switch (cut) {
    case Cut::kRunner:
      return "runner";
    case Cut::kWorker:
      return "worker";
    case Cut::kBoth:
      return "both";
    case Cut::kStopped:
      return "stopped";
  }
  return "?";
}

std::set<long> committed_done(const fs::path& db) {
  std::set<long> done;
  if (!fs::exists(db)) return done;
  SQLite::Database d(db.string(), SQLite::OPEN_READONLY, 10'000);
  // Only the tables are read here: a fresh file may have no schema yet.
  if (d.execAndGet("SELECT count(*) FROM sqlite_master WHERE name = 'done_range'").getInt() == 0)
    return done;
  SQLite::Statement q(d, "SELECT lo, hi FROM done_range");
  while (q.executeStep())
    for (long c = q.getColumn(0).getInt64(); c <= q.getColumn(1).getInt64(); ++c) done.insert(c);
  return done;
}

// Processes whose command line mentions dir: what this test started.
std::vector<pid_t> processes_mentioning(const fs::path& dir) {
  std::vector<pid_t> out;
  for (const auto& e : fs::directory_iterator("/proc")) {
    auto name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    auto cmdline = read_file(e.path() / "cmdline");
    if (cmdline.find(dir.string()) != std::string::npos) out.push_back(std::stoi(name));
  }
  return out;
}

unsigned seed() {
  const char* given = std::getenv("RUNNER_TORTURE_SEED");
  return given ? static_cast<unsigned>(std::stoul(given)) : std::random_device()();
}

int cuts_of(int usual) {
  const char* given = std::getenv("RUNNER_TORTURE_CUTS");
  return given ? std::atoi(given) : usual;
}

struct Execution {
  long cluster = 0;
  long attempt = 0;
  std::size_t copies = 0;  // how many times this cluster and attempt started
};

class Torture {
 public:
  Torture(Cut kind, int cuts) : kind_(kind), cuts_(cuts), rng_(seed_ = seed()) {
    fs::create_directory(locks_);
    ::testing::Test::RecordProperty("seed", std::to_string(seed_));
  }

  void run() {
    for (int cut = 0; cut <= cuts_ && finished_code_ < 0; ++cut) one_run(cut == cuts_);
    ASSERT_EQ(finished_code_, 0) << "seed " << seed_ << ": " << finished_err_;
    EXPECT_GE(cut_points_.size(), static_cast<std::size_t>(cuts_ * 3 / 5)) << "seed " << seed_;
  }

  void check();

 private:
  std::vector<std::string> args() {
    auto parallel = std::to_string(std::uniform_int_distribution<int>(1, 8)(rng_));
    return {std::to_string(clusters_),
            parallel,
            "--job",
            "crash",
            "--",
            child_bin(),
            "--record",
            record_.string(),
            "--exclusive",
            locks_.string(),
            "--sleep-ms",
            "3"};
  }
  void one_run(bool last);
  void cut(RunnerProcess& runner);

  Cut kind_;
  int cuts_;
  // Enough clusters that the job outlasts its cuts: each cut lets a dozen
  // or so record lines by (the children it left end), on a slow machine too.
  long clusters_ = std::max(300L, 8L * cuts_);
  unsigned seed_;
  std::mt19937 rng_;
  TempDir dir_;
  fs::path record_ = dir_ / "record";
  fs::path locks_ = dir_ / "locks";
  fs::path db_ = dir_ / "runner.db";
  std::vector<pid_t> runner_pids_;
  // For each cut: the clusters committed done, and how much of the record
  // existed once the runner was dead.
  std::vector<std::pair<std::set<long>, std::size_t>> cut_points_;
  int finished_code_ = -1;
  std::string finished_err_;
};

void Torture::one_run(bool last) {
  RunnerProcess runner(args(), dir_.path());
  runner_pids_.push_back(runner.pid());
  if (last) {  // the last run goes to the end
    finished_code_ = runner.wait();
    finished_err_ = runner.err();
    return;
  }
  // Cut at a random point: at once (during start-up), or once a few more
  // children have started.
  auto lines = count_lines(record_);
  auto more = std::uniform_int_distribution<std::size_t>(0, 8)(rng_);
  wait_until(dir_.path(), [&] { return count_lines(record_) >= lines + more || runner.exited(); });
  cut(runner);
  int code = runner.wait();
  if (std::getenv("RUNNER_TORTURE_SHOW"))
    std::printf("run %zu (pid %d, exit %d) said:\n%s\n", runner_pids_.size(), runner.pid(), code,
                runner.err().c_str());
  if (code == 0) {  // it finished before the cut
    finished_code_ = code;
    finished_err_ = runner.err();
    return;
  }
  cut_points_.emplace_back(committed_done(db_), count_lines(record_));
}

void Torture::cut(RunnerProcess& runner) {
  auto worker = worker_of(runner.pid());
  switch (kind_) {
    case Cut::kRunner:
      runner.signal(SIGKILL);
      return;
    case Cut::kWorker:
      // runner replaces it (three times in a run), then stops; it is
      // stopped here after the cut, as a person would, to start it again.
      if (worker) ::kill(worker, SIGKILL);
      {
        auto lines = count_lines(record_);
        wait_until(
            dir_.path(), [&] { return count_lines(record_) > lines || runner.exited(); },
            std::chrono::seconds(5));
      }
      runner.signal(SIGTERM);
      return;
    case Cut::kBoth:
      runner.signal(SIGKILL);
      if (worker) ::kill(worker, SIGKILL);
      return;
    case Cut::kStopped: {
      runner.signal(SIGSTOP);
      auto lines = count_lines(record_);
      wait_until(
          dir_.path(), [&] { return count_lines(record_) >= lines + 3; }, std::chrono::seconds(5));
      if (std::bernoulli_distribution(0.5)(rng_)) {
        runner.signal(SIGKILL);
      } else {
        runner.signal(SIGCONT);
        runner.signal(SIGKILL);
      }
      return;
    }
  }
}

void Torture::check() {
  auto lines = read_lines(record_);
  for (const auto& [done, offset] : cut_points_) {
    for (std::size_t i = offset; i < lines.size(); ++i) {
      if (lines[i].rfind("start ", 0) != 0) continue;
      long c = std::stol(lines[i].substr(6));
      EXPECT_FALSE(done.contains(c))
          << "cluster " << c << " ran again after its done was committed (seed " << seed_ << ")";
    }
  }
  // What the log says of a cluster, to tell how a failure came about.
  auto story = [&](long c) {
    return query(db_,
                 "SELECT group_concat(attempt || ' ' || state || ' exit ' || "
                 "ifnull(exit_code, '-') || ' signal ' || ifnull(signal, '-') || ' pid ' || "
                 "ifnull(pid, '-') || ' ' || ifnull(note, ''), '; ') FROM attempts WHERE "
                 "job = 'crash' AND cluster = " +
                     std::to_string(c));
  };
  auto record_of = [&](long c) {
    std::string out;
    for (const auto& line : lines)
      if (line.find(" " + std::to_string(c) + " ") == line.find(' ')) out += line + "; ";
    return out;
  };
  std::map<std::pair<long, long>, Execution> executions;
  std::map<long, long> completed;  // cluster -> the attempt that completed it
  std::size_t reruns = 0, stopped_as_it_ended = 0;
  for (const auto& line : lines) {
    long c = 0, a = 0;
    char what[8] = {};
    if (std::sscanf(line.c_str(), "%7s %ld %ld", what, &c, &a) != 3) continue;
    if (std::string(what) == "end") {
      completed.try_emplace(c, a);
      continue;
    }
    auto& e = executions[{c, a}];
    e = {c, a, e.copies + 1};
    auto done = completed.find(c);
    if (done == completed.end()) continue;
    // The worker cut is followed by a stop (SIGTERM to runner), as a
    // person would stop it to start it again: a child that the stop's
    // SIGTERM killed after its last line and before its exit ended by
    // SIGTERM, as far as anyone can tell, and runs again. That is the stop's
    // doing, not the cut's, and is counted apart.
    auto ending = query(db_,
                        "SELECT state || ' ' || ifnull(signal, '-') FROM attempts WHERE "
                        "job = 'crash' AND cluster = " +
                            std::to_string(c) + " AND attempt = " + std::to_string(done->second));
    bool stopped = kind_ == Cut::kWorker && ending == "interrupted 15";
    ++(stopped ? stopped_as_it_ended : reruns);
    if (std::getenv("RUNNER_TORTURE_SHOW"))
      std::printf("rerun of completed cluster %ld%s: %s; the record: %s\n", c,
                  stopped ? " (stopped as it ended)" : "", story(c).c_str(), record_of(c).c_str());
    // Where runner alone was cut, its worker journalled every end; where the
    // worker was, runner read how its clusters ended or adopted them.
    if (kind_ != Cut::kBoth && !stopped)
      ADD_FAILURE() << "cluster " << c << " ran again after it completed (seed " << seed_
                    << "); the log: " << story(c) << "; the record: " << record_of(c);
  }
  // Every execution has its row, whoever recorded it: one that ran twice
  // under the same attempt number had one at most.
  std::size_t missing = 0;
  for (const auto& [key, e] : executions) {
    auto row =
        query(db_, "SELECT count(*) FROM attempts WHERE job = 'crash' AND cluster = " +
                       std::to_string(e.cluster) + " AND attempt = " + std::to_string(e.attempt));
    if (row == "1" && e.copies == 1) continue;
    missing += e.copies - (row == "1" ? 1 : 0);
    auto record = record_of(e.cluster);
    ADD_FAILURE() << "cluster " << e.cluster << " attempt " << e.attempt
                  << " ran with no row of its own (seed " << seed_
                  << "); the log: " << story(e.cluster) << "; the record: " << record;
  }
  std::printf(
      "cuts of %s: %zu, completed clusters run again: %zu (and %zu the stop's SIGTERM killed "
      "as they ended), overlaps: %zu, rows missing: %zu (seed %u)\n",
      name_of(kind_), cut_points_.size(), reruns, stopped_as_it_ended,
      fs::exists(locks_ / "overlaps") ? read_lines(locks_ / "overlaps").size() : 0, missing, seed_);
  EXPECT_FALSE(fs::exists(locks_ / "overlaps")) << read_file(locks_ / "overlaps");
  EXPECT_EQ(query(db_, "SELECT done || '/' || clusters FROM progress"),
            std::to_string(clusters_) + "/" + std::to_string(clusters_));
  EXPECT_EQ(query(db_, "PRAGMA integrity_check"), "ok");
  EXPECT_EQ(query(db_, "SELECT count(*) FROM attempts WHERE state = 'running'"), "0");
  std::set<long> ended;
  for (const auto& l : lines)
    if (l.rfind("end ", 0) == 0) ended.insert(std::stol(l.substr(4)));
  EXPECT_EQ(ended.size(), static_cast<std::size_t>(clusters_));

  // Nothing left over: no process of this test, no cgroup of any of its runners.
  EXPECT_TRUE(processes_mentioning(dir_.path()).empty());
  auto probe = probe_memory();
  if (auto cg = probe.v2_dir ? probe.v2_dir : probe.v1_dir) {
    for (pid_t pid : runner_pids_)
      for (const auto& e : fs::directory_iterator(*cg))
        EXPECT_NE(e.path().filename().string().rfind("runner-" + std::to_string(pid) + "-", 0), 0u)
            << e.path() << " was left behind";
  }
}

TEST(Crash, KillNineOfRunnerAtRandomMomentsLosesNothingRedoesNothingCompletedAndNeverOverlaps) {
  Torture t(Cut::kRunner, cuts_of(100));
  t.run();
  t.check();
}

TEST(Crash, KillNineOfTheWorkerAtRandomMomentsRedoesNothingDoneAndNeverOverlaps) {
  Torture t(Cut::kWorker, cuts_of(30));
  t.run();
  t.check();
}

TEST(Crash, KillNineOfBothAtRandomMomentsRedoesNothingDoneAndNeverOverlaps) {
  Torture t(Cut::kBoth, cuts_of(30));
  t.run();
  t.check();
}

TEST(Crash, RunnerStoppedThenKilledAtRandomMomentsRedoesNothingCompleted) {
  Torture t(Cut::kStopped, cuts_of(25));
  t.run();
  t.check();
}

}  // namespace
}  // namespace runner::testing
