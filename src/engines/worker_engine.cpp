#include "runner/worker_engine.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/process.hpp>
#include <cerrno>
#include <cstring>
#include <functional>
#include <set>

#include "engines/orphans.h"
#include "runner/error.h"
#include "runner/journal.h"
#include "runner/local_engine.h"
#include "runner/spawn.h"
#include "runner/units.h"
#include "runner/words.h"

namespace bp = boost::process;

namespace runner {
namespace fs = std::filesystem;
namespace {

// How long a worker may take to say it is ready.
constexpr auto kReadyWithin = std::chrono::seconds(60);
// The worker's pipe to runner holds this much before the worker would wait
// for runner to read (runner may be waiting for the DB's lock meanwhile).
constexpr int kPipeBytes = 1 << 20;

// How long the command that kills what a dead worker left elsewhere may take.
constexpr auto kKillLeftoversWithin = std::chrono::seconds(30);
// How often runner tries again to kill what a lost worker left where it
// cannot be reached.
constexpr auto kKillRetryEvery = std::chrono::seconds(15);
// How often runner looks whether that command has ended.
constexpr auto kKillStepLook = std::chrono::milliseconds(100);
// A worker says something at least once a second. One silent for this long
// has stopped answering (stopped, hung); so has one that let an attempt run
// this long past its timeout, or past a stop's grace: runner then kills it
// and what it ran, as it would a worker that died.
constexpr auto kSilentFor = std::chrono::seconds(15);
constexpr auto kLateBy = std::chrono::seconds(5);
// How often runner looks at the clusters it adopted from a dead worker.
constexpr auto kAdoptedLook = std::chrono::milliseconds(50);

// How long runner goes on collecting what it killed of a dead worker's:
// processes die a moment after SIGKILL, and descendants pass to runner as
// their parents die.
constexpr auto kSweepFor = std::chrono::seconds(2);

// The lock of a dead worker's journal outlives it while a cluster it was
// starting still holds the worker's descriptors, until that cluster execs:
// a moment, which runner waits out (that cluster's line naming its process
// comes in it too). Bounded: a start stuck before its exec is left as one
// whose process is not known.
constexpr auto kExecWithin = std::chrono::seconds(5);

RunJournal::Lock lock_of_dead_worker(RunJournal& journal) {
  auto until = Clock::now() + kExecWithin;
  auto lock = journal.try_lock();
  for (; lock == RunJournal::Lock::kHeld && Clock::now() < until; lock = journal.try_lock())
    ::usleep(1000);
  return lock;
}

// " on n2" where a worker runs elsewhere, nothing on this machine.
std::string on_site(const std::string& site) {
  return site.empty() ? "" : " on " + site;
}

spdlog::level::level_enum level_of(const std::string& word) {
  auto level = spdlog::level::from_str(word);
  return level == spdlog::level::off ? spdlog::level::info : level;
}

}  // namespace

WorkerEngine::WorkerEngine(WorkerConfig config, WorkerLaunch launch)
    : config_(std::move(config)), launch_(std::move(launch)) {
  // Should the worker die, its clusters become runner's children, and how
  // those that end meanwhile ended is not lost with it.
  if (launch_.leftovers_here) ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  spawn();
}

// " (pid N)" for a worker here; " on n2 (srun, pid N)" for one started
// elsewhere, whose pid here is its launcher's.
std::string WorkerEngine::who(pid_t pid) const {
  if (launch_.leftovers_here) return fmt::format("{} (pid {})", on_site(launch_.site), pid);
  return fmt::format("{} ({}, pid {})", on_site(launch_.site),
                     fs::path(launch_.argv.front()).filename().string(), pid);
}

WorkerEngine::~WorkerEngine() {
  // Adopted clusters have ended by now (runner waits for every cluster);
  // any left, on the way out by an error, go with runner.
  for (const auto& [id, a] : adopted_) {
    ::kill(-a.pid, SIGKILL);
    ::kill(a.pid, SIGKILL);
    reap_child(a.pid);
  }
  if (pid_ < 0) {
    if (run_cgroups_left_) remove_run_cgroups(config_.run);
    return;
  }
  send(encode_bye());
  flush();
  to_.reset();
  // It ends once its last cluster has: by now runner has stopped them all.
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  // A dead worker's cgroups its successor kept for adopted clusters.
  if (run_cgroups_left_) remove_run_cgroups(config_.run);
}

void WorkerEngine::spawn() {
  int to_worker[2], from_worker[2];
  if (::pipe2(to_worker, O_CLOEXEC) != 0 || ::pipe2(from_worker, O_CLOEXEC) != 0)
    throw Error(fmt::format("cannot start a worker: pipe: {}", std::strerror(errno)));
  Fd to_read(to_worker[0]), from_write(from_worker[1]);
  to_.reset(to_worker[1]);
  from_.reset(from_worker[0]);
  ::fcntl(from_.get(), F_SETPIPE_SZ, kPipeBytes);
  ::fcntl(from_.get(), F_SETFL, O_NONBLOCK);
  auto words = launch_.argv;
  words.emplace_back("worker");
  ++starts_;
  auto program = launch_.program.empty() ? resolve_program(words[0]) : Resolved{launch_.program, 0};
  // The worker keeps runner's signal mask and process group: SIGINT from
  // the terminal is runner's to act on, which then tells the worker what
  // to stop. Its stderr is runner's.
  SpawnRequest request{program.path, &words, nullptr, from_write.get(), to_read.get(), nullptr};
  request.err_fd = SpawnRequest::kKeep;
  request.own_group = false;
  auto spawned = program.error ? SpawnResult{-1, program.error, false} : spawn_child(request);
  if (spawned.error != 0)
    throw Error(fmt::format("cannot start a worker{} ({}): {}", on_site(launch_.site), words[0],
                            std::strerror(spawned.error)));
  pid_ = spawned.pid;
  reader_.emplace(from_.get());
  ready_ = false;
  stopped_by_.reset();
  broken_.clear();
  failure_.clear();
  send(encode_config(config_));
  flush();
  // Its first words: ready, or why not.
  auto give_up = Clock::now() + kReadyWithin;
  while (!ready_ && failure_.empty() && Clock::now() < give_up) {
    pollfd fd{from_.get(), POLLIN, 0};
    ::poll(&fd, 1, 1000);
    if (!read_worker() && failure_.empty())
      failure_ = broken_.empty() ? "it exited at once" : broken_;
  }
  if (!ready_) {
    // What it left (a launcher that failed at once) is reaped: nothing waits on it.
    to_.reset();
    from_.reset();
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    throw Error(fmt::format("cannot start a worker{}: {}", on_site(launch_.site), failure_));
  }
  slots_told_ = config_.parallel;
  tell_slots();
  if (!adopted_.empty())
    spdlog::info("a new worker{} runs up to {} cluster(s) at once beside the {} runner adopted",
                 who(pid_), slots_told_, adopted_.size());
}

// Said at the next flush: once per wakeup, before runner waits.
void WorkerEngine::send(const std::string& line) {
  if (to_) outbox_.add(line);
}

void WorkerEngine::flush() {
  // A worker that is gone is found when its pipe says so.
  if (to_ && !outbox_.empty() && !outbox_.flush(to_.get())) to_.reset();
}

std::optional<EngineEvent> WorkerEngine::start(AttemptSpec spec) {
  if (pid_ < 0) {
    if (starts_ >= launch_.most_starts)
      return AttemptNotStarted{
          spec.id, AttemptNotStarted::Why::kEnvironment,
          fmt::format("the worker{} died {} time(s) in this run", on_site(launch_.site), starts_),
          "", ""};
    spawn();
  }
  auto id = spec.id;
  send(encode_start(spec));
  in_flight_.emplace(id, std::move(spec));
  return std::nullopt;
}

void WorkerEngine::set_slots(std::uint32_t slots) {
  config_.parallel = slots;
  tell_slots();
}

// The worker runs its share of the slots less those of the clusters runner
// adopted from a dead one.
void WorkerEngine::tell_slots() {
  if (pid_ < 0) return;
  auto beside = static_cast<std::uint32_t>(adopted_.size());
  auto slots = config_.parallel > beside ? config_.parallel - beside : 0;
  if (slots == slots_told_) return;
  slots_told_ = slots;
  send(encode_slots(slots));
}

void WorkerEngine::stop(AttemptId id, StopMode mode) {
  if (!in_flight_.contains(id)) return;
  if (held_pid_) return end_held(id);
  auto& asked = stops_asked_.try_emplace(id, mode).first->second;
  if (mode == StopMode::kNow) asked = mode;
  if (auto it = adopted_.find(id); it != adopted_.end()) {
    auto& a = it->second;
    // Stopped by runner, it is no longer timed: its end is runner's doing.
    a.timeout_at.reset();
    if (mode == StopMode::kNow) {
      signal_adopted(id, SIGKILL);
      return;
    }
    signal_adopted(id, SIGTERM);
    if (!a.kill_at) a.kill_at = Clock::now() + config_.grace;
    return;
  }
  send(encode_stop(id, mode == StopMode::kNow));
  // The worker ends it within its grace; runner sees to it if it does not.
  auto by = Clock::now() + (mode == StopMode::kNow ? std::chrono::milliseconds(0) : config_.grace) +
            kLateBy;
  if (auto it = due_by_.find(id); it == due_by_.end() || by < it->second) due_by_[id] = by;
}

void WorkerEngine::acknowledged() {
  if (told_seq_ <= acknowledged_seq_) return;
  acknowledged_seq_ = told_seq_;
  send(encode_committed(acknowledged_seq_));
}

void WorkerEngine::read() {
  if (!read_worker()) on_worker_lost();
}

bool WorkerEngine::read_worker() {
  bool closed = false;
  auto lines = reader_->read_available(closed);
  if (!lines.empty()) last_heard_ = Clock::now();
  for (const auto& line : lines) {
    if (!broken_.empty()) break;
    try {
      on_line(line);
    } catch (const WireError& e) {
      // Not what a worker says: it cannot be trusted with the rest. Its
      // journal, which runner reads next, is.
      give_up(fmt::format("it said what runner cannot read ({}: {})", e.what(),
                          printable(line.substr(0, 80))));
    }
  }
  return !closed;
}

// Kills the worker (its launcher, elsewhere): what it ran is then handled as
// for a worker that died, from its journal.
void WorkerEngine::give_up(const std::string& why) {
  if (pid_ < 0 || !broken_.empty()) return;
  broken_ = why;
  spdlog::error("the worker{} {}; it is killed and replaced", who(pid_), why);
  ::kill(pid_, SIGKILL);
}

void WorkerEngine::on_event(const Fields& f) {
  std::optional<std::uint64_t> seq;
  auto event = decode_event(f, seq);
  auto id = std::visit([](const auto& e) { return e.id; }, event);
  if (!in_flight_.contains(id))
    throw WireError(fmt::format("attempt {} is not one runner asked it for", id));
  if (seq) told_seq_ = std::max(told_seq_, *seq);
  if (auto* started = std::get_if<AttemptStarted>(&event)) {
    started_.insert(id);
    // It must have ended by its timeout and grace, or runner sees to it.
    started_steady_[id] = Clock::now();
    pid_of_[id] = static_cast<pid_t>(started->where.process);
    if (const auto& t = in_flight_.at(id).timeout)
      due_by_[id] = Clock::now() + *t + config_.grace + kLateBy;
    (void)started;
  } else {
    in_flight_.erase(id);
    started_.erase(id);
    started_steady_.erase(id);
    pid_of_.erase(id);
    usage_.erase(id);
    due_by_.erase(id);
    stops_asked_.erase(id);
  }
  events_.push_back(std::move(event));
}

void WorkerEngine::on_line(const std::string& text) {
  Fields f(text);
  switch (f.kind()) {
    case 's':
    case 'n':
    case 'e':
      return on_event(f);
    case 'G':
      spdlog::log(level_of(f.text(0)), "{}", f.text(1));
      return;
    case 'U':
      total_usage_ = f.maybe<std::uint64_t>(0);
      usage_.clear();
      if (f.size() % 2 != 1) throw WireError("a usage line cut short");
      for (std::size_t i = 1; i + 1 < f.size(); i += 2) usage_[f.count(i)] = f.count(i + 1);
      return;
    case 'D': {
      settled_ = f.count(0) == 1;
      found_.clear();
      if ((f.size() - 1) % 6 != 0) throw WireError("a settled line cut short");
      for (std::size_t i = 1; i + 5 < f.size(); i += 6)
        found_.push_back({f.text(i),
                          f.count(i + 1),
                          static_cast<std::uint32_t>(f.count(i + 2)),
                          {f.text(i + 3), f.number(i + 4)},
                          f.real(i + 5)});
      return;
    }
    case 'R':
      if (f.count(0) != kWireVersion)
        throw WireError(
            fmt::format("it speaks version {} of the wire, runner {}", f.count(0), kWireVersion));
      ready_ = true;
      return;
    case 'F':
      failure_ = f.text(0);
      return;
    case 'X':
      stopped_by_ = static_cast<int>(f.number(0));
      return;
    case 'o':
      if (earlier_.empty() || earlier_.back().run != f.text(0))
        earlier_.push_back({f.text(0), {}, 0});
      earlier_.back().lines.push_back(f.text(1));
      return;
    case 'd':
      collected_garbled_ = f.count(0);
      return;
    case 'A':
      return;
    default:
      throw WireError(fmt::format("not a message: '{}'", f.kind()));
  }
}

// When runner must look again at whether the worker still answers.
// and at the clusters it adopted.
std::optional<Clock::time_point> WorkerEngine::next_check() const {
  if (held_pid_) return retry_kill_at_;
  std::optional<Clock::time_point> next;
  if (!adopted_.empty() || Clock::now() < sweep_until_) next = adopted_look_at_;
  if (pid_ < 0 || in_flight_.size() == adopted_.size() || !broken_.empty()) return next;
  next = earliest(next, last_heard_ + kSilentFor);
  for (const auto& [id, by] : due_by_) next = std::min(*next, by);
  return next;
}

void WorkerEngine::check(Clock::time_point now) {
  if (held_pid_) return retry_held_kill(now);
  if ((!adopted_.empty() || now < sweep_until_) && now >= adopted_look_at_) look_at_adopted(now);
  if (pid_ < 0 || in_flight_.size() == adopted_.size() || !broken_.empty()) return;
  if (now >= last_heard_ + kSilentFor)
    return give_up(fmt::format("has said nothing for {} s", kSilentFor.count()));
  if (std::any_of(due_by_.begin(), due_by_.end(),
                  [&](const auto& due) { return now >= due.second; }))
    give_up("let an attempt run past its timeout or a stop's grace");
}

std::vector<EngineEvent> WorkerEngine::wait(std::optional<Clock::time_point> deadline,
                                            int wake_fd) {
  flush();
  while (events_.empty()) {
    // Nothing will come: the caller has nothing running.
    if (pid_ < 0 && adopted_.empty() && !deadline) return {};
    auto until = earliest(deadline, next_check());
    timespec ts = until ? time_left(*until) : timespec{};
    pollfd fds[] = {{pid_ < 0 ? -1 : from_.get(), POLLIN, 0}, {wake_fd, POLLIN, 0}};
    int ready = ::ppoll(fds, 2, until ? &ts : nullptr, nullptr);
    if (ready < 0 && errno != EINTR)
      throw std::system_error(errno, std::generic_category(), "ppoll");
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      read();
      continue;
    }
    if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) break;
    // Nothing came: a worker that should have said something is given up
    // (its end comes as the pipe closes), adopted clusters are looked at,
    // else the caller's deadline.
    if (auto due = next_check(); due && Clock::now() >= *due) check(Clock::now());
    if (ready == 0 && deadline && Clock::now() >= *deadline) break;
  }
  return std::exchange(events_, {});
}

