// Facts about this host and its processes that the store needs to tell a live
// job holder from a dead one, even after a reboot or pid reuse.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

namespace runner {

// Enough to recognise one process on one host across time: the pid alone can be
// reused, so the start time (clock ticks since boot) and the boot id go with it.
struct ProcessIdentity {
  pid_t pid = 0;
  std::string host;
  std::string boot_id;
  std::uint64_t start_ticks = 0;
};

// One run of runner, as its processes carry it in RUNNER_RUN and its cgroup
// folder is named: "<pid>-<start ticks>".
std::string run_id(const ProcessIdentity& runner);

std::string host_name();
std::string boot_id();  // empty where /proc does not tell
// Start time of a process in clock ticks since boot, or nullopt if it is gone.
std::optional<std::uint64_t> process_start_ticks(pid_t pid);
ProcessIdentity current_process();

enum class Liveness { kAlive, kDead, kUnknown };  // kUnknown: another host
Liveness check_alive(const ProcessIdentity& who);

double wall_clock_now();  // seconds since the epoch, for the log
// When a process started, in seconds since the epoch (to about 10 ms), or
// nullopt if it is gone or a zombie.
std::optional<double> process_started_at(pid_t pid);

}  // namespace runner
