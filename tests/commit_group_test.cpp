#include "runner/commit_group.h"

#include <SQLiteCpp/Database.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <thread>

#include "store_fixture.h"

namespace runner {
namespace {

namespace fs = std::filesystem;

class CommitGroupTest : public StoreFixture {
 protected:
  void SetUp() override {
    StoreFixture::SetUp();
    job_ = store_->open_job("j", 100, "cmd");
    sqlite3_commit_hook(store_->connection_for_tests().getHandle(), count, &commits_);
  }
  static int count(void* n) {
    ++*static_cast<int*>(n);
    return 0;
  }
  void write(CommitGroup& group, ClusterId c) {
    group.open();
    store_->record_start(job_, AttemptStart{c, 1, 1, 1.0, "log"});
    group.wrote();
  }

  Job job_;
  int commits_ = 0;
};

TEST_F(CommitGroupTest, IsDueWhenLargeEnoughAndCountsWhatItWrote) {
  CommitGroup group(*store_, {3, std::chrono::hours(1), std::chrono::milliseconds(2)});
  EXPECT_FALSE(group.due(Clock::now()));  // nothing open
  write(group, 1);
  write(group, 2);
  EXPECT_EQ(group.writes(), 2u);
  EXPECT_FALSE(group.due(Clock::now()));
  write(group, 3);
  EXPECT_TRUE(group.due(Clock::now()));
  EXPECT_TRUE(group.commit());
  EXPECT_EQ(commits_, 1);
  EXPECT_EQ(group.writes(), 0u);
  EXPECT_FALSE(group.commit());  // nothing open: nothing committed
  EXPECT_EQ(commits_, 1);
}

TEST_F(CommitGroupTest, IsDueWhenOldEnoughAndLingersOnlyWithWritesWaiting) {
  CommitGroup group(*store_, {64, std::chrono::milliseconds(0), std::chrono::milliseconds(2)});
  group.open();
  auto now = Clock::now();
  EXPECT_FALSE(group.linger_until(now));  // nothing written yet
  write(group, 1);
  EXPECT_EQ(group.linger_until(now), now + std::chrono::milliseconds(2));
  EXPECT_TRUE(group.due(Clock::now()));
  group.commit();
  // What was committed is there for another reader.
  SQLite::Database reader((dir_ / "runner.db").string(), SQLite::OPEN_READONLY);
  EXPECT_EQ(reader.execAndGet("SELECT count(*) FROM attempt").getInt(), 1);
}

}  // namespace
}  // namespace runner
