#include "runner/scheduler.h"

#include <fmt/format.h>
#include <poll.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "runner/classify.h"
#include "runner/error.h"
#include "runner/sysinfo.h"
#include "runner/units.h"
#include "runner/words.h"

namespace runner {
namespace {

// Where a person finds an attempt's output, in a warning's words.
std::string log_words(const std::string& log_path, const Outcome& out) {
  return out.wrote_nothing ? "it wrote no output" : "log " + log_path;
}

// With overcommit, real usage is read this often while guessed clusters run.
constexpr auto kWatchEvery = std::chrono::milliseconds(50);
// Stop admitting at this share of the budget; evict a guessed cluster at the second.
constexpr double kPressureShare = 0.90;
constexpr double kEvictShare = 0.97;
// When no process can be made (fork: EAGAIN), wait this long, doubling, up to the last.
constexpr auto kFirstStartBackoff = std::chrono::milliseconds(50);
constexpr auto kLastStartBackoff = std::chrono::milliseconds(5000);

std::string size_text(std::uint64_t bytes) {
  return format_size_kib(bytes / 1024);
}

// How an attempt ended, as far as --retry-on cares.
Ending ending_of(AttemptState state, const Outcome& outcome) {
  switch (state) {
    case AttemptState::kDone:
      return Ending::kDone;
    case AttemptState::kTimeout:
      return Ending::kTimeout;
    case AttemptState::kOom:
      return Ending::kOom;
    default:
      return outcome.killed_by ? Ending::kSignal : Ending::kExit;
  }
}

}  // namespace

Scheduler::Scheduler(Store& store, const Job& job, const CommandTemplate& command, Engine& engine,
                     SignalSource& signals, Progress* progress, SchedulerOptions options)
    : store_(store),
      job_(job),
      command_(command),
      engine_(engine),
      signals_(signals),
      progress_(progress),
      options_(std::move(options)),
      admission_(store, job,
                 AdmissionOptions{options_.parallel, options_.skip_failed, options_.mem_limit,
                                  options_.mem_budget, options_.mem_overcommit, options_.sites,
                                  options_.order}),
      group_(store, CommitGroup::Limits{}),
      parallel_now_(options_.parallel),
      rng_(options_.seed ? options_.seed
                         : static_cast<std::uint64_t>(Clock::now().time_since_epoch().count())) {
  summary_.clusters = job_.clusters;
}

RunSummary Scheduler::run() {
  started_ = Clock::now();
  started_wall_ = wall_clock_now();
  // Resume: what a dead runner left `running` did not finish; it runs again.
  summary_.recovered = store_.recover_interrupted(job_);
  if (summary_.recovered > 0)
    spdlog::info(
        "{} attempt(s) left running by an earlier runner marked interrupted; they run again",
        summary_.recovered);
  admission_.resume();
  if (const auto& plan = admission_.order_plan(); plan.ordered > 0)
    spdlog::info("{} cluster(s) start first, {} first as earlier jobs ran them{} (--order history)",
                 plan.ordered, plan.by_memory ? "largest" : "longest",
                 plan.spread ? fmt::format(", the {} that need more than an equal share of the "
                                           "budget spread out among them",
                                           plan.spread)
                             : "");
  summary_.skipped_failed = admission_.skipped_failed();
  std::vector<EngineEvent> events;
  try {
    for (;;) {
      // 1. What the engine told: starts are recorded; ends are judged, and
      //    their rows wait until the freed slots are filled.
      group_.open();
      for (const auto& event : events) handle(event);
      // 2. Free slots get the next clusters.
      if (!stopping_) fill();
      write_ends();
      // 3. The group is committed when it is large or old enough, and at the end.
      bool over = running_.empty() && (stopping_ || !admission_.has_work());
      if (over || group_.due(Clock::now())) show_progress();
      if (over) break;
      // 4. Wait for the engine, a signal, or the next deadline.
      events = wait_for_events();
      // 5. runner's own signals; memory pressure.
      for (int sig : signals_.drain()) on_signal(sig);
      watch_memory();
    }
  } catch (...) {
    // runner cannot keep its log: leave no child running unrecorded.
    if (n_started_ > 0)
      spdlog::error("killing {} running cluster(s): runner cannot record them", n_started_);
    stop_all(StopMode::kNow);
    throw;
  }
  if (progress_) progress_->finish();
  summary_.too_big = admission_.too_big();
  // A stop leaves retries and requeued clusters waiting: the next run runs them.
  if (stopping_) summary_.waiting_again = admission_.waiting_again();
  summary_.done = admission_.done_count();
  summary_.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started_);
  return summary_;
}

