// The engine that spreads a run over the nodes of the Slurm allocation runner
// runs in: one worker per node, started through srun (one job step each, for
// the whole run), each the same worker that runs clusters on this machine.
// runner stays the only writer of the log; every attempt goes to the node
// with the most room, and a node whose worker is gone takes no more.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "runner/engine.h"
#include "runner/worker.h"
#include "runner/worker_engine.h"

namespace runner {

struct SlurmNode {
  std::string name;
  std::uint32_t cpus = 1;               // allocated to the job on it
  std::optional<std::uint64_t> memory;  // bytes allocated to the job on it, once read
};

struct SlurmAllocation {
  std::string job_id;
  std::vector<SlurmNode> nodes;
};

// "2(x3),1" (SLURM_JOB_CPUS_PER_NODE) -> 2, 2, 2, 1. Throws Error on text
// that is not of that form.
std::vector<std::uint32_t> parse_cpus_per_node(const std::string& text);

// The allocation runner runs in, from its environment (SLURM_JOB_ID, the
// node list expanded by `scontrol show hostnames`); nullopt outside one.
// Throws Error when the environment says there is one but it cannot be read.
std::optional<SlurmAllocation> slurm_allocation();

// What `scontrol show job -d` says each group of nodes was allocated:
// ("n[1-3]", bytes) for each "Nodes=n[1-3] CPU_IDs=0-1 Mem=1000" line (MB).
std::vector<std::pair<std::string, std::uint64_t>> parse_node_memory(const std::string& text);

// Fills each node's memory from `scontrol show job -d`. Throws Error when
// Slurm cannot be asked.
void read_node_memory(SlurmAllocation& allocation);

// How many clusters each node runs at once for P in total: as evenly as the
// nodes' CPUs allow, none above its CPUs. Their sum is min(P, all CPUs).
std::vector<std::uint32_t> spread_slots(std::uint32_t parallel,
                                        const std::vector<std::uint32_t>& cpus);

// Before anything is written: runs one step over the nodes with slots that
// checks each can run `runner worker`, has `dir`, can execute `program`
// (none: not checked) and sees the file `shared` (none: not checked). Throws
// Error naming the node and what is wrong.
void check_nodes(const SlurmAllocation& allocation, const std::vector<std::uint32_t>& slots,
                 const std::string& runner, const std::string& program, const std::string& dir,
                 const std::string& shared);

class SlurmEngine : public Engine {
 public:
  // Starts a worker on every node with slots (through srun, `runner` being
  // the path of runner's binary on the nodes), each holding its clusters
  // together to its budget, if any (bytes, per node; empty: none). The
  // nodes with slots are the engine's sites, in order. Throws Error naming
  // the node whose worker cannot start.
  SlurmEngine(const WorkerConfig& config, const SlurmAllocation& allocation,
              const std::vector<std::uint32_t>& slots, const std::vector<std::uint64_t>& budgets,
              const std::string& runner);

  std::optional<EngineEvent> start(AttemptSpec spec) override;
  void stop(AttemptId id, StopMode mode) override;
  std::vector<EngineEvent> wait(std::optional<Clock::time_point> deadline, int wake_fd) override;
  std::optional<std::vector<FoundExecution>> settle(const Leftovers& left, LeftoverPolicy policy,
                                                    int wake_fd) override;
  void acknowledged() override;
  std::size_t queue_ahead() const override;
  std::optional<std::uint64_t> memory_in_use(AttemptId id) const override;

 private:
  struct Node {
    std::unique_ptr<WorkerEngine> worker;
    std::uint32_t slots = 0;
  };
  // The node with the most room that can still take work, if any.
  Node* roomiest();
  std::vector<EngineEvent> take_events();

  std::vector<Node> nodes_;
  std::unordered_map<AttemptId, Node*> node_of_;
};

}  // namespace runner
