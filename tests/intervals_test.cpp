#include "runner/intervals.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <vector>

namespace runner {
namespace {

TEST(IntervalSet, MergesNeighboursInAnyOrder) {
  std::vector<std::uint64_t> values(1000);
  std::iota(values.begin(), values.end(), 1);
  std::shuffle(values.begin(), values.end(), std::mt19937(7));
  IntervalSet set;
  for (auto v : values) EXPECT_TRUE(set.insert(v));
  EXPECT_EQ(set.count(), 1000u);
  EXPECT_EQ(set.ranges(), 1u);
  EXPECT_FALSE(set.insert(500));
  EXPECT_EQ(set.count(), 1000u);
}

TEST(IntervalSet, NextAbsentSkipsWholeRanges) {
  IntervalSet set;
  set.insert(1, 10);
  set.insert(12, 20);
  EXPECT_EQ(set.next_absent(1), 11u);
  EXPECT_EQ(set.next_absent(11), 11u);
  EXPECT_EQ(set.next_absent(12), 21u);
  EXPECT_EQ(set.next_absent(25), 25u);
  EXPECT_TRUE(set.contains(10));
  EXPECT_FALSE(set.contains(11));
  set.insert(11);
  EXPECT_EQ(set.ranges(), 1u);
  EXPECT_EQ(set.next_absent(1), 21u);
}

TEST(IntervalSet, OverlappingRangesCountOnce) {
  IntervalSet set;
  set.insert(5, 9);
  set.insert(1, 6);
  set.insert(8, 15);
  EXPECT_EQ(set.count(), 15u);
  EXPECT_EQ(set.ranges(), 1u);
  set.insert(1'000'000'000, 1'000'000'000);
  EXPECT_EQ(set.count(), 16u);
  EXPECT_EQ(set.ranges(), 2u);
}

}  // namespace
}  // namespace runner
