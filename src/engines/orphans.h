// Inside the local engine: after runner itself was killed (kill -9, the OOM
// killer, a crash), the children it had started may live on. The next runner
// on the job finds them by the pid and start time recorded with each attempt,
// and by the run id every process of the dead run carries, and kills them or
// waits for them before their clusters run again, so that two copies of one
// cluster never run at once.
#pragma once

#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

#include "runner/engine.h"

namespace runner {

// The processes of leftover attempts that still live on this host (same pid,
// started when the attempt did), and any process carrying the RUNNER_RUN of
// one of the previous runs: a child whose attempt was not recorded yet, or a
// grandchild. Those that carry a cluster (RUNNER_JOB, RUNNER_CLUSTER,
// RUNNER_ATTEMPT) are also named as executions, one each (the earliest
// started process of the cluster's attempt).
struct LeftoverProcesses {
  std::vector<pid_t> pids;
  // For each of pids, the cluster and attempt its RUNNER_* variables name
  // ({0, 0}: none; a recorded child found by its pid: its cluster, attempt 0).
  std::vector<std::pair<ClusterId, std::uint32_t>> tags;
  std::vector<FoundExecution> found;
};
LeftoverProcesses find_leftovers(const Leftovers& left);

// Kills each one's process group, or waits for them to end; either way
// returns once none is left (true), or once wake_fd is readable (false).
// `whose` says in a warning whose processes they are ("an earlier runner
// left running").
bool settle_leftovers(const std::vector<pid_t>& pids, LeftoverPolicy policy, int wake_fd,
                      const std::string& whose = "an earlier runner left running");

}  // namespace runner
