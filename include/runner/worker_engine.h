// The engine that runs attempts through a worker (see worker.h): here, runner
// itself started again as `runner worker`, its stdin and stdout the ends of
// two pipes. The worker is the parent of every cluster and journals each
// outcome before telling it, so a cluster that ends while runner is killed
// is still known to have ended. If the worker dies, what its journal holds is
// told as usual, the rest as lost; what it left running is killed before a
// new worker takes over (at most a few times in a run).
#pragma once

#include <sys/types.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "runner/engine.h"
#include "runner/fd.h"
#include "runner/wire.h"
#include "runner/worker.h"

namespace runner {

class WorkerEngine : public Engine {
 public:
  // Starts the worker (`program` is runner's own binary) and waits until it
  // is ready. Throws Error with what it said when it cannot start.
  WorkerEngine(WorkerConfig config, std::string program);
  // Says bye and waits for the worker to end (it ends once no cluster runs).
  ~WorkerEngine() override;
  WorkerEngine(const WorkerEngine&) = delete;
  WorkerEngine& operator=(const WorkerEngine&) = delete;

  std::optional<EngineEvent> start(AttemptSpec spec) override;
  void stop(AttemptId id, StopMode mode) override;
  std::vector<EngineEvent> wait(std::optional<Clock::time_point> deadline, int wake_fd) override;
  bool settle(const Leftovers& left, LeftoverPolicy policy, int wake_fd) override;
  void acknowledged() override;
  // The worker starts the next cluster itself the moment one ends.
  std::size_t queue_ahead() const override {
    return std::min<std::size_t>(2 * std::size_t{config_.parallel}, 128);
  }
  std::optional<std::uint64_t> memory_in_use(AttemptId id) const override;
  std::optional<std::uint64_t> total_memory_in_use() const override;

 private:
  void spawn();
  void send(const std::string& line);
  void flush();
  // Reads what the worker said; false when it is gone.
  bool read_worker();
  void on_line(const std::string& text);
  void on_worker_lost();

  WorkerConfig config_;
  std::string program_;
  pid_t pid_ = -1;
  Fd to_, from_;
  std::optional<LineReader> reader_;
  Outbox outbox_;
  bool ready_ = false;
  std::string failure_;          // what the worker said when it could not start
  std::optional<bool> settled_;  // its answer to "settle"
  int deaths_ = 0;
  std::unordered_map<AttemptId, AttemptSpec> in_flight_;  // asked, not ended
  std::unordered_set<AttemptId> started_;                 // of those, told as started
  std::vector<EngineEvent> events_;
  std::uint64_t told_seq_ = 0, acknowledged_seq_ = 0;
  std::optional<std::uint64_t> total_usage_;
  std::unordered_map<AttemptId, std::uint64_t> usage_;
};

}  // namespace runner
