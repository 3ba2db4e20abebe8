// `runner report`: what each cluster of a job needed, and what that means for
// how many can run at once under a memory budget.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <queue>
#include <utility>
#include <vector>

#include "runner/cli.h"
#include "runner/store.h"

namespace runner {

// The peak a cluster's need is judged by: the cgroup's where there was one
// (it counts shared pages once), else the process tree's RSS peak.
std::uint64_t judged_peak_kib(const ClusterReport& c);

struct PeakStats {
  std::size_t clusters = 0;  // with a peak recorded
  std::uint64_t min_kib = 0, median_kib = 0, p95_kib = 0, max_kib = 0;
};
PeakStats peak_stats(const std::vector<ClusterReport>& clusters);
// The same figures from the peaks above 0 read in ascending order, once how
// many there are is known: nothing is kept per cluster.
class PeakStatsFold {
 public:
  explicit PeakStatsFold(std::size_t peaks);
  void add(std::uint64_t kib);
  const PeakStats& stats() const { return stats_; }

 private:
  PeakStats stats_;
  std::size_t seen_ = 0, median_rank_ = 0, p95_rank_ = 0;  // ranks count from 1
};

// The highest P for which P clusters at the p95 peak fit in the budget; 0 if
// not even one does.
std::uint64_t advised_parallel(const PeakStats& stats, std::uint64_t budget_bytes);

// Where an attempt's span ends: its end, or for one still running, `now`.
double attempt_end(const AttemptSpan& s, double now);

// The run as a whole: its makespan beside the lower bound its recorded
// durations allow, max(total work / P, longest attempt), P being the most
// attempts the log shows running at once.
struct RunFigures {
  double first_start = 0, last_end = 0;
  double makespan = 0, total_work = 0, longest = 0, lower_bound = 0;
  std::uint32_t most_at_once = 0;
};
RunFigures run_figures(const std::vector<AttemptSpan>& spans, double now);
// The same figures folded one attempt at a time in the order of their starts
// (as Store::each_attempt_span hands them), keeping only the ends of those
// running at the moment. An attempt recorded as ending before it started (the
// clock was set back) counts as -1 running from its end to its start, as the
// rest of the run sees it: those must be known from the outset, as (end,
// start) pairs (Store::AttemptTotals::backward).
class RunFold {
 public:
  explicit RunFold(double now, const std::vector<std::pair<double, double>>& backward = {});
  void add(const AttemptSpan& s);
  RunFigures figures() const;

 private:
  double now_;
  RunFigures run_;
  bool empty_ = true;
  std::priority_queue<double, std::vector<double>, std::greater<>> running_ends_;
  std::vector<double> backward_ends_, backward_starts_;    // each in ascending order
  std::size_t backward_ended_ = 0, backward_started_ = 0;  // those up to the latest start
};

// The run's makespan beside the lower bound its recorded durations allow.
std::string makespan_text(const RunFigures& run);
void write_report_text(std::FILE* out, const Job& job, const std::vector<ClusterReport>& clusters,
                       std::optional<std::uint64_t> budget_bytes, const RunFigures& run);
void write_report_csv_header(std::FILE* out);
void write_report_csv(std::FILE* out, const Job& job, const std::vector<ClusterReport>& clusters);
// The report of one job as JSON; a figure never recorded is null.
nlohmann::json report_json(const Job& job, const std::vector<ClusterReport>& clusters,
                           std::optional<std::uint64_t> budget_bytes, const RunFigures& run);

}  // namespace runner