// With writes waiting, wait a moment for more: a commit costs more than the
// start of a small cluster, and while runner commits, a slot whose child has
// ended stays empty. Commit before sleeping any longer.
std::vector<EngineEvent> Scheduler::wait_for_events() {
  if (auto linger = group_.linger_until(Clock::now())) {
    auto next = deadline();
    auto events = engine_.wait(next && *next < *linger ? next : linger, signals_.fd());
    if (!events.empty() || signal_pending()) return events;
  }
  show_progress();
  return engine_.wait(deadline(), signals_.fd());
}

bool Scheduler::signal_pending() const {
  pollfd fd{signals_.fd(), POLLIN, 0};
  return ::poll(&fd, 1, 0) > 0;
}

// Commits what is written, then shows it: a completion counts once committed.
void Scheduler::show_progress() {
  if (group_.commit()) engine_.acknowledged();
  if (progress_) progress_->update(snapshot(), Clock::now());
  // The figures are gathered only when a write is due.
  if (auto now = Clock::now(); metrics_ && metrics_->due(now))
    metrics_->update(metrics_facts(), now);
}

MetricsFacts Scheduler::metrics_facts() const {
  auto s = snapshot();
  MetricsFacts f;
  f.job = job_.name;
  f.clusters = s.total;
  f.done = s.done;
  f.failed = s.failed;
  f.running = s.running;
  f.attempts_started = attempts_started_;
  f.done_this_run = summary_.done_this_run;
  f.failed_this_run = summary_.failed_this_run;
  if (admission_.budget()) {
    f.budget_bytes = admission_.largest_budget();
    f.reserved_bytes = admission_.reserved();
    f.in_use_bytes = engine_.total_memory_in_use();
  }
  f.started_at = started_wall_;
  return f;
}

void Scheduler::handle(const EngineEvent& event) {
  std::visit(
      [this](const auto& e) {
        using T = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<T, AttemptStarted>) on_started(e);
        if constexpr (std::is_same_v<T, AttemptNotStarted>) on_not_started(e);
        if constexpr (std::is_same_v<T, AttemptEnded>) on_ended(e);
      },
      event);
}

void Scheduler::fill() {
  if (running_.empty()) pressure_ = false;
  if (start_again_at_ && Clock::now() < *start_again_at_) return;
  start_again_at_.reset();
  // Until an attempt of a job that never succeeded has started, one at a
  // time: with an engine that answers later, a command that cannot run
  // fails once, not P times.
  // Under a budget, memory is admitted cluster by cluster as slots free; with
  // --halt, no cluster may start once the failure that halts has ended: no
  // queue ahead in either.
  bool queue_ahead = !admission_.budget() && options_.halt.when() == HaltPolicy::When::kNever;
  auto ahead = queue_ahead ? engine_.queue_ahead() : 0;
  auto most = [&]() -> std::size_t {
    if (admission_.done_count() == 0 && !one_started_) return 1;
    return parallel_now_ + ahead;
  };
  // The queue ahead is topped up once half of it has gone, not after every
  // end: the engine hears of several starts at once.
  if (ahead > 1 && one_started_ && running_.size() > parallel_now_ + ahead / 2) return;
  while (!stopping_ && !pressure_ && !start_again_at_ && running_.size() < most()) {
    auto c = admission_.next(running_.size());
    if (!c) return;
    start(*c);
  }
}

