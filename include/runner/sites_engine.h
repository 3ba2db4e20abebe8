// The engine over a Plan's sites: one worker per site (this machine, a node
// of a Slurm allocation, an SSH host), each started by its site's launch
// command for the whole run and each the same `runner worker`. It starts
// the workers, routes every attempt to the site the scheduler named or else
// to the one with the most room, loses a site whose worker is gone (it takes
// no more), settles each site's leftovers through its worker, and passes on
// runner's acknowledgements. runner stays the only writer of the log.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "runner/engine.h"
#include "runner/plan.h"
#include "runner/wire.h"
#include "runner/worker_engine.h"

namespace runner {

class SitesEngine : public Engine {
 public:
  // Starts a worker on every site of the plan, each with `config` but its
  // own slots, name and budget. Throws Error naming the site whose worker
  // cannot start.
  SitesEngine(const WorkerConfig& config, const Plan& plan);

  std::optional<EngineEvent> start(AttemptSpec spec) override;
  void stop(AttemptId id, StopMode mode) override;
  std::vector<EngineEvent> wait(std::optional<Clock::time_point> deadline, int wake_fd) override;
  std::optional<std::vector<FoundExecution>> settle(const Leftovers& left, LeftoverPolicy policy,
                                                    int wake_fd) override;
  void acknowledged() override;
  std::optional<std::vector<EarlierJournal>> collect(LeftoverPolicy policy, int wake_fd) override;
  void collected() override;
  std::size_t queue_ahead() const override;
  std::optional<std::uint64_t> memory_in_use(AttemptId id) const override;
  std::optional<std::uint64_t> total_memory_in_use() const override;

 private:
  struct Site {
    std::unique_ptr<WorkerEngine> worker;
    std::uint32_t slots = 0;
    std::uint32_t capacity = 0;
  };
  // The site with the most room that can still take work, if any.
  Site* roomiest();
  std::vector<EngineEvent> take_events();
  // Once a site is lost, the sites left share its slots, each up to its
  // capacity: P holds as long as they have room for it.
  void share_lost_slots();
  // Until the deadline, a worker's words or wake_fd: what the workers said.
  void poll_workers(std::optional<Clock::time_point> deadline, int wake_fd, bool& woken,
                    bool& timed_out);

  std::vector<Site> sites_;
  std::size_t open_ = 0;  // sites that take clusters, as last shared
  std::string site_word_, none_left_;
  std::unordered_map<AttemptId, Site*> site_of_;
};

}  // namespace runner
