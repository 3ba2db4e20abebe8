// After runner itself was killed (kill -9, OOM killer, a crash), the children
// it had started may live on. The next runner on the job finds them by the
// pid and start time recorded with each attempt, and kills them or waits for
// them before their clusters run again, so that two copies of one cluster
// never run at once.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "runner/signals.h"
#include "runner/store.h"

namespace runner {

enum class OrphanPolicy { kKill, kWait };

struct Orphan {
  ClusterId cluster = 0;
  pid_t pid = 0;
};

// What runner puts in RUNNER_RUN for the children of one run: its pid and
// start time.
std::string run_id(const ProcessIdentity& runner);

// The attempts left `running` whose process still lives on this host (same
// pid, started when the attempt did, no reboot since `previous`, the job's
// last holder), and any process carrying the previous holder's RUNNER_RUN
// (cluster 0): a child whose attempt was not recorded yet, or a grandchild.
std::vector<Orphan> find_orphans(const std::vector<LeftRunning>& left,
                                 const std::optional<Holder>& previous);

// Kills each orphan's process group, or waits for the orphans to end; either
// way returns once none is left, or with the signal that interrupted the wait.
std::optional<int> settle_orphans(const std::vector<Orphan>& orphans, OrphanPolicy policy,
                                  SignalChannel& signals);

}  // namespace runner
