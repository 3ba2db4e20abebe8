// The fault-injection suite's core: kills runner with SIGKILL at many random
// moments of one job, with a random P each time, restarting it after each
// cut. Its children are left running by each cut (nothing ties them to
// runner's life), so each restart must deal with them. From the children's
// own record it proves: every cluster ends done; no cluster whose `done` was
// committed ever ran again; no two copies of a cluster were ever alive at
// once; no cluster that completed ran again (its worker, which outlives
// runner, journalled its end for the next runner); the log passes PRAGMA
// integrity_check; nothing is left over at the end.
#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <gtest/gtest.h>

#include <csignal>
#include <cstdio>
#include <map>
#include <random>
#include <set>

#include "e2e_util.h"
#include "runner/memory.h"

namespace runner::testing {
namespace {

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

TEST(Crash, KillNineAtFiftyRandomMomentsLosesNothingRedoesNothingDoneAndNeverOverlaps) {
  constexpr long kClusters = 300;
  constexpr int kCuts = 50;
  TempDir dir;
  auto record = dir / "record";
  auto locks = dir / "locks";
  fs::create_directory(locks);
  auto db = dir / "runner.db";
  std::random_device seed_source;
  auto seed = seed_source();
  std::mt19937 rng(seed);
  RecordProperty("seed", std::to_string(seed));
  const std::vector<std::string> cmd = {
      "--",          child_bin(),    "--record",   record.string(),
      "--exclusive", locks.string(), "--sleep-ms", "3"};

  std::vector<pid_t> runner_pids;
  // For each cut: the clusters committed done, and how much of the record
  // existed once the runner was dead.
  std::vector<std::pair<std::set<long>, std::size_t>> cuts;
  int finished_code = -1;
  std::string finished_err;
  for (int cut = 0; cut <= kCuts && finished_code < 0; ++cut) {
    auto parallel = std::to_string(std::uniform_int_distribution<int>(1, 8)(rng));
    std::vector<std::string> args = {std::to_string(kClusters), parallel, "--job", "crash"};
    args.insert(args.end(), cmd.begin(), cmd.end());
    RunnerProcess runner(args, dir.path());
    runner_pids.push_back(runner.pid());
    if (cut == kCuts) {  // the last run goes to the end
      finished_code = runner.wait();
      finished_err = runner.err();
      break;
    }
    // Cut at a random point: at once (during start-up), or once a few more
    // children have started.
    auto lines = count_lines(record);
    auto more = std::uniform_int_distribution<std::size_t>(0, 8)(rng);
    wait_until(dir.path(), [&] { return count_lines(record) >= lines + more || runner.exited(); });
    runner.signal(SIGKILL);
    int code = runner.wait();
    if (code != 128 + SIGKILL) {  // it finished before the cut
      finished_code = code;
      finished_err = runner.err();
      break;
    }
    cuts.emplace_back(committed_done(db), count_lines(record));
  }
  ASSERT_EQ(finished_code, 0) << "seed " << seed << ": " << finished_err;
  EXPECT_GE(cuts.size(), 30u) << "seed " << seed;
  std::printf("%zu cuts (seed %u)\n", cuts.size(), seed);

  auto lines = read_lines(record);
  for (const auto& [done, offset] : cuts) {
    for (std::size_t i = offset; i < lines.size(); ++i) {
      if (lines[i].rfind("start ", 0) != 0) continue;
      long c = std::stol(lines[i].substr(6));
      EXPECT_FALSE(done.contains(c))
          << "cluster " << c << " ran again after its done was committed";
    }
  }
  // And since a worker outlives its runner and journals what ended: no
  // cluster that completed (its child wrote its end) ever ran again.
  std::set<long> completed;
  // What the log says of a cluster, to tell how a failure came about.
  auto story = [&](long c) {
    return query(db,
                 "SELECT group_concat(attempt || ' ' || state || ' exit ' || "
                 "ifnull(exit_code, '-') || ' signal ' || ifnull(signal, '-') || ' pid ' || "
                 "ifnull(pid, '-') || ' ' || ifnull(note, ''), '; ') FROM attempts WHERE "
                 "job = 'crash' AND cluster = " +
                     std::to_string(c));
  };
  for (const auto& line : lines) {
    long c = std::stol(line.substr(line.find(' ') + 1));
    if (line.rfind("end ", 0) == 0) completed.insert(c);
    if (line.rfind("start ", 0) == 0) {
      EXPECT_FALSE(completed.contains(c))
          << "cluster " << c << " ran again after it completed (seed " << seed
          << "); the log: " << story(c);
    }
  }
  EXPECT_FALSE(fs::exists(locks / "overlaps")) << read_file(locks / "overlaps");
  EXPECT_EQ(query(db, "SELECT done || '/' || clusters FROM progress"), "300/300");
  EXPECT_EQ(query(db, "PRAGMA integrity_check"), "ok");
  EXPECT_EQ(query(db, "SELECT count(*) FROM attempts WHERE state = 'running'"), "0");
  std::set<long> ended;
  for (const auto& l : lines)
    if (l.rfind("end ", 0) == 0) ended.insert(std::stol(l.substr(4)));
  EXPECT_EQ(ended.size(), static_cast<std::size_t>(kClusters));

  // Nothing left over: no process of this test, no cgroup of any of its runners.
  EXPECT_TRUE(processes_mentioning(dir.path()).empty());
  auto probe = probe_memory();
  if (auto cg = probe.v2_dir ? probe.v2_dir : probe.v1_dir) {
    for (pid_t pid : runner_pids)
      for (const auto& e : fs::directory_iterator(*cg))
        EXPECT_NE(e.path().filename().string().rfind("runner-" + std::to_string(pid) + "-", 0), 0u)
            << e.path() << " was left behind";
  }
}

}  // namespace
}  // namespace runner::testing