// The worker died under runner (or runner gave it up): what its journal
// holds is told as usual; an attempt it started and never journalled the end
// of is lost, one it never started goes back; what it left running is killed
// before anything starts again.
void WorkerEngine::on_worker_lost() {
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  auto lost_pid = pid_;
  pid_ = -1;
  to_.reset();
  from_.reset();
  // What runner kills of it here, and what it leaves runner to reap, is
  // collected for a while.
  if (launch_.leftovers_here) {
    sweep_until_ = Clock::now() + kSweepFor;
    adopted_look_at_ = Clock::now() + kAdoptedLook;
  }
  auto how = !broken_.empty()      ? broken_
             : stopped_by_         ? std::string()
             : WIFSIGNALED(status) ? fmt::format("it was killed by signal {}", WTERMSIG(status))
                                   : fmt::format("it ended with exit code {}", WEXITSTATUS(status));
  if (stopped_by_ && broken_.empty()) {
    // It stopped its clusters and told their ends: nothing of it is left.
    spdlog::error("the worker{} got {} and stopped its clusters; it takes no more", who(lost_pid),
                  signal_name(*stopped_by_));
  } else {
    spdlog::error("the worker{} is gone ({}); {} of its cluster(s) were running", who(lost_pid),
                  how, started_.size());
  }
  // Here, its clusters are runner's children now (runner is their
  // subreaper), and runner takes them over. Elsewhere, what it left running
  // is killed, by a command that may take as long as the site takes to
  // answer: its attempts wait meanwhile, and runner goes on. In the stream
  // form, whose clusters lost their output with the worker, it is killed
  // here too (a cluster it started in its last moment, before it journalled
  // or told the start, is known by that: it gets its row too).
  if (!stopped_by_ || !broken_.empty()) {
    if (!launch_.leftovers_here && !launch_.kill_leftovers.empty())
      return hold_until_killed(lost_pid);
    if (launch_.leftovers_here && config_.log_format == LogFormat::kFiles)
      return take_over_what_it_left(lost_pid);
    settle_lost_attempts(kill_what_it_left(), lost_pid);
  } else {
    settle_lost_attempts({}, lost_pid);
  }
}

