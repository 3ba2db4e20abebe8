// `runner report`: what each cluster of a job needed, and what that means for
// how many can run at once under a memory budget.
#pragma once

#include <cstdint>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>
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
