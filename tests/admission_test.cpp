// What to start next: order, requeue, retries, and the budget, without a loop.
#include "runner/admission.h"

#include <gtest/gtest.h>

#include <algorithm>
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

TEST_F(AdmissionTest, TheHistoryOrderListsOnlyTheLongestAndTheRestFollowByIndex) {
  // A long history, a short list: the three longest first, then every other
  // cluster in index order, each once, the job's own done one never.
  auto last_night = store_->open_job("last-night", 10, "cmd");
  for (ClusterId c = 1; c <= 10; ++c)  // 7, 4, 1, 8, 5, 2, 9, 6, 3, 0 s
    remember_run(*store_, last_night, c, static_cast<double>((c * 7) % 10));
  auto job = store_->open_job("tonight", 10, "cmd");
  auto row = store_->record_start(job, AttemptStart{7, 1, 1, 1.0, "log"});
  store_->record_end(job, row, 7, AttemptEnd{});
  AdmissionOptions o;
  o.parallel = 10;
  o.most_ordered = 3;
  Admission a(*store_, job, o);
  a.resume();
  EXPECT_EQ(a.order_plan().with_history, 9u);
  EXPECT_EQ(a.order_plan().ordered, 3u);
  EXPECT_EQ(take_all(a), (std::vector<ClusterId>{4, 1, 8, 2, 3, 5, 6, 9, 10}));
  EXPECT_FALSE(a.has_work());
}

TEST_F(AdmissionTest, WherePBindsTwoHeavyClustersInFourStartsAtMost) {
  // 9–12 took 2 s and 1500 MiB, more than an equal share of 4000 MiB over
  // P = 4; 1–8 took 1 s and 100 MiB. P binds (16 s ÷ 4 against 13,440
  // MiB·s ÷ 4000 MiB). Four heavy of twelve, times four, is at most two
  // heavy ones among any four starts.
  auto last_night = store_->open_job("last-night", 12, "cmd");
  for (ClusterId c = 1; c <= 12; ++c)
    remember_run(*store_, last_night, c, c >= 9 ? 2.0 : 1.0, c >= 9 ? 1500 : 100);
  auto job = store_->open_job("tonight", 12, "cmd");
  AdmissionOptions o;
  o.parallel = 4;
  o.mem_budget = 4000 * MiB;
  Admission a(*store_, job, o);
  a.resume();
  EXPECT_FALSE(a.order_plan().by_memory);
  EXPECT_EQ(a.order_plan().spread, 4u);
  std::vector<ClusterId> order;
  while (auto c = a.next(0)) {
    order.push_back(c->cluster);
    a.reserve(*c);
    a.release(*c);
  }
  EXPECT_EQ(order, (std::vector<ClusterId>{9, 10, 1, 2, 11, 12, 3, 4, 5, 6, 7, 8}));
}

TEST_F(AdmissionTest, WhetherMemoryBindsIsWeighedOverEverySitesBudgetAndSlots) {
  // 7 and 8 took 1 s and 400 MiB; 1–6 took 2 s and 100 MiB: 2,100 MiB·s
  // of needs over 14 s, 150 MiB a second. Two nodes: 4 slots and 1000 MiB,
  // 4 slots and 100 MiB. Over both (1100 MiB, 8 slots), memory binds
  // (2100 ÷ 1100 > 14 ÷ 8): largest first. The first node alone would say
  // P binds (2100 ÷ 1000 < 14 ÷ 4), and 1–6 would go first.
  auto last_night = store_->open_job("last-night", 8, "cmd");
  for (ClusterId c = 1; c <= 8; ++c)
    remember_run(*store_, last_night, c, c >= 7 ? 1.0 : 2.0, c >= 7 ? 400 : 100);
  auto job = store_->open_job("tonight", 8, "cmd");
  AdmissionOptions o;
  o.parallel = 8;
  o.sites = {{4, 1000 * MiB}, {4, 100 * MiB}};
  Admission a(*store_, job, o);
  a.resume();
  EXPECT_TRUE(a.order_plan().by_memory);
  auto first = a.next(0);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->cluster, 7u);
}

