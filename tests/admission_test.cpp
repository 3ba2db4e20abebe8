// What to start next: order, requeue, retries, and the budget, without a loop.
#include "runner/admission.h"

#include <gtest/gtest.h>

#include <thread>

#include "store_fixture.h"

namespace runner {
namespace {

namespace fs = std::filesystem;
constexpr std::uint64_t MiB = 1ULL << 20;

class AdmissionTest : public StoreFixture {
 protected:
  // The clusters next() gives, as long as it gives any, none of them ending.
  std::vector<ClusterId> take_all(Admission& a) {
    std::vector<ClusterId> out;
    while (auto c = a.next(out.size())) {
      a.reserve(*c);
      out.push_back(c->cluster);
    }
    return out;
  }
};

TEST_F(AdmissionTest, GivesClustersInOrderSkippingDoneOnesWithoutListingPendingOnes) {
  auto job = store_->open_job("j", 1'000'000'000, "cmd");
  for (ClusterId c : {2, 3}) {
    auto row = store_->record_start(job, AttemptStart{c, 1, 1, 1.0, "log"});
    store_->record_end(job, row, c, AttemptEnd{});
  }
  Admission a(*store_, job, {});
  a.resume();
  EXPECT_EQ(a.next(0)->cluster, 1u);
  EXPECT_EQ(a.next(1)->cluster, 4u);
  EXPECT_TRUE(a.never_attempted(4));
  EXPECT_FALSE(a.never_attempted(3));
  EXPECT_TRUE(a.has_work());
}

TEST_F(AdmissionTest, TheRequeueGoesFirstAndRetriesTakeTurnsWithFirstAttempts) {
  auto job = store_->open_job("j", 10, "cmd");
  Admission a(*store_, job, {});
  a.resume();
  auto first = *a.next(0);  // cluster 1
  Candidate retry = first;
  retry.retry = 1;
  a.retry_at(Clock::now(), retry);
  Candidate again;
  again.cluster = 7;
  a.run_again(again);
  EXPECT_EQ(a.next(0)->cluster, 7u);  // the requeue
  EXPECT_EQ(a.waiting_again(), 1u);   // the retry
  auto next = *a.next(0);
  EXPECT_EQ(next.cluster, 1u);  // the retry's turn
  EXPECT_EQ(next.retry, 1u);
  EXPECT_EQ(a.next(0)->cluster, 2u);
  EXPECT_EQ(a.waiting_again(), 0u);
}

TEST_F(AdmissionTest, AFutureRetryWaitsAndSaysWhenItIsDue) {
  auto job = store_->open_job("j", 1, "cmd");
  Admission a(*store_, job, {});
  a.resume();
  auto c = *a.next(0);
  auto at = Clock::now() + std::chrono::hours(1);
  a.retry_at(at, c);
  EXPECT_FALSE(a.next(0));
  EXPECT_TRUE(a.has_work());
  EXPECT_EQ(a.next_retry(), at);
}

TEST_F(AdmissionTest, UnderABudgetWhatDoesNotFitWaitsAndTheOldestIsPassedAtMostPTimes) {
  auto job = store_->open_job("j", 100, "cmd");
  // Without history every cluster reserves its cap: 400 of 1000 MiB.
  AdmissionOptions o;
  o.parallel = 2;
  o.mem_limit = 400 * MiB;
  o.mem_budget = 1000 * MiB;
  Admission a(*store_, job, o);
  a.resume();
  EXPECT_EQ(take_all(a), (std::vector<ClusterId>{1, 2}));
  EXPECT_EQ(a.budget()->reserved(), 800 * MiB);
  Candidate one;
  one.cluster = 1;
  one.need = 400 * MiB;
  one.limit = 400 * MiB;
  a.release(one);
  EXPECT_EQ(a.next(1)->cluster, 3u);
}

TEST_F(AdmissionTest, AClusterLargerThanTheBudgetIsCountedAndNotGiven) {
  auto yesterday = store_->open_job("yesterday", 3, "cmd");
  auto row = store_->record_start(yesterday, AttemptStart{2, 1, 1, 1.0, "log"});
  AttemptEnd end;
  end.peak_rss_kib = 5000 * 1024;
  store_->record_end(yesterday, row, 2, end);
  auto job = store_->open_job("today", 3, "cmd");
  AdmissionOptions o;
  o.parallel = 3;
  o.mem_budget = 1000 * MiB;
  o.mem_limit = 100 * MiB;
  Admission a(*store_, job, o);
  a.resume();
  EXPECT_EQ(take_all(a), (std::vector<ClusterId>{1, 3}));
  EXPECT_EQ(a.too_big(), 1u);
}

}  // namespace
}  // namespace runner
