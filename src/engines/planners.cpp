#include <fmt/format.h>

#include <array>
#include <filesystem>

#include "runner/error.h"
#include "runner/plan.h"

namespace runner {
namespace {

// Every engine runner has, by the word --on takes.
constexpr std::array kPlanners{
    Planner{"local", "on this machine (default)", plan_local},
    Planner{"slurm",
            "over the nodes of the Slurm allocation runner runs in (salloc, sbatch), one worker "
            "per node",
            plan_slurm},
    Planner{"ssh", "over the hosts of --hosts, one worker per host started through ssh", plan_ssh},
};

}  // namespace

std::span<const Planner> planners() {
  return kPlanners;
}

const Planner& find_planner(std::string_view word) {
  for (const auto& p : kPlanners)
    if (p.word == word) return p;
  std::string words;
  for (std::size_t i = 0; i < kPlanners.size(); ++i)
    words += fmt::format("{}{}",
                         i == 0                      ? ""
                         : i + 1 == kPlanners.size() ? " or "
                                                     : ", ",
                         kPlanners[i].word);
  throw Error(fmt::format("--on '{}' is not valid: expected {}", word, words));
}

std::vector<std::uint32_t> spread_slots(std::uint32_t parallel,
                                        const std::vector<std::uint32_t>& cpus) {
  std::vector<std::uint32_t> slots(cpus.size(), 0);
  // One at a time, round the nodes, to each that has a CPU left.
  bool gave = true;
  while (parallel > 0 && gave) {
    gave = false;
    for (std::size_t i = 0; i < cpus.size() && parallel > 0; ++i) {
      if (slots[i] >= cpus[i]) continue;
      ++slots[i];
      --parallel;
      gave = true;
    }
  }
  return slots;
}

std::string claim_db_path(const std::filesystem::path& db) {
  return std::filesystem::absolute(db).lexically_normal().string();
}

std::string own_binary(std::string_view on) {
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec)
    throw Error(fmt::format("--on {}: cannot tell where runner's binary is: {}", on, ec.message()));
  return self.string();
}

}  // namespace runner
