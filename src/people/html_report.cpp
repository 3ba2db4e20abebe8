#include "runner/html_report.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <queue>

#include "runner/error.h"
#include "runner/fd.h"
#include "runner/report.h"
#include "runner/sysinfo.h"
#include "runner/units.h"
#include "runner/words.h"

namespace runner {

std::size_t page_state_index(AttemptState state) {
  for (std::size_t i = 0; i < kPageStates.size(); ++i)
    if (kPageStates[i] == state) return i;
  return 1;  // unknown words read as failed
}

Axis nice_axis(double lo, double hi, int most_ticks) {
  Axis a;
  if (!(hi > lo)) hi = lo + 1;
  auto raw = (hi - lo) / std::max(1, most_ticks);
  auto power = std::pow(10.0, std::floor(std::log10(raw)));
  double step = power;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * power >= raw) {
      step = m * power;
      break;
    }
  a.lo = std::floor(lo / step) * step;
  a.hi = std::ceil(hi / step) * step;
  auto n = static_cast<int>(std::llround((a.hi - a.lo) / step));
  for (int i = 0; i <= n; ++i) {
    auto t = a.lo + i * step;
    a.ticks.push_back(std::abs(t) < step / 1e9 ? 0 : t);
  }
  return a;
}

Axis axis_to_end(double lo, double hi, int most_ticks) {
  auto a = nice_axis(lo, hi, most_ticks);
  if (!(hi > lo)) return a;
  a.hi = hi;
  while (a.ticks.size() > 1 && a.ticks.back() > hi * (1 + 1e-12)) a.ticks.pop_back();
  return a;
}

int lane_height(std::size_t lanes) {
  auto share = kTimelineMinHeight / static_cast<int>(std::max<std::size_t>(lanes, 1));
  return std::clamp(share, 14, 28);
}

Lanes assign_lanes(const std::vector<AttemptSpan>& spans, std::size_t hosts, double now) {
  Lanes out;
  out.lane_of.resize(spans.size());
  out.lanes_of_host.assign(hosts, 0);
  // Per host: the lanes free now (lowest first), and those busy by when they free.
  using Busy = std::pair<double, std::uint32_t>;
  std::vector<std::priority_queue<Busy, std::vector<Busy>, std::greater<>>> busy(hosts);
  std::vector<std::priority_queue<std::uint32_t, std::vector<std::uint32_t>, std::greater<>>> free(
      hosts);
  for (std::size_t i = 0; i < spans.size(); ++i) {
    const auto& s = spans[i];
    auto h = s.host;
    while (!busy[h].empty() && busy[h].top().first <= s.started_at) {
      free[h].push(busy[h].top().second);
      busy[h].pop();
    }
    std::uint32_t lane = 0;
    if (free[h].empty()) {
      lane = out.lanes_of_host[h]++;
    } else {
      lane = free[h].top();
      free[h].pop();
    }
    out.lane_of[i] = lane;
    busy[h].emplace(attempt_end(s, now), lane);
  }
  return out;
}

namespace {

constexpr int kWidth = 1100;  // of every chart
constexpr int kLeft = 110;    // room for the axis labels
constexpr int kRight = 20;
constexpr int kHostGap = 10;
constexpr int kAreaHeight = 90;  // a host's band in the aggregated timeline
constexpr int kChartHeight = 260;
constexpr int kMarkRow = 13;                 // a row of the labels of min, median, p95, max
constexpr int kMarkBand = 4 * kMarkRow + 6;  // their rows, above the bars they mark

// Colour-blind-safe colours (Okabe and Ito), in the order of kPageStates.
constexpr std::array<const char*, kPageStates.size()> kColours = {"#009E73", "#D55E00", "#CC79A7",
                                                                  "#E69F00", "#999999", "#56B4E9"};

std::string escaped(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string seconds_text(double s) {
  if (s < 60) return fmt::format("{:.2f} s", s);
  return format_duration(
      std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(s * 1000))));
}

std::string mib_text(double mib) {
  return mib >= 1024 ? fmt::format("{:.2f} GiB", mib / 1024) : fmt::format("{:.1f} MiB", mib);
}

