#include "runner/worker.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <sched.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "engines/orphans.h"
#include "runner/error.h"
#include "runner/journal.h"
#include "runner/local_engine.h"
#include "runner/node_claim.h"
#include "runner/sysinfo.h"
#include "runner/units.h"
#include "runner/wire.h"
#include "runner/words.h"

namespace runner {
namespace {

constexpr auto kUsageEvery = std::chrono::milliseconds(50);
// Something is said to runner at least this often, so that it can tell a
// worker that stopped answering.
constexpr auto kAliveEvery = std::chrono::seconds(1);
// How long an end by a SIGTERM from elsewhere waits for the worker's own.
constexpr auto kHoldSigtermEnd = std::chrono::milliseconds(1000);

// The worker's own warnings go to runner, which prints them as its own.
class MessageSink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit MessageSink(int out) : out_(out) {}
  void stop() { out_ = -1; }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    if (out_ < 0) return;
    auto level = spdlog::level::to_string_view(msg.level);
    write_line(out_, encode_log(std::string_view(level.data(), level.size()),
                                std::string_view(msg.payload.data(), msg.payload.size())));
  }
  void flush_() override {}

 private:
  int out_;
};

// Reads the first line (the config), waiting for it.
std::optional<std::string> read_config(LineReader& reader, int in) {
  for (;;) {
    pollfd fd{in, POLLIN, 0};
    if (::poll(&fd, 1, -1) < 0 && errno != EINTR) return std::nullopt;
    bool closed = false;
    auto lines = reader.read_available(closed);
    if (!lines.empty()) return lines.front();
    if (closed) return std::nullopt;
  }
}

std::unique_ptr<MemoryCaps> caps_for(const WorkerConfig& config) {
  auto probe = probe_memory();
  auto mechanism = choose_mechanism(config.cap, probe);
  // An rlimit with no limit to set does nothing: say so in the log as "none".
  if (mechanism == CapMechanism::kRlimit && !config.limits) mechanism = CapMechanism::kNone;
  try {
    // A node's worker names its cgroup folder after itself: nodes that share
    // one machine's cgroups must not take each other's folder for a dead one.
    auto folder = config.node.empty() ? config.run : "";
    return make_memory_caps(mechanism, probe, config.kill_leftovers_in, folder);
  } catch (const std::system_error& e) {
    throw Error(fmt::format("cannot set up memory caps ({}): {}; try --cap rlimit",
                            to_string(mechanism), e.what()));
  }
}

// A journal line for an attempt: its start, and its end where it has one.
JournalEntry entry_of(const AttemptSpec& spec, const AttemptStarted& started,
                      std::optional<Outcome> outcome) {
  JournalEntry entry{spec.job,     spec.cluster, spec.attempt,      started,
                     std::nullopt, std::nullopt, std::move(outcome)};
  if (spec.mem_limit) entry.mem_limit_kib = *spec.mem_limit / 1024;
  if (spec.timeout) entry.timeout_s = static_cast<double>(spec.timeout->count()) / 1e3;
  return entry;
}

class Worker {
 public:
  Worker(const WorkerConfig& config, int in, int out, LineReader& reader)
      : config_(config),
        in_(in),
        out_(out),
        reader_(reader),
        wake_(::epoll_create1(EPOLL_CLOEXEC)) {
    claim_node();
    // It wakes for runner's words and for a SIGTERM of its own.
    for (int fd : {in_, signals_.fd()}) {
      epoll_event e{};
      e.events = EPOLLIN;
      e.data.fd = fd;
      if (::epoll_ctl(wake_.get(), EPOLL_CTL_ADD, fd, &e) != 0)
        throw std::system_error(errno, std::generic_category(), "epoll_ctl");
    }
    LocalEngineOptions options;
    options.caps = caps_for(config);
    options.run_limit = config.run_limit;
    options.grace = config.grace;
    options.parallel = config.parallel;
    options.inherited = InheritedSignals(config.blocked, config.pipe_ignored);
    options.log_format = config.log_format;
    // On a node of several, its processes carry the node too: what a dead
    // worker left is found node by node.
    options.run = worker_name(config);
    options.site = config.node;
    // Each cluster names its own process in the journal as it starts: should
    // the worker die before it told runner, runner still knows which process
    // is whose.
    options.process_note = [this](const AttemptSpec& spec) {
      return journal_ ? journal_->process_note(spec.job, spec.cluster, spec.attempt)
                      : ProcessNote{};
    };
    // A cluster that ended stays a zombie until its end is journalled:
    // should the worker die before, runner reads the end from the kernel.
    options.reap_when_released = true;
    slots_ = std::max<std::size_t>(config.parallel, 1);
    engine_ = std::make_unique<LocalEngine>(std::move(options));
    // Without a journal, a cluster that ends while runner is killed would
    // run again: the worker does not start rather than promise that.
    try {
      // On a host that does not share runner's folders, the worker makes
      // the job's log folder itself.
      make_job_log_dir(std::filesystem::path(config.journal_dir).parent_path());
      journal_ =
          std::make_unique<JournalWriter>(config.journal_dir,
                                          JournalHeader{kWireVersion, config.db_id, config.job,
                                                        config.job_key, worker_name(config)},
                                          config.sync);
    } catch (const std::system_error& e) {
      throw Error(fmt::format(
          "{}: runner journals each cluster's end there, so that one that ends while runner is "
          "killed is not run again; make the folder writable (or free space), or run with "
          "--worker off, where such a cluster runs again",
          e.what()));
    }
  }

