#include "runner/slurm_planner.h"

#include <gtest/gtest.h>

#include "runner/error.h"
#include "runner/plan.h"

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

// As `scontrol show job -d` prints it (Slurm 22.05), for a job with two
// groups of nodes and one node with nothing of its own.
TEST(SlurmMemory, ReadsEachNodeGroupsAllocatedMemory) {
  auto text =
      "JobId=7 JobName=sh\n"
      "   NumNodes=4 NumCPUs=8 NumTasks=8 CPUs/Task=1 ReqB:S:C:T=0:0:*:*\n"
      "   TRES=cpu=8,mem=3000M,node=4,billing=8\n"
      "     Nodes=n[1-2] CPU_IDs=0-1 Mem=1000 GRES=\n"
      "     Nodes=gpu01 CPU_IDs=0-3 Mem=1000 GRES=\n"
      "     Nodes=n4 CPU_IDs=0 Mem=0 GRES=\n"
      "   MinCPUsNode=2 MinMemoryCPU=500M MinTmpDiskNode=0\n";
  std::vector<std::pair<std::string, std::uint64_t>> want = {
      {"n[1-2]", 1000ULL << 20}, {"gpu01", 1000ULL << 20}, {"n4", 0}};
  EXPECT_EQ(parse_node_memory(text), want);
  EXPECT_TRUE(parse_node_memory("JobId=7 NumNodes=1\n   Nodes=n1 CPU_IDs=0\n").empty());
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
