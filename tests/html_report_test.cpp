// The page of `runner report --html`: its layout, computed without a browser.
#include "runner/html_report.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <regex>

#include "runner/report.h"
#include "runner/words.h"

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

}  // namespace
}  // namespace runner
