// What the user typed for `runner N P ... -- COMMAND`, checked before the log
// is created or anything is written: the DB's folder, the log folders, the
// command, the memory plan. A bad value is an Error naming it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "runner/cli.h"
#include "runner/cluster.h"
#include "runner/memory.h"
#include "runner/slurm_engine.h"

namespace runner {

struct MemoryPlan {
  CapMechanism mechanism = CapMechanism::kNone;
  std::optional<std::uint64_t> budget;  // bytes
};

// Where the clusters go under --on slurm: the allocation, and how many each
// node runs at once.
struct SlurmPlan {
  SlurmAllocation allocation;
  std::vector<std::uint32_t> slots;    // per node, in the allocation's order
  std::vector<std::uint64_t> budgets;  // per node: bytes for its clusters together; empty: none
  std::uint32_t parallel = 0;          // their sum: P, or fewer when the allocation is smaller
  std::string runner;                  // runner's binary, at the same path on every node
};

struct CheckedRun {
  CommandTemplate command;
  std::string job_name;
  std::filesystem::path log_dir;  // absolute: the job's own log folder, not made yet
  MemoryProbe probe;
  MemoryPlan memory;
  std::optional<SlurmPlan> slurm;
};

CheckedRun check_run(const RunArgs& args);

// Makes the job's log folder (a real folder, never a link), once the job is open.
void make_job_log_dir(const std::filesystem::path& dir);

}  // namespace runner
