// `runner report --html FILE`: one self-contained page (inline SVG and CSS,
// no network) that shows how a job ran: a timeline of its attempts by slot
// and host, its memory per cluster and the spread of its peaks, and its
// numbers. The layout is computed here from what the log holds, apart from
// the drawing, so that it can be checked without a browser; what the log
// holds is read one attempt and one cluster at a time (HtmlPageFold), so
// that the page of a million attempts takes a few MB to make.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "runner/cli.h"
#include "runner/report.h"
#include "runner/store.h"

namespace runner {

// Above this many attempts (or clusters), the page draws aggregates: how
// many ran at once in time bins, peaks by runs of clusters. It says so.
constexpr std::size_t kHtmlDetailLimit = 5000;
constexpr std::size_t kTimelineBins = 300;
constexpr std::size_t kClusterBuckets = 400;
constexpr std::size_t kPeakBins = 40;

// The states in the order the page lists them.
constexpr std::array<AttemptState, 6> kPageStates = {
    AttemptState::kDone,    AttemptState::kFailed,      AttemptState::kOom,
    AttemptState::kTimeout, AttemptState::kInterrupted, AttemptState::kRunning};
std::size_t page_state_index(AttemptState state);

// An axis from lo to hi with round ticks (1, 2 or 5 times a power of ten).
struct Axis {
  double lo = 0, hi = 1;
  std::vector<double> ticks;
};
Axis nice_axis(double lo, double hi, int most_ticks = 8);
// The same ticks, but the axis ends at hi itself: a time axis ends where the
// run did, not at the next round number.
Axis axis_to_end(double lo, double hi, int most_ticks = 8);

// The height of a slot's lane in the timeline: the lanes share at least
// kTimelineMinHeight pixels, each 14 to 28 high.
constexpr int kTimelineMinHeight = 240;
int lane_height(std::size_t lanes);

// Slots reconstructed from the log: on each host, an attempt takes the
// lowest lane free when it starts (spans by start time; a running one ends
// at `now`).
struct Lanes {
  std::vector<std::uint32_t> lane_of;        // per span, within its host
  std::vector<std::uint32_t> lanes_of_host;  // per host
};
Lanes assign_lanes(const std::vector<AttemptSpan>& spans, std::size_t hosts, double now);

// How many attempts ran at once, on average over each of `bins` equal time
// bins from t0 to t1, per host and by state.
using Occupancy = std::vector<std::vector<std::array<double, kPageStates.size()>>>;
Occupancy occupancy(const std::vector<AttemptSpan>& spans, std::size_t hosts, double t0, double t1,
                    std::size_t bins, double now);
// The same, one attempt at a time, in any order (each host's row is made by
// its first attempt); the bins' time is known from the outset.
class OccupancyFold {
 public:
  OccupancyFold(double t0, double t1, std::size_t bins, double now);
  void add(const AttemptSpan& s);
  // With a row for each of `hosts` at least.
  Occupancy take(std::size_t hosts) &&;

