#include "runner/policy.h"

#include <gtest/gtest.h>

namespace runner {
namespace {

using std::chrono::milliseconds;

TEST(RetryPolicy, TheDefaultRetriesExitsSignalsAndTimeoutsButNotOom) {
  RetryPolicy p;
  EXPECT_TRUE(p.applies(Ending::kExit, 1));
  EXPECT_TRUE(p.applies(Ending::kSignal, std::nullopt));
  EXPECT_TRUE(p.applies(Ending::kTimeout, std::nullopt));
  EXPECT_FALSE(p.applies(Ending::kOom, std::nullopt));
  EXPECT_FALSE(p.applies(Ending::kDone, 0));
}

TEST(RetryPolicy, RetryOnNarrowsIt) {
  auto p = RetryPolicy::parse_on("exit:75,signal,timeout");
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->applies(Ending::kExit, 75));
  EXPECT_FALSE(p->applies(Ending::kExit, 1));
  EXPECT_TRUE(p->applies(Ending::kSignal, std::nullopt));
  EXPECT_TRUE(p->applies(Ending::kTimeout, std::nullopt));
  auto oom = RetryPolicy::parse_on("oom");
  ASSERT_TRUE(oom);
  EXPECT_TRUE(oom->applies(Ending::kOom, std::nullopt));
  EXPECT_FALSE(oom->applies(Ending::kExit, 1));
  for (const char* bad : {"", "exit:0", "exit:x", "crash", "exit,,signal"})
    EXPECT_FALSE(RetryPolicy::parse_on(bad)) << bad;
}

TEST(RetryPolicy, BackoffDoublesWithJitter) {
  RetryPolicy p;
  p.delay = milliseconds(100);
  std::mt19937_64 rng(1);
  for (int i = 0; i < 50; ++i) {
    auto first = p.backoff(1, rng), third = p.backoff(3, rng);
    EXPECT_GE(first, milliseconds(50));
    EXPECT_LT(first, milliseconds(150));
    EXPECT_GE(third, milliseconds(200));
    EXPECT_LT(third, milliseconds(600));
  }
}

TEST(HaltPolicy, CountsAndPercentages) {
  auto never = HaltPolicy::parse("never");
  ASSERT_TRUE(never);
  EXPECT_FALSE(never->reached(100, 100));
  auto soon = HaltPolicy::parse("soon,fail=5");
  ASSERT_TRUE(soon);
  EXPECT_EQ(soon->when(), HaltPolicy::When::kSoon);
  EXPECT_FALSE(soon->reached(4, 10));
  EXPECT_TRUE(soon->reached(5, 10));
  auto now = HaltPolicy::parse("now,fail=10%");
  ASSERT_TRUE(now);
  EXPECT_EQ(now->when(), HaltPolicy::When::kNow);
  EXPECT_FALSE(now->reached(1, 2));  // too few finished to judge a share
  EXPECT_FALSE(now->reached(1, 11));
  EXPECT_TRUE(now->reached(1, 10));
  EXPECT_EQ(now->describe(), "10% of finished clusters failed");
  for (const char* bad :
       {"", "sometime,fail=1", "soon", "soon,fail=0", "now,fail=101%", "soon,done=3"})
    EXPECT_FALSE(HaltPolicy::parse(bad)) << bad;
}

}  // namespace
}  // namespace runner
