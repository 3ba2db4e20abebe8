#include "runner/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "runner/app.h"
#include "runner/error.h"
#include "runner/html_report.h"
#include "runner/json_text.h"
#include "runner/sysinfo.h"
#include "runner/units.h"
#include "runner/words.h"

namespace runner {
namespace {

constexpr std::size_t kHeaviest = 10;

double mib(std::uint64_t kib) {
  return static_cast<double>(kib) / 1024;
}

std::vector<const ClusterReport*> heaviest(const std::vector<ClusterReport>& clusters) {
  std::vector<const ClusterReport*> out;
  out.reserve(clusters.size());
  for (const auto& c : clusters) out.push_back(&c);
  auto n = std::min(kHeaviest, out.size());
  std::partial_sort(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(n), out.end(),
                    [](auto* a, auto* b) { return judged_peak_kib(*a) > judged_peak_kib(*b); });
  out.resize(n);
  return out;
}

std::string mib_text(std::optional<std::uint64_t> kib) {
  return kib ? fmt::format("{:.1f}", mib(*kib)) : "";
}

std::string duration_text(const ClusterReport& c) {
  return c.duration_s ? fmt::format("{:.3f}", *c.duration_s) : "";
}

}  // namespace

std::uint64_t judged_peak_kib(const ClusterReport& c) {
  return c.peak_cgroup_kib.value_or(c.peak_rss_kib.value_or(0));
}

PeakStats peak_stats(const std::vector<ClusterReport>& clusters) {
  std::vector<std::uint64_t> peaks;
  for (const auto& c : clusters)
    if (judged_peak_kib(c) > 0) peaks.push_back(judged_peak_kib(c));
  PeakStats s;
  s.clusters = peaks.size();
  if (peaks.empty()) return s;
  std::sort(peaks.begin(), peaks.end());
  // Nearest-rank percentiles: always a peak some cluster really had.
  auto rank = [&](double p) {
    auto i = static_cast<std::size_t>(std::ceil(p * static_cast<double>(peaks.size())));
    return peaks[std::clamp<std::size_t>(i, 1, peaks.size()) - 1];
  };
  s.min_kib = peaks.front();
  s.median_kib = rank(0.5);
  s.p95_kib = rank(0.95);
  s.max_kib = peaks.back();
  return s;
}

std::uint64_t advised_parallel(const PeakStats& stats, std::uint64_t budget_bytes) {
  if (stats.p95_kib == 0) return 0;
  return budget_bytes / (stats.p95_kib * 1024);
}

double attempt_end(const AttemptSpan& s, double now) {
  return s.finished_at > 0 ? s.finished_at : std::max(now, s.started_at);
}

RunFigures run_figures(const std::vector<AttemptSpan>& spans, double now) {
  RunFigures f;
  if (spans.empty()) return f;
  f.first_start = spans.front().started_at;
  std::vector<std::pair<double, int>> edges;
  edges.reserve(2 * spans.size());
  for (const auto& s : spans) {
    auto end = attempt_end(s, now);
    f.first_start = std::min(f.first_start, s.started_at);
    f.last_end = std::max(f.last_end, end);
    f.total_work += end - s.started_at;
    f.longest = std::max(f.longest, end - s.started_at);
    edges.emplace_back(s.started_at, +1);
    edges.emplace_back(end, -1);
  }
  // Ends before starts at one instant: one cluster's end lets the next start.
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

std::string makespan_text(const RunFigures& run) {
  if (run.makespan <= 0) return "";
  return fmt::format(
      "makespan {:.1f} s, first start to last end; lower bound {:.1f} s = max(work {:.1f} s ÷ P "
      "{}, longest {:.1f} s); {:.2f} × the bound",
      run.makespan, run.lower_bound, run.total_work, run.most_at_once, run.longest,
      run.lower_bound > 0 ? run.makespan / run.lower_bound : 0.0);
}

void write_report_text(std::FILE* out, const Job& job, const std::vector<ClusterReport>& clusters,
                       std::optional<std::uint64_t> budget_bytes, const RunFigures& run) {
  std::size_t attempts = 0;
  std::map<std::string, std::size_t> states;
  for (const auto& c : clusters) {
    attempts += c.attempts;
    ++states[to_string(c.state)];
  }
  fmt::print(out, "job {}: {} of {} clusters ran, {} attempts\n", job.name, clusters.size(),
             job.clusters, attempts);
  std::string by_state;
  for (const auto& [state, n] : states)
    by_state += fmt::format("{}{} {}", by_state.empty() ? "" : ", ", n, state);
  if (!by_state.empty()) fmt::print(out, "  latest state: {}\n", by_state);
  if (run.first_start > 0)
    fmt::print(out, "  ran from {} to {}\n", local_time(run.first_start), local_time(run.last_end));
  if (auto line = makespan_text(run); !line.empty()) fmt::print(out, "  {}\n", line);
  auto s = peak_stats(clusters);
  if (s.clusters == 0) {
    fmt::print(out, "  no peaks recorded yet\n");
    return;
  }
  fmt::print(out, "  peak memory per cluster: min {}, median {}, p95 {}, max {}\n",
             format_size_kib(s.min_kib), format_size_kib(s.median_kib), format_size_kib(s.p95_kib),
             format_size_kib(s.max_kib));
  fmt::print(out, "  heaviest clusters:\n");
  for (const auto* c : heaviest(clusters))
    fmt::print(out, "    cluster {}: {} ({}, {} attempt(s))\n", c->cluster,
               format_size_kib(judged_peak_kib(*c)), to_string(c->state), c->attempts);
  if (budget_bytes) {
    auto p = advised_parallel(s, *budget_bytes);
    if (p == 0)
      fmt::print(out, "  with a {} budget: no P fits, the p95 peak {} is larger than the budget\n",
                 format_size_kib(*budget_bytes / 1024), format_size_kib(s.p95_kib));
    else
      fmt::print(out,
                 "  with a {} budget: P = {} keeps {} clusters at the p95 peak ({}) within it\n",
                 format_size_kib(*budget_bytes / 1024), p, p, format_size_kib(s.p95_kib));
  }
}

void write_report_csv_header(std::FILE* out) {
  fmt::print(out, "job,cluster,attempts,state,duration_s,peak_mib,peak_rss_mib,peak_cgroup_mib\n");
}

void write_report_csv(std::FILE* out, const Job& job, const std::vector<ClusterReport>& clusters) {
  for (const auto& c : clusters)
    fmt::print(out, "{},{},{},{},{},{:.1f},{},{}\n", job.name, c.cluster, c.attempts,
               to_string(c.state), duration_text(c), mib(judged_peak_kib(c)),
               mib_text(c.peak_rss_kib), mib_text(c.peak_cgroup_kib));
}

nlohmann::json report_json(const Job& job, const std::vector<ClusterReport>& clusters,
                           std::optional<std::uint64_t> budget_bytes, const RunFigures& run) {
  using nlohmann::json;
  // A figure that was never recorded is null, never 0.
  auto kib = [](std::optional<std::uint64_t> v) { return v ? json(*v) : json(nullptr); };
  auto s = peak_stats(clusters);
  auto known = [&](std::uint64_t v) { return s.clusters ? json(v) : json(nullptr); };
  json out = {{"job", job.name},
              {"clusters", job.clusters},
              {"peaks_kib",
               {{"min", known(s.min_kib)},
                {"median", known(s.median_kib)},
                {"p95", known(s.p95_kib)},
                {"max", known(s.max_kib)}}}};
  auto seconds = [&](double v) { return run.makespan > 0 ? json(v) : json(nullptr); };
  // The job's first start and last end, over every run of it.
  auto instant = [&](double t) { return run.first_start > 0 ? json(utc_time(t)) : json(nullptr); };
  out["first_start"] = instant(run.first_start);
  out["last_end"] = instant(run.last_end);
  out["makespan_s"] = seconds(run.makespan);
  out["lower_bound_s"] = seconds(run.lower_bound);
  if (budget_bytes) {
    out["mem_budget_bytes"] = *budget_bytes;
    out["advised_parallel"] = s.clusters ? json(advised_parallel(s, *budget_bytes)) : json(nullptr);
  }
  auto& per_cluster = out["per_cluster"] = json::array();
  for (const auto& c : clusters)
    per_cluster.push_back({{"cluster", c.cluster},
                           {"attempts", c.attempts},
                           {"state", to_string(c.state)},
                           {"duration_s", c.duration_s ? json(*c.duration_s) : json(nullptr)},
                           {"peak_rss_kib", kib(c.peak_rss_kib)},
                           {"peak_cgroup_kib", kib(c.peak_cgroup_kib)}});
  return out;
}

int show_report(const ReportArgs& args) {
  using Format = ReportArgs::Format;
  if (args.html) return write_html_report(args);
  Store store(args.db, Store::Access::kReadOnly);
  std::vector<Job> jobs;
  for (auto& job : store.jobs())
    if (!args.job || job.name == *args.job) jobs.push_back(std::move(job));
  if (jobs.empty() && args.job)
    throw Error(fmt::format("--job {}: no such job in {}", *args.job, args.db.string()));
  // CSV: one header, one table. JSON: one array of jobs. Text: one block a job.
  if (args.format == Format::kCsv) write_report_csv_header(stdout);
  auto json = nlohmann::json::array();
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    auto clusters = store.cluster_report(jobs[i]);
    RunFigures run;
    if (args.format != Format::kCsv)
      run = run_figures(store.attempt_spans(jobs[i], false).spans, wall_clock_now());
    switch (args.format) {
      case Format::kText:
        if (i) fmt::print("\n");
        write_report_text(stdout, jobs[i], clusters, args.mem_budget, run);
        break;
      case Format::kCsv:
        write_report_csv(stdout, jobs[i], clusters);
        break;
      case Format::kJson:
        json.push_back(report_json(jobs[i], clusters, args.mem_budget, run));
        break;
    }
  }
  if (args.format == Format::kJson) fmt::print("{}\n", json_text(json));
  return 0;
}

}  // namespace runner
