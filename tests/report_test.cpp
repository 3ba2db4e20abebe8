#include "runner/report.h"

#include <gtest/gtest.h>

namespace runner {
namespace {

ClusterReport cluster(ClusterId c, std::uint64_t rss_kib, std::optional<std::uint64_t> cg) {
  ClusterReport r;
  r.cluster = c;
  r.attempts = 1;
  r.state = "done";
  r.peak_rss_kib = rss_kib;
  r.peak_cgroup_kib = cg;
  return r;
}

TEST(Report, JudgesByTheCgroupPeakWhereThereIsOne) {
  EXPECT_EQ(judged_peak_kib(cluster(1, 500, 300)), 300u);
  EXPECT_EQ(judged_peak_kib(cluster(1, 500, std::nullopt)), 500u);
}

TEST(Report, PercentilesAreNearestRank) {
  std::vector<ClusterReport> cs;
  for (ClusterId c = 1; c <= 100; ++c) cs.push_back(cluster(c, 0, c * 1024));
  auto s = peak_stats(cs);
  EXPECT_EQ(s.clusters, 100u);
  EXPECT_EQ(s.min_kib, 1024u);
  EXPECT_EQ(s.median_kib, 50u * 1024);
  EXPECT_EQ(s.p95_kib, 95u * 1024);
  EXPECT_EQ(s.max_kib, 100u * 1024);
}

TEST(Report, AdvisesTheHighestPWhoseP95Fits) {
  PeakStats s;
  s.p95_kib = 1024 * 1024;  // 1 GiB
  EXPECT_EQ(advised_parallel(s, 8ULL << 30), 8u);
  EXPECT_EQ(advised_parallel(s, (8ULL << 30) - 1), 7u);
  EXPECT_EQ(advised_parallel(s, 512ULL << 20), 0u);
  EXPECT_EQ(advised_parallel(PeakStats{}, 8ULL << 30), 0u);
}

}  // namespace
}  // namespace runner