void Scheduler::start(const Candidate& c) {
  AttemptSpec spec;
  spec.id = next_id_++;
  spec.job = job_.name;
  spec.cluster = c.cluster;
  spec.clusters = job_.clusters;
  // Most clusters were never attempted, and a retry knows its last attempt:
  // the log is asked only about the rest.
  spec.attempt = c.last_attempt                          ? c.last_attempt + 1
                 : admission_.never_attempted(c.cluster) ? 1
                                                         : store_.next_attempt(job_, c.cluster);
  spec.argv = command_.render(c.cluster, job_.clusters);
  spec.log_dir = options_.log_dir.string();
  spec.log_name = fmt::format("{}.{}.log", c.cluster, spec.attempt);
  spec.mem_limit = c.limit;
  spec.timeout = options_.timeout;
  spec.site = c.site;

  Running r;
  r.what = c;
  r.record.cluster = c.cluster;
  r.record.attempt = spec.attempt;
  r.record.started_at = wall_clock_now();
  if (c.limit) r.record.mem_limit_kib = *c.limit / 1024;
  if (options_.timeout) r.record.timeout_s = static_cast<double>(options_.timeout->count()) / 1e3;
  r.started = Clock::now();
  // It counts against the budget from now until the engine says it did not start or ended.
  admission_.reserve(c);
  auto id = spec.id;
  running_.emplace(id, std::move(r));
  if (auto answer = engine_.start(std::move(spec))) handle(*answer);
}

void Scheduler::on_started(const AttemptStarted& started) {
  auto& r = running_.at(started.id);
  r.record.pid = static_cast<pid_t>(started.where.process);
  r.record.host = started.where.host;
  r.record.log_path = started.log_path;
  r.record.started_at = started.started_at;
  r.record.cap = started.cap;
  r.row = store_.record_start(job_, r.record);
  group_.wrote();
  one_started_ = true;
  ++n_started_;
  ++attempts_started_;
  if (r.what.retry > 0) ++summary_.retried;
  start_backoff_ = std::chrono::milliseconds(0);
}

// A start that failed. Only a command that could not be executed is the
// cluster's failure, and recorded; when the engine's own means fail (no
// process, no open file, a full log folder), the cluster never started: it
// stays pending, and runner waits, runs fewer at once, or stops starting.
void Scheduler::on_not_started(const AttemptNotStarted& failure) {
  auto it = running_.find(failure.id);
  Running r = std::move(it->second);
  running_.erase(it);
  admission_.release(r.what);
  using Why = AttemptNotStarted::Why;
  switch (failure.why) {
    case Why::kNoProcess:
      // The machine has no process to spare now: it goes back to the front,
      // and starts pause, longer each time.
      start_backoff_ = std::min<std::chrono::milliseconds>(
          kLastStartBackoff, start_backoff_.count() ? start_backoff_ * 2 : kFirstStartBackoff);
      start_again_at_ = Clock::now() + start_backoff_;
      admission_.first_again(r.what);
      spdlog::warn("{}; trying again in {}", failure.message, format_duration(start_backoff_));
      return;
    case Why::kShortOfFiles:
      admission_.first_again(r.what);
      if (running_.empty()) {
        stop(fmt::format("{}; raise the open-file limit (ulimit -n)", failure.message), false);
      } else if (parallel_now_ > running_.size()) {
        parallel_now_ = static_cast<std::uint32_t>(running_.size());
        spdlog::warn(
            "{}: running at most {} cluster(s) at once instead of {}; raise the open-file "
            "limit (ulimit -n) for more",
            failure.message, parallel_now_, options_.parallel);
      }
      return;
    case Why::kSiteGone:
      // Its worker is gone (the engine has said so): it goes back to the
      // front, for another; under a budget, its site takes no more.
      admission_.first_again(r.what);
      if (r.what.site && admission_.close_site(*r.what.site)) spdlog::warn("{}", failure.message);
      if (!admission_.any_site_open()) stop(failure.message + "; no node is left", false);
      return;
    case Why::kCancelled:
      // Stopped while it waited to start: it never ran, and stays pending.
      if (!stopping_) admission_.first_again(r.what);
      return;
    case Why::kEnvironment:
      admission_.first_again(r.what);
      // Said once: those handed ahead with it come back the same way.
      if (stopping_) return;
      spdlog::error("cluster {}/{} not started: {}", r.what.cluster, job_.clusters,
                    failure.message);
      stop(failure.message, false);
      return;
    case Why::kCommand:
      record_failed_start(r, failure);
      return;
  }
}