  int run();

 private:
  // Its node of the allocation, for its job alone (see node_claim.h).
  void claim_node() {
    if (config_.allocation.empty()) return;
    auto now = std::chrono::system_clock::now().time_since_epoch();
    Claimant me{config_.db_path, config_.job, ::getpid(),
                static_cast<std::uint64_t>(
                    std::chrono::duration_cast<std::chrono::nanoseconds>(now).count())};
    try {
      claim_ = std::make_unique<NodeClaim>(config_.allocation, config_.node, me);
    } catch (const std::system_error& e) {
      spdlog::warn(
          "cannot claim node {} of Slurm job {} ({}): another runner started there "
          "would not be refused",
          config_.node, config_.allocation, e.what());
    }
  }
  // The journal cannot be written any more: nothing more starts (a cluster
  // that ended while runner was killed would run again), the running ones
  // end and are told as usual, and runner hears why.
  void journal_lost(const std::string& why) {
    journal_.reset();
    journal_lost_ = true;
    lost_why_ = fmt::format(
        "the journal cannot be written ({}): a cluster that ended while runner was killed would "
        "run again; free the space or fix the folder, and start the job again",
        why);
    spdlog::error("{}", lost_why_);
    while (!queue_.empty()) {
      tell(AttemptNotStarted{queue_.front().id, AttemptNotStarted::Why::kEnvironment, lost_why_, "",
                             ""});
      queue_.pop_front();
    }
  }
  void tell(EngineEvent event);
  void flush();
  void pump();
  void journal_starts();
  std::optional<std::uint64_t> journal_not_started(const AttemptSpec& spec);
  void drop_queue();
  bool retry_later(AttemptSpec spec, const AttemptNotStarted& failure);
  void cancel(AttemptId id);
  void handle(const std::string& text);
  void settle(const Fields& f);
  void collect(const Fields& f);
  void read_requests();
  void on_signal();
  // Tells what the engine said, holding back an end by SIGTERM no one here
  // asked for; tells those held that are due.
  void take(std::vector<EngineEvent> events);
  std::optional<Clock::time_point> next_wakeup() const;
  std::optional<Clock::time_point> next_usage() const;
  void report_usage();
  // " on <node>" on a node of several, else nothing.
  std::string on_node() const { return config_.node.empty() ? "" : " on " + config_.node; }
  // "@<node>" on a node of several, else nothing.
  std::string node_suffix() const { return config_.node.empty() ? "" : "@" + config_.node; }

