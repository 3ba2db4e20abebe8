// --on-finish COMMAND: what runs once when a run ends, however it ends (all
// done, clusters failed, halted, stopped by a signal, or a setup error once
// the log was open), so that cron and systemd users hear of it: through
// `sh -c`, with the outcome in its environment. Its output and exit code
// are logged; it never changes runner's exit code; it has a time limit.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "runner/signals.h"
#include "runner/store.h"

namespace runner {

// How a run ended, as the command is told it.
struct RunEnding {
  std::string job;
  std::filesystem::path db;
  int exit_code = 0;
  std::string outcome;                               // done, failed, halted, stopped, setup-error
  std::uint64_t clusters = 0, done = 0, failed = 0;  // the job's, at the end
  std::uint64_t done_this_run = 0, failed_this_run = 0;
  std::string summary;                  // runner's closing words
  std::vector<FailedCluster> failures;  // the job's failed clusters (the first few)
};

// The variables the command gets, NAME=value.
std::vector<std::string> on_finish_environment(const RunEnding& ending,
                                               const std::filesystem::path& summary_file);

// Writes the summary and the failed clusters with their logs to `file`,
// then runs `command` through sh -c with the signal state runner was
// started with, in a process group of its own that is killed after `limit`.
// Returns its exit code (-1 if it could not start or was killed).
int run_on_finish(const std::string& command, std::chrono::milliseconds limit,
                  const RunEnding& ending, const std::filesystem::path& file,
                  const InheritedSignals& signals);

}  // namespace runner
