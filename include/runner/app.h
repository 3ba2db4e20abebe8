// The two things runner does, as called by main(): run a job, show status.
// Both return the process exit code and throw Error for the user's mistakes.
#pragma once

#include <memory>

#include "runner/cli.h"
#include "runner/progress.h"

namespace runner {

int run_job(const RunArgs& args);
int show_status(const StatusArgs& args);
int show_report(const ReportArgs& args);
int show_doctor(const DoctorArgs& args);
int unlock_job(const UnlockArgs& args);
int show_log(const LogArgs& args);
// `runner worker --cat-log <stream>#<cluster>.<attempt>`: that attempt's
// output from a stream on this machine, for a runner log run elsewhere.
int cat_stream_log(const std::string& text);

// Routes spdlog to stderr through a ProgressSink, at the level -q/-v ask for.
// run_job sets up its own; the other commands call this first.
std::shared_ptr<ProgressSink> setup_logging(bool quiet, bool verbose);

}  // namespace runner
