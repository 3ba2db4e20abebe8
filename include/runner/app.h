// The two things runner does, as called by main(): run a job, show status.
// Both return the process exit code and throw Error for the user's mistakes.
#pragma once

#include "runner/cli.h"

namespace runner {

int run_job(const RunArgs& args);
int show_status(const StatusArgs& args);
int show_report(const ReportArgs& args);
int show_doctor(const DoctorArgs& args);
int unlock_job(const UnlockArgs& args);

// Routes spdlog to stderr through a ProgressSink, at the level -q/-v ask for.
void setup_logging(bool quiet, bool verbose);

}  // namespace runner
