// The figures of `runner report --html`, folded from the log one attempt and
// one cluster at a time: the page of a million attempts is read in one pass
// without holding them (html_report.cpp draws it).
#include <algorithm>

#include "runner/html_report.h"

namespace runner {

double kib_to_mib(std::uint64_t kib) {
  return static_cast<double>(kib) / 1024;
}

OccupancyFold::OccupancyFold(double t0, double t1, std::size_t bins, double now)
    : t0_(t0), t1_(t1), now_(now), bins_(bins) {}

void OccupancyFold::add(const AttemptSpan& s) {
  if (rows_.size() <= s.host)
    rows_.resize(s.host + 1, std::vector<std::array<double, kPageStates.size()>>(bins_));
  if (bins_ == 0 || !(t1_ > t0_)) return;
  auto width = (t1_ - t0_) / static_cast<double>(bins_);
  auto from = std::clamp(s.started_at, t0_, t1_), to = std::clamp(attempt_end(s, now_), t0_, t1_);
  auto state = page_state_index(s.state);
  auto first = std::min(bins_ - 1, static_cast<std::size_t>((from - t0_) / width));
  auto last = std::min(bins_ - 1, static_cast<std::size_t>((to - t0_) / width));
  for (auto b = first; b <= last; ++b) {
    auto lo = t0_ + static_cast<double>(b) * width, hi = lo + width;
    auto overlap = std::min(hi, to) - std::max(lo, from);
    if (overlap > 0) rows_[s.host][b][state] += overlap / width;
  }
}

Occupancy OccupancyFold::take(std::size_t hosts) && {
  if (rows_.size() < hosts)
    rows_.resize(hosts, std::vector<std::array<double, kPageStates.size()>>(bins_));
  return std::move(rows_);
}

Occupancy occupancy(const std::vector<AttemptSpan>& spans, std::size_t hosts, double t0, double t1,
                    std::size_t bins, double now) {
  OccupancyFold fold(t0, t1, bins, now);
  for (const auto& s : spans) fold.add(s);
  return std::move(fold).take(hosts);
}

std::optional<std::size_t> histogram_bin(double value, double lo, double hi, std::size_t bins) {
  if (bins == 0 || value < lo || value > hi) return std::nullopt;
  auto width = hi > lo ? (hi - lo) / static_cast<double>(bins) : 1.0;
  return std::min(bins - 1, static_cast<std::size_t>((value - lo) / width));
}

std::vector<std::uint64_t> histogram(const std::vector<double>& values, double lo, double hi,
                                     std::size_t bins) {
  std::vector<std::uint64_t> counts(bins, 0);
  for (auto v : values)
    if (auto b = histogram_bin(v, lo, hi, bins)) ++counts[*b];
  return counts;
}

Axis peak_axis(std::uint64_t min_kib, std::uint64_t max_kib) {
  auto spread = kib_to_mib(max_kib - min_kib);
  return nice_axis(std::max(0.0, kib_to_mib(min_kib) - 0.05 * spread - 0.05),
                   kib_to_mib(max_kib) + 0.05 * spread + 0.05, 10);
}

HtmlPageFold::HtmlPageFold(HtmlPageFrame frame)
    : frame_clusters_(frame.clusters), run_(frame.now, frame.backward) {
  page_.job = std::move(frame.job);
  page_.now = frame.now;
  page_.mem_budget = frame.mem_budget;
  page_.largest_cap_kib = frame.largest_cap_kib;
  page_.attempts_detailed = frame.attempts <= kHtmlDetailLimit;
  if (!page_.attempts_detailed) {
    // The bins end where the run did (at least a moment after its start).
    page_.bins_from = frame.first_start;
    page_.bins_to = frame.first_start + std::max(frame.last_end - frame.first_start, 1e-3);
    occupancy_.emplace(page_.bins_from, page_.bins_to, kTimelineBins, frame.now);
  }
  page_.clusters_detailed = frame.clusters <= kHtmlDetailLimit;
  page_.clusters_per_bucket =
      std::max<std::size_t>(1, (frame.clusters + kClusterBuckets - 1) / kClusterBuckets);
}

void HtmlPageFold::add_attempt(const AttemptSpan& span, const std::vector<std::string>& hosts,
                               const std::string& log_path) {
  ++page_.attempts;
  page_.running = page_.running || span.state == AttemptState::kRunning;
  run_.add(span);
  if (hosts.size() > page_.hosts.size()) page_.hosts = hosts;
  if (occupancy_) {
    occupancy_->add(span);
    return;
  }
  page_.spans.push_back(span);
  page_.log_paths.push_back(log_path);
}

void HtmlPageFold::add_cluster(const ClusterReport& c) {
  ++page_.clusters;
  ++page_.by_state[page_state_index(c.state)];
  page_.last_cluster = c.cluster;
  page_.highest_kib =
      std::max({page_.highest_kib, c.peak_rss_kib.value_or(0), c.peak_cgroup_kib.value_or(0)});
  auto kib = judged_peak_kib(c);
  if (kib > 0) {
    min_peak_kib_ = peaks_++ == 0 ? kib : std::min(min_peak_kib_, kib);
    max_peak_kib_ = std::max(max_peak_kib_, kib);
  }
  if (page_.clusters_detailed) {
    page_.each_cluster.push_back(c);
    return;
  }
  if (bucket_.empty()) page_.buckets.push_back(PeakBucket{c.cluster, c.cluster, 0, 0});
  page_.buckets.back().to = c.cluster;
  bucket_.push_back(kib);
  if (bucket_.size() == page_.clusters_per_bucket) close_bucket();
}

void HtmlPageFold::close_bucket() {
  if (bucket_.empty()) return;
  std::sort(bucket_.begin(), bucket_.end());
  page_.buckets.back().highest_kib = bucket_.back();
  page_.buckets.back().median_kib = bucket_[bucket_.size() / 2];
  bucket_.clear();
}

void HtmlPageFold::add_peak(std::uint64_t kib) {
  // By the first peak every cluster was read: how many peaks there are, and
  // their range, are known.
  if (!spread_) {
    spread_.emplace(peaks_);
    page_.peak_axis = peak_axis(min_peak_kib_, max_peak_kib_);
    page_.peak_counts.assign(kPeakBins, 0);
  }
  spread_->add(kib);
  const auto& axis = page_.peak_axis;
  if (auto bin = histogram_bin(kib_to_mib(kib), axis.lo, axis.hi, kPeakBins))
    ++page_.peak_counts[*bin];
}

HtmlPage HtmlPageFold::finish(std::vector<FailedCluster> failures,
                              std::uint64_t failures_total) && {
  close_bucket();
  page_.run = run_.figures();
  if (occupancy_) page_.occupancy = std::move(*occupancy_).take(page_.hosts.size());
  if (spread_) page_.peaks = spread_->stats();
  page_.failures = std::move(failures);
  page_.failures_total = failures_total;
  return std::move(page_);
}

HtmlPage read_html_page(Store& store, const Job& job, double now,
                        std::optional<std::uint64_t> mem_budget) {
  Store::Snapshot snapshot(store);
  auto totals = store.attempt_totals(job);
  HtmlPageFrame frame{job,
                      now,
                      mem_budget,
                      totals.attempts,
                      totals.clusters,
                      totals.first_start,
                      0,
                      totals.largest_cap_kib,
                      std::move(totals.backward)};
  // Where the last attempt ended, as run_figures has it: one still running ends now.
  frame.last_end =
      std::max({0.0, totals.last_end.value_or(0),
                totals.last_open_start ? std::max(now, *totals.last_open_start) : 0.0});
  HtmlPageFold fold(std::move(frame));
  store.each_attempt_span(
      job, totals.attempts <= kHtmlDetailLimit,
      [&](const AttemptSpan& span, const std::vector<std::string>& hosts,
          const std::string& log_path) { fold.add_attempt(span, hosts, log_path); });
  store.each_cluster_report(job, [&](const ClusterReport& c) { fold.add_cluster(c); });
  store.each_cluster_peak(job, [&](std::uint64_t kib) { fold.add_peak(kib); });
  constexpr std::size_t kFailuresShown = 200;
  auto failures = store.failed_clusters(job, kFailuresShown);
  auto failures_total =
      failures.size() < kFailuresShown ? failures.size() : store.failed_count(job);
  return std::move(fold).finish(std::move(failures), failures_total);
}

}  // namespace runner
