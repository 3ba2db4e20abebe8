// The page of `runner report --html`: its layout, computed without a browser.
#include "runner/html_report.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <random>
#include <regex>

#include "runner/report.h"
#include "runner/words.h"
#include "store_fixture.h"

namespace runner {
namespace {

AttemptSpan span(double from, double to, AttemptState state = AttemptState::kDone,
                 std::uint32_t host = 0, ClusterId cluster = 1) {
  AttemptSpan s;
  s.started_at = from;
  s.finished_at = to;
  s.state = state;
  s.host = host;
  s.cluster = cluster;
  s.attempt = 1;
  return s;
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(HtmlAxis, TicksAreRoundAndCoverTheRange) {
  auto a = nice_axis(0, 93);
  EXPECT_EQ(a.lo, 0);
  EXPECT_EQ(a.hi, 100);
  EXPECT_EQ(a.ticks, (std::vector<double>{0, 20, 40, 60, 80, 100}));  // at most 8
  auto b = nice_axis(0, 0.37, 4);
  EXPECT_EQ(b.ticks.size(), 5u);  // 0, 0.1, ..., 0.4
  EXPECT_NEAR(b.hi, 0.4, 1e-12);
  auto empty = nice_axis(5, 5);  // one value: still an axis
  EXPECT_GT(empty.hi, empty.lo);
}

TEST(HtmlLanes, EachAttemptTakesTheLowestLaneFreeOnItsHost) {
  // Host 0: 0-10 and 2-5 overlap (two lanes); 6-9 takes lane 2's place again
  // (the lowest free one); host 1 has lanes of its own.
  std::vector<AttemptSpan> spans = {span(0, 10), span(2, 5), span(6, 9), span(1, 3, {}, 1)};
  std::sort(spans.begin(), spans.end(),
            [](const auto& a, const auto& b) { return a.started_at < b.started_at; });
  auto lanes = assign_lanes(spans, 2, 100);
  // By start: 0-10, 1-3 (host 1), 2-5, 6-9.
  EXPECT_EQ(lanes.lane_of, (std::vector<std::uint32_t>{0, 0, 1, 1}));
  EXPECT_EQ(lanes.lanes_of_host, (std::vector<std::uint32_t>{2, 1}));
  // One that starts the moment another ends takes its lane.
  auto back_to_back = assign_lanes({span(0, 1), span(1, 2)}, 1, 100);
  EXPECT_EQ(back_to_back.lanes_of_host, (std::vector<std::uint32_t>{1}));
  // A running one (no end yet) holds its lane until now.
  auto running = span(0, 0, AttemptState::kRunning);
  auto held = assign_lanes({running, span(50, 60)}, 1, 100);
  EXPECT_EQ(held.lanes_of_host, (std::vector<std::uint32_t>{2}));
}

TEST(HtmlOccupancy, CountsHowManyRanAtOnceInEachBinByState) {
  // Over 0-10 in 2 bins: one done 0-10 (1 in each), one failed 2-4 (0.4 in the first).
  auto bins = occupancy({span(0, 10), span(2, 4, AttemptState::kFailed)}, 1, 0, 10, 2, 100);
  auto done = page_state_index(AttemptState::kDone),
       failed = page_state_index(AttemptState::kFailed);
  ASSERT_EQ(bins.size(), 1u);
  ASSERT_EQ(bins[0].size(), 2u);
  EXPECT_DOUBLE_EQ(bins[0][0][done], 1.0);
  EXPECT_DOUBLE_EQ(bins[0][1][done], 1.0);
  EXPECT_DOUBLE_EQ(bins[0][0][failed], 0.4);
  EXPECT_DOUBLE_EQ(bins[0][1][failed], 0.0);
}

TEST(HtmlHistogram, CountsEachValueOnceWithTheTopInTheLastBin) {
  EXPECT_EQ(histogram({0, 1, 2.5, 9.99, 10, 11}, 0, 10, 4),
            (std::vector<std::uint64_t>{2, 1, 0, 2}));  // 11 is out of range
}

TEST(RunFigures, MakespanBesideTheLowerBoundOfItsDurations) {
  // Two long ones at the end, P = 2 as the log shows: work 2*1 + 2*4 = 10,
  // so the bound is max(10 / 2, 4) = 5; the makespan is 6.
  auto f = run_figures({span(0, 1), span(0, 1), span(2, 6), span(2, 6)}, 100);
  EXPECT_EQ(f.most_at_once, 2u);
  EXPECT_DOUBLE_EQ(f.makespan, 6);
  EXPECT_DOUBLE_EQ(f.total_work, 10);
  EXPECT_DOUBLE_EQ(f.lower_bound, 5);
  // One long cluster bounds it by itself.
  EXPECT_DOUBLE_EQ(run_figures({span(0, 9), span(0, 1)}, 100).lower_bound, 9);
}

// The figures as the whole list gives them: every start and end an edge,
// ends before starts at one instant, the count of those running at once
// after each. The fold must agree, attempt by attempt.
RunFigures swept(const std::vector<AttemptSpan>& spans, double now) {
  RunFigures f;
  if (spans.empty()) return f;
  f.first_start = spans.front().started_at;
  std::vector<std::pair<double, int>> edges;
  for (const auto& s : spans) {
    auto end = attempt_end(s, now);
    f.first_start = std::min(f.first_start, s.started_at);
    f.last_end = std::max(f.last_end, end);
    f.total_work += end - s.started_at;
    f.longest = std::max(f.longest, end - s.started_at);
    edges.emplace_back(s.started_at, +1);
    edges.emplace_back(end, -1);
  }
  std::sort(edges.begin(), edges.end());
  int at_once = 0;
  for (const auto& [t, step] : edges) {
    at_once += step;
    f.most_at_once = std::max(f.most_at_once, static_cast<std::uint32_t>(std::max(at_once, 0)));
  }
  f.makespan = f.last_end - f.first_start;
  f.lower_bound = std::max(f.total_work / std::max<std::uint32_t>(f.most_at_once, 1), f.longest);
  return f;
}

void expect_same(const RunFigures& a, const RunFigures& b) {
  EXPECT_EQ(a.first_start, b.first_start);
  EXPECT_EQ(a.last_end, b.last_end);
  EXPECT_EQ(a.makespan, b.makespan);
  EXPECT_EQ(a.total_work, b.total_work);
  EXPECT_EQ(a.longest, b.longest);
  EXPECT_EQ(a.lower_bound, b.lower_bound);
  EXPECT_EQ(a.most_at_once, b.most_at_once);
}

// Runs of attempts on whole seconds, so that many start and end at one
// instant: some still running, some of no length, and a few that the log
// says ended before they started (a clock set back while they ran).
TEST(RunFold, OneAttemptAtATimeGivesTheFiguresOfTheWholeList) {
  for (unsigned seed = 1; seed <= 200; ++seed) {
    std::mt19937 random(seed);
    auto pick = [&](int n) { return static_cast<int>(random() % static_cast<unsigned>(n)); };
    std::vector<AttemptSpan> spans;
    auto count = 1 + pick(60);
    for (int i = 0; i < count; ++i) {
      auto from = 100.0 + pick(40);
      auto kind = pick(10);
      auto to = kind == 0   ? 0.0                  // still running
                : kind == 1 ? from                 // no length
                : kind == 2 ? from - 1 - pick(10)  // ended before it started
                            : from + 1 + pick(15);
      spans.push_back(span(from, to, to == 0 ? AttemptState::kRunning : AttemptState::kDone));
    }
    std::stable_sort(spans.begin(), spans.end(),
                     [](const auto& a, const auto& b) { return a.started_at < b.started_at; });
    const double now = 130;
    std::vector<std::pair<double, double>> backward;
    for (const auto& s : spans)
      if (attempt_end(s, now) < s.started_at) backward.emplace_back(s.finished_at, s.started_at);
    RunFold fold(now, backward);
    for (const auto& s : spans) fold.add(s);
    SCOPED_TRACE(seed);
    expect_same(fold.figures(), swept(spans, now));
    expect_same(run_figures(spans, now), swept(spans, now));
  }
}

TEST(PeakStatsFold, AscendingPeaksGiveTheNearestRanks) {
  PeakStatsFold one(1);
  one.add(7);
  EXPECT_EQ(one.stats().min_kib, 7u);
  EXPECT_EQ(one.stats().median_kib, 7u);
  EXPECT_EQ(one.stats().p95_kib, 7u);
  EXPECT_EQ(one.stats().max_kib, 7u);
  PeakStatsFold twenty(20);
  for (std::uint64_t kib = 1; kib <= 20; ++kib) twenty.add(kib);
  EXPECT_EQ(twenty.stats().clusters, 20u);
  EXPECT_EQ(twenty.stats().min_kib, 1u);
  EXPECT_EQ(twenty.stats().median_kib, 10u);  // the 10th of 20
  EXPECT_EQ(twenty.stats().p95_kib, 19u);     // the 19th
  EXPECT_EQ(twenty.stats().max_kib, 20u);
  EXPECT_EQ(PeakStatsFold(0).stats().clusters, 0u);
}

HtmlReportInput input(std::size_t attempts) {
  HtmlReportInput in;
  in.job = Job{1, "nightly <b>", 100000, "./migrate --cluster="};
  in.attempts.hosts = {"n2", "n1"};
  for (std::size_t i = 0; i < attempts; ++i) {
    auto s = span(static_cast<double>(i), static_cast<double>(i) + 1.5,
                  i % 10 == 3 ? AttemptState::kFailed : AttemptState::kDone,
                  static_cast<std::uint32_t>(i % 2), i + 1);
    s.peak_rss_kib = 1000 + i;
    in.attempts.spans.push_back(s);
    if (attempts <= kHtmlDetailLimit) in.attempts.log_paths.push_back("/logs/<x>.log");
    ClusterReport c;
    c.cluster = i + 1;
    c.attempts = 1;
    c.state = s.state;
    c.peak_rss_kib = s.peak_rss_kib;
    in.clusters.push_back(c);
  }
  in.now = 1e6;
  return in;
}

TEST(HtmlPage, OneBarPerAttemptWithItsStateEscapedText) {
  auto page = render_html_report(input(40));
  EXPECT_EQ(count(page, "<rect class=\"bar "), 40u);
  EXPECT_EQ(count(page, "<rect class=\"bar s-failed\""), 4u);
  EXPECT_EQ(count(page, "<rect class=\"bar s-done\""), 36u);
  // What the log holds is text, never markup.
  EXPECT_EQ(page.find("nightly <b>"), std::string::npos);
  EXPECT_NE(page.find("nightly &lt;b&gt;"), std::string::npos);
  EXPECT_NE(page.find("/logs/&lt;x&gt;.log"), std::string::npos);
  // Self-contained: nothing fetched from elsewhere.
  EXPECT_FALSE(std::regex_search(page, std::regex(R"((src|href)\s*=)")));
  EXPECT_NE(page.find("id=\"memory\""), std::string::npos);
  EXPECT_NE(page.find("id=\"peaks\""), std::string::npos);
  // Both hosts, by name.
  EXPECT_NE(page.find(">n1</text>"), std::string::npos);
  EXPECT_NE(page.find(">n2</text>"), std::string::npos);
}

TEST(HtmlPage, AboveTheLimitItDrawsAggregatesAndSaysSo) {
  auto page = render_html_report(input(kHtmlDetailLimit + 1));
  EXPECT_EQ(count(page, "<rect class=\"bar "), 0u);
  EXPECT_GT(count(page, "<rect class=\"area "), 0u);
  // At most one rectangle per bin, state and host; one bucket per run of clusters.
  EXPECT_LE(count(page, "<rect class=\"area "), kTimelineBins * kPageStates.size() * 2);
  EXPECT_LE(count(page, "<rect class=\"bucket\""), kClusterBuckets);
  EXPECT_NE(page.find("attempts are too many to draw one by one"), std::string::npos);
  EXPECT_NE(page.find("clusters are too many to draw one by one"), std::string::npos);
}

// The page says when the job ran, in the local time of the machine that
// made it with its offset, and as UTC instants for programs.
TEST(HtmlPage, SaysWhenTheJobRan) {
  auto in = input(3);
  for (auto& s : in.attempts.spans) {
    s.started_at += 1796000000;
    s.finished_at += 1796000000;
  }
  in.now = 1796000100;
  auto page = render_html_report(in);
  EXPECT_NE(page.find(fmt::format("It ran from <time datetime=\"{}\">{}</time> to <time "
                                  "datetime=\"{}\">{}</time>.",
                                  utc_time(1796000000), local_time(1796000000),
                                  utc_time(1796000003.5), local_time(1796000003.5))),
            std::string::npos)
      << page.substr(0, 2000);
  EXPECT_NE(page.find(fmt::format("attempts at <time datetime=\"{}\">", utc_time(1796000100))),
            std::string::npos);
}

// Every match of `pattern`'s first group in `text`, as a number.
std::vector<double> numbers_of(const std::string& text, const std::string& pattern) {
  std::vector<double> out;
  std::regex re(pattern);
  for (auto it = std::sregex_iterator(text.begin(), text.end(), re); it != std::sregex_iterator();
       ++it)
    out.push_back(std::stod((*it)[1]));
  return out;
}

// The timeline of a small job: lanes tall enough to see and hover, and a
// time axis that ends where the run did (167 s), not at the next round 200.
TEST(HtmlPage, ASmallJobsTimelineHasTallLanesAndEndsWithTheRun) {
  HtmlReportInput in;
  in.job = Job{1, "j", 12, "cmd"};
  in.attempts.hosts = {"h"};
  for (int i = 0; i < 12; ++i) {  // 6 slots, two rounds, the last end at 167 s
    auto s = span(1000 + (i / 6) * 80, 1000 + (i / 6) * 80 + (i == 11 ? 87 : 80),
                  AttemptState::kDone, 0, static_cast<ClusterId>(i + 1));
    in.attempts.spans.push_back(s);
    in.attempts.log_paths.push_back("log");
  }
  in.now = 2000;
  auto page = render_html_report(in);
  auto heights = numbers_of(
      page, R"re(<rect class="bar [^"]*" x="[^"]*" y="[^"]*" width="[^"]*" height="([^"]*)")re");
  ASSERT_EQ(heights.size(), 12u);
  EXPECT_GE(*std::min_element(heights.begin(), heights.end()), 20) << "6 lanes of 12 px again";
  auto ends = numbers_of(page, R"re(<rect class="bar [^"]*" x="([^"]*)")re");
  auto widths =
      numbers_of(page, R"re(<rect class="bar [^"]*" x="[^"]*" y="[^"]*" width="([^"]*)")re");
  double right = 0;
  for (std::size_t i = 0; i < ends.size(); ++i) right = std::max(right, ends[i] + widths[i]);
  EXPECT_NEAR(right, 1100 - 20, 0.5) << "the run's last end is the axis' end";
  auto a = axis_to_end(0, 167);
  EXPECT_EQ(a.hi, 167);
  EXPECT_EQ(a.ticks.back(), 150);  // 0, 50, 100, 150: round ticks within it
}

// The names of min, median, p95 and max sit above the tallest bar, never
// on one; a cluster killed at its cap has its dot drawn over the cap's line.
TEST(HtmlPage, LabelsStayOffTheBarsAndDotsOnTopOfTheLines) {
  auto in = input(40);
  in.attempts.largest_cap_kib = 1000 + 39;  // the largest peak: on the cap
  auto page = render_html_report(in);
  auto peaks = page.substr(page.find("id=\"peaks\""));
  auto bar_tops = numbers_of(peaks, R"re(<rect class="hist" x="[^"]*" y="([^"]*)")re");
  auto label_baselines = numbers_of(peaks, R"re(<text class="mark-text" x="[^"]*" y="([^"]*)")re");
  ASSERT_FALSE(bar_tops.empty());
  ASSERT_EQ(label_baselines.size(), 4u);
  for (auto y : label_baselines)  // 11 px text: its lowest pixels 3 px below the baseline
    EXPECT_LE(y + 3, *std::min_element(bar_tops.begin(), bar_tops.end())) << y;
  auto memory = page.substr(page.find("id=\"memory\""));
  ASSERT_NE(memory.find("<line class=\"cap\""), std::string::npos);
  EXPECT_LT(memory.find("<line class=\"cap\""), memory.find("<circle class=\"peak"));
}

TEST(HtmlPage, ARunningJobIsDrawnUpToNow) {
  auto in = input(3);
  in.attempts.spans.back().finished_at = 0;
  in.attempts.spans.back().state = AttemptState::kRunning;
  auto page = render_html_report(in);
  EXPECT_EQ(count(page, "<rect class=\"bar s-running\""), 1u);
  EXPECT_NE(page.find("The job is still running"), std::string::npos);
}

// A job in a real log: its page read from the log one attempt at a time
// must be the page of the same attempts and clusters read whole.
class HtmlPageFromLog : public StoreFixture {
 protected:
  static constexpr double kNow = 1.8e9;