  WorkerConfig config_;
  std::unique_ptr<NodeClaim> claim_;
  int in_;
  int out_;
  LineReader& reader_;
  // SIGTERM to the worker itself (Slurm ending the allocation or the step,
  // systemd stopping the unit): it stops its clusters, as runner would.
  SignalChannel signals_{SIGTERM};
  Fd wake_;  // epoll: runner's pipe (while runner is there) and the signals
  std::optional<int> stopped_by_;
  std::unordered_set<AttemptId> stop_asked_;  // runner asked to stop them
  // Ends by a SIGTERM from elsewhere, held back a moment: Slurm, ending a
  // step, signals its clusters and the worker alike, in no set order. Their
  // slots stay taken meanwhile.
  std::deque<std::pair<Clock::time_point, AttemptEnded>> held_;
  std::unique_ptr<LocalEngine> engine_;
  std::unique_ptr<JournalWriter> journal_;
  // Journals of earlier runs collected here, removed once runner has them.
  std::vector<RunJournal> collected_;
  std::unordered_map<AttemptId, AttemptSpec> specs_;  // asked of the engine, not ended
  std::unordered_map<AttemptId, AttemptStarted> started_of_;
  std::unordered_set<AttemptId> journalled_;  // whose start is in the journal
  std::string host_ = host_name();
  Outbox outbox_;
  // Attempts runner asked for ahead, started as slots free.
  std::deque<AttemptSpec> queue_;
  std::size_t slots_ = 1;
  std::size_t running_ = 0;
  std::optional<Clock::time_point> retry_at_;  // no process to spare: when to try again
  std::chrono::milliseconds backoff_{0};
  bool runner_gone_ = false;
  bool journal_lost_ = false;
  std::string lost_why_;
  Clock::time_point last_usage_{};
  Clock::time_point last_said_ = Clock::now();
};

// An end is journalled before runner hears of it (flush() writes the journal
// first): what runner is told is always in the journal, so nothing it may
// have missed is lost.
void Worker::tell(EngineEvent event) {
  std::optional<std::uint64_t> seq;
  auto id = std::visit([](const auto& e) { return e.id; }, event);
  if (auto* started = std::get_if<AttemptStarted>(&event)) {
    started_of_[id] = *started;
  } else if (auto* ended = std::get_if<AttemptEnded>(&event)) {
    // Stopped because the worker was: not the cluster's doing.
    if (stopped_by_ && ended->outcome.exit_code != 0 && ended->outcome.interrupted.empty())
      ended->outcome.interrupted =
          fmt::format("its worker{} got {} and stopped it", on_node(), signal_name(*stopped_by_));
    if (journal_) seq = journal_->add(entry_of(specs_.at(id), started_of_.at(id), ended->outcome));
    // Reaped once the line is written, at the end of this wakeup.
    engine_->release(id);
    if (running_ > 0) --running_;
  } else if (specs_.contains(id)) {
    seq = journal_not_started(specs_.at(id));
  }
  if (!std::holds_alternative<AttemptStarted>(event)) {
    specs_.erase(id);
    started_of_.erase(id);
    stop_asked_.erase(id);
    journalled_.erase(id);
  }
  if (!runner_gone_) outbox_.add(encode_event(event, seq));
}

// What this wakeup has to say: the journal first, then runner; and a sign
// of life when nothing was said for a while.
void Worker::flush() {
  try {
    if (journal_) journal_->flush();
  } catch (const std::system_error& e) {
    journal_lost(e.what());
  }
  if (runner_gone_) return;
  auto now = Clock::now();
  if (outbox_.empty() && now - last_said_ >= kAliveEvery) outbox_.add(encode_alive());
  if (outbox_.empty()) return;
  last_said_ = now;
  if (!outbox_.flush(out_)) runner_gone_ = true;
}

// Starts what waits, as long as slots are free: the next cluster starts the
// moment one ends, without a word from runner.
void Worker::pump() {
  if (retry_at_ && Clock::now() < *retry_at_) return;
  retry_at_.reset();
  if (runner_gone_ || stopped_by_) return;
  while (running_ < slots_ && !queue_.empty() && !runner_gone_ && !stopped_by_ && !journal_lost_) {
    // Journalled before it starts, with the others that fit now (also one
    // that a start failed at once made room for); the journal may be lost.
    if (journal_ && !journalled_.contains(queue_.front().id)) {
      journal_starts();
      continue;
    }
    auto spec = std::move(queue_.front());
    queue_.pop_front();
    auto id = spec.id;
    specs_[id] = spec;
    auto answer = engine_->start(spec);
    auto* failed = std::get_if<AttemptNotStarted>(&*answer);
    if (failed && retry_later(std::move(spec), *failed)) return;
    if (!failed) {
      ++running_;
      backoff_ = std::chrono::milliseconds(0);
    }
    tell(*answer);
  }
}