std::string tick_text(double v) {
  if (std::abs(v - std::round(v)) < 1e-9)
    return fmt::format("{}", static_cast<std::int64_t>(std::llround(v)));
  return fmt::format("{:g}", v);
}

std::uint64_t judged_kib(const AttemptSpan& s) {
  return s.peak_cgroup_kib ? s.peak_cgroup_kib : s.peak_rss_kib;
}

std::string ending_text(const AttemptSpan& s) {
  if (s.state == AttemptState::kRunning) return "still running";
  if (s.signal > 0) return "killed by " + signal_name(s.signal);
  if (s.exit_code >= 0) return fmt::format("exit code {}", s.exit_code);
  return "no exit code";
}

// A horizontal axis of seconds since the first start, under a chart.
void time_axis(std::string& svg, const Axis& axis, double scale, int y) {
  for (auto t : axis.ticks) {
    auto x = kLeft + (t - axis.lo) * scale;
    svg += fmt::format(
        "<line class=\"grid\" x1=\"{0:.1f}\" x2=\"{0:.1f}\" y1=\"0\" y2=\"{1}\"/>"
        "<text class=\"tick\" x=\"{0:.1f}\" y=\"{2}\" text-anchor=\"middle\">{3}</text>",
        x, y, y + 14, tick_text(t));
  }
  svg += fmt::format(
      "<text class=\"label\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">seconds since the first "
      "start</text>",
      kLeft + (kWidth - kLeft - kRight) / 2, y + 32);
}

std::string legend(bool clickable) {
  std::string out = "<div class=\"legend\">";
  for (std::size_t i = 0; i < kPageStates.size(); ++i)
    out += fmt::format(
        "<span class=\"key{}\" data-state=\"{}\"><i style=\"background:{}\"></i>{}</span>",
        clickable ? " toggle" : "", to_string(kPageStates[i]), kColours[i],
        to_string(kPageStates[i]));
  return out + "</div>";
}

// The hosts in the order of their names (n1, n2, ... as people list them).
std::vector<std::size_t> by_name(const std::vector<std::string>& hosts) {
  std::vector<std::size_t> order(hosts.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](auto a, auto b) { return hosts[a] < hosts[b]; });
  return order;
}

void timeline_detailed(std::string& html, const HtmlPage& page) {
  const auto& spans = page.spans;
  const auto& f = page.run;
  auto lanes = assign_lanes(spans, page.hosts.size(), page.now);
  std::size_t all_lanes = 0;
  for (auto n : lanes.lanes_of_host) all_lanes += n;
  const int lane = lane_height(all_lanes);
  std::vector<int> host_top(page.hosts.size(), 0);
  int y = 0;
  for (auto h : by_name(page.hosts)) {
    host_top[h] = y;
    y += static_cast<int>(lanes.lanes_of_host[h]) * lane + kHostGap;
  }
  auto axis = axis_to_end(0, std::max(f.makespan, 1e-3));
  auto scale = (kWidth - kLeft - kRight) / (axis.hi - axis.lo);
  std::string svg;
  time_axis(svg, axis, scale, y);
  for (std::size_t h = 0; h < host_top.size(); ++h) {
    auto name = page.hosts[h].empty() ? std::string("(no host)") : page.hosts[h];
    svg += fmt::format("<text class=\"host\" x=\"4\" y=\"{}\">{}</text>", host_top[h] + 11,
                       escaped(name));
    for (std::uint32_t l = 0; l < lanes.lanes_of_host[h]; ++l)
      svg +=
          fmt::format("<text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"end\">slot {}</text>",
                      kLeft - 6, host_top[h] + static_cast<int>(l) * lane + lane / 2 + 4, l + 1);
  }
  for (std::size_t i = 0; i < spans.size(); ++i) {
    const auto& s = spans[i];
    auto x = kLeft + (s.started_at - f.first_start) * scale;
    auto w = std::max(1.0, (attempt_end(s, page.now) - s.started_at) * scale);
    auto top = host_top[s.host] + static_cast<int>(lanes.lane_of[i]) * lane + 1;
    auto peak = judged_kib(s);
    svg += fmt::format(
        "<rect class=\"bar s-{}\" x=\"{:.2f}\" y=\"{}\" width=\"{:.2f}\" height=\"{}\">"
        "<title>cluster {}/{}, attempt {} on {}: {}\n{} ({})\npeak {}\nlog {}</title></rect>",
        to_string(s.state), x, top, w, lane - 2, s.cluster, page.job.clusters, s.attempt,
        escaped(page.hosts[s.host]), to_string(s.state),
        seconds_text(attempt_end(s, page.now) - s.started_at), escaped(ending_text(s)),
        peak ? mib_text(kib_to_mib(peak)) : std::string("not recorded"),
        i < page.log_paths.size() ? escaped(page.log_paths[i]) : "");
  }
  html += fmt::format(
      "<p>One bar per attempt, in the slot it ran in on its host (slots as the log's times "
      "show them). Hover over a bar for its cluster, duration, peak, ending and log.</p>{}"
      "<svg class=\"chart\" id=\"timeline\" width=\"{}\" height=\"{}\" role=\"img\" "
      "aria-label=\"timeline\">{}</svg>",
      legend(true), kWidth, y + 40, svg);
}