// The command could not be executed: a failed attempt with exit code 127, as
// a shell reports it.
void Scheduler::record_failed_start(const Running& r, const AttemptNotStarted& failure) {
  auto record = r.record;
  record.log_path = failure.log_path;
  record.cap = failure.cap;
  auto row = store_.record_start(job_, record);
  AttemptEnd end;
  end.state = AttemptState::kFailed;
  end.finished_at = record.started_at;
  end.exit_code = 127;
  end.note = failure.message;
  store_.record_end(job_, row, r.what.cluster, end);
  group_.wrote();
  group_.wrote();
  ++summary_.failed_this_run;
  spdlog::error("cluster {}/{}: {}", r.what.cluster, job_.clusters, failure.message);
  if (admission_.done_count() == 0) {
    // Nothing of this job has ever worked: the command is broken, not the
    // cluster. Stop rather than fail every cluster one by one.
    summary_.setup_failure = failure.message;
    stopping_ = true;
  } else {
    ++finished_;
    ++final_failures_;
  }
}

void Scheduler::on_ended(const AttemptEnded& ended) {
  auto it = running_.find(ended.id);
  if (it == running_.end()) return;
  Running r = std::move(it->second);
  running_.erase(it);
  if (r.row != 0) --n_started_;
  const auto& out = ended.outcome;
  AttemptFacts facts{r.stopped, r.evicted_at, options_.timeout, admission_.budget_of(r.what),
                     r.what.limit};
  auto verdict = classify(out, facts);

  unwritten_ends_.push_back({r.row, r.what.cluster, attempt_end(out, verdict)});

  admission_.release(r.what);
  if (verdict.learn) admission_.learn(*verdict.learn);
  auto reached = out.peak_kib() * 1024;
  if (verdict.budget_kill && !r.what.budget_oom && !stopping_) {
    spdlog::warn("cluster {}/{}: {}; queueing it again ({})", r.what.cluster, job_.clusters,
                 verdict.note, log_words(r.record.log_path, out));
    after_budget_kill(r, reached);
    return;
  }
  switch (verdict.state) {
    case AttemptState::kDone:
      admission_.mark_done(r.what.cluster);
      ++summary_.done_this_run;
      ++finished_;
      break;
    case AttemptState::kInterrupted:
      if (r.evicted_at && !stopping_) {
        run_again_for_budget(r, *r.evicted_at);
      } else if (!out.interrupted.empty() && !stopping_) {
        // Lost with its worker, or stopped by it: not the cluster's doing, and no retry spent.
        auto c = r.what;
        c.last_attempt = r.record.attempt;
        admission_.run_again(c);
      } else {
        ++summary_.interrupted;
      }
      break;
    default:
      after_unsuccessful(r, verdict.state, out);
      break;
  }
}

// The budget's doing, as an eviction is: not the cluster's. It runs again
// beside the others, once; a second such kill takes the OOM path.
void Scheduler::after_budget_kill(const Running& r, std::uint64_t reached) {
  ++summary_.budget_ooms;
  run_again_for_budget(r, reached, true);
}

// Stopped for the budget's sake, not failed: back to the front of the queue,
// reserving half as much again as it had reached when it was stopped.
void Scheduler::run_again_for_budget(const Running& r, std::uint64_t reached, bool budget_oom) {
  auto c = r.what;
  c.last_attempt = r.record.attempt;
  c.need = std::min(admission_.largest_budget(), std::max(c.need, reached + reached / 2));
  c.guessed = false;
  c.budget_oom = c.budget_oom || budget_oom;
  admission_.run_again(c);
}

