// --on slurm: the planner that spreads a run over the nodes of the Slurm
// allocation runner runs in (plan_slurm, in plan.h): P spread over the nodes'
// CPUs, each node's budget what Slurm allocated there, and one worker per
// node started through srun (one job step each, for the whole run). What it
// reads of Slurm is here, for the tests to hold it to Slurm's own text.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "runner/cli.h"

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

// Before anything is written: runs one step over the nodes with slots that
// checks each can run `runner worker` and what `check` asks (see
// check_node). Throws Error naming the node and what is wrong.
void check_nodes(const SlurmAllocation& allocation, const std::vector<std::uint32_t>& slots,
                 const std::string& runner, const WorkerArgs& check);

}  // namespace runner