void timeline_aggregated(std::string& html, const HtmlPage& page) {
  auto hosts = page.hosts.size();
  auto t0 = page.bins_from, t1 = page.bins_to;
  const auto& bins = page.occupancy;
  auto axis = axis_to_end(0, t1 - t0);
  auto scale = (kWidth - kLeft - kRight) / (axis.hi - axis.lo);
  auto bin_width = (t1 - t0) / kTimelineBins * scale;
  std::string svg;
  int y = 0;
  std::vector<int> top(hosts);
  for (auto h : by_name(page.hosts)) {
    top[h] = y;
    y += kAreaHeight + kHostGap + 10;
  }
  time_axis(svg, axis, scale, y);
  for (std::size_t h = 0; h < hosts; ++h) {
    double most = 0;
    for (const auto& bin : bins[h]) {
      double sum = 0;
      for (auto v : bin) sum += v;
      most = std::max(most, sum);
    }
    most = std::max(most, 1.0);
    auto name = page.hosts[h].empty() ? std::string("(no host)") : page.hosts[h];
    svg += fmt::format(
        "<text class=\"host\" x=\"4\" y=\"{}\">{}</text><text class=\"tick\" x=\"{}\" y=\"{}\" "
        "text-anchor=\"end\">{:.0f} at once</text><text class=\"tick\" x=\"{}\" y=\"{}\" "
        "text-anchor=\"end\">0</text>",
        top[h] + 11, escaped(name), kLeft - 6, top[h] + 10, most, kLeft - 6, top[h] + kAreaHeight);
    for (std::size_t b = 0; b < bins[h].size(); ++b) {
      double base = 0;
      for (std::size_t k = 0; k < kPageStates.size(); ++k) {
        auto v = bins[h][b][k];
        if (v <= 0) continue;
        auto height = v / most * kAreaHeight;
        svg += fmt::format(
            "<rect class=\"area s-{}\" x=\"{:.2f}\" y=\"{:.2f}\" width=\"{:.2f}\" "
            "height=\"{:.2f}\"><title>{:.1f} {} at once</title></rect>",
            to_string(kPageStates[k]), kLeft + static_cast<double>(b) * bin_width,
            top[h] + kAreaHeight - base - height, bin_width + 0.3, height, v,
            to_string(kPageStates[k]));
        base += height;
      }
    }
  }
  html += fmt::format(
      "<p class=\"note\">{} attempts are too many to draw one by one: the timeline shows, for "
      "each host, how many ran at once in each of {} time bins, by how they ended.</p>{}"
      "<svg class=\"chart\" id=\"timeline\" width=\"{}\" height=\"{}\" role=\"img\" "
      "aria-label=\"timeline\">{}</svg>",
      page.attempts, kTimelineBins, legend(false), kWidth, y + 40, svg);
}

