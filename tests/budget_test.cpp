#include "runner/budget.h"

#include <gtest/gtest.h>

namespace runner {
namespace {

constexpr std::uint64_t MiB = 1ULL << 20;

TEST(MemoryBudget, ReservationsNeverPassTheTotal) {
  MemoryBudget b(1000 * MiB, 400 * MiB, false, 4);
  EXPECT_TRUE(b.fits(1000 * MiB));
  b.reserve(600 * MiB);
  EXPECT_TRUE(b.fits(400 * MiB));
  EXPECT_FALSE(b.fits(401 * MiB));
  b.release(600 * MiB);
  EXPECT_EQ(b.reserved(), 0u);
}

TEST(MemoryBudget, WithoutOvercommitAnUnknownClusterReservesItsCap) {
  MemoryBudget b(1000 * MiB, 400 * MiB, false, 4);
  EXPECT_EQ(b.unknown_need(), 400 * MiB);
  b.learn(10 * MiB);
  EXPECT_EQ(b.unknown_need(), 400 * MiB);
  // A cap above the budget reserves the whole budget.
  MemoryBudget big(1000 * MiB, 4000 * MiB, false, 4);
  EXPECT_EQ(big.unknown_need(), 1000 * MiB);
}

TEST(MemoryBudget, WithOvercommitAnUnknownClusterReservesALearnedFigure) {
  MemoryBudget b(1000 * MiB, 1000 * MiB, true, 4);
  EXPECT_EQ(b.unknown_need(), 500 * MiB);  // nothing known: two equal shares
  for (int i = 0; i < 19; ++i) b.learn(100 * MiB);
  b.learn(200 * MiB);
  // p95 of nineteen 100s and one 200 is 100; with a 25% margin, 125.
  EXPECT_EQ(b.unknown_need(), 125 * MiB);
  for (int i = 0; i < 20; ++i) b.learn(900 * MiB);
  EXPECT_EQ(b.unknown_need(), 1000 * MiB);  // never more than the cap
}

TEST(MemoryBudget, GuessedClustersReserveTogetherLessThanEachAtItsPercentile) {
  // One cluster in six holds 1500 MiB, the rest 150: the 95th percentile is
  // 1500, so each guess alone reserves 1875 MiB and 8 GiB would hold 4 of
  // them. Together, 8 such clusters need 1.25 * (8 * mean + 1.645 * sd *
  // sqrt(8)), about 6.5 GiB with this mean (375) and sd (503). P = 12: the
  // figures follow the latest 24 peaks, one in six of them large.
  MemoryBudget b(8192 * MiB, 8192 * MiB, true, 12);
  for (int i = 0; i < 60; ++i) b.learn((i % 6 == 0 ? 1500 : 150) * MiB);
  EXPECT_EQ(b.unknown_need(), 1875 * MiB);
  for (int k = 0; k < 8; ++k) {
    ASSERT_TRUE(b.fits(b.unknown_need(), true)) << k;
    b.reserve(b.unknown_need(), true);
  }
  EXPECT_NEAR(static_cast<double>(b.reserved()) / MiB, 1.25 * (8 * 375 + 1.645 * 503.1 * 2.828), 2);
  // Known needs count in full beside the pool.
  EXPECT_TRUE(b.fits(8192 * MiB - b.reserved()));
  EXPECT_FALSE(b.fits(8192 * MiB - b.reserved() + 1));
  for (int k = 0; k < 8; ++k) b.release(0, true);
  EXPECT_EQ(b.reserved(), 0u);
}

TEST(MemoryBudget, LearnedFiguresFollowTheLatestTwicePPeaks) {
  // The large clusters came first: 8 of 1500 MiB. While they are among the
  // latest 16 peaks (2 × P), 8 guessed clusters do not fit in 8 GiB.
  MemoryBudget b(8192 * MiB, 8192 * MiB, true, 8);
  for (int i = 0; i < 8; ++i) b.learn(1500 * MiB);
  for (int i = 0; i < 8; ++i) b.learn(150 * MiB);
  EXPECT_EQ(b.unknown_need(), 1875 * MiB);
  EXPECT_GT(b.pooled(8), 8192 * MiB);
  // Eight more small peaks push out the large ones: the small clusters that
  // follow start 8 at a time, on 1.25 × their own figure. (Learned from all
  // 24 peaks, 8 guesses would reserve about 9.5 GiB.)
  for (int i = 0; i < 8; ++i) b.learn(150 * MiB);
  EXPECT_EQ(b.unknown_need(), 1.25 * 150 * MiB);
  EXPECT_EQ(b.pooled(8), 8 * 1.25 * 150 * MiB);
  // Fewer than 16 are never the window, however small P is.
  MemoryBudget small_p(8192 * MiB, 8192 * MiB, true, 2);
  for (int i = 0; i < 15; ++i) small_p.learn((i == 0 ? 1500 : 150) * MiB);
  EXPECT_GT(small_p.pooled(2), 2 * 1.25 * 150 * MiB);
}

TEST(MemoryBudget, BeforeAnyPeakIsKnownHalfOfPStartOnGuesses) {
  MemoryBudget b(8192 * MiB, 8192 * MiB, true, 8);
  for (int k = 0; k < 4; ++k) {
    ASSERT_TRUE(b.fits(b.unknown_need(), true)) << k;
    b.reserve(b.unknown_need(), true);
  }
  EXPECT_FALSE(b.fits(b.unknown_need(), true));
  // One peak known: the learned figures decide.
  b.learn(150 * MiB);
  EXPECT_TRUE(b.fits(b.unknown_need(), true));
  // P = 1: the one cluster still starts, under its cap.
  MemoryBudget one(1000 * MiB, 1000 * MiB, true, 1);
  EXPECT_TRUE(one.fits(one.unknown_need(), true));
  EXPECT_EQ(one.unknown_need(), 1000 * MiB);
}

TEST(MemoryBudget, GuessedClustersTogetherNeverReserveMoreThanTheirCaps) {
  MemoryBudget b(1000 * MiB, 100 * MiB, true, 8);
  EXPECT_EQ(b.pooled(3), 300 * MiB);  // nothing known: two equal shares, at most the cap
  for (int i = 0; i < 10; ++i) b.learn((i % 2 ? 10 : 400) * MiB);
  EXPECT_EQ(b.pooled(2), 200 * MiB);
  EXPECT_TRUE(b.fits(0, true));
  b.reserve(0, true);
  EXPECT_TRUE(b.fits(900 * MiB));
  EXPECT_FALSE(b.fits(901 * MiB));
}

TEST(MemoryBudget, HistoryGetsASmallMargin) {
  MemoryBudget b(1000 * MiB, 1000 * MiB, false, 4);
  EXPECT_EQ(b.need_from_history(100 * MiB), 105 * MiB);
}

}  // namespace
}  // namespace runner
