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
  std::sort(peaks.begin(), peaks.end());
  PeakStatsFold fold(peaks.size());
  for (auto kib : peaks) fold.add(kib);
  return fold.stats();
}

PeakStatsFold::PeakStatsFold(std::size_t peaks) {
  stats_.clusters = peaks;
  if (peaks == 0) return;
  // Nearest-rank percentiles: always a peak some cluster really had.
  auto rank = [&](double p) {
    auto i = static_cast<std::size_t>(std::ceil(p * static_cast<double>(peaks)));
    return std::clamp<std::size_t>(i, 1, peaks);
  };
  median_rank_ = rank(0.5);
  p95_rank_ = rank(0.95);
}

void PeakStatsFold::add(std::uint64_t kib) {
  if (++seen_ == 1) stats_.min_kib = kib;
  if (seen_ == median_rank_) stats_.median_kib = kib;
  if (seen_ == p95_rank_) stats_.p95_kib = kib;
  stats_.max_kib = kib;
}

std::uint64_t advised_parallel(const PeakStats& stats, std::uint64_t budget_bytes) {
  if (stats.p95_kib == 0) return 0;
  return budget_bytes / (stats.p95_kib * 1024);
}

double attempt_end(const AttemptSpan& s, double now) {
  return s.finished_at > 0 ? s.finished_at : std::max(now, s.started_at);
}

RunFigures run_figures(const std::vector<AttemptSpan>& spans, double now) {
  std::vector<std::size_t> by_start(spans.size());
  std::vector<std::pair<double, double>> backward;
  for (std::size_t i = 0; i < spans.size(); ++i) {
    by_start[i] = i;
    if (attempt_end(spans[i], now) < spans[i].started_at)
      backward.emplace_back(attempt_end(spans[i], now), spans[i].started_at);
  }
  std::stable_sort(by_start.begin(), by_start.end(),
                   [&](auto a, auto b) { return spans[a].started_at < spans[b].started_at; });
  RunFold fold(now, backward);
  for (auto i : by_start) fold.add(spans[i]);
  return fold.figures();
}

RunFold::RunFold(double now, const std::vector<std::pair<double, double>>& backward) : now_(now) {
  for (auto [end, start] : backward) {
    backward_ends_.push_back(end);
    backward_starts_.push_back(start);
  }
  std::sort(backward_ends_.begin(), backward_ends_.end());
  std::sort(backward_starts_.begin(), backward_starts_.end());
}

void RunFold::add(const AttemptSpan& s) {
  auto start = s.started_at, end = attempt_end(s, now_);
  run_.first_start = empty_ ? start : std::min(run_.first_start, start);
  empty_ = false;
  run_.last_end = std::max(run_.last_end, end);
  run_.total_work += end - start;
  run_.longest = std::max(run_.longest, end - start);
  // Ends before starts at one instant: one cluster's end lets the next start.
  while (!running_ends_.empty() && running_ends_.top() <= start) running_ends_.pop();
  if (end > start) running_ends_.push(end);
  auto passed = [&](const std::vector<double>& times, std::size_t& i) {
    while (i < times.size() && times[i] <= start) ++i;
  };
  passed(backward_ends_, backward_ended_);
  passed(backward_starts_, backward_started_);
  // A backward attempt between its end and its start counts as -1.
  auto at_once = static_cast<std::int64_t>(running_ends_.size()) -
                 static_cast<std::int64_t>(backward_ended_ - backward_started_);
  run_.most_at_once =
      std::max(run_.most_at_once, static_cast<std::uint32_t>(std::max<std::int64_t>(at_once, 0)));
}

RunFigures RunFold::figures() const {
  auto f = run_;
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
