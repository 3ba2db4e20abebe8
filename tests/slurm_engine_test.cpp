#include "runner/slurm_engine.h"

#include <gtest/gtest.h>

#include "runner/error.h"

namespace runner {
namespace {

using V = std::vector<std::uint32_t>;

TEST(SlurmCpus, ReadsSlurmsPerNodeList) {
  EXPECT_EQ(parse_cpus_per_node("4"), V({4}));
  EXPECT_EQ(parse_cpus_per_node("2(x3)"), V({2, 2, 2}));
  EXPECT_EQ(parse_cpus_per_node("12(x2),4,1(x2)"), V({12, 12, 4, 1, 1}));
}

TEST(SlurmCpus, RefusesWhatIsNotSuchAList) {
  for (const char* bad : {"", "x", "2(x)", "2(3)", "2(x3", "0", "2,,3", "-1", "2x3", "4(x0)"})
    EXPECT_THROW(parse_cpus_per_node(bad), Error) << bad;
}

TEST(SlurmSlots, SpreadsPEvenlyAndNeverAboveANodesCpus) {
  EXPECT_EQ(spread_slots(6, {2, 2, 2}), V({2, 2, 2}));
  EXPECT_EQ(spread_slots(4, {4, 4, 4}), V({2, 1, 1}));
  EXPECT_EQ(spread_slots(7, {1, 8, 2}), V({1, 4, 2}));
  // More than the allocation has: each node full, the sum below P.
  EXPECT_EQ(spread_slots(48, {1, 1, 1, 1}), V({1, 1, 1, 1}));
  // Fewer than the nodes: some get none (no worker is started there).
  EXPECT_EQ(spread_slots(2, {4, 4, 4}), V({1, 1, 0}));
}

}  // namespace
}  // namespace runner