// What a lost worker left is known gone (killed, or ended): each of its
// attempts is settled from its journal, its status or as lost.
void WorkerEngine::settle_lost_attempts(const std::vector<FoundExecution>& left, pid_t lost_pid) {
  auto journalled = journal_of_lost_worker();
  auto reaped = reap_orphaned_attempts();
  add_found(journalled, left);
  // Clusters adopted from an earlier worker are runner's, not this one's.
  for (auto id : not_adopted()) {
    if (auto it = reaped.find(id); it != reaped.end())
      events_.push_back(AttemptEnded{id, it->second});
    else
      settle_lost(id, in_flight_.at(id), journalled, lost_pid);
    forget(id);
  }
  due_by_.clear();
  usage_.clear();
  total_usage_.reset();
}

std::vector<AttemptId> WorkerEngine::not_adopted() const {
  std::vector<AttemptId> ids;
  for (const auto& [id, spec] : in_flight_)
    if (!adopted_.contains(id)) ids.push_back(id);
  return ids;
}

// A dead worker's clusters here are runner's children now. Each is known by
// its pid: the start the worker told, the line the cluster's process wrote
// of itself in the journal as it started, or the RUNNER_* variables a
// running one carries. One whose end was journalled is recorded from the
// journal; one that ended since is recorded as its status says; one that
// runs is adopted. One with no process to be found is settled as for a
// worker elsewhere. What else carries the run's mark is killed.
void WorkerEngine::take_over_what_it_left(pid_t lost_pid) {
  auto journalled = journal_of_lost_worker();
  auto left = find_leftovers(Leftovers{{}, {config_.run}});
  add_found(journalled, left.found);
  for (auto id : not_adopted()) {
    const auto& spec = in_flight_.at(id);
    auto entry = journalled.find({spec.cluster, spec.attempt});
    bool journalled_end = entry != journalled.end() && entry->second.outcome;
    auto pid = process_of(id, spec, journalled);
    auto look = pid ? look_at_child(*pid) : ChildLook{};
    if (look.end) reap_child(*pid);  // its end is read: journalled, or as the kernel kept it
    bool runs = look.mine && !look.end && !journalled_end;
    if (journalled_end || (!look.end && !runs)) {
      settle_lost(id, spec, journalled, lost_pid);
      forget(id);
      continue;
    }
    tell_start(id, spec, journalled);
    if (runs) {
      adopt(id, *pid, lost_pid, journalled);
      continue;
    }
    record_end(id, *look.end, false, lost_pid);
  }
  kill_unadopted(left.pids, left.tags);
  due_by_.clear();
  usage_.clear();
  total_usage_.reset();
  // What was killed, and clusters whose end the worker had told but not
  // reaped, are collected.
  sweep_until_ = Clock::now() + kSweepFor;
  adopted_look_at_ = Clock::now() + kAdoptedLook;
  reap_descendants();
  if (adopted_.empty()) {
    remove_run_cgroups(config_.run);
    return;
  }
  run_cgroups_left_ = true;
  spdlog::warn(
      "runner adopted the {} cluster(s) the worker{} left running: it waits for them, holds them "
      "to their timeout and records how they end",
      adopted_.size(), who(lost_pid));
}

