// What runner says to people about attempts and runs, in one place: the
// summary at the end of a run, `runner status` and `runner report` all use
// these, so that one thing is always said the same way.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "runner/run_summary.h"
#include "runner/store.h"

namespace runner {

// Name of a signal for people: "SIGSEGV".
std::string signal_name(int sig);

// How a process ended: "exit code 3", "killed by SIGSEGV".
std::string describe_ending(std::optional<int> exit_code, std::optional<int> signal);

// A failed cluster: "out of memory at the 4.0 GiB cap (peak 4.0 GiB)".
std::string describe_failure(const FailedCluster& f);
// Where a failed attempt's output is, in words: "log <path>", or "no output"
// for one whose log path is empty (it wrote nothing).
std::string describe_log(const FailedCluster& f);

// An instant (seconds since the epoch) in ISO 8601 with its offset, so that
// it reads the same on any machine and across a change of daylight saving
// time. For programs and the log: UTC, "2026-12-05T23:03:52.566Z".
std::string utc_time(double epoch_seconds);
// For people: this machine's local time, "2026-12-06T00:03:52+01:00".
std::string local_time(double epoch_seconds);

// Who holds a job: "pid 4242 on web1 since 2026-12-01T03:00:02+01:00".
std::string describe_holder(const Holder& holder);

// The lines runner prints at the end of a run: what it did, why it stopped,
// and the first failed clusters (`failed`, at most kSummaryFailures) with
// their logs.
constexpr std::size_t kSummaryFailures = 10;
std::string summary_text(const RunSummary& s, const Job& job,
                         const std::vector<FailedCluster>& failed, const std::string& db);

}  // namespace runner
