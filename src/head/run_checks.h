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
#include "runner/plan.h"

namespace runner {

struct MemoryPlan {
  CapMechanism mechanism = CapMechanism::kNone;
  std::optional<std::uint64_t> budget;  // bytes
};

struct CheckedRun {
  CommandTemplate command;
  std::string job_name;
  std::filesystem::path log_dir;  // absolute: the job's own log folder, not made yet
  MemoryProbe probe;
  MemoryPlan memory;
  Plan plan;  // where the clusters run
};

CheckedRun check_run(const RunArgs& args);

}  // namespace runner