// Its pid, where it is known.
std::optional<pid_t> WorkerEngine::process_of(
    AttemptId id, const AttemptSpec& spec,
    const std::map<std::pair<ClusterId, std::uint32_t>, JournalEntry>& journalled) const {
  if (auto it = pid_of_.find(id); it != pid_of_.end() && it->second > 0) return it->second;
  auto it = journalled.find({spec.cluster, spec.attempt});
  if (it == journalled.end() || it->second.started.where.process <= 0) return std::nullopt;
  return static_cast<pid_t>(it->second.started.where.process);
}

void WorkerEngine::adopt(
    AttemptId id, pid_t pid, pid_t lost_pid,
    const std::map<std::pair<ClusterId, std::uint32_t>, JournalEntry>& journalled) {
  auto& a = adopted_[id];
  a.pid = pid;
  a.worker = lost_pid;
  const auto& spec = in_flight_.at(id);
  // Timed from its start as told, else as journalled (wall clock).
  if (!started_steady_.contains(id)) {
    auto entry = journalled.find({spec.cluster, spec.attempt});
    auto ago = entry == journalled.end()
                   ? 0.0
                   : std::max(0.0, wall_clock_now() - entry->second.started.started_at);
    started_steady_[id] = Clock::now() - std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double>(ago));
  }
  if (spec.timeout) a.timeout_at = started_steady_.at(id) + *spec.timeout;
  due_by_.erase(id);
  usage_.erase(id);
  // A stop runner asked of the worker may not have reached the cluster.
  if (auto asked = stops_asked_.find(id); asked != stops_asked_.end()) {
    auto mode = asked->second;
    stops_asked_.erase(asked);
    stop(id, mode);
  }
}