  // One attempt; no end when `state` is running.
  void attempt(const Job& job, ClusterId c, std::uint32_t n, double from, double to,
               AttemptState state, std::uint64_t rss_kib,
               std::optional<std::uint64_t> cg_kib = {}) {
    AttemptStart start{c, n, 100, from, fmt::format("/logs/{}.{}.log", c, n)};
    start.host = fmt::format("n{}", 1 + c % 3);
    if (cg_kib) start.mem_limit_kib = 4096;
    auto row = store_->record_start(job, start);
    if (state == AttemptState::kRunning) return;
    AttemptEnd end;
    end.state = state;
    end.finished_at = to;
    end.exit_code = state == AttemptState::kDone ? 0 : 1;
    end.peak_rss_kib = rss_kib;
    end.peak_cgroup_kib = cg_kib;
    store_->record_end(job, row, c, end);
  }

  // Both pages of the job, the one read as `runner report --html` reads it
  // and the one of the whole lists.
  std::pair<std::string, std::string> pages(const Job& job, bool& aggregated) {
    auto page = read_html_page(*store_, job, kNow, 8ULL << 30);
    aggregated = !page.attempts_detailed;
    HtmlReportInput in;
    in.job = job;
    in.attempts = store_->attempt_spans(job, !aggregated);
    in.clusters = store_->cluster_report(job);
    in.failures = store_->failed_clusters(job, 200);
    in.failures_total = store_->failed_clusters(job).size();
    in.mem_budget = 8ULL << 30;
    in.now = kNow;
    return {render_html_page(page), render_html_report(in)};
  }
};

TEST_F(HtmlPageFromLog, ASmallJobIsTheSamePageAsFromItsWholeLists) {
  auto job = store_->open_job("small", 40, "cmd {}");
  Store::Batch batch(*store_);
  for (ClusterId c = 1; c <= 30; ++c) {
    ClusterId round = c / 4;  // four at a time, two seconds apart
    double from = 1.7e9 + 2.0 * static_cast<double>(round), to = from + 1.5 + c % 3;
    auto state = c % 9 == 0 ? AttemptState::kFailed : AttemptState::kDone;
    if (c % 9 == 0) attempt(job, c, 2, to + 1, to + 3, AttemptState::kDone, 900 + c);
    if (c == 20) state = AttemptState::kRunning;
    if (c == 25) to = from - 2;  // the clock was set back while it ran
    attempt(job, c, 1, from, to, state, 1000 + 37 * c % 500,
            c % 4 == 0 ? std::optional<std::uint64_t>(1200 + c) : std::nullopt);
  }
  batch.commit();
  bool aggregated = true;
  auto [streamed, whole] = pages(job, aggregated);
  EXPECT_FALSE(aggregated);
  EXPECT_EQ(streamed, whole);
  EXPECT_NE(streamed.find("<rect class=\"bar s-running\""), std::string::npos);
}

// Above kHtmlDetailLimit the page keeps aggregates only, and still draws
// them as from the whole lists: bins of time, runs of clusters, the first
// 200 failures of 300.
TEST_F(HtmlPageFromLog, ALargeJobIsTheSamePageAsFromItsWholeListsWithoutHoldingThem) {
  auto job = store_->open_job("large", 7000, "cmd {}");
  Store::Batch batch(*store_);
  for (ClusterId c = 1; c <= 6000; ++c) {
    double from = 1.7e9 + static_cast<double>(c) * 0.01, to = from + 0.05 * (1 + c % 5);
    auto state = c % 20 == 0 ? AttemptState::kOom : AttemptState::kDone;
    attempt(job, c, 1, from, to, state, 100 + c % 977,
            c % 3 == 0 ? std::optional<std::uint64_t>(150 + c % 500) : std::nullopt);
  }
  batch.commit();
  bool aggregated = false;
  auto [streamed, whole] = pages(job, aggregated);
  EXPECT_TRUE(aggregated);
  EXPECT_EQ(streamed, whole);
  EXPECT_NE(streamed.find("Failures (300)"), std::string::npos);
  auto page = read_html_page(*store_, job, kNow, std::nullopt);
  EXPECT_TRUE(page.spans.empty());
  EXPECT_TRUE(page.log_paths.empty());
  EXPECT_TRUE(page.each_cluster.empty());
  EXPECT_LE(page.buckets.size(), kClusterBuckets);
  EXPECT_EQ(page.occupancy.size(), 3u);  // one row per host
  EXPECT_EQ(page.failures.size(), 200u);
  EXPECT_EQ(page.failures_total, 300u);
}

}  // namespace
}  // namespace runner
