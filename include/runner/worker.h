// A worker: the process that is the parent of a run's clusters on one
// machine. It runs them with the local engine (spawn, cage, wait4, measure,
// time out, stop), journals how each started and ended before it tells
// runner, and outlives a runner that is killed: then it starts nothing more,
// lets the running clusters end, journals them, and exits. runner starts one
// on this machine as `runner worker` (and, under Slurm, one per node through
// srun); it speaks JSON lines on its stdin and stdout and knows nothing of
// the scheduler or the log.
//
// runner -> worker: {"op": "config", ...} first, then "start" (an
// AttemptSpec), "stop" ({"id", "now"}), "settle" (leftovers of an earlier
// run), "committed" ({"seq"}: runner's log holds everything told up to it),
// "bye". worker -> runner: "ready" or "failed" first, then the engine's
// events ("started", "not_started", "ended", each with the journal's "seq"
// where journaled), "settled", "usage" and "log" lines.
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "runner/engine.h"
#include "runner/memory.h"

namespace runner {

struct WorkerConfig {
  std::string run;          // the run's id: RUNNER_RUN of its processes, its journal's name
  std::string journal_dir;  // where the journal goes
  std::string node;         // the node it runs on, where a run spreads over several; "" here
  bool sync = false;        // flush every journal line to the disk
  std::chrono::milliseconds grace{10'000};
  std::size_t parallel = 1;
  CapChoice cap = CapChoice::kAuto;
  bool limits = false;                           // some attempt has a cap (--mem-limit or a budget)
  std::optional<std::uint64_t> run_limit;        // bytes: all clusters together (the budget)
  std::optional<std::string> kill_leftovers_in;  // the run whose cgroup leftovers may be killed
  bool watch_memory = false;                     // report memory in use every 50 ms
  std::vector<int> blocked;                      // the signal mask runner was started with
  bool pipe_ignored = false;                     // and whether SIGPIPE was ignored
};

// The worker's name: its journal's, its processes' RUNNER_RUN. The run's id,
// and "@<node>" on a node of several.
std::string worker_name(const WorkerConfig& config);

nlohmann::json to_json(const WorkerConfig& config);
WorkerConfig worker_config_from_json(const nlohmann::json& j);

// The worker's life: reads its config from `in`, answers on `out`, and
// returns its exit code once runner is gone or said bye and no cluster of it
// still runs.
int run_worker(int in, int out);

// Kills every process on this machine whose RUNNER_RUN is `run` (and what
// they started); returns 0.
int kill_run_here(const std::string& run);

// Whether this machine can run a job: `program` can be executed, `dir` is
// the current folder, and `shared` (a file runner made in its log folder)
// is seen here. Empty ones are not checked. Prints "ok <host>" and returns
// 0, or prints "<host>: what is wrong" and returns 2.
int check_node(const std::string& program, const std::string& dir, const std::string& shared);

}  // namespace runner