// Everything else of the run's: processes of clusters not adopted (their
// descendants, or one started after the worker last spoke), killed; those
// that were runner's children, reaped.
void WorkerEngine::kill_unadopted(const std::vector<pid_t>& pids,
                                  const std::vector<std::pair<ClusterId, std::uint32_t>>& tags) {
  std::set<std::pair<ClusterId, std::uint32_t>> kept;
  for (const auto& [id, a] : adopted_) {
    const auto& spec = in_flight_.at(id);
    kept.emplace(spec.cluster, spec.attempt);
  }
  std::vector<pid_t> doomed;
  for (std::size_t i = 0; i < pids.size(); ++i)
    if (!kept.contains(tags[i])) doomed.push_back(pids[i]);
  settle_leftovers(doomed, LeftoverPolicy::kKill, -1, "its dead worker left running");
  for (pid_t pid : doomed) ::waitpid(pid, nullptr, WNOHANG);
}

// The adopted clusters that ended are recorded; the others are held to
// their timeout and a stop's grace, as the worker would have.
void WorkerEngine::look_at_adopted(Clock::time_point now) {
  adopted_look_at_ = now + kAdoptedLook;
  std::vector<std::pair<AttemptId, ChildEnd>> ended;
  for (auto& [id, a] : adopted_) {
    if (auto end = peek_end(a.pid)) {
      ended.emplace_back(id, *end);
      continue;
    }
    if (a.timeout_at && now >= *a.timeout_at) {
      a.timeout_at.reset();
      a.timed_out = true;
      const auto& spec = in_flight_.at(id);
      spdlog::warn("cluster {}/{}: {} timeout reached; stopping it", spec.cluster, spec.clusters,
                   format_duration(*spec.timeout));
      signal_adopted(id, SIGTERM);
      if (!a.kill_at) a.kill_at = now + config_.grace;
    }
    if (a.kill_at && now >= *a.kill_at) {
      a.kill_at.reset();
      signal_adopted(id, SIGKILL);
    }
    adopted_look_at_ = std::min({adopted_look_at_, a.timeout_at.value_or(adopted_look_at_),
                                 a.kill_at.value_or(adopted_look_at_)});
  }
  for (const auto& [id, end] : ended) end_adopted(id, end);
  reap_descendants();
  if (adopted_.empty() && run_cgroups_left_ && pid_ < 0) {
    remove_run_cgroups(config_.run);
    run_cgroups_left_ = false;
  }
  tell_slots();
}

