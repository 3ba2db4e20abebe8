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
  EXPECT_EQ(b.unknown_need(), 250 * MiB);  // nothing known: an equal share
  for (int i = 0; i < 19; ++i) b.learn(100 * MiB);
  b.learn(200 * MiB);
  // p95 of nineteen 100s and one 200 is 100; with a 25% margin, 125.
  EXPECT_EQ(b.unknown_need(), 125 * MiB);
  for (int i = 0; i < 20; ++i) b.learn(900 * MiB);
  EXPECT_EQ(b.unknown_need(), 1000 * MiB);  // never more than the cap
}

TEST(MemoryBudget, HistoryGetsASmallMargin) {
  MemoryBudget b(1000 * MiB, 1000 * MiB, false, 4);
  EXPECT_EQ(b.need_from_history(100 * MiB), 105 * MiB);
}

}  // namespace
}  // namespace runner
