// The seam between the scheduler and whatever runs attempts: this machine's
// processes (LocalEngine), or workers on other machines. It speaks of
// attempts only. The scheduler asks an engine to start an attempt and to stop
// one, gracefully or now; the engine tells it that the attempt started (or
// could not), and how it ended. How an attempt is spawned, capped, measured,
// timed out and stopped is the engine's business. Every call and every event
// is a small value, so that an engine may live in another process and answer
// over a pipe.
//
// How failures cross the seam, one way each:
// - one attempt's: an event, AttemptNotStarted with its Why (the scheduler
//   decides: another site, a retry later, fewer at once, stop) or
//   AttemptEnded with its outcome; never an exception;
// - a site's (its worker lost, its node unreachable): the engine says it
//   once in runner's log and answers kSiteGone for what was sent there;
// - one that ends the run (a worker that cannot start, or start again; one
//   that ends while it settles): Error, thrown, with the exit code and the
//   one line the user sees; a system call of runner's own that fails
//   (ppoll): std::system_error, likewise;
// - a signal that came while the engine waited (settle, collect): nothing
//   (std::nullopt), and the caller stops as it would for the signal;
// - a line from a worker or a journal that does not decode: WireError,
//   caught where the line was read and said with what was wrong.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "runner/cluster.h"