void WorkerEngine::end_adopted(AttemptId id, const ChildEnd& end) {
  auto a = adopted_.at(id);
  adopted_.erase(id);
  // What is left of its group goes with it; the group's id is still its own.
  ::kill(-a.pid, SIGKILL);
  reap_child(a.pid);
  sweep_until_ = Clock::now() + kSweepFor;
  record_end(id, end, a.killed, a.worker, a.timed_out);
}

// How a dead worker's cluster ended, as runner read it. One past its
// timeout was timed out (by runner, or by its worker before it died); a
// SIGKILL runner did not send is not the cluster's doing that runner can
// name.
void WorkerEngine::record_end(AttemptId id, const ChildEnd& end, bool killed_here, pid_t worker,
                              bool timed_out) {
  const auto& spec = in_flight_.at(id);
  auto out = outcome_of_end(end);
  auto since = started_steady_.find(id);
  out.timed_out = timed_out || (spec.timeout && since != started_steady_.end() &&
                                Clock::now() - since->second >= *spec.timeout);
  if (out.killed_by == SIGKILL && !killed_here && !out.timed_out)
    out.interrupted = fmt::format(
        "its worker{} died, and it was killed by SIGKILL (by its memory cap, or by another "
        "process)",
        who(worker));
  // Files form: one that wrote nothing keeps no empty file.
  auto log = fs::path(spec.log_dir) / spec.log_name;
  struct stat st {};
  if (::lstat(log.c_str(), &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 0)
    out.wrote_nothing = ::unlink(log.c_str()) == 0;
  events_.push_back(AttemptEnded{id, std::move(out)});
  forget(id);
}

// A signal to an adopted cluster's whole group; SIGTERM wakes a stopped one.
void WorkerEngine::signal_adopted(AttemptId id, int sig) {
  auto& a = adopted_.at(id);
  if (sig == SIGKILL) a.killed = true;
  if (::kill(-a.pid, sig) != 0) ::kill(a.pid, sig);
  if (sig == SIGTERM) ::kill(-a.pid, SIGCONT);
}

// Descendants of adopted clusters that became runner's children, once they
// end. The first child that ended being one runner has yet to look at, the
// rest wait for the next look.
void WorkerEngine::reap_descendants() {
  reap_ended_children([&](pid_t pid) {
    return pid == pid_ || std::any_of(adopted_.begin(), adopted_.end(),
                                      [&](const auto& entry) { return entry.second.pid == pid; });
  });
}

// An attempt settled: nothing of it is kept.
void WorkerEngine::forget(AttemptId id) {
  in_flight_.erase(id);
  started_.erase(id);
  started_steady_.erase(id);
  pid_of_.erase(id);
  due_by_.erase(id);
  usage_.erase(id);
  stops_asked_.erase(id);
}

// Executions found by their RUNNER_* variables that the journal does not
// name: their starts, from what they carry.
void WorkerEngine::add_found(
    std::map<std::pair<ClusterId, std::uint32_t>, JournalEntry>& journalled,
    const std::vector<FoundExecution>& found) {
  for (const auto& f : found) {
    auto& kept = journalled[{f.cluster, f.attempt}];
    if (kept.cluster != 0) {
      if (kept.started.where.process <= 0) kept.started.where = f.where;
      continue;
    }
    kept.job = f.job;
    kept.cluster = f.cluster;
    kept.attempt = f.attempt;
    kept.started = AttemptStarted{0, f.where, "", f.started_at, ""};
  }
}

// A stop of an attempt held for its lost worker: it ends here, its row
// `interrupted` with why, though its first copy may still run where it was.
void WorkerEngine::end_held(AttemptId id) {
  auto it = in_flight_.find(id);
  if (started_.contains(id)) {
    AttemptEnded ended{id, {}};
    ended.outcome.finished_at = wall_clock_now();
    ended.outcome.interrupted = fmt::format(
        "its worker{} was lost, and what it left could not be killed: it "
        "may still run there",
        who(*held_pid_));
    events_.push_back(std::move(ended));
  } else {
    events_.push_back(AttemptNotStarted{id, AttemptNotStarted::Why::kCancelled,
                                        "runner stopped it while its worker was lost", "", ""});
  }
  started_.erase(id);
  in_flight_.erase(it);
  if (in_flight_.empty()) held_pid_.reset();
}

// The step that kills what a lost worker left where it ran (srun, ssh),
// run beside runner's loop: a host that cannot be reached holds it up to
// ssh's ConnectTimeout, and runner records and starts the other sites'
// clusters meanwhile.
struct WorkerEngine::KillStep {
  bp::child child;
  Clock::time_point until;
  std::string what;  // its command line, for messages
};

// A lost worker's attempts, started or handed ahead, may still run where
// it ran, and none runs again elsewhere until they are known gone. They
// wait, still running as the scheduler sees them, while the kill runs and,
// should it fail (the node or host cannot be reached), until it is tried
// again and gets through.
void WorkerEngine::hold_until_killed(pid_t lost_pid) {
  held_pid_ = lost_pid;
  hold_said_ = false;
  if (!start_kill_step()) kill_failed(Clock::now());
}

bool WorkerEngine::start_kill_step() {
  auto argv = launch_.kill_leftovers;
  argv.insert(argv.end(), {"worker", "--kill-run", worker_name(config_)});
  std::error_code ec;
  bp::child child(resolve_program(argv.front()).path,
                  std::vector<std::string>(argv.begin() + 1, argv.end()), bp::std_in < bp::null,
                  ec);
  if (ec) {
    spdlog::error("cannot run {}: {}", argv.front(), ec.message());
    return false;
  }
  auto now = Clock::now();
  kill_step_ = std::make_unique<KillStep>(KillStep{std::move(child), now + kKillLeftoversWithin,
                                                   fmt::format("{}", fmt::join(argv, " "))});
  retry_kill_at_ = now + kKillStepLook;
  return true;
}

std::optional<bool> WorkerEngine::kill_step_ended(Clock::time_point now) {
  std::error_code ec;
  auto& step = *kill_step_;
  if (step.child.running(ec)) {
    if (now < step.until) return std::nullopt;
    step.child.terminate(ec);
    spdlog::error("{} did not end within {} s; stopped", step.what, kKillLeftoversWithin.count());
    kill_step_.reset();
    return false;
  }
  bool ok = !ec && step.child.exit_code() == 0;
  if (!ok) spdlog::error("{} ended with exit code {}", step.what, step.child.exit_code());
  kill_step_.reset();
  return ok;
}

// Said once a hold lasts: which clusters wait, and why.
void WorkerEngine::kill_failed(Clock::time_point now) {
  retry_kill_at_ = now + kKillRetryEvery;
  if (std::exchange(hold_said_, true)) return;
  std::vector<ClusterId> clusters;
  for (const auto& [id, spec] : in_flight_) clusters.push_back(spec.cluster);
  std::sort(clusters.begin(), clusters.end());
  spdlog::error(
      "what the worker{} left cannot be killed: cluster(s) {} may still run there, and wait "
      "until they are known gone; runner tries again every {} s (once it can reach it), and a "
      "stop leaves them to be settled by the next start",
      on_site(launch_.site), fmt::join(clusters, ", "), kKillRetryEvery.count());
}

void WorkerEngine::retry_held_kill(Clock::time_point now) {
  if (!held_pid_ || now < retry_kill_at_) return;
  if (!kill_step_) {
    if (!start_kill_step()) kill_failed(now);
    return;
  }
  auto ended = kill_step_ended(now);
  if (!ended) {
    retry_kill_at_ = now + kKillStepLook;
    return;
  }
  if (!*ended) return kill_failed(now);
  if (hold_said_)
    spdlog::warn("what the worker{} left is killed: its clusters run again", on_site(launch_.site));
  auto lost_pid = *std::exchange(held_pid_, std::nullopt);
  settle_lost_attempts({}, lost_pid);
}

// The attempts of a lost worker here, once what it left was killed:
// reparented to runner, which reaps them and reads how they ended. One
// killed by SIGKILL (by runner just now, or by its cgroup's limit, which
// runner cannot read) counts as interrupted.
std::map<AttemptId, Outcome> WorkerEngine::reap_orphaned_attempts() {
  std::map<AttemptId, Outcome> out;
  if (!launch_.leftovers_here) return out;
  for (const auto& [id, pid] : pid_of_) {
    if (adopted_.contains(id)) continue;
    auto end = peek_end(pid);  // none: still running, or not runner's child
    if (!end) continue;
    reap_child(pid);
    auto o = outcome_of_end(*end);
    if (o.killed_by != SIGKILL) out.emplace(id, o);
  }
  return out;
}

// What a lost worker left running, killed where it ran; the executions it
// found, where that is here.
std::vector<FoundExecution> WorkerEngine::kill_what_it_left() {
  if (launch_.leftovers_here) {
    auto left = find_leftovers(Leftovers{{}, {config_.run}});
    settle_leftovers(left.pids, LeftoverPolicy::kKill, -1, "its dead worker left running");
    // Those reparented to runner that are no cluster's own process (their
    // descendants) are reaped, not left as zombies.
    for (pid_t pid : left.pids)
      if (std::none_of(pid_of_.begin(), pid_of_.end(),
                       [&](const auto& entry) { return entry.second == pid; }))
        ::waitpid(pid, nullptr, WNOHANG);
    // And the cgroups it made go with it (a next worker makes its own).
    remove_run_cgroups(config_.run);
    return left.found;
  }
  return {};
}

// The lost worker's journal, by attempt: an end where it wrote one, else a
// start. Read as any earlier run's, then removed.
std::map<std::pair<ClusterId, std::uint32_t>, JournalEntry> WorkerEngine::journal_of_lost_worker() {
  std::map<std::pair<ClusterId, std::uint32_t>, JournalEntry> out;
  JournalOwner owner{config_.db_id, config_.job, config_.job_key,
                     [&](const std::string& run) { return run == config_.run; }, std::nullopt};
  std::vector<std::string> ignored;
  auto name = worker_name(config_);
  for (auto& journal : RunJournal::find(config_.journal_dir, owner, ignored)) {
    if (journal.name() != name || lock_of_dead_worker(journal) != RunJournal::Lock::kTaken)
      continue;
    std::size_t garbled = 0;
    for (auto& e : journal.read(garbled)) {
      auto& kept = out[{e.cluster, e.attempt}];
      if (!kept.outcome) kept = std::move(e);
    }
    journal.remove();
  }
  return out;
}

void WorkerEngine::settle_lost(
    AttemptId id, const AttemptSpec& spec,
    const std::map<std::pair<ClusterId, std::uint32_t>, JournalEntry>& journalled, pid_t lost_pid) {
  auto it = journalled.find({spec.cluster, spec.attempt});
  bool known = it != journalled.end();
  if (!started_.contains(id) && !known) {
    // It never ran: it goes elsewhere, or to the next worker here.
    events_.push_back(AttemptNotStarted{
        id, AttemptNotStarted::Why::kSiteGone,
        fmt::format("its worker{} ended before it started", on_site(launch_.site)), "", ""});
    return;
  }
  tell_start(id, spec, journalled);
  AttemptEnded ended{id, {}};
  if (known && it->second.outcome) {
    ended.outcome = *it->second.outcome;
  } else {
    ended.outcome.finished_at = wall_clock_now();
    auto since = started_steady_.find(id);
    // One past its timeout that runner had to kill ends as its timeout says.
    if (!broken_.empty() && spec.timeout && since != started_steady_.end() &&
        Clock::now() - since->second >= *spec.timeout) {
      ended.outcome.timed_out = true;
      ended.outcome.killed_by = SIGKILL;
    } else {
      ended.outcome.interrupted =
          broken_.empty() ? fmt::format("its worker{} died while it ran", who(lost_pid))
                          : fmt::format("its worker{} was killed: it {}", who(lost_pid), broken_);
    }
  }
  events_.push_back(std::move(ended));
}

// A start runner was not told of, from the journal (or what its process
// carries).
void WorkerEngine::tell_start(
    AttemptId id, const AttemptSpec& spec,
    const std::map<std::pair<ClusterId, std::uint32_t>, JournalEntry>& journalled) {
  if (started_.contains(id)) return;
  auto s = journalled.at({spec.cluster, spec.attempt}).started;
  s.id = id;
  if (s.log_path.empty()) s.log_path = (fs::path(spec.log_dir) / spec.log_name).string();
  events_.push_back(s);
  started_.insert(id);
}

// Reads what the worker says until `answered`; false when `wake_fd` became
// readable first. A worker that ends meanwhile is an Error naming `doing`.
bool WorkerEngine::await_answer(const std::function<bool()>& answered, int wake_fd,
                                const char* doing) {
  while (!answered()) {
    pollfd fds[] = {{from_.get(), POLLIN, 0}, {wake_fd, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0 && errno != EINTR) return false;
    if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) return false;
    if (!read_worker() || !broken_.empty())
      throw Error(fmt::format("the worker{} ended while {}", on_site(launch_.site), doing));
  }
  return true;
}

std::optional<std::vector<FoundExecution>> WorkerEngine::settle(const Leftovers& left,
                                                                LeftoverPolicy policy,
                                                                int wake_fd) {
  if (left.attempts.empty() && left.previous_runs.empty()) return std::vector<FoundExecution>{};
  send(encode_settle(left, policy));
  flush();
  settled_.reset();
  if (!await_answer([&] { return settled_.has_value(); }, wake_fd,
                    "settling what an earlier run left"))
    return std::nullopt;
  if (!*settled_) return std::nullopt;
  return std::exchange(found_, {});
}

std::optional<std::vector<Engine::EarlierJournal>> WorkerEngine::collect(LeftoverPolicy policy,
                                                                         int wake_fd) {
  send(encode_collect(policy));
  flush();
  earlier_.clear();
  collected_garbled_.reset();
  if (!await_answer([&] { return collected_garbled_.has_value(); }, wake_fd,
                    "collecting what earlier runs journalled"))
    return std::nullopt;
  if (*collected_garbled_ > 0) earlier_.push_back({"", {}, *collected_garbled_});
  return std::exchange(earlier_, {});
}

void WorkerEngine::collected() {
  send(encode_forget_collected());
  flush();
}

std::optional<std::uint64_t> WorkerEngine::memory_in_use(AttemptId id) const {
  auto it = usage_.find(id);
  if (it == usage_.end()) return std::nullopt;
  return it->second;
}

std::optional<std::uint64_t> WorkerEngine::total_memory_in_use() const {
  return total_usage_;
}

}  // namespace runner
