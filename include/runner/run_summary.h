// What one run did: the counts the summary, the exit code and the
// notifications are made of.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "runner/error.h"

namespace runner {

// What one run did, for the summary and the exit code. Counts of clusters
// and of attempts, as each says.
struct RunSummary {
  std::uint64_t clusters = 0;
  std::uint64_t done = 0;  // done clusters of the job at the end
  std::uint64_t done_this_run = 0;
  std::uint64_t failed_this_run = 0;  // attempts that ended failed, oom or timeout
  std::uint64_t oom_this_run = 0;
  std::uint64_t timed_out = 0;
  std::uint64_t retried = 0;                 // attempts started again by --retries
  std::uint64_t interrupted = 0;             // attempts stopped by runner's own shutdown
  std::uint64_t waiting_again = 0;           // clusters queued to run again when a stop came
  std::uint64_t recovered = 0;               // attempts a dead runner had left `running`
  std::uint64_t skipped_failed = 0;          // clusters left alone by --skip-failed
  std::uint64_t too_big = 0;                 // clusters needing more than the whole budget
  std::uint64_t evicted = 0;                 // attempts stopped and requeued for the budget
  std::uint64_t budget_ooms = 0;             // attempts killed by the kernel at the budget
  std::optional<int> stop_signal;            // set when a signal stopped the run
  std::optional<std::string> halted;         // why the run stopped early otherwise
  std::optional<std::string> setup_failure;  // the command cannot be executed at all
  std::chrono::milliseconds elapsed{0};

  // 128 + the signal that stopped it; 2 when the command cannot run at all;
  // 1 when clusters are left not done; 0 when all are done.
  int exit_code() const {
    if (stop_signal) return 128 + *stop_signal;
    if (setup_failure) return static_cast<int>(ExitCode::kUsage);
    if (done < clusters) return static_cast<int>(ExitCode::kSomeFailed);
    return static_cast<int>(ExitCode::kDone);
  }
};

}  // namespace runner
