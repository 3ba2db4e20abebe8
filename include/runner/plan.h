// Where a run's clusters go. A planner turns what the user asked for (--on
// local, slurm, ssh) into a Plan: the sites that run clusters, each a
// machine with a worker of its own, how that worker is started there, how
// many clusters it runs at once and how much memory they may use together.
// The scheduler's admission and the sites engine are both built from the one
// Plan, so a site's index means the same to both.
//
// A new engine (Kubernetes pods, HTCondor, PBS) is one planner: a function
// that reads its own options and the place runner runs in, checks before
// anything is written that every site can run the job, and fills a Plan;
// and one line in the table of planners.cpp.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runner/cli.h"
#include "runner/cluster.h"
#include "runner/memory.h"
#include "runner/worker_engine.h"

namespace runner {

struct Site {
  std::string name;  // the node or host, in messages and as the attempts' host; "" here
  WorkerLaunch launch;
  std::uint32_t slots = 0;              // clusters it runs at once
  std::optional<std::uint64_t> budget;  // bytes its clusters may use together
  // The most it may run at once (its CPUs, or what --hosts gives it): what
  // its slots may grow to when another site is lost.
  std::uint32_t capacity = 0;
};

struct Plan {
  std::string on;  // the planner's word
  // Empty: runner runs the clusters itself, with no worker (--worker off).
  std::vector<Site> sites;
  std::uint32_t parallel = 0;  // the sites' slots together: P, or fewer
  // Each site holds its clusters to a budget of its own (per node, per
  // host); otherwise the run's budget, if any, is the one site's.
  bool budgets_per_site = false;
  // Whether the sites see runner's log folder (this machine, a Slurm
  // allocation's shared filesystem): else each keeps the job's logs and
  // journals on its own disk, and runner reads them through its worker.
  bool shares_log_folder = true;
  // The allocation the sites belong to (a Slurm job's id), whose nodes one
  // runner's job has to itself (see node_claim.h); "" for none.
  std::string allocation;
  std::string site_word = "site";  // "node", "host": how people call a site
  std::string none_left;           // why nothing can start once every site is gone
};

// What a planner is given: the user's request, checked so far.
struct PlanRequest {
  const RunArgs& args;
  const CommandTemplate& command;
  const MemoryProbe& probe;
  // An existing folder where the logs go: a planner whose sites must share
  // it with runner checks that they see it.
  std::filesystem::path logs_folder;
  std::string job;  // the job's name
};

struct Planner {
  std::string_view word;   // what --on takes
  std::string_view about;  // one line for --help
  Plan (*plan)(const PlanRequest&);
};

// Every planner, in the order --help lists them.
std::span<const Planner> planners();
// The one --on names; throws Error naming the value and the words there are.
const Planner& find_planner(std::string_view word);

// The planners themselves, one file each.
Plan plan_local(const PlanRequest& request);
Plan plan_slurm(const PlanRequest& request);
Plan plan_ssh(const PlanRequest& request);

// How many clusters each site runs at once for P in total: as evenly as the
// sites' capacities (CPUs) allow, none above its own. Their sum is
// min(P, all capacity).
std::vector<std::uint32_t> spread_slots(std::uint32_t parallel,
                                        const std::vector<std::uint32_t>& cpus);

// The DB as a claim on an allocation's nodes names it: its absolute path.
std::string claim_db_path(const std::filesystem::path& db);

// runner's binary, for sites that run it at the same path.
std::string own_binary(std::string_view on);

}  // namespace runner