// Each attempt about to start is journalled first, and the journal
// written: should runner and the worker both be killed the moment after, the
// next runner still gives every execution its row (one that never came to
// run then has a row too, saying it is not known how it went).
void Worker::journal_starts() {
  if (!journal_) return;
  auto n = std::min(queue_.size(), slots_ > running_ ? slots_ - running_ : 0);
  bool added = false;
  for (std::size_t i = 0; i < n; ++i) {
    const auto& spec = queue_[i];
    if (!journalled_.insert(spec.id).second) continue;
    AttemptStarted about{spec.id, {host_, 0}, engine_->log_path_for(spec), wall_clock_now(), ""};
    journal_->add(entry_of(spec, about, std::nullopt));
    added = true;
  }
  if (!added) return;
  try {
    journal_->flush();
  } catch (const std::system_error& e) {
    journal_lost(e.what());
  }
}

// A start that failed for want of a process or an open file goes back to
// the front, and is tried again later (or with fewer at once): not the
// cluster's doing, and nothing runner need hear of but a warning.
bool Worker::retry_later(AttemptSpec spec, const AttemptNotStarted& failure) {
  using Why = AttemptNotStarted::Why;
  bool no_process = failure.why == Why::kNoProcess;
  bool short_of_files = failure.why == Why::kShortOfFiles && running_ > 0;
  if (!no_process && !short_of_files) return false;
  specs_.erase(spec.id);
  queue_.push_front(std::move(spec));
  if (no_process) {
    backoff_ = std::min<std::chrono::milliseconds>(
        std::chrono::seconds(5), backoff_.count() ? backoff_ * 2 : std::chrono::milliseconds(50));
    retry_at_ = Clock::now() + backoff_;
    spdlog::warn("{}; trying again in {}", failure.message, format_duration(backoff_));
  } else {
    spdlog::warn(
        "{}: running at most {} cluster(s) at once instead of {}; raise the open-file limit "
        "(ulimit -n) for more",
        failure.message, running_, slots_);
    slots_ = running_;
  }
  return true;
}

// A start in the journal that did not happen is said there too, so that
// the next runner neither records it nor keeps the journal for it.
std::optional<std::uint64_t> Worker::journal_not_started(const AttemptSpec& spec) {
  if (!journal_ || journalled_.erase(spec.id) == 0) return std::nullopt;
  auto entry = entry_of(spec, {}, std::nullopt);
  entry.not_started = true;
  return journal_->add(entry);
}

// Once runner is gone or a signal said stop, what waits never starts.
void Worker::drop_queue() {
  for (const auto& spec : queue_) journal_not_started(spec);
  queue_.clear();
}

void Worker::cancel(AttemptId id) {
  auto it =
      std::find_if(queue_.begin(), queue_.end(), [&](const AttemptSpec& s) { return s.id == id; });
  if (it != queue_.end()) {
    specs_[id] = std::move(*it);
    queue_.erase(it);
    tell(AttemptNotStarted{id, AttemptNotStarted::Why::kCancelled, "stopped before it started", "",
                           ""});
    return;
  }
}

void Worker::handle(const std::string& text) {
  Fields f(text);
  switch (f.kind()) {
    case 'S':
      if (journal_lost_) {
        tell(AttemptNotStarted{decode_start(f).id, AttemptNotStarted::Why::kEnvironment, lost_why_,
                               "", ""});
        return;
      }
      queue_.push_back(decode_start(f));
      pump();
      return;
    case 'K': {
      auto id = f.count(0);
      if (!specs_.contains(id)) {
        cancel(id);
        return;
      }
      stop_asked_.insert(id);
      engine_->stop(id, f.count(1) ? StopMode::kNow : StopMode::kGraceful);
      return;
    }
    case 'C':
      if (journal_) journal_->acknowledged(f.count(0));
      return;
    case 'L':
      settle(f);
      return;
    case 'O':
      collect(f);
      return;
    case 'Z':
      for (auto& journal : collected_) journal.remove();
      collected_.clear();
      return;
    case 'Q':
      runner_gone_ = true;
      return;
    case 'N':
      // None: clusters of a dead worker that runner adopted fill them all.
      slots_ = f.count(0);
      pump();
      return;
    default:
      throw WireError(fmt::format("not a request: '{}'", f.kind()));
  }
}

// What earlier runs left here: waited for or killed, and each execution
// found named to runner.
void Worker::settle(const Fields& f) {
  auto [left, policy] = decode_settle(f);
  for (auto& run : left.previous_runs) run += node_suffix();
  auto found = engine_->settle(left, policy, in_);
  outbox_.add(encode_settled(found.has_value(), found.value_or(std::vector<FoundExecution>{})));
}

