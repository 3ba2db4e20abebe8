// A worker: the process that is the parent of a run's clusters on one
// machine. It runs them with the local engine (spawn, cage, wait4, measure,
// time out, stop), journals how each started and ended before it tells
// runner, and outlives a runner that is killed: then it starts nothing more,
// lets the running clusters end, journals them, and exits. runner starts one
// on this machine as `runner worker` (and one per node through srun, one
// per host through ssh); it speaks the wire (wire.h) on its stdin and
// stdout and knows nothing of the scheduler or the log.
//
// runner -> worker: the config first, then starts, stops, "collect" (the
// journals earlier runs left on a host runner cannot read) and "forget
// collected", "settle" (leftovers of earlier runs), "committed" (runner's
// log holds everything told up to a journal line), "slots" (how many to run
// at once from now on: another site was lost) and "bye". worker ->
// runner: "ready" (or "failed", why) first, then the engine's events
// (started, not started, ended, each with the journal line's number where
// journalled), the lines collected and their end, "settled", memory
// "usage", its own warnings, and "alive" at least once a second, so that
// runner can tell a worker that stopped answering. wire.h has each line.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "runner/cli.h"
#include "runner/engine.h"
#include "runner/memory.h"
#include "runner/wire.h"

namespace runner {

// The worker's life: reads its config from `in`, answers on `out`, and
// returns its exit code once runner is gone or said bye and no cluster of it
// still runs.
int run_worker(int in, int out);

// Kills every process on this machine whose RUNNER_RUN is `run` (and what
// they started); returns 0.
int kill_run_here(const std::string& run);

// Whether this machine can run a job: its program can be executed, its
// folder is the current one, the file runner made in its log folder is seen
// here, and no other job claims this node of its allocation; what is not
// given is not checked. Prints "ok <host>" (with check_resources, "ok <host>
// <CPUs> <bytes of memory available>") and returns 0, or prints "<host>:
// what is wrong" and returns 2.
int check_node(const WorkerArgs& check);

}  // namespace runner