TEST_F(AdmissionTest, AtMost65536ClustersAreListedByDefault) {
  // One more cluster of history than the list holds: the shortest of them
  // (cluster 1, 1 s; the rest 2 s) is left to follow in index order.
  constexpr ClusterId kClusters = 65'537;
  auto last_night = store_->open_job("last-night", kClusters, "cmd");
  {
    Store::Batch batch(*store_);
    for (ClusterId c = 1; c <= kClusters; ++c)
      remember_run(*store_, last_night, c, c == 1 ? 1.0 : 2.0);
    batch.commit();
  }
  auto job = store_->open_job("tonight", kClusters, "cmd");
  Admission a(*store_, job, {});
  a.resume();
  EXPECT_EQ(a.order_plan().with_history, kClusters);
  EXPECT_EQ(a.order_plan().ordered, 65'536u);
  ClusterId last = 0;
  for (ClusterId i = 0; i < kClusters; ++i) {
    auto c = a.next(0);
    ASSERT_TRUE(c);
    last = c->cluster;
  }
  EXPECT_EQ(last, 1u);
  EXPECT_FALSE(a.next(0));
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

TEST_F(AdmissionTest, OverSeveralSitesEachHoldsToItsOwnBudgetAndSlots) {
  auto job = store_->open_job("j", 100, "cmd");
  // Two nodes: 3 slots and 1000 MiB, 4 slots and 500 MiB; each cluster
  // reserves its 300 MiB cap.
  AdmissionOptions o;
  o.parallel = 7;
  o.mem_limit = 300 * MiB;
  o.sites = {{3, 1000 * MiB}, {4, 500 * MiB}};
  Admission a(*store_, job, o);
  a.resume();
  std::vector<std::size_t> at;
  std::vector<Candidate> given;
  while (auto c = a.next(given.size())) {
    a.reserve(*c);
    ASSERT_TRUE(c->site.has_value());
    at.push_back(*c->site);
    given.push_back(*c);
  }
  // The first takes 3 (its slots), the second 1 (its memory): 4 in all,
  // where one pool of 1500 MiB would have taken 5.
  EXPECT_EQ(std::count(at.begin(), at.end(), 0), 3);
  EXPECT_EQ(std::count(at.begin(), at.end(), 1), 1);
  EXPECT_EQ(a.largest_budget(), 1000 * MiB);
  EXPECT_EQ(a.budget_of(given.back()), at.back() == 0 ? 1000 * MiB : 500 * MiB);
  // One ends on the second node: the next goes there.
  auto on_second =
      *std::find_if(given.begin(), given.end(), [](const Candidate& c) { return c.site == 1u; });
  a.release(on_second);
  auto next = a.next(given.size() - 1);
  ASSERT_TRUE(next);
  EXPECT_EQ(next->site, 1u);
  a.reserve(*next);
  // A site that is gone takes nothing more, though it has room.
  a.close_site(1);
  a.release(*next);
  EXPECT_FALSE(a.next(given.size() - 1));
  EXPECT_TRUE(a.any_site_open());
  a.close_site(0);
  EXPECT_FALSE(a.any_site_open());
}

// A cluster nothing is known of reserves its whole cap, whichever site is
// listed first: it goes only where the cap fits, never to a smaller site
// whose budget it could overrun.
TEST_F(AdmissionTest, AClusterOfUnknownNeedGoesOnlyWhereItsCapFitsWhicheverSiteComesFirst) {
  auto job = store_->open_job("j", 10, "cmd");
  AdmissionOptions o;
  o.parallel = 4;
  o.mem_limit = 1400 * MiB;
  o.sites = {{2, 768 * MiB, 2}, {2, 3000 * MiB, 2}};
  Admission a(*store_, job, o);
  a.resume();
  std::vector<std::size_t> at;
  while (auto c = a.next(at.size())) {
    a.reserve(*c);
    EXPECT_EQ(c->need, 1400 * MiB);
    at.push_back(*c->site);
  }
  EXPECT_EQ(at, (std::vector<std::size_t>{1, 1}));
}

// A node lost gives its slots to the nodes left, each up to its capacity
// (its CPUs): P holds while they have room for it.
TEST_F(AdmissionTest, ALostSitesSlotsGoToTheSitesLeftUpToTheirCapacity) {
  auto job = store_->open_job("j", 20, "cmd");
  AdmissionOptions o;
  o.parallel = 6;
  o.mem_limit = 10 * MiB;
  o.sites = {{2, 1000 * MiB, 4}, {2, 1000 * MiB, 4}, {2, 1000 * MiB, 3}};
  Admission a(*store_, job, o);
  a.resume();
  auto fill = [&](std::size_t running) {
    std::vector<std::size_t> at(3, 0);
    while (auto c = a.next(running)) {
      a.reserve(*c);
      ++at.at(*c->site);
      ++running;
    }
    return at;
  };
  EXPECT_EQ(fill(0), (std::vector<std::size_t>{2, 2, 2}));
  a.close_site(1);
  // The two left take 3 each now: one more each than before.
  EXPECT_EQ(fill(6), (std::vector<std::size_t>{1, 0, 1}));
  a.close_site(2);
  // The last one left runs at most its 4 CPUs.
  EXPECT_EQ(fill(8), (std::vector<std::size_t>{1, 0, 0}));
}

TEST_F(AdmissionTest, AClusterToRunAloneWaitsForASiteWithNothingRunning) {
  auto job = store_->open_job("j", 10, "cmd");
  AdmissionOptions o;
  o.parallel = 4;
  o.mem_limit = 100 * MiB;
  o.sites = {{2, 1000 * MiB}, {2, 1000 * MiB}};
  Admission a(*store_, job, o);
  a.resume();
  auto first = *a.next(0);
  a.reserve(first);
  Candidate alone;
  alone.cluster = 9;
  alone.need = 1000 * MiB;
  alone.alone = true;
  a.run_again(alone);
  // The other site is empty: it goes there, and nothing passes it before.
  auto next = a.next(1);
  ASSERT_TRUE(next);
  EXPECT_EQ(next->cluster, 9u);
  EXPECT_NE(next->site, first.site);
  a.reserve(*next);
  // Now no site is empty, and nothing passes it in the requeue.
  Candidate again = alone;
  again.cluster = 10;
  a.run_again(again);
  EXPECT_FALSE(a.next(2));
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