// A vertical axis at the left of a chart `height` high, named `what`; its
// top `top` pixels are left to labels.
void value_axis(std::string& svg, const Axis& axis, int height, const char* what, int top = 0) {
  for (auto v : axis.ticks) {
    auto y = height - (v - axis.lo) / (axis.hi - axis.lo) * (height - top);
    svg += fmt::format(
        "<line class=\"grid\" x1=\"{}\" x2=\"{}\" y1=\"{:.1f}\" y2=\"{:.1f}\"/>"
        "<text class=\"tick\" x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>",
        kLeft, kWidth - kRight, y, y, kLeft - 6, y + 4, tick_text(v));
  }
  svg += fmt::format(
      "<text class=\"label\" transform=\"translate(14,{}) rotate(-90)\" "
      "text-anchor=\"middle\">{}</text>",
      height / 2, what);
}

// The labels of a horizontal axis under a chart kChartHeight high, named `what`.
void bottom_axis(std::string& svg, const Axis& axis, const std::function<double(double)>& x_of,
                 const char* what) {
  for (auto t : axis.ticks)
    svg +=
        fmt::format("<text class=\"tick\" x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                    x_of(t), kChartHeight + 14, tick_text(t));
  svg += fmt::format("<text class=\"label\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                     kLeft + (kWidth - kLeft - kRight) / 2, kChartHeight + 32, what);
}

void limit_line(std::string& svg, const char* cls, const std::string& what, double mib,
                const Axis& axis, int height) {
  if (mib <= 0 || mib > axis.hi) return;
  auto y = height - (mib - axis.lo) / (axis.hi - axis.lo) * height;
  svg += fmt::format(
      "<line class=\"{0}\" x1=\"{1}\" x2=\"{2}\" y1=\"{3:.1f}\" y2=\"{3:.1f}\"/>"
      "<text class=\"{0}-text\" x=\"{2}\" y=\"{4:.1f}\" text-anchor=\"end\">{5} {6}</text>",
      cls, kLeft, kWidth - kRight, y, y - 4, what, mib_text(mib));
}

// One dot per cluster: its cgroup peak filled in its state's colour, its
// largest RSS hollow. Returns what the chart shows, in words.
std::string peak_dots(std::string& svg, const std::vector<ClusterReport>& clusters,
                      const std::function<double(double)>& x_of,
                      const std::function<double(double)>& y_of) {
  for (const auto& c : clusters) {
    auto x = x_of(static_cast<double>(c.cluster));
    auto title = fmt::format(
        "<title>cluster {}: {}{}{}</title>", c.cluster, to_string(c.state),
        c.peak_cgroup_kib ? ", cgroup peak " + mib_text(kib_to_mib(*c.peak_cgroup_kib)) : "",
        c.peak_rss_kib ? ", largest RSS " + mib_text(kib_to_mib(*c.peak_rss_kib)) : "");
    if (c.peak_cgroup_kib)
      svg += fmt::format(
          "<circle class=\"peak cgroup s-{}\" cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3\">{}</circle>",
          to_string(c.state), x, y_of(kib_to_mib(*c.peak_cgroup_kib)), title);
    if (c.peak_rss_kib)
      svg += fmt::format(
          "<circle class=\"peak rss\" cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"2.5\">{}</circle>", x,
          y_of(kib_to_mib(*c.peak_rss_kib)), title);
  }
  return "Each cluster's highest peak over its attempts: filled, all its processes together "
         "(the cgroup's high-water mark, coloured by its state); hollow, the largest RSS of "
         "one process.";
}

// Runs of clusters: the highest peak of each, and their median. Returns
// what the chart shows, in words.
std::string peak_buckets(std::string& svg, const HtmlPage& page,
                         const std::function<double(double)>& x_of,
                         const std::function<double(double)>& y_of) {
  for (const auto& b : page.buckets) {
    auto highest = kib_to_mib(b.highest_kib), median = kib_to_mib(b.median_kib);
    auto x0 = x_of(static_cast<double>(b.from)), x1 = x_of(static_cast<double>(b.to));
    svg += fmt::format(
        "<rect class=\"bucket\" x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.2f}\" height=\"{:.1f}\">"
        "<title>clusters {}-{}: highest {}, median {}</title></rect>"
        "<line class=\"median\" x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{:.1f}\" y2=\"{:.1f}\"/>",
        x0, y_of(highest), std::max(1.0, x1 - x0), kChartHeight - y_of(highest), b.from, b.to,
        mib_text(highest), mib_text(median), x0, std::max(x0 + 1, x1), y_of(median), y_of(median));
  }
  return fmt::format(
      "{} clusters are too many to draw one by one: each bar is a run of {} clusters, as high "
      "as its highest peak, with a line at its median.",
      page.clusters, page.clusters_per_bucket);
}

void memory_per_cluster(std::string& html, const HtmlPage& page) {
  double cap = kib_to_mib(page.largest_cap_kib);
  double budget = page.mem_budget ? static_cast<double>(*page.mem_budget) / (1024.0 * 1024.0) : 0;
  double top = std::max({cap, budget, kib_to_mib(page.highest_kib)});
  if (page.clusters == 0 || top <= 0) {
    html += "<p>No peaks recorded yet.</p>";
    return;
  }
  auto y_axis = nice_axis(0, top * 1.05, 6);
  auto x_axis = nice_axis(0, static_cast<double>(page.last_cluster), 10);
  auto x_of = [&](double cluster) {
    return kLeft + (cluster - x_axis.lo) / (x_axis.hi - x_axis.lo) * (kWidth - kLeft - kRight);
  };
  auto y_of = [&](double mib) { return kChartHeight - mib / y_axis.hi * kChartHeight; };
  std::string svg;
  value_axis(svg, y_axis, kChartHeight, "peak, MiB");
  bottom_axis(svg, x_axis, x_of, "cluster");
  // The cap and the budget first, so that the dots are drawn over them: a
  // cluster killed at its cap has its dot on the cap's line.
  limit_line(svg, "cap", "cap", cap, y_axis, kChartHeight);
  limit_line(svg, "budget", "budget", budget, y_axis, kChartHeight);
  auto note = page.clusters_detailed ? peak_dots(svg, page.each_cluster, x_of, y_of)
                                     : peak_buckets(svg, page, x_of, y_of);
  html += fmt::format(
      "<p>{}</p><svg class=\"chart\" id=\"memory\" width=\"{}\" height=\"{}\" role=\"img\" "
      "aria-label=\"peak memory per cluster\">{}</svg>",
      note, kWidth, kChartHeight + 40, svg);
}

// A line at min, median, p95 and max, each named in a row of its own in the
// band above the bars.
void peak_marks(std::string& svg, const PeakStats& stats,
                const std::function<double(double)>& x_of) {
  auto plot = kWidth - kLeft - kRight;
  int row = 0;
  for (auto [name, kib] : {std::pair{"min", stats.min_kib}, std::pair{"median", stats.median_kib},
                           std::pair{"p95", stats.p95_kib}, std::pair{"max", stats.max_kib}}) {
    auto x = x_of(kib_to_mib(kib));
    bool right = x > kLeft + 0.75 * plot;  // its label goes to the left of the line
    svg += fmt::format(
        "<line class=\"mark\" x1=\"{0:.1f}\" x2=\"{0:.1f}\" y1=\"0\" y2=\"{1}\"/>"
        "<text class=\"mark-text\" x=\"{2:.1f}\" y=\"{3}\" text-anchor=\"{4}\">{5} {6}</text>",
        x, kChartHeight, right ? x - 3 : x + 3, kMarkRow * ++row - 2, right ? "end" : "start", name,
        mib_text(kib_to_mib(kib)));
  }
}

// The P advice of the text report, for a budget.
std::string advice_text(const PeakStats& stats, std::uint64_t budget) {
  auto p = advised_parallel(stats, budget);
  if (p == 0)
    return fmt::format(" With a {} budget no P fits: the p95 peak is larger.",
                       format_size_kib(budget / 1024));
  return fmt::format(" With a {} budget, P = {} keeps {} clusters at the p95 peak within it.",
                     format_size_kib(budget / 1024), p, p);
}

void peak_distribution(std::string& html, const HtmlPage& page) {
  const auto& stats = page.peaks;
  if (stats.clusters == 0) return;
  const auto& x_axis = page.peak_axis;
  const auto& counts = page.peak_counts;
  auto most = static_cast<double>(*std::max_element(counts.begin(), counts.end()));
  auto y_axis = nice_axis(0, most, 5);
  auto plot = kWidth - kLeft - kRight;
  auto x_of = [&](double mib) {
    return kLeft + (mib - x_axis.lo) / (x_axis.hi - x_axis.lo) * plot;
  };
  std::string svg;
  // The bars stay below the band where min, median, p95 and max are named.
  const int bars = kChartHeight - kMarkBand;
  value_axis(svg, y_axis, kChartHeight, "clusters", kMarkBand);
  auto bin = (x_axis.hi - x_axis.lo) / kPeakBins;
  for (std::size_t b = 0; b < counts.size(); ++b) {
    if (counts[b] == 0) continue;
    auto h = static_cast<double>(counts[b]) / y_axis.hi * bars;
    svg += fmt::format(
        "<rect class=\"hist\" x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\">"
        "<title>{} cluster(s) peaked at {}-{}</title></rect>",
        x_of(x_axis.lo + static_cast<double>(b) * bin) + 0.5, kChartHeight - h,
        plot / static_cast<double>(kPeakBins) - 1, h, counts[b],
        mib_text(x_axis.lo + static_cast<double>(b) * bin),
        mib_text(x_axis.lo + static_cast<double>(b + 1) * bin));
  }
  bottom_axis(svg, x_axis, x_of, "peak, MiB");
  peak_marks(svg, stats, x_of);
  html += fmt::format(
      "<p>How the peaks of {} clusters spread: min {}, median {}, p95 {}, max {}.{}</p>"
      "<svg class=\"chart\" id=\"peaks\" width=\"{}\" height=\"{}\" role=\"img\" "
      "aria-label=\"distribution of peaks\">{}</svg>",
      stats.clusters, format_size_kib(stats.min_kib), format_size_kib(stats.median_kib),
      format_size_kib(stats.p95_kib), format_size_kib(stats.max_kib),
      page.mem_budget ? advice_text(stats, *page.mem_budget) : "", kWidth, kChartHeight + 40, svg);
}

void numbers(std::string& html, const HtmlPage& page) {
  const auto& f = page.run;
  const auto& by_state = page.by_state;
  std::string states;
  for (std::size_t i = 0; i < kPageStates.size(); ++i)
    states += fmt::format(
        "<tr><td><i class=\"swatch\" style=\"background:{}\"></i>{}</td><td "
        "class=\"n\">{}</td></tr>",
        kColours[i], to_string(kPageStates[i]), by_state[i]);
  auto pending = page.job.clusters - std::min<std::uint64_t>(page.job.clusters, page.clusters);
  html += fmt::format(
      "<table class=\"numbers\"><tr><th>makespan</th><td class=\"n\" id=\"makespan\">{}</td></tr>"
      "<tr><th>lower bound</th><td class=\"n\" id=\"lower-bound\">{}</td></tr>"
      "<tr><th>makespan ÷ lower bound</th><td class=\"n\">{:.2f}</td></tr>"
      "<tr><th>attempts</th><td class=\"n\">{}</td></tr>"
      "<tr><th>most at once</th><td class=\"n\">{}</td></tr></table>"
      "<p class=\"note\">The lower bound is max(total work ÷ P, longest attempt) from the "
      "recorded durations, P being the most attempts the log shows running at once: no order "
      "of these attempts could have ended sooner.</p>"
      "<table class=\"numbers\"><tr><th colspan=\"2\">clusters by their latest attempt</th></tr>"
      "{}<tr><td>never started</td><td class=\"n\">{}</td></tr></table>",
      seconds_text(f.makespan), seconds_text(f.lower_bound),
      f.lower_bound > 0 ? f.makespan / f.lower_bound : 0.0, page.attempts, f.most_at_once, states,
      pending);
  if (page.failures.empty()) return;
  std::string rows;
  for (const auto& x : page.failures) {
    auto ending = x.signal      ? "killed by " + signal_name(*x.signal)
                  : x.exit_code ? fmt::format("exit code {}", *x.exit_code)
                                : std::string("-");
    rows += fmt::format(
        "<tr class=\"s-{}\"><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td>"
        "<td class=\"n\">{}</td><td class=\"note\">{}</td><td class=\"path\">{}</td></tr>",
        to_string(x.state), x.cluster, x.attempt, to_string(x.state), escaped(ending),
        x.peak_kib ? format_size_kib(x.peak_kib) : "", escaped(x.note), escaped(x.log_path));
  }
  html += fmt::format(
      "<h3>Failures ({})</h3><div class=\"wide\"><table class=\"failures\"><tr><th>cluster</th>"
      "<th>attempt</th><th>state</th><th>ending</th><th>peak</th><th>note</th><th>log</th></tr>"
      "{}</table></div>{}",
      page.failures_total, rows,
      page.failures_total > page.failures.size()
          ? fmt::format(
                "<p class=\"note\">The first {} of {} are shown; <code>runner status</code> "
                "and the <code>attempts</code> view have them all.</p>",
                page.failures.size(), page.failures_total)
          : "");
}

// An instant for the reader: local time with its offset, as the machine
// that made the page keeps it; the UTC instant in the element for programs.
std::string time_element(double t) {
  return fmt::format("<time datetime=\"{}\">{}</time>", utc_time(t), local_time(t));
}

// When the job ran, from its first start to its last end (over every run).
std::string when_text(const RunFigures& f) {
  if (f.first_start <= 0) return "";
  return fmt::format(" It ran from {} to {}.", time_element(f.first_start),
                     time_element(f.last_end));
}

constexpr const char* kStyle = R"CSS(
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; margin: 24px auto; max-width: 1140px; padding: 0 12px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 6px; border-bottom: 1px solid #ddd; }
h3 { font-size: 15px; } code { background: #f3f3f3; padding: 0 3px; }
.sub, .note { color: #555; } time { white-space: nowrap; } .chart { display: block; overflow: visible; }
.grid { stroke: #e6e6e6; } .tick { font-size: 11px; fill: #555; } .label { font-size: 12px; fill: #333; }
.host { font-size: 12px; font-weight: 600; fill: #222; }
.s-done { fill: #009E73; } .s-failed { fill: #D55E00; } .s-oom { fill: #CC79A7; }
.s-timeout { fill: #E69F00; } .s-interrupted { fill: #999999; } .s-running { fill: #56B4E9; }
.bar:hover, .peak:hover { stroke: #000; stroke-width: 1; }
.peak.rss { fill: none; stroke: #0072B2; stroke-width: 1; }
.bucket { fill: #0072B2; opacity: .55; } .median { stroke: #000; stroke-width: 1.5; } .hist { fill: #0072B2; }
.cap { stroke: #D55E00; stroke-dasharray: 6 3; stroke-width: 1.5; } .cap-text { fill: #D55E00; font-size: 11px; }
.budget { stroke: #000; stroke-dasharray: 2 3; stroke-width: 1.5; } .budget-text { fill: #000; font-size: 11px; }
.mark { stroke: #000; stroke-width: 1; stroke-dasharray: 3 2; } .mark-text { font-size: 11px; fill: #000; }
.legend { margin: 6px 0; } .key { margin-right: 14px; white-space: nowrap; user-select: none; }
.key.toggle { cursor: pointer; } .key.off { opacity: .35; }
.key i, .swatch { display: inline-block; width: 12px; height: 12px; margin-right: 5px; vertical-align: -1px; }
table { border-collapse: collapse; margin: 8px 0; } th, td { padding: 3px 10px; text-align: left; border-bottom: 1px solid #eee; }
td.n { text-align: right; font-variant-numeric: tabular-nums; } td.path { font-family: monospace; font-size: 12px; }
.numbers { display: inline-table; vertical-align: top; margin-right: 40px; }
.wide { overflow-x: auto; } .failures td, .failures th { white-space: nowrap; }
.failures td.note { white-space: normal; min-width: 18em; }
)CSS";

// Clicking a state in the legend fades its bars, to see the others; errors
// are noted on the page itself, where a reader (or a test) can see them.
constexpr const char* kScript = R"JS(
document.querySelectorAll('.key.toggle').forEach(function (key) {
  key.addEventListener('click', function () {
    var off = key.classList.toggle('off');
    document.querySelectorAll('#timeline .bar.s-' + key.dataset.state).forEach(function (bar) {
      bar.style.opacity = off ? '0.1' : '';
    });
  });
});
document.body.dataset.ready = 'yes';
)JS";

}  // namespace

std::string render_html_page(const HtmlPage& page) {
  const auto& f = page.run;
  std::string body;
  body += fmt::format(
      "<h1>runner: job {}</h1><p class=\"sub\"><code>{}</code>, {} clusters.{} {}</p>",
      escaped(page.job.name), escaped(page.job.command), page.job.clusters, when_text(f),
      page.running ? "The job is still running: this is what the log held when the page was made."
                   : "");
  body += "<h2>The run in numbers</h2>";
  numbers(body, page);
  body += "<h2>Timeline</h2>";
  if (page.attempts == 0)
    body += "<p>No attempt recorded yet.</p>";
  else if (page.attempts_detailed)
    timeline_detailed(body, page);
  else
    timeline_aggregated(body, page);
  body += "<h2>Peak memory per cluster</h2>";
  memory_per_cluster(body, page);
  body += "<h2>How the peaks spread</h2>";
  peak_distribution(body, page);
  return fmt::format(
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
      "<title>runner: {}</title><style>{}</style>"
      "<script>window.addEventListener('error', function (e) {{ document.documentElement"
      ".dataset.scriptError = String(e.message); }});</script></head>"
      "<body>{}<p class=\"note\">Made by runner report --html from {} attempts at {}.</p>"
      "<script>{}</script></body></html>\n",
      escaped(page.job.name), kStyle, body, page.attempts, time_element(page.now), kScript);
}

// The page from attempts and clusters in memory, folded as the log's are.
std::string render_html_report(const HtmlReportInput& in) {
  const auto& spans = in.attempts.spans;
  HtmlPageFrame frame{in.job, in.now, in.mem_budget, spans.size(), in.clusters.size()};
  frame.largest_cap_kib = in.attempts.largest_cap_kib;
  if (!spans.empty()) frame.first_start = spans.front().started_at;
  for (const auto& s : spans) {
    frame.first_start = std::min(frame.first_start, s.started_at);
    frame.last_end = std::max(frame.last_end, attempt_end(s, in.now));
    if (attempt_end(s, in.now) < s.started_at)
      frame.backward.emplace_back(attempt_end(s, in.now), s.started_at);
  }
  HtmlPageFold fold(std::move(frame));
  static const std::string kNoLog;
  for (std::size_t i = 0; i < spans.size(); ++i)
    fold.add_attempt(spans[i], in.attempts.hosts,
                     i < in.attempts.log_paths.size() ? in.attempts.log_paths[i] : kNoLog);
  std::vector<std::uint64_t> peaks;
  for (const auto& c : in.clusters) {
    fold.add_cluster(c);
    if (judged_peak_kib(c) > 0) peaks.push_back(judged_peak_kib(c));
  }
  std::sort(peaks.begin(), peaks.end());
  for (auto kib : peaks) fold.add_peak(kib);
  return render_html_page(std::move(fold).finish(in.failures, in.failures_total));
}

int write_html_report(const ReportArgs& args) {
  Store store(args.db, Store::Access::kReadOnly);
  std::optional<Job> job;
  auto jobs = store.jobs();
  for (auto& j : jobs)
    if (!args.job || j.name == *args.job) job = j;  // without --job, the newest
  if (!job)
    throw Error(args.job ? fmt::format("--job {}: no such job in {}", *args.job, args.db.string())
                         : fmt::format("--html: no job in {} yet", args.db.string()));
  auto page = render_html_page(read_html_page(store, *job, wall_clock_now(), args.mem_budget));
  // Written whole, then renamed over the file: a reader never sees half a page.
  const auto& path = *args.html;
  try {
    write_whole(path, page);
  } catch (const std::system_error& e) {
    throw Error(
        fmt::format("--html {}: cannot write there: {}", path.string(), e.code().message()));
  }
  fmt::print("{}\n", path.string());
  return 0;
}

}  // namespace runner