// The journals earlier runs' workers left here, for runner to record: their
// workers waited for (or killed), then each line handed over as written.
// A host that shares runner's folder has none left: runner took them.
void Worker::collect(const Fields& f) {
  auto policy = f.count(0) == 1 ? LeftoverPolicy::kKill : LeftoverPolicy::kWait;
  auto own = worker_name(config_);
  JournalOwner owner{config_.db_id, config_.job, config_.job_key,
                     [&](const std::string& run) { return run != config_.run; }, std::nullopt};
  std::vector<std::string> ignored;
  auto journals = RunJournal::find(config_.journal_dir, owner, ignored);
  for (const auto& why : ignored) spdlog::warn("ignoring {}{}", printable(why), on_node());
  std::erase_if(journals, [&](const RunJournal& j) { return j.name() == own; });
  std::size_t garbled = 0;
  if (wait_for_journal_workers(journals, policy, in_)) {
    for (auto& journal : journals) {
      for (const auto& entry : journal.read(garbled))
        outbox_.add(encode_collected_line(journal.run(), encode_journal(entry, 0)));
      collected_.push_back(std::move(journal));
    }
  }
  outbox_.add(encode_collected_end(garbled));
}

void Worker::read_requests() {
  bool closed = false;
  for (const auto& line : reader_.read_available(closed)) {
    try {
      handle(line);
    } catch (const WireError& e) {
      spdlog::error("the worker{} cannot read a line from runner ({}); ignored", on_node(),
                    e.what());
    }
  }
  // runner is gone (killed, or said bye): nothing more will be asked.
  if (closed) runner_gone_ = true;
  if (runner_gone_) ::epoll_ctl(wake_.get(), EPOLL_CTL_DEL, in_, nullptr);
}

void Worker::take(std::vector<EngineEvent> events) {
  for (auto& event : events) {
    auto* ended = std::get_if<AttemptEnded>(&event);
    if (ended && !stopped_by_ && ended->outcome.killed_by == SIGTERM && !ended->outcome.timed_out &&
        !stop_asked_.contains(ended->id)) {
      held_.emplace_back(Clock::now() + kHoldSigtermEnd, std::move(*ended));
      continue;
    }
    tell(std::move(event));
  }
  while (!held_.empty() && (stopped_by_ || held_.front().first <= Clock::now())) {
    tell(std::move(held_.front().second));
    held_.pop_front();
  }
}

std::optional<Clock::time_point> Worker::next_wakeup() const {
  auto next = next_usage();
  if (!held_.empty() && (!next || held_.front().first < *next)) next = held_.front().first;
  if (!runner_gone_ && (!next || last_said_ + kAliveEvery < *next)) next = last_said_ + kAliveEvery;
  return next;
}

// Told to stop by a signal of its own: its clusters are stopped gracefully,
// their ends journalled and told, and it leaves once they have ended. What
// waits to start never starts here.
void Worker::on_signal() {
  auto signals = signals_.drain();
  if (signals.empty() || stopped_by_) return;
  stopped_by_ = signals.front();
  spdlog::warn("the worker{} got {}: stopping its {} cluster(s)", on_node(),
               signal_name(*stopped_by_), specs_.size());
  drop_queue();
  for (const auto& [id, spec] : specs_) engine_->stop(id, StopMode::kGraceful);
}

// The next moment the worker must act by itself: a usage report, a retry.
std::optional<Clock::time_point> Worker::next_usage() const {
  std::optional<Clock::time_point> next = retry_at_;
  if (config_.watch_memory && !runner_gone_ && !specs_.empty()) {
    auto usage = last_usage_ + kUsageEvery;
    if (!next || usage < *next) next = usage;
  }
  return next;
}

void Worker::report_usage() {
  auto due = next_usage();
  if (!due || Clock::now() < *due) return;
  last_usage_ = Clock::now();
  std::vector<std::pair<AttemptId, std::uint64_t>> of;
  for (const auto& [id, spec] : specs_)
    if (auto bytes = engine_->memory_in_use(id)) of.emplace_back(id, *bytes);
  outbox_.add(encode_usage(engine_->total_memory_in_use(), of));
}

