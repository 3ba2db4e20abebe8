// Inside the local engine: after runner itself was killed (kill -9, the OOM
// killer, a crash), the children it had started may live on. The next runner
// on the job finds them by the pid and start time recorded with each attempt,
// and by the run id every process of the dead run carries, and kills them or
// waits for them before their clusters run again, so that two copies of one
// cluster never run at once.
#pragma once

#include <sys/types.h>

#include <vector>

#include "runner/engine.h"

namespace runner {

// The processes of leftover attempts that still live on this host (same pid,
// started when the attempt did), and any process carrying
// RUNNER_RUN=<previous run>: a child whose attempt was not recorded yet, or a
// grandchild.
std::vector<pid_t> find_leftovers(const Leftovers& left);

// Kills each one's process group, or waits for them to end; either way
// returns once none is left (true), or once wake_fd is readable (false).
bool settle_leftovers(const std::vector<pid_t>& pids, LeftoverPolicy policy, int wake_fd);

}  // namespace runner
