#include "runner/metrics.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "runner/error.h"
#include "runner/fd.h"

namespace runner {
namespace {

// A label value as Prometheus' text format wants it.
std::string label(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

void metric(std::string& out, const char* name, const char* type, const char* help,
            const std::string& labels, double value) {
  out += fmt::format("# HELP {0} {1}\n# TYPE {0} {2}\n{0}{{{3}}} {4}\n", name, help, type, labels,
                     value);
}

}  // namespace

std::string metrics_text(const MetricsFacts& f) {
  // Not `job`: Prometheus sets that label to the scrape target's (node
  // through node_exporter) and renames one already there to exported_job.
  auto job = fmt::format("runner_job=\"{}\"", label(f.job));
  std::string out;
  out +=
      "# HELP runner_clusters The job's clusters by the state of their latest attempt.\n"
      "# TYPE runner_clusters gauge\n";
  auto pending = f.clusters - std::min(f.clusters, f.done + f.failed + f.running);
  for (auto [state, n] : {std::pair{"done", f.done}, std::pair{"failed", f.failed},
                          std::pair{"running", f.running}, std::pair{"pending", pending}})
    out += fmt::format("runner_clusters{{{},state=\"{}\"}} {}\n", job, state, n);
  metric(out, "runner_job_clusters", "gauge", "The job's number of clusters, N.", job,
         static_cast<double>(f.clusters));
  metric(out, "runner_run_attempts_total", "counter", "Attempts this run started.", job,
         static_cast<double>(f.attempts_started));
  metric(out, "runner_run_done_total", "counter", "Clusters this run finished done.", job,
         static_cast<double>(f.done_this_run));
  metric(out, "runner_run_failed_total", "counter",
         "Attempts of this run that ended failed, oom or timeout.", job,
         static_cast<double>(f.failed_this_run));
  if (f.budget_bytes) {
    metric(out, "runner_memory_budget_bytes", "gauge", "The memory budget (--mem-budget).", job,
           static_cast<double>(*f.budget_bytes));
    metric(out, "runner_memory_reserved_bytes", "gauge",
           "Memory the running clusters reserve from the budget.", job,
           static_cast<double>(f.reserved_bytes.value_or(0)));
    if (f.in_use_bytes)
      metric(out, "runner_memory_in_use_bytes", "gauge",
             "Memory the running clusters use together, as measured.", job,
             static_cast<double>(*f.in_use_bytes));
  }
  metric(out, "runner_run_start_timestamp_seconds", "gauge", "When this run started.", job,
         f.started_at);
  if (f.finished_at)
    metric(out, "runner_run_end_timestamp_seconds", "gauge", "When the last run ended.", job,
           *f.finished_at);
  if (f.exit_code)
    metric(out, "runner_last_exit_code", "gauge", "The exit code of the last run.", job,
           *f.exit_code);
  // Prometheus' advice for batch jobs: the time of the last success, so that
  // "no success for a day" can be alerted on (a night that did not run at all).
  if (f.last_success_at)
    metric(out, "runner_last_success_timestamp_seconds", "gauge",
           "When a run of the job last ended with every cluster done.", job, *f.last_success_at);
  return out;
}

bool MetricsWriter::due(Clock::time_point now) const {
  return last_ == Clock::time_point{} || now - last_ >= kEvery;
}

void MetricsWriter::update(const MetricsFacts& facts, Clock::time_point now) {
  if (!due(now)) return;
  last_ = now;
  write(facts);
}

bool MetricsWriter::write(const MetricsFacts& facts) {
  auto known = facts;
  if (!known.last_success_at) known.last_success_at = last_success_at_;
  try {
    write_whole(path_, metrics_text(known));
    return true;
  } catch (const std::system_error& e) {
    if (!warned_)
      spdlog::warn("--metrics {}: cannot write it: {}", path_.string(), e.code().message());
    warned_ = true;
    return false;
  }
}

void check_metrics_path(const std::filesystem::path& path) {
  auto folder = path.parent_path().empty() ? std::filesystem::path(".") : path.parent_path();
  std::error_code ec;
  if (!std::filesystem::is_directory(folder, ec))
    throw Error(
        fmt::format("--metrics {}: folder {} does not exist", path.string(), folder.string()));
  if (std::filesystem::is_directory(path, ec))
    throw Error(fmt::format("--metrics {}: is a folder; pass a file path such as {}/runner.prom",
                            path.string(), path.string()));
  if (::access(folder.c_str(), W_OK) != 0)
    throw Error(fmt::format("--metrics {}: folder {} is not writable: {}", path.string(),
                            folder.string(), std::strerror(errno)));
}

}  // namespace runner
