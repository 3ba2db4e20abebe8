// --metrics FILE: the run's figures in Prometheus' text format, for
// node_exporter's textfile collector: written whole and renamed into place
// (a reader never sees half a file), at most every few seconds while the
// job runs, and once at the end. Every sample has the label runner_job;
// instants are seconds since the epoch, sizes bytes.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "runner/engine.h"

namespace runner {

struct MetricsFacts {
  std::string job;
  std::uint64_t clusters = 0;
  std::uint64_t done = 0, failed = 0, running = 0;  // the job's clusters, by latest attempt
  std::uint64_t attempts_started = 0;               // by this run
  std::uint64_t done_this_run = 0, failed_this_run = 0;
  std::optional<std::uint64_t> budget_bytes, reserved_bytes, in_use_bytes;
  double started_at = 0;              // this run's start, seconds since the epoch
  std::optional<double> finished_at;  // once it has ended
  std::optional<int> exit_code;       // once it has ended
  // When a run of the job last ended with every cluster done (any run's).
  std::optional<double> last_success_at;
};

// The file's text.
std::string metrics_text(const MetricsFacts& facts);

class MetricsWriter {
 public:
  // last_success_at: the job's, as the run starts; every write says it
  // until the figures bring a newer one.
  MetricsWriter(std::filesystem::path path, std::optional<double> last_success_at)
      : path_(std::move(path)), last_success_at_(last_success_at) {}
  // Whether the last write is old enough (or there was none).
  bool due(Clock::time_point now) const;
  // Writes the figures if they are due.
  void update(const MetricsFacts& facts, Clock::time_point now);
  // When the figures are next due, so that a quiet run still refreshes them.
  Clock::time_point next_due() const { return last_ + kEvery; }
  // Writes them now; false (and a warning) when the file cannot be written.
  bool write(const MetricsFacts& facts);

  static constexpr auto kEvery = std::chrono::seconds(5);

 private:
  std::filesystem::path path_;
  std::optional<double> last_success_at_;
  Clock::time_point last_{};
  bool warned_ = false;
};

// --metrics: the folder must exist and be writable. Throws Error naming it.
void check_metrics_path(const std::filesystem::path& path);

}  // namespace runner
