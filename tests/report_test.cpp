#include "runner/report.h"

#include <gtest/gtest.h>

namespace runner {
namespace {

ClusterReport cluster(ClusterId c, std::uint64_t rss_kib, std::optional<std::uint64_t> cg) {
  ClusterReport r;
  r.cluster = c;
  r.attempts = 1;
  r.state = AttemptState::kDone;
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

TEST(Report, JsonSaysNullWhereNothingWasRecorded) {
  Job job{1, "j", 3, "cmd"};
  ClusterReport running;  // started, not ended: no peak, no duration yet
  running.cluster = 1;
  running.attempts = 1;
  running.state = AttemptState::kRunning;
  auto json = report_json(job, {running}, 8ULL << 30, RunFigures{});
  EXPECT_TRUE(json["makespan_s"].is_null());
  EXPECT_TRUE(json["first_start"].is_null());
  EXPECT_TRUE(json["last_end"].is_null());
  for (const char* figure : {"min", "median", "p95", "max"})
    EXPECT_TRUE(json["peaks_kib"][figure].is_null()) << figure;
  EXPECT_TRUE(json["advised_parallel"].is_null());
  const auto& c = json["per_cluster"][0];
  EXPECT_TRUE(c["peak_rss_kib"].is_null());
  EXPECT_TRUE(c["peak_cgroup_kib"].is_null());
  EXPECT_TRUE(c["duration_s"].is_null());
  EXPECT_EQ(c["state"], "running");

  auto done = cluster(2, 500, std::nullopt);
  json = report_json(job, {done}, std::nullopt, RunFigures{});
  EXPECT_EQ(json["peaks_kib"]["max"], 500);
  EXPECT_EQ(json["per_cluster"][0]["peak_rss_kib"], 500);
  EXPECT_TRUE(json["per_cluster"][0]["peak_cgroup_kib"].is_null());
  EXPECT_FALSE(json.contains("advised_parallel"));
}

// The skewed night of the README: 38 clusters of 1 s and two of 16 s, P = 4,
// in index order: the two long ones run alone at the end.
TEST(Report, ShowsTheMakespanBesideTheLowerBound) {
  std::vector<AttemptSpan> spans;
  for (int i = 0; i < 38; ++i) {
    AttemptSpan s;
    s.started_at = 100.0 + (i / 4) * 1.0;
    s.finished_at = s.started_at + 1.0;
    spans.push_back(s);
  }
  for (int i = 0; i < 2; ++i) {
    AttemptSpan s;
    s.started_at = 109.0;
    s.finished_at = 125.0;
    spans.push_back(s);
  }
  auto run = run_figures(spans, 200.0);
  EXPECT_EQ(makespan_text(run),
            "makespan 25.0 s, first start to last end; lower bound 17.5 s = max(work 70.0 s ÷ P 4, "
            "longest 16.0 s); 1.43 × the bound");
  Job job{1, "j", 40, "cmd"};
  auto json = report_json(job, {}, std::nullopt, run);
  EXPECT_DOUBLE_EQ(json["makespan_s"].get<double>(), 25.0);
  EXPECT_DOUBLE_EQ(json["lower_bound_s"].get<double>(), 17.5);
  // When the job ran, as instants a program reads anywhere: UTC, with its offset.
  EXPECT_EQ(json["first_start"], "1970-01-01T00:01:40.000Z");
  EXPECT_EQ(json["last_end"], "1970-01-01T00:02:05.000Z");
  EXPECT_EQ(makespan_text(RunFigures{}), "");
}

}  // namespace
}  // namespace runner
