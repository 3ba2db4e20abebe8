// Kills the runner with SIGKILL at many moments of one job, restarting it each
// time, and proves from the children's own record that the job ends complete,
// that no cluster whose `done` was committed ever ran again, and that the log
// is intact.
#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <gtest/gtest.h>

#include <csignal>
#include <cstdio>
#include <map>
#include <random>
#include <set>

#include "e2e_util.h"

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

TEST(Crash, KillNineAtManyMomentsLosesNothingAndRedoesNothingDone) {
  constexpr long kClusters = 300;
  constexpr int kCuts = 30;
  TempDir dir;
  auto record = dir / "record";
  auto db = dir / "runner.db";
  std::mt19937 rng(20261122);
  const std::vector<std::string> cmd = {
      "--", child_bin(), "--record", record.string(), "--sleep-ms", "2", "--die-with-parent"};

  // For each cut: the clusters committed done, and how much of the record
  // existed when the runner died.
  std::vector<std::pair<std::set<long>, std::size_t>> cuts;
  int finished_code = -1;
  for (int cut = 0; cut <= kCuts && finished_code < 0; ++cut) {
    auto parallel = std::to_string(std::uniform_int_distribution<int>(1, 6)(rng));
    std::vector<std::string> args = {std::to_string(kClusters), parallel, "--job", "crash"};
    args.insert(args.end(), cmd.begin(), cmd.end());
    RunnerProcess runner(args, dir.path());
    if (cut == kCuts) {  // the last run goes to the end
      finished_code = runner.wait();
      break;
    }
    // Cut at a varied point: right away, or after some more children started.
    auto lines = count_lines(record);
    auto more = std::uniform_int_distribution<std::size_t>(0, 12)(rng);
    wait_until(dir.path(), [&] { return count_lines(record) >= lines + more; });
    runner.signal(SIGKILL);
    int code = runner.wait();
    if (code != 128 + SIGKILL) {  // it finished before the cut
      finished_code = code;
      break;
    }
    cuts.emplace_back(committed_done(db), count_lines(record));
  }
  ASSERT_EQ(finished_code, 0);
  EXPECT_GE(cuts.size(), 10u);
  std::size_t distinct = 0;
  for (std::size_t i = 1; i < cuts.size(); ++i) distinct += cuts[i].first != cuts[i - 1].first;
  std::printf("%zu cuts, %zu of them after progress was made\n", cuts.size(), distinct);

  auto lines = read_lines(record);
  for (const auto& [done, offset] : cuts) {
    for (std::size_t i = offset; i < lines.size(); ++i) {
      if (lines[i].rfind("start ", 0) != 0) continue;
      long c = std::stol(lines[i].substr(6));
      EXPECT_FALSE(done.contains(c))
          << "cluster " << c << " ran again after its done was committed";
    }
  }
  EXPECT_EQ(query(db, "SELECT done || '/' || clusters FROM progress"), "300/300");
  EXPECT_EQ(query(db, "PRAGMA integrity_check"), "ok");
  EXPECT_EQ(query(db, "SELECT count(*) FROM attempts WHERE state = 'running'"), "0");
  // Every cluster's done attempt is the one the child recorded as ending well.
  std::set<long> ended;
  for (const auto& l : lines)
    if (l.rfind("end ", 0) == 0) ended.insert(std::stol(l.substr(4)));
  EXPECT_EQ(ended.size(), static_cast<std::size_t>(kClusters));
}

}  // namespace
}  // namespace runner::testing
