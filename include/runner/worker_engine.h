// The engine that runs attempts through a worker (see worker.h): here, runner
// itself started again as `runner worker`, its stdin and stdout the ends of
// two pipes. The worker is the parent of every cluster and journals each
// outcome before telling it, so a cluster that ends while runner is killed
// is still known to have ended. If the worker dies, what its journal holds is
// told as usual. On this machine its clusters become runner's children
// (runner is their subreaper), each known by the start it told or by the
// line the cluster's process wrote of itself in the journal: one that has
// ended is recorded as its status says, and one that runs is adopted, held
// to its timeout, stopped and recorded by runner itself, while a new worker
// takes over the other slots (at most a few times in a run). What else the
// dead worker left running is killed; so is everything it left elsewhere,
// and everything in the stream log form, whose clusters lost their output
// with it.
#pragma once

#include <sys/types.h>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "runner/engine.h"
#include "runner/fd.h"
#include "runner/journal.h"
#include "runner/spawn.h"
#include "runner/wire.h"
#include "runner/worker.h"

namespace runner {

// How a worker is started and where it runs.
struct WorkerLaunch {
  // The command that runs runner's binary where it runs, "worker" appended
  // to start it: runner's own binary here, srun with runner's binary for a
  // node of a Slurm allocation, ssh with it for a host.
  std::vector<std::string> argv;
  std::string program;  // what is executed, if not argv[0] looked up in PATH
  std::string site;     // where it runs, in messages ("" on this machine)
  int most_starts = 3;  // how many workers may be started in a run
  // Whether what a dead worker left running can be found and killed here;
  // else the command that runs runner's binary where it ran, if any, to
  // which "worker --kill-run RUN" is appended.
  bool leftovers_here = true;
  std::vector<std::string> kill_leftovers;
};

// One worker seen from runner's side. Several of them serve an engine that
// spreads a run over machines (see sites_engine.h): such an engine polls
// each worker's fd() and calls read() when it is readable.
class WorkerEngine : public Engine {
 public:
  // Starts the worker and waits until it is ready. Throws Error with what it
  // said when it cannot start.
  WorkerEngine(WorkerConfig config, WorkerLaunch launch);
  // Says bye and waits for the worker to end (it ends once no cluster runs).
  ~WorkerEngine() override;
  WorkerEngine(const WorkerEngine&) = delete;
  WorkerEngine& operator=(const WorkerEngine&) = delete;

  std::optional<EngineEvent> start(AttemptSpec spec) override;
  void stop(AttemptId id, StopMode mode) override;
  std::vector<EngineEvent> wait(std::optional<Clock::time_point> deadline, int wake_fd) override;
  std::optional<std::vector<FoundExecution>> settle(const Leftovers& left, LeftoverPolicy policy,
                                                    int wake_fd) override;
  void acknowledged() override;
  std::optional<std::vector<EarlierJournal>> collect(LeftoverPolicy policy, int wake_fd) override;
  void collected() override;
  // The worker starts the next cluster itself the moment one ends.
  std::size_t queue_ahead() const override {
    return std::min<std::size_t>(2 * std::size_t{config_.parallel}, 128);
  }
  std::optional<std::uint64_t> memory_in_use(AttemptId id) const override;
  std::optional<std::uint64_t> total_memory_in_use() const override;

  // For an engine of several workers: what to poll (-1 once it is gone for
  // good), what to do when it is readable, what it has to say, and whether
  // it can take more.
  int fd() const { return pid_ < 0 ? -1 : from_.get(); }
  void read();
  // When to look again at whether the worker still answers (it says
  // something every second, and ends attempts by their timeout and a stop's
  // grace), and the look: one that does not is killed, and then read() finds
  // it gone.
  std::optional<Clock::time_point> next_check() const;
  void check(Clock::time_point now);
  std::vector<EngineEvent> take_events() { return std::exchange(events_, {}); }
  void flush();
  bool can_start() const { return pid_ >= 0 || starts_ < launch_.most_starts; }
  // How many clusters it runs at once from now on.
  void set_slots(std::uint32_t slots);
  std::size_t in_flight() const { return in_flight_.size(); }
  const std::string& site() const { return launch_.site; }

