// --on-finish COMMAND: what runs once when a run ends, however it ends (all
// done, clusters failed, halted, stopped by a signal, a setup error once the
// log was open, or a start refused before that), so that cron and systemd
// users hear of it: through `sh -c`, with the outcome in its environment. Its
// output and exit code are logged; it never changes runner's exit code; it
// has a time limit.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "runner/error.h"
#include "runner/signals.h"
#include "runner/store.h"

namespace runner {

// How a run ended, as the command is told it.
struct RunEnding {
  std::string job;  // "" when a refused start could not tell it
  std::filesystem::path db;
  int exit_code = 0;
  // done, failed, halted, stopped, setup-error, log-lost, or refused (runner
  // would not start: the job was held, a bad value, the DB's folder missing).
  std::string outcome;
  std::uint64_t clusters = 0, done = 0, failed = 0;  // the job's, at the end
  std::uint64_t done_this_run = 0, failed_this_run = 0;
  bool counted = true;                  // false: done and failed are not known (refused)
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

// What a start that runner refused still owes --on-finish: the command, its
// limit, and what is known of the run it would have been.
struct RefusedHook {
  std::string command;
  std::chrono::milliseconds limit{60'000};
  std::filesystem::path db = "runner.db";
  std::string job;                      // "" when it could not be told (a bad --job, say)
  std::uint64_t clusters = 0;           // N, or 0 when it could not be told
  InheritedSignals signals;             // as runner was started
  bool quiet = false, verbose = false;  // -q, -v: for the log of the command's output
};

// A refusal to start (exit code 2, nothing written) whose --on-finish
// command is still to hear of it: main() prints the message as for any
// Error, then calls hear_of_refusal().
class RefusedStart : public Error {
 public:
  RefusedStart(const Error& error, RefusedHook hook) : Error(error), hook_(std::move(hook)) {}
  const RefusedHook& hook() const { return hook_; }

 private:
  RefusedHook hook_;
};

// Runs the hook with outcome `refused` (logging through spdlog, set up as the
// hook's quiet and verbose say); its summary file is a temporary one, removed
// afterwards, so that a refused start leaves nothing behind.
void hear_of_refusal(const RefusedStart& refused);

}  // namespace runner
