#include "runner/node_claim.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

#include "runner/error.h"

namespace runner {
namespace {

namespace fs = std::filesystem;

// An allocation of this test's own: its claims are its alone.
std::string allocation() {
  return "test-" + std::to_string(::getpid());
}

Claimant claimant(const std::string& job, pid_t pid, std::uint64_t made_ns) {
  return Claimant{"/data/runner.db", job, pid, made_ns};
}

TEST(NodeClaim, AnotherJobsLiveClaimRefusesWithItsJobAndDb) {
  NodeClaim a(allocation(), "n1", claimant("a", 1001, 100));
  try {
    NodeClaim b(allocation(), "n1", claimant("b", 1002, 200));
    FAIL() << "a second job claimed n1";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("already runs job a of /data/runner.db on node n1 (its "
                                         "worker, pid 1001)"),
              std::string::npos)
        << e.what();
  }
  // Another node, or the same job (an earlier run of it), is no conflict.
  NodeClaim other_node(allocation(), "n2", claimant("b", 1003, 300));
  NodeClaim same_job(allocation(), "n1", claimant("a", 1004, 400));
  EXPECT_TRUE(other_claim(allocation(), "n1", claimant("b", 1005, 500)));
  EXPECT_FALSE(other_claim(allocation(), "n1", claimant("a", 1005, 500)));
}

TEST(NodeClaim, OfTwoMadeAtOnceTheOlderStands) {
  // The younger one wrote its claim first and has not looked yet: the
  // older one, made now, sees it and stands; the younger would see it in
  // turn and refuse.
  NodeClaim younger(allocation(), "n1", claimant("b", 2002, 200));
  NodeClaim older(allocation(), "n1", claimant("a", 2001, 100));
  auto seen = other_claim(allocation(), "n1", claimant("b", 2002, 200));
  ASSERT_TRUE(seen);
  EXPECT_EQ(seen->job, "a");
}

TEST(NodeClaim, ADeadWorkersClaimIsRemovedAndHoldsNothing) {
  auto stale = fs::path("/tmp") /
               ("runner-claim-" + std::to_string(::getuid()) + "-" + allocation() + "-n1-3001");
  std::ofstream(stale) << "3001\n100\n/data/runner.db\na\n";
  EXPECT_FALSE(other_claim(allocation(), "n1", claimant("b", 3002, 200)));
  EXPECT_FALSE(fs::exists(stale));
  { NodeClaim b(allocation(), "n1", claimant("b", 3002, 200)); }
  // Its own claim goes with the worker.
  EXPECT_FALSE(other_claim(allocation(), "n1", claimant("c", 3003, 300)));
}

}  // namespace
}  // namespace runner