// A cluster failed, ran out of memory or timed out: say so, and decide
// whether it runs again in this run.
void Scheduler::after_unsuccessful(const Running& r, AttemptState state, const Outcome& out) {
  const auto cluster = r.what.cluster;
  ++summary_.failed_this_run;
  if (state == AttemptState::kOom) {
    ++summary_.oom_this_run;
    auto cap = r.what.limit ? fmt::format(" at the {} cap", size_text(*r.what.limit)) : "";
    if (auto budget = admission_.budget_of(r.what); out.memory_kill == MemoryKill::kPool && budget)
      cap = fmt::format(" when all clusters together reached the {} budget", size_text(*budget));
    spdlog::warn("cluster {}/{}: out of memory{} (peak {}; {}) ({})", cluster, job_.clusters, cap,
                 size_text(out.peak_kib() * 1024), out.memory_note,
                 log_words(r.record.log_path, out));
    // Under a budget, do what a person would: once more, alone, with all of it.
    if (admission_.budget() && !r.what.alone && !stopping_) {
      auto whole = admission_.largest_budget();
      spdlog::info("cluster {}/{}: trying it once more alone, capped at the whole {} budget",
                   cluster, job_.clusters, size_text(whole));
      auto c = r.what;
      c.last_attempt = r.record.attempt;
      c.need = c.limit.emplace(whole);
      c.guessed = false;
      c.alone = true;
      admission_.run_again(c);
      return;
    }
  } else if (state == AttemptState::kTimeout) {
    ++summary_.timed_out;
    spdlog::warn("cluster {}/{}: timed out after {} ({})", cluster, job_.clusters,
                 format_duration(*options_.timeout), log_words(r.record.log_path, out));
  } else {
    spdlog::warn("cluster {}/{} failed: {} ({})", cluster, job_.clusters,
                 describe_ending(out.exit_code, out.killed_by), log_words(r.record.log_path, out));
  }
  retry_or_finish(r, state, out);
}

// --retries: run it again after its delay; else its outcome is final, and
// --halt may stop the run.
void Scheduler::retry_or_finish(const Running& r, AttemptState state, const Outcome& out) {
  const auto& retry = options_.retry;
  if (!stopping_ && r.what.retry < retry.retries &&
      retry.applies(ending_of(state, out), out.exit_code)) {
    auto c = r.what;
    c.last_attempt = r.record.attempt;
    ++c.retry;
    auto wait = retry.backoff(c.retry, rng_);
    spdlog::info("cluster {}/{}: retry {} of {} in {}", c.cluster, job_.clusters, c.retry,
                 retry.retries, format_duration(wait));
    if (admission_.budget()) {
      auto fresh = admission_.candidate_for(c.cluster);  // its peak is known now
      c.need = fresh.need;
      c.guessed = fresh.guessed;
    }
    admission_.retry_at(Clock::now() + wait, c);
    return;
  }
  ++finished_;
  ++final_failures_;
  if (!stopping_ && options_.halt.reached(final_failures_, finished_))
    stop(fmt::format("--halt: {}", options_.halt.describe()),
         options_.halt.when() == HaltPolicy::When::kNow);
}

void Scheduler::write_ends() {
  for (const auto& e : unwritten_ends_) {
    store_.record_end(job_, e.row, e.cluster, e.end);
    group_.wrote();
  }
  unwritten_ends_.clear();
}

// Stops starting clusters; with stop_running, also stops the running ones,
// gracefully.
void Scheduler::stop(const std::string& why, bool stop_running) {
  // The same reason again (each cluster handed ahead meets it) is said once.
  if (stopping_ && summary_.halted == why && !stop_running) return;
  if (!summary_.halted && !summary_.stop_signal) summary_.halted = why;
  stopping_ = true;
  auto started = n_started_;
  spdlog::warn("stopping: {}{}", why,
               started == 0   ? ""
               : stop_running ? fmt::format("; stopping {} running cluster(s)", started)
                              : fmt::format("; letting {} running cluster(s) finish", started));
  if (stop_running) {
    stop_all(StopMode::kGraceful);
    return;
  }
  // Those waiting in the engine to start do not start.
  for (auto& [id, r] : running_)
    if (r.row == 0) engine_.stop(id, StopMode::kNow);
}

