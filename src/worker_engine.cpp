#include "runner/worker_engine.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <poll.h>
#include <spawn.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/process.hpp>
#include <cerrno>
#include <cstring>

#include "orphans.h"
#include "runner/error.h"
#include "runner/journal.h"
#include "runner/words.h"

extern char** environ;

namespace bp = boost::process;

namespace runner {
namespace {

using nlohmann::json;

// How long a worker may take to say it is ready.
constexpr auto kReadyWithin = std::chrono::seconds(60);
// The worker's pipe to runner holds this much before the worker would wait
// for runner to read (runner may be waiting for the DB's lock meanwhile).
constexpr int kPipeBytes = 1 << 20;

// How long the command that kills what a dead worker left elsewhere may take.
constexpr auto kKillLeftoversWithin = std::chrono::seconds(30);

// Runs a command to its end, or kills it after `limit`; says so if it failed.
void run_to_the_end(const std::vector<std::string>& argv, std::chrono::seconds limit) {
  std::error_code ec;
  bp::child child(bp::search_path(argv.front()),
                  std::vector<std::string>(argv.begin() + 1, argv.end()), bp::std_in < bp::null,
                  ec);
  if (ec) {
    spdlog::error("cannot run {}: {}", argv.front(), ec.message());
    return;
  }
  if (!child.wait_for(limit, ec)) {
    child.terminate(ec);
    spdlog::error("{} did not end within {} s; stopped", fmt::join(argv, " "), limit.count());
    return;
  }
  if (child.exit_code() != 0)
    spdlog::error("{} ended with exit code {}", fmt::join(argv, " "), child.exit_code());
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
  spawn();
}

WorkerEngine::~WorkerEngine() {
  if (pid_ < 0) return;
  send(json{{"op", "bye"}}.dump());
  flush();
  to_.reset();
  // It ends once its last cluster has: by now runner has stopped them all.
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
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
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, to_read.get(), STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, from_write.get(), STDOUT_FILENO);
  // The worker keeps runner's signal mask: SIGINT from the terminal is
  // runner's to act on, which then tells the worker what to stop.
  auto words = launch_.argv;
  words.emplace_back("worker");
  std::vector<char*> argv;
  argv.reserve(words.size() + 1);
  for (auto& w : words) argv.push_back(w.data());
  argv.push_back(nullptr);
  ++starts_;
  const char* program = launch_.program.empty() ? argv[0] : launch_.program.c_str();
  int err = posix_spawnp(&pid_, program, &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (err != 0) {
    pid_ = -1;
    throw Error(fmt::format("cannot start a worker{} ({}): {}", on_site(launch_.site), words[0],
                            std::strerror(err)));
  }
  reader_.emplace(from_.get());
  ready_ = false;
  stopped_by_.reset();
  send(to_json(config_).dump());
  flush();
  // Its first words: ready, or why not.
  auto give_up = Clock::now() + kReadyWithin;
  while (!ready_ && failure_.empty() && Clock::now() < give_up) {
    pollfd fd{from_.get(), POLLIN, 0};
    ::poll(&fd, 1, 1000);
    if (!read_worker() && failure_.empty()) failure_ = "it exited at once";
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

void WorkerEngine::stop(AttemptId id, StopMode mode) {
  if (in_flight_.contains(id)) send(encode_stop(id, mode == StopMode::kNow));
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
  for (const auto& line : reader_->read_available(closed)) on_line(line);
  return !closed;
}

void WorkerEngine::on_line(const std::string& text) {
  Fields f(text);
  if (f.kind() != '{') {
    std::optional<std::uint64_t> seq;
    auto event = decode_event(f, seq);
    if (seq) told_seq_ = std::max(told_seq_, *seq);
    auto id = std::visit([](const auto& e) { return e.id; }, event);
    if (std::holds_alternative<AttemptStarted>(event)) {
      started_.insert(id);
    } else {
      in_flight_.erase(id);
      started_.erase(id);
      usage_.erase(id);
    }
    events_.push_back(std::move(event));
    return;
  }
  auto line = json::parse(text, nullptr, false);
  if (line.is_discarded()) return;
  auto ev = line.value("ev", "");
  if (ev == "log") {
    spdlog::log(level_of(line.value("level", "info")), "{}", line.value("text", ""));
  } else if (ev == "usage") {
    total_usage_ =
        line["total"].is_null() ? std::nullopt : std::optional(line["total"].get<std::uint64_t>());
    usage_.clear();
    for (const auto& [id, bytes] : line["of"].items())
      usage_[std::stoull(id)] = bytes.get<std::uint64_t>();
  } else if (ev == "settled") {
    settled_ = line.value("settled", false);
  } else if (ev == "ready") {
    ready_ = true;
  } else if (ev == "failed") {
    failure_ = line.value("message", "it failed");
  } else if (ev == "stopped") {
    stopped_by_ = line.value("signal", 0);
  }
}

std::vector<EngineEvent> WorkerEngine::wait(std::optional<Clock::time_point> deadline,
                                            int wake_fd) {
  flush();
  while (events_.empty()) {
    if (pid_ < 0) {
      if (!deadline) return {};  // nothing will come: the caller has nothing running
    }
    timespec ts{};
    if (deadline) {
      auto left = std::max(Clock::duration::zero(), *deadline - Clock::now());
      auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
      ts = {static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
    }
    pollfd fds[] = {{pid_ < 0 ? -1 : from_.get(), POLLIN, 0}, {wake_fd, POLLIN, 0}};
    int ready = ::ppoll(fds, 2, deadline ? &ts : nullptr, nullptr);
    if (ready < 0 && errno != EINTR)
      throw std::system_error(errno, std::generic_category(), "ppoll");
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      read();
      continue;
    }
    if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) break;
    if (ready == 0) break;  // the deadline
  }
  return std::exchange(events_, {});
}

// The worker died under runner: what its journal holds is told as usual; an
// attempt it started and never journalled the end of is lost, one it never
// started goes back; what it left running is killed before anything starts
// again.
void WorkerEngine::on_worker_lost() {
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  auto lost_pid = pid_;
  pid_ = -1;
  to_.reset();
  from_.reset();
  if (stopped_by_) {
    // It stopped its clusters and told their ends: nothing of it is left.
    spdlog::error("the worker{} (pid {}) got {} and stopped its clusters; it takes no more",
                  on_site(launch_.site), lost_pid, signal_name(*stopped_by_));
  } else {
    spdlog::error(
        "the worker{} (pid {}) ended under runner ({}); {} of its cluster(s) were running",
        on_site(launch_.site), lost_pid,
        WIFSIGNALED(status) ? fmt::format("killed by signal {}", WTERMSIG(status))
                            : fmt::format("exit code {}", WEXITSTATUS(status)),
        in_flight_.size());
  }
  // What it left running is killed first (a worker that stopped left nothing).
  if (!stopped_by_ && launch_.leftovers_here)
    settle_leftovers(find_leftovers(Leftovers{{}, config_.run}), LeftoverPolicy::kKill, -1);
  else if (!stopped_by_ && !launch_.kill_leftovers.empty())
    run_to_the_end(launch_.kill_leftovers, kKillLeftoversWithin);
  std::map<std::pair<ClusterId, std::uint32_t>, JournalEntry> journalled;
  auto name = worker_name(config_);
  for (auto& journal : RunJournal::find(config_.journal_dir)) {
    if (journal.name() != name || !journal.try_lock()) continue;
    for (auto& e : journal.read()) journalled[{e.cluster, e.attempt}] = e;
    journal.remove();
  }
  for (auto& [id, spec] : in_flight_) {
    auto it = journalled.find({spec.cluster, spec.attempt});
    auto journalled_end = it != journalled.end();
    if (!started_.contains(id) && !journalled_end) {
      // It never ran: it goes elsewhere, or to the next worker here.
      events_.push_back(AttemptNotStarted{
          id, AttemptNotStarted::Why::kSiteGone,
          fmt::format("its worker{} ended before it started", on_site(launch_.site)), "", ""});
      continue;
    }
    if (!started_.contains(id)) {
      auto s = it->second.started;
      s.id = id;
      events_.push_back(s);
    }
    AttemptEnded ended{id, {}};
    if (journalled_end) {
      ended.outcome = it->second.outcome;
    } else {
      ended.outcome.finished_at = wall_clock_now();
      ended.outcome.interrupted =
          fmt::format("its worker{} (pid {}) died while it ran", on_site(launch_.site), lost_pid);
    }
    events_.push_back(std::move(ended));
  }
  in_flight_.clear();
  started_.clear();
  usage_.clear();
  total_usage_.reset();
}

bool WorkerEngine::settle(const Leftovers& left, LeftoverPolicy policy, int wake_fd) {
  if (left.attempts.empty() && !left.previous_run) return true;
  json attempts = json::array();
  for (const auto& a : left.attempts)
    attempts.push_back({{"cluster", a.cluster},
                        {"host", a.where.host},
                        {"process", a.where.process},
                        {"started_at", a.started_at}});
  send(json{{"op", "settle"},
            {"attempts", attempts},
            {"previous_run", left.previous_run ? json(*left.previous_run) : json(nullptr)},
            {"kill", policy == LeftoverPolicy::kKill}}
           .dump());
  flush();
  settled_.reset();
  while (!settled_) {
    pollfd fds[] = {{from_.get(), POLLIN, 0}, {wake_fd, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0 && errno != EINTR) return false;
    if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) return false;
    if (!read_worker()) throw Error("the worker ended while settling what an earlier run left");
  }
  return *settled_;
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