 private:
  void spawn();
  std::string who(pid_t pid) const;
  bool await_answer(const std::function<bool()>& answered, int wake_fd, const char* doing);
  void send(const std::string& line);
  // Reads what the worker said; false when it is gone.
  bool read_worker();
  void on_line(const std::string& text);
  void on_event(const Fields& f);
  void give_up(const std::string& why);
  void on_worker_lost();
  // What it left here: its clusters adopted or settled, the rest killed.
  void take_over_what_it_left(pid_t lost_pid);
  std::optional<pid_t> process_of(
      AttemptId id, const AttemptSpec& spec,
      const std::map<std::pair<ClusterId, std::uint32_t>, JournalEntry>& journalled) const;
  static void add_found(std::map<std::pair<ClusterId, std::uint32_t>, JournalEntry>& journalled,
                        const std::vector<FoundExecution>& found);
  void tell_start(AttemptId id, const AttemptSpec& spec,
                  const std::map<std::pair<ClusterId, std::uint32_t>, JournalEntry>& journalled);
  void forget(AttemptId id);
  void adopt(AttemptId id, pid_t pid, pid_t lost_pid,
             const std::map<std::pair<ClusterId, std::uint32_t>, JournalEntry>& journalled);
  void record_end(AttemptId id, const ChildEnd& end, bool killed_here, pid_t worker,
                  bool timed_out = false);
  std::vector<AttemptId> not_adopted() const;
  void kill_unadopted(const std::vector<pid_t>& pids,
                      const std::vector<std::pair<ClusterId, std::uint32_t>>& tags);
  // The adopted clusters: their ends, timeouts and stops; how many slots the
  // worker has beside them.
  void look_at_adopted(Clock::time_point now);
  void end_adopted(AttemptId id, const ChildEnd& end);
  void signal_adopted(AttemptId id, int sig);
  void reap_descendants();
  void tell_slots();
  // What it left here, killed (and found, to be settled).
  std::vector<FoundExecution> kill_what_it_left();
  void settle_lost_attempts(const std::vector<FoundExecution>& left, pid_t lost_pid);
  // What it left elsewhere, killed by a step of its own while its attempts
  // wait: started (false when it cannot be), ended (how, or nothing while
  // it runs), failed (tried again later), looked at.
  void hold_until_killed(pid_t lost_pid);
  bool start_kill_step();
  std::optional<bool> kill_step_ended(Clock::time_point now);
  void kill_failed(Clock::time_point now);
  void retry_held_kill(Clock::time_point now);
  void end_held(AttemptId id);
  std::map<AttemptId, Outcome> reap_orphaned_attempts();
  std::map<std::pair<ClusterId, std::uint32_t>, JournalEntry> journal_of_lost_worker();
  void settle_lost(AttemptId id, const AttemptSpec& spec,
                   const std::map<std::pair<ClusterId, std::uint32_t>, JournalEntry>& journalled,
                   pid_t lost_pid);

  WorkerConfig config_;
  WorkerLaunch launch_;
  pid_t pid_ = -1;
  Fd to_, from_;
  std::optional<LineReader> reader_;
  Outbox outbox_;
  bool ready_ = false;
  std::string failure_;                // what the worker said when it could not start
  std::optional<int> stopped_by_;      // the signal the worker said it stopped on
  std::optional<bool> settled_;        // its answer to "settle"
  std::vector<FoundExecution> found_;  // and what it found
  // Journals of earlier runs it collected, by run, until it says it is done.
  std::vector<EarlierJournal> earlier_;
  std::optional<std::size_t> collected_garbled_;
  std::string broken_;  // why runner gave the worker up (killed it), if it did
  // A lost worker whose leftovers elsewhere are not known killed yet: its
  // pid, while its attempts wait, and when to try the kill again.
  std::optional<pid_t> held_pid_;
  Clock::time_point retry_kill_at_;
  struct KillStep;
  std::unique_ptr<KillStep> kill_step_;  // the kill, while it runs
  bool hold_said_ = false;               // the hold was said (a kill failed)
  Clock::time_point last_heard_ = Clock::now();
  int starts_ = 0;
  std::unordered_map<AttemptId, AttemptSpec> in_flight_;  // asked, not ended
  std::unordered_set<AttemptId> started_;                 // of those, told as started
  std::unordered_map<AttemptId, Clock::time_point> started_steady_;
  std::unordered_map<AttemptId, pid_t> pid_of_;  // its main process, where it started
  // By when the worker must have ended an attempt: its timeout, or a stop's
  // grace, and some slack.
  std::unordered_map<AttemptId, Clock::time_point> due_by_;
  std::vector<EngineEvent> events_;
  std::uint64_t told_seq_ = 0, acknowledged_seq_ = 0;
  std::optional<std::uint64_t> total_usage_;
  std::unordered_map<AttemptId, std::uint64_t> usage_;
  // Clusters of a dead worker here that runner waits for itself.
  struct Adopted {
    pid_t pid = 0;
    pid_t worker = 0;  // the worker that started it, for its note
    std::optional<Clock::time_point> timeout_at, kill_at;
    bool timed_out = false;
    bool killed = false;  // runner sent it SIGKILL
  };
  std::unordered_map<AttemptId, Adopted> adopted_;
  Clock::time_point adopted_look_at_;
  Clock::time_point sweep_until_;  // until then, what runner killed is collected
  std::uint32_t slots_told_ = 0;   // what the worker may run beside them
  std::unordered_map<AttemptId, StopMode> stops_asked_;
  bool run_cgroups_left_ = false;  // a dead worker's cgroups wait for its adopted clusters
};

}  // namespace runner
