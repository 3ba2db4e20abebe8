// `runner report --html FILE`: one self-contained page (inline SVG and CSS,
// no network) that shows how a job ran: a timeline of its attempts by slot
// and host, its memory per cluster and the spread of its peaks, and its
// numbers. The layout is computed here from what the log holds, apart from
// the drawing, so that it can be checked without a browser.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "runner/cli.h"
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

// Counts of values in `bins` equal bins from lo to hi (the last bin holds hi).
std::vector<std::uint64_t> histogram(const std::vector<double>& values, double lo, double hi,
                                     std::size_t bins);

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

// Writes the page of one job to `path` (through a temporary file and a
// rename: never half a page). Returns 0.
int write_html_report(const ReportArgs& args);

}  // namespace runner