int Worker::run() {
  auto self = current_process();
  write_line(out_, encode_ready(self.pid, self.host));
  // Until runner is gone (or a signal said stop) and the last cluster has ended.
  while ((!runner_gone_ && !stopped_by_) || !specs_.empty()) {
    auto events = engine_->wait(next_wakeup(), wake_.get());
    on_signal();
    take(std::move(events));
    if (!runner_gone_) read_requests();
    // With runner gone or a signal come, nothing more starts; what runs, ends.
    if (runner_gone_ || stopped_by_) drop_queue();
    pump();
    report_usage();
    flush();
  }
  if (stopped_by_ && !runner_gone_) {
    outbox_.add(encode_stopped(*stopped_by_));
    flush();
  }
  return 0;
}

}  // namespace

int run_worker(int in, int out) {
  // runner's own signals stay with runner: it tells the worker what to stop.
  // A write to a runner that is gone fails instead of killing the worker.
  std::signal(SIGPIPE, SIG_IGN);
  // Started through /proc/self/exe, it would show as "exe" in top and ps -o comm.
  ::prctl(PR_SET_NAME, "runner-worker", 0, 0, 0);
  ::fcntl(in, F_SETFL, ::fcntl(in, F_GETFL) | O_NONBLOCK);
  auto sink = std::make_shared<MessageSink>(out);
  auto logger = std::make_shared<spdlog::logger>("worker", sink);
  logger->set_level(spdlog::level::info);
  spdlog::set_default_logger(logger);
  LineReader reader(in);
  auto config_line = read_config(reader, in);
  if (!config_line) return 2;
  try {
    auto config = decode_config(Fields(*config_line));
    // A site's processes and records carry its name: several sites may be
    // one machine with one hostname.
    if (!config.node.empty()) ::setenv("RUNNER_SITE", config.node.c_str(), 1);
    Worker worker(config, in, out, reader);
    return worker.run();
  } catch (const std::exception& e) {
    write_line(out, encode_failed(e.what()));
    return 2;
  }
}

int kill_run_here(const std::string& run) {
  settle_leftovers(find_leftovers(Leftovers{{}, {run}}).pids, LeftoverPolicy::kKill, -1,
                   "its dead worker left running");
  return 0;
}

namespace {

// What keeps this node from running the job, if anything: its folder, the
// shared log folder, another job's claim on it.
std::optional<std::string> node_lacks(const WorkerArgs& check, const std::string& host) {
  std::error_code ec;
  if (check.check_dir &&
      (!std::filesystem::is_directory(*check.check_dir, ec) ||
       !std::filesystem::equivalent(*check.check_dir, std::filesystem::current_path(ec), ec)))
    return fmt::format("the working folder {} does not exist there", *check.check_dir);
  if (check.check_shared && !std::filesystem::exists(*check.check_shared, ec))
    return fmt::format(
        "the log folder {} is not shared with it (runner's logs and journals must be on a "
        "filesystem every node mounts at the same path; pass such a folder with --logs)",
        std::filesystem::path(*check.check_shared).parent_path().string());
  if (check.check_allocation) {
    Claimant me{check.check_db.value_or(""), check.check_job.value_or(""), ::getpid(), 0};
    if (auto other = other_claim(*check.check_allocation, host, me))
      return claimed_by(*check.check_allocation, host, *other);
  }
  if (!check.check_program) return std::nullopt;
  const auto& program = *check.check_program;
  auto resolved = resolve_program(program);
  if (resolved.error == 0 && check_executable_format(resolved.path) == ENOEXEC)
    resolved.error = ENOEXEC;
  if (resolved.error == 0) return std::nullopt;
  bool bare_name = program.find('/') == std::string::npos;
  return fmt::format(
      "cannot execute {}: {}", program,
      resolved.error == ENOENT && bare_name ? "not found in PATH" : std::strerror(resolved.error));
}

}  // namespace

int check_node(const WorkerArgs& check) {
  auto host = host_name();
  if (auto lacks = node_lacks(check, host)) {
    fmt::print("{}: {}\n", host, *lacks);
    return 2;
  }
  if (!check.check_resources) {
    fmt::print("ok {}\n", host);
    return 0;
  }
  cpu_set_t set;
  CPU_ZERO(&set);
  int cpus = ::sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
  auto memory = available_memory(probe_memory());
  fmt::print("ok {} {} {}\n", host, cpus, memory.value_or(0));
  return 0;
}

}  // namespace runner