 private:
  double t0_, t1_, now_;
  std::size_t bins_;
  Occupancy rows_;
};

// Counts of values in `bins` equal bins from lo to hi (the last bin holds hi).
std::vector<std::uint64_t> histogram(const std::vector<double>& values, double lo, double hi,
                                     std::size_t bins);
// The bin of one value among them; none outside lo to hi.
std::optional<std::size_t> histogram_bin(double value, double lo, double hi, std::size_t bins);

// The charts' unit.
double kib_to_mib(std::uint64_t kib);

// The axis of the spread of peaks, from a little below the smallest to a
// little above the largest.
Axis peak_axis(std::uint64_t min_kib, std::uint64_t max_kib);

struct HtmlReportInput {
  Job job;
  AttemptSpans attempts;
  std::vector<ClusterReport> clusters;
  std::vector<FailedCluster> failures;  // the first few
  std::uint64_t failures_total = 0;
  std::optional<std::uint64_t> mem_budget;  // bytes, for the line and the advice
  double now = 0;                           // seconds since the epoch: where running ones end
};

std::string render_html_report(const HtmlReportInput& in);

// A run of clusters in the memory chart of a job with too many of them to
// draw one by one: the highest of their peaks (judged_peak_kib) and their median.
struct PeakBucket {
  ClusterId from = 0, to = 0;
  std::uint64_t highest_kib = 0, median_kib = 0;
};

// Everything the page draws. It holds each attempt and each cluster only up
// to kHtmlDetailLimit of them; above, the aggregates drawn instead: its size
// does not grow with the job's.
struct HtmlPage {
  Job job;
  double now = 0;
  std::optional<std::uint64_t> mem_budget;
  std::uint64_t attempts = 0;
  bool running = false;  // some attempt was still running
  RunFigures run;
  std::vector<std::string> hosts;
  // The timeline: each attempt with its log (`attempts_detailed`), or how
  // many ran at once in kTimelineBins from `bins_from` to `bins_to`.
  bool attempts_detailed = true;
  std::vector<AttemptSpan> spans;
  std::vector<std::string> log_paths;
  Occupancy occupancy;
  double bins_from = 0, bins_to = 0;
  // The clusters that ran, by their latest attempt, and their peaks: each
  // one (`clusters_detailed`), or runs of `clusters_per_bucket` of them.
  std::uint64_t clusters = 0;
  bool clusters_detailed = true;
  std::array<std::uint64_t, kPageStates.size()> by_state{};
  ClusterId last_cluster = 0;
  std::uint64_t highest_kib = 0;  // the highest peak of either kind
  std::uint64_t largest_cap_kib = 0;
  std::vector<ClusterReport> each_cluster;
  std::vector<PeakBucket> buckets;
  std::size_t clusters_per_bucket = 1;
  PeakStats peaks;
  Axis peak_axis;
  std::vector<std::uint64_t> peak_counts;  // kPeakBins of peak_axis
  std::vector<FailedCluster> failures;     // the first few
  std::uint64_t failures_total = 0;
};
std::string render_html_page(const HtmlPage& page);

// What the page must know before it reads a job's attempts and clusters one
// by one: how many there are, and the time they span.
struct HtmlPageFrame {
  Job job;
  double now = 0;
  std::optional<std::uint64_t> mem_budget;
  std::uint64_t attempts = 0, clusters = 0;
  double first_start = 0, last_end = 0;  // as run_figures has them
  std::uint64_t largest_cap_kib = 0;
  std::vector<std::pair<double, double>> backward;  // for RunFold
};

// The page folded from the log: every attempt by start time, then every
// cluster that ran by number, then the clusters' peaks above 0 (judged_peak_kib)
// smallest first, as the Store hands them one at a time.
class HtmlPageFold {
 public:
  explicit HtmlPageFold(HtmlPageFrame frame);
  void add_attempt(const AttemptSpan& span, const std::vector<std::string>& hosts,
                   const std::string& log_path);
  void add_cluster(const ClusterReport& c);
  void add_peak(std::uint64_t kib);
  HtmlPage finish(std::vector<FailedCluster> failures, std::uint64_t failures_total) &&;

 private:
  void close_bucket();

  HtmlPage page_;
  std::uint64_t frame_clusters_;
  RunFold run_;
  std::optional<OccupancyFold> occupancy_;  // above kHtmlDetailLimit attempts
  std::vector<std::uint64_t> bucket_;       // the peaks of the bucket being filled
  std::uint64_t peaks_ = 0, min_peak_kib_ = 0, max_peak_kib_ = 0;  // of those above 0
  std::optional<PeakStatsFold> spread_;                            // from the first peak on
};

// The page of one job as the log holds it now, read in one snapshot.
HtmlPage read_html_page(Store& store, const Job& job, double now,
                        std::optional<std::uint64_t> mem_budget);

// Writes the page of one job to `path` (through a temporary file and a
// rename: never half a page). Returns 0.
int write_html_report(const ReportArgs& args);

}  // namespace runner