void Scheduler::stop_all(StopMode mode) {
  for (auto& [id, r] : running_) {
    r.stopped = true;
    engine_.stop(id, mode);
  }
}

void Scheduler::on_signal(int sig) {
  if (!summary_.stop_signal) {
    summary_.stop_signal = sig;
    stopping_ = true;
    if (running_.empty()) return;
    spdlog::warn("{}: stopping {} running cluster(s) (again to kill them now)", signal_name(sig),
                 n_started_);
    stop_all(StopMode::kGraceful);
    return;
  }
  // A second signal: the user does not want to wait for the grace period.
  if (!running_.empty()) {
    spdlog::warn("{} again: killing {} cluster(s) now", signal_name(sig), n_started_);
    stop_all(StopMode::kNow);
  }
}

// With overcommit, guesses can be wrong: read what the pool really uses, and
// stop admitting, then evict a guessed cluster, before the total passes the
// budget. (Where cgroups allow, the kernel also holds the run to the budget.)
void Scheduler::watch_memory() {
  next_watch_.reset();
  const auto* budget = admission_.budget();
  if (!budget || !budget->overcommit() || stopping_ || running_.empty()) return;
  auto total = engine_.total_memory_in_use();
  if (!total) return;
  auto limit = static_cast<double>(budget->total());
  pressure_ = static_cast<double>(*total) >= kPressureShare * limit;
  // A victim still exiting still counts in the total: wait for its memory to
  // be given back before choosing another.
  bool victim_exiting = std::any_of(running_.begin(), running_.end(),
                                    [](const auto& entry) { return entry.second.evicted_at; });
  if (!victim_exiting && static_cast<double>(*total) >= kEvictShare * limit) {
    // The youngest guessed cluster that outgrew its guess; failing that, the
    // youngest guessed one. The youngest has the least work to lose.
    Running* victim = nullptr;
    AttemptId victim_id = 0;
    bool victim_outgrew = false;
    for (auto& [id, r] : running_) {
      if (!r.what.guessed || r.evicted_at || r.stopped) continue;
      bool outgrew = engine_.memory_in_use(id).value_or(0) > r.what.need;
      if (!victim || (outgrew && !victim_outgrew) ||
          (outgrew == victim_outgrew && r.started > victim->started)) {
        victim = &r;
        victim_id = id;
        victim_outgrew = outgrew;
      }
    }
    if (victim) {
      victim->evicted_at = engine_.memory_in_use(victim_id).value_or(victim->what.need);
      ++summary_.evicted;
      spdlog::info("memory at {} of the {} budget: evicting cluster {}/{} and queueing it again",
                   size_text(*total), size_text(budget->total()), victim->what.cluster,
                   job_.clusters);
      engine_.stop(victim_id, StopMode::kNow);
    }
  }
  for (const auto& [id, r] : running_)
    if (r.what.guessed) next_watch_ = Clock::now() + kWatchEvery;
}

std::optional<Clock::time_point> Scheduler::deadline() const {
  std::optional<Clock::time_point> earliest;
  auto consider = [&](std::optional<Clock::time_point> t) {
    if (t && (!earliest || *t < *earliest)) earliest = t;
  };
  consider(next_watch_);
  consider(progress_ ? progress_->next_tick() : std::nullopt);
  if (metrics_ && !running_.empty()) consider(metrics_->next_due());
  consider(start_again_at_);
  if (!stopping_) consider(admission_.next_retry());
  return earliest;
}

Snapshot Scheduler::snapshot() const {
  Snapshot s;
  s.total = job_.clusters;
  s.done = admission_.done_count();
  s.failed = final_failures_ + summary_.skipped_failed;
  s.running = n_started_;
  s.done_this_run = summary_.done_this_run;
  s.started = started_;
  return s;
}

}  // namespace runner