namespace runner {

using Clock = std::chrono::steady_clock;

// The earlier of two moments, where either may be none.
inline std::optional<Clock::time_point> earliest(std::optional<Clock::time_point> a,
                                                 std::optional<Clock::time_point> b) {
  if (!a) return b;
  if (!b) return a;
  return std::min(*a, *b);
}

// What is left until `until` (none before now), as ppoll takes it.
inline timespec time_left(Clock::time_point until) {
  auto left = std::max(Clock::duration::zero(), until - Clock::now());
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
  return {static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
}

// An attempt, named by the scheduler when it asks for it; unique in a run.
using AttemptId = std::uint64_t;

// What to start: one attempt of one cluster.
struct AttemptSpec {
  AttemptId id = 0;
  std::string job;
  ClusterId cluster = 0;
  ClusterId clusters = 0;
  std::uint32_t attempt = 0;
  std::vector<std::string> argv;  // as the command template renders it; the engine finds argv[0]
  std::string log_dir;            // the job's log folder
  std::string log_name;           // "3.1.log"; if the name is taken, a fresh one beside it
  std::optional<std::uint64_t> mem_limit;            // bytes: its own cap
  std::optional<std::chrono::milliseconds> timeout;  // then the engine stops it, gracefully
  // Which of the engine's sites runs it (a node, in the order the engine was
  // given them), where memory is reserved site by site; none: the engine's choice.
  std::optional<std::size_t> site;
};

// Where an attempt runs: the host, and its main process there (for people
// and the log).
struct Placement {
  std::string host;
  std::int64_t process = 0;
};

struct AttemptStarted {
  AttemptId id = 0;
  Placement where;
  std::string log_path;   // where its log really is
  double started_at = 0;  // seconds since the epoch
  std::string cap;        // how its memory is capped there, in the log's words
};

// The attempt could not be started.
struct AttemptNotStarted {
  enum class Why {
    kCommand,       // the program could not be executed: the attempt failed (127)
    kNoProcess,     // no process could be made now (fork: EAGAIN): try again later
    kShortOfFiles,  // no open file to spare (EMFILE, ENFILE): run fewer at once
    kEnvironment,   // the engine's own means failed (log folder full, say): stop starting
    kCancelled,     // runner stopped it while it waited to start: it never did
    kSiteGone,      // the site it was sent to takes no more (its node is lost): send it elsewhere
  };
  AttemptId id = 0;
  Why why = Why::kCommand;
  std::string message;   // "cannot execute ./migrat: No such file or directory"
  std::string log_path;  // kCommand: the attempt's log, which says why; "" if none
  std::string cap;
};

// Where a figure came from.
enum class Source { kNone, kRusage, kCgroup };

// Whether memory killed an attempt, and whose limit.
enum class MemoryKill {
  kNone,
  kOwnCap,  // at its own cap: certain (the kernel counted it), or likely (see the note)
  kPool,    // by the run's limit (the budget) while it was below its own cap
};

// How an attempt ended, with what was measured of it.
struct Outcome {
  std::optional<int> exit_code;
  std::optional<int> killed_by;  // the number of the signal that ended it
  double finished_at = 0;        // seconds since the epoch
  std::optional<double> user_cpu_s, sys_cpu_s;
  std::optional<std::uint64_t> rss_peak_kib;     // rusage: the largest RSS of its tree
  std::optional<std::uint64_t> cgroup_peak_kib;  // the high-water mark of all its processes
  MemoryKill memory_kill = MemoryKill::kNone;
  std::string memory_note;  // the evidence, in words ("likely: ..." when not certain)
  bool timed_out = false;   // its timeout passed and the engine stopped it (or tried)
  std::string unstoppable;  // why a stop could not be delivered, if one could not
  // Set when it did not end by itself and it was not runner's doing (its
  // worker died and nothing is known of its end, or its worker was told to
  // stop by a signal of its own): why. It runs again, no retry spent.
  std::string interrupted;
  // It wrote no output, so none was kept: its log path leads nowhere.
  bool wrote_nothing = false;

  // The one figure its need is judged by: all its processes together where
  // that was measured (shared pages once), else the largest RSS.
  std::uint64_t peak_kib() const { return cgroup_peak_kib.value_or(rss_peak_kib.value_or(0)); }
  Source peak_source() const {
    return cgroup_peak_kib ? Source::kCgroup : rss_peak_kib ? Source::kRusage : Source::kNone;
  }
};

struct AttemptEnded {
  AttemptId id = 0;
  Outcome outcome;
};

using EngineEvent = std::variant<AttemptStarted, AttemptNotStarted, AttemptEnded>;

enum class StopMode {
  kGraceful,  // a chance to finish, then by force once the engine's grace has passed
  kNow,
};

// Attempts dead runners left `running`, and the runs of the job that may
// still have processes here, for the engine to find what of them still runs.
struct Leftovers {
  struct Attempt {
    ClusterId cluster = 0;
    Placement where;
    double started_at = 0;
  };
  std::vector<Attempt> attempts;
  std::vector<std::string> previous_runs;  // their ids (RUNNER_RUN)
};

// A process of an earlier run found still running by its RUNNER_RUN, with
// the cluster and attempt it carries: the log may not know that execution
// (started while the DB was locked, its worker killed before it journalled
// the start), and every execution gets its row.
struct FoundExecution {
  std::string job;
  ClusterId cluster = 0;
  std::uint32_t attempt = 0;
  Placement where;
  double started_at = 0;
};

enum class LeftoverPolicy { kKill, kWait };

class Engine {
 public:
  virtual ~Engine() = default;

  // Asks for an attempt. The answer (AttemptStarted or AttemptNotStarted) is
  // returned when the engine knows it at once, as a local one does; an engine
  // that must ask elsewhere returns nothing and tells it from wait(). After a
  // start, AttemptEnded follows.
  virtual std::optional<EngineEvent> start(AttemptSpec spec) = 0;
  // Asks an attempt to stop (one that has not started yet never will).
  virtual void stop(AttemptId id, StopMode mode) = 0;
  // How many attempts beyond P the engine takes to start the moment a slot
  // frees, without waiting for runner: an engine in another process keeps
  // runner off the path from one cluster's end to the next one's start.
  virtual std::size_t queue_ahead() const { return 0; }
  // What happened since the last call, in order. Blocks until something
  // did, `wake_fd` is readable (-1: none), or the deadline passes.
  virtual std::vector<EngineEvent> wait(std::optional<Clock::time_point> deadline, int wake_fd) = 0;

  // Everything told so far is committed to runner's log: an engine that
  // keeps a journal of its own may forget it.
  virtual void acknowledged() {}

  // Before the first start: kills or waits for what leftovers still run, so
  // that two copies of a cluster never run at once. Returns the executions
  // it found by their run, or nothing when `wake_fd` became readable first.
  virtual std::optional<std::vector<FoundExecution>> settle(const Leftovers&, LeftoverPolicy,
                                                            int /*wake_fd*/) {
    return std::vector<FoundExecution>{};
  }

  // Before settle(): the journals that workers of earlier runs left where
  // runner cannot read them itself (on an SSH host's own disk), read there
  // and handed over, each journal's lines (wire.h) in their order. The
  // worker that holds one still is waited for (or, with kKill, killed)
  // first. Returns nothing when `wake_fd` became readable first.
  struct EarlierJournal {
    std::string run;                 // the run it belongs to
    std::vector<std::string> lines;  // its attempts, starts and ends
    std::size_t garbled = 0;         // lines there that were not runner's
  };
  virtual std::optional<std::vector<EarlierJournal>> collect(LeftoverPolicy /*policy*/,
                                                             int /*wake_fd*/) {
    return std::vector<EarlierJournal>{};
  }
  // What collect() handed over is in runner's log: the journals may go.
  virtual void collected() {}

  // Capabilities an engine may lack: memory charged now to one attempt, and
  // to all of them together.
  virtual std::optional<std::uint64_t> memory_in_use(AttemptId) const { return std::nullopt; }
  virtual std::optional<std::uint64_t> total_memory_in_use() const { return std::nullopt; }
};

}  // namespace runner
