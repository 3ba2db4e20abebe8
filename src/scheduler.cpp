#include "runner/scheduler.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

#include "runner/signals.h"
#include "runner/sysinfo.h"
#include "runner/units.h"
#include "runner/words.h"

namespace runner {
namespace {

// How far past the cursor the budget looks for clusters that fit while an
// earlier one waits for memory.
constexpr std::size_t kLookahead = 64;
// With overcommit, real usage is read this often while guessed clusters run.
constexpr auto kWatchEvery = std::chrono::milliseconds(50);
// Stop admitting at this share of the budget; evict a guessed cluster at the second.
constexpr double kPressureShare = 0.90;
constexpr double kEvictShare = 0.97;
// Group commit: at most this many ends and starts, or this old, per transaction;
// and committed once nothing more has come for the linger.
constexpr std::size_t kGroupSize = 64;
constexpr auto kGroupAge = std::chrono::milliseconds(20);
constexpr auto kGroupLinger = std::chrono::milliseconds(2);
// When no process can be made (fork: EAGAIN), wait this long, doubling, up to the last.
constexpr auto kFirstStartBackoff = std::chrono::milliseconds(50);
constexpr auto kLastStartBackoff = std::chrono::milliseconds(5000);
// A cgroup that hits its own limit peaks within a few pages of it (the charge
// that failed); one OOM-killed further below was stopped by the pool's limit.
constexpr std::uint64_t kOwnLimitSlack = 8ULL << 20;

std::string size_text(std::uint64_t bytes) {
  return format_size_kib(bytes / 1024);
}

Outcome outcome_of(AttemptState state, const ChildExit& exit) {
  switch (state) {
    case AttemptState::kDone:
      return Outcome::kDone;
    case AttemptState::kTimeout:
      return Outcome::kTimeout;
    case AttemptState::kOom:
      return Outcome::kOom;
    default:
      return exit.signal ? Outcome::kSignal : Outcome::kExit;
  }
}

}  // namespace

int RunSummary::exit_code() const {
  if (stop_signal) return 128 + *stop_signal;
  if (setup_failure) return static_cast<int>(ExitCode::kUsage);
  if (done < clusters) return static_cast<int>(ExitCode::kSomeFailed);
  return static_cast<int>(ExitCode::kDone);
}

Scheduler::Scheduler(Store& store, const Job& job, const CommandTemplate& command,
                     Launcher& launcher, Progress* progress, SchedulerOptions options)
    : store_(store),
      job_(job),
      command_(command),
      launcher_(launcher),
      progress_(progress),
      options_(std::move(options)),
      rng_(options_.seed ? options_.seed
                         : static_cast<std::uint64_t>(Clock::now().time_since_epoch().count())) {
  summary_.clusters = job_.clusters;
  parallel_now_ = options_.parallel;
  if (options_.mem_budget) {
    auto cap = options_.mem_limit.value_or(*options_.mem_budget);
    budget_.emplace(*options_.mem_budget, cap, options_.mem_overcommit, options_.parallel);
  }
}

RunSummary Scheduler::run() {
  started_ = Clock::now();
  // Resume: what a dead runner left `running` did not finish; it runs again.
  summary_.recovered = store_.recover_interrupted(job_);
  if (summary_.recovered > 0)
    spdlog::info(
        "{} attempt(s) left running by an earlier runner marked interrupted; they run again",
        summary_.recovered);
  done_ = store_.done_clusters(job_);
  fresh_from_ = store_.highest_attempted(job_) + 1;
  if (options_.skip_failed)
    for (const auto& f : store_.failed_clusters(job_)) skip_.insert(f.cluster);
  summary_.skipped_failed = skip_.size();
  if (budget_) history_jobs_ = store_.related_jobs(job_);

  // Group commit: ends and starts are written in one transaction until
  // nothing more has happened for a moment (kGroupLinger), or the group is
  // large or old enough. A completion is acknowledged (counted, shown) only
  // once it is committed; what a crash loses is only unacknowledged, and runs
  // again. A start not yet committed is found by the next runner all the
  // same, by its RUNNER_RUN (see find_orphans).
  std::vector<ChildExit> exits;
  std::optional<Store::Batch> batch;
  std::size_t uncommitted = 0;
  Clock::time_point opened{};
  auto commit = [&] {
    if (!batch) return;
    batch->commit();
    batch.reset();
    uncommitted = 0;
    if (progress_) progress_->update(snapshot(), Clock::now());
  };
  try {
    for (;;) {
      if (!batch) {
        batch.emplace(store_);
        opened = Clock::now();
      }
      for (const auto& e : exits) finish(e);
      auto before = running_.size() + exits.size();
      if (!stopping_) fill();
      for (const auto& e : unwritten_ends_) store_.record_end(job_, e.row, e.cluster, e.end);
      unwritten_ends_.clear();
      uncommitted += exits.size() + (running_.size() + exits.size() - before);
      exits.clear();
      bool over = running_.empty() && (stopping_ || !has_work());
      if (over || uncommitted >= kGroupSize || Clock::now() - opened >= kGroupAge) commit();
      if (over) break;

      // With a group open, wait a moment for more: a commit costs more than
      // the start of a small cluster, and while runner commits, a slot whose
      // child has ended stays empty. Commit before sleeping any longer.
      Wakeup wake;
      if (batch && uncommitted > 0) {
        auto linger = Clock::now() + kGroupLinger;
        auto next = deadline();
        wake = launcher_.wait(next && *next < linger ? *next : linger);
      }
      if (wake.exits.empty() && wake.signals.empty()) {
        commit();
        wake = launcher_.wait(deadline());
      }
      exits = std::move(wake.exits);
      for (int sig : wake.signals) on_signal(sig);
      enforce_deadlines();
      watch_memory();
    }
  } catch (...) {
    // runner cannot keep its log: leave no child running unrecorded.
    if (!running_.empty())
      spdlog::error("killing {} running cluster(s): runner cannot record them", running_.size());
    for (auto& [pid, r] : running_) launcher_.signal(pid, SIGKILL);
    throw;
  }
  if (progress_) progress_->finish();
  // A stop leaves retries and requeued clusters waiting: the next run runs them.
  if (stopping_)
    summary_.waiting_again = retry_at_.size() + ready_retries_.size() + requeue_.size();
  summary_.done = done_.count();
  summary_.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started_);
  return summary_;
}

std::optional<ClusterId> Scheduler::next_cluster() {
  while (more_) {
    cursor_ = done_.next_absent(cursor_);
    if (cursor_ > job_.clusters) {
      more_ = false;
      break;
    }
    ClusterId c = cursor_++;
    if (!skip_.contains(c)) return c;
  }
  return std::nullopt;
}

// What a cluster will reserve: its own recorded peak, or that of the same
// cluster in an earlier job with the same command; else the cap (safe), or
// with overcommit a figure learned from the clusters finished so far.
Scheduler::Candidate Scheduler::candidate_for(ClusterId cluster) {
  Candidate c;
  c.cluster = cluster;
  c.cap = options_.mem_limit;
  if (!budget_) return c;
  if (!c.cap) c.cap = budget_->total();
  if (auto peak = store_.peak_kib(history_jobs_, cluster)) {
    c.need = budget_->need_from_history(*peak * 1024);
  } else {
    c.need = budget_->unknown_need();
    c.guessed = budget_->overcommit();
  }
  return c;
}

bool Scheduler::fits(const Candidate& c) const {
  if (!budget_) return true;
  if (c.alone) return running_.empty();
  return budget_->fits(c.need, c.guessed);
}

std::optional<Scheduler::Candidate> Scheduler::next_candidate() {
  // Clusters to run again in this run at once go first, in order: nothing
  // passes them (an OOM retry waiting to run alone, an evicted cluster).
  if (!requeue_.empty()) {
    if (!fits(requeue_.front())) return std::nullopt;
    auto c = requeue_.front();
    requeue_.pop_front();
    return c;
  }
  // Retries whose backoff is over and first attempts take turns, so that
  // neither starves the other.
  for (int turn = 0; turn < 2; ++turn) {
    bool retry = (turn == 0) == retry_turn_;
    auto c = retry ? take_ready_retry() : take_first_attempt();
    if (c) {
      retry_turn_ = !retry;
      return c;
    }
  }
  return std::nullopt;
}

std::optional<Scheduler::Candidate> Scheduler::take_ready_retry() {
  auto now = Clock::now();
  while (!retry_at_.empty() && retry_at_.begin()->first <= now) {
    ready_retries_.push_back(retry_at_.begin()->second);
    retry_at_.erase(retry_at_.begin());
  }
  for (auto it = ready_retries_.begin(); it != ready_retries_.end(); ++it) {
    if (!fits(*it)) continue;
    auto c = *it;
    ready_retries_.erase(it);
    return c;
  }
  return std::nullopt;
}

std::optional<Scheduler::Candidate> Scheduler::take_first_attempt() {
  if (!budget_) {
    auto c = next_cluster();
    if (!c) return std::nullopt;
    return candidate_for(*c);
  }
  // Those set aside for want of memory, oldest first.
  for (auto it = deferred_.begin(); it != deferred_.end(); ++it) {
    if (!fits(*it)) continue;
    auto c = *it;
    head_passed_ = it == deferred_.begin() ? 0 : head_passed_ + 1;
    deferred_.erase(it);
    return c;
  }
  // Then new ones, unless the oldest set-aside cluster has been passed often
  // enough: it must not wait for ever behind smaller ones.
  if (!deferred_.empty() && head_passed_ >= options_.parallel) return std::nullopt;
  while (deferred_.size() < kLookahead) {
    auto next = next_cluster();
    if (!next) return std::nullopt;
    auto c = candidate_for(*next);
    if (c.need > budget_->total()) {
      ++summary_.too_big;
      spdlog::error(
          "cluster {}/{} needs {} (its recorded peak), more than the {} budget: not started",
          c.cluster, job_.clusters, size_text(c.need), size_text(budget_->total()));
      continue;
    }
    if (fits(c)) {
      if (!deferred_.empty()) ++head_passed_;
      return c;
    }
    deferred_.push_back(c);
  }
  return std::nullopt;
}

void Scheduler::fill() {
  if (running_.empty()) pressure_ = false;
  if (start_again_at_ && Clock::now() < *start_again_at_) return;
  start_again_at_.reset();
  while (!stopping_ && !pressure_ && !start_again_at_ && running_.size() < parallel_now_) {
    auto c = next_candidate();
    if (!c) return;
    start(*c);
  }
}

void Scheduler::start(const Candidate& c) {
  LaunchSpec spec;
  spec.cluster = c.cluster;
  spec.clusters = job_.clusters;
  // Most clusters were never attempted, and a retry knows its last attempt:
  // the log is asked only about the rest.
  spec.attempt = c.last_attempt             ? c.last_attempt + 1
                 : c.cluster >= fresh_from_ ? 1
                                            : store_.next_attempt(job_, c.cluster);
  spec.job = job_.name;
  spec.argv = command_.render(c.cluster, job_.clusters);
  spec.log_path = (options_.log_dir / fmt::format("{}.{}.log", c.cluster, spec.attempt)).string();
  spec.mem_limit = c.cap;

  AttemptStart record{c.cluster, spec.attempt, 0, wall_clock_now(), spec.log_path};
  record.cap = launcher_.cap_name();
  if (c.cap) record.mem_limit_kib = *c.cap / 1024;
  if (options_.timeout) record.timeout_s = static_cast<double>(options_.timeout->count()) / 1e3;
  auto result = launcher_.start(spec);
  if (auto* started = std::get_if<Started>(&result)) {
    record.pid = started->pid;
    record.log_path = started->log_path;
    auto row = store_.record_start(job_, record);
    Running r{c, spec.attempt, row, started->log_path, Clock::now()};
    if (options_.timeout) r.timeout_at = r.started + *options_.timeout;
    running_.emplace(started->pid, r);
    if (budget_) budget_->reserve(c.need, c.guessed);
    if (c.retry > 0) ++summary_.retried;
    start_backoff_ = std::chrono::milliseconds(0);
    return;
  }
  after_failed_start(c, record, std::get<StartFailed>(result));
}

// A start that failed. Only a command that could not be executed is the
// cluster's failure, and recorded; when runner's own means fail (no process,
// no open file, a full log folder), the cluster never started: it stays
// pending, and runner waits, runs fewer at once, or stops starting.
void Scheduler::after_failed_start(const Candidate& c, const AttemptStart& record,
                                   const StartFailed& failure) {
  switch (failure.kind) {
    case StartFailed::Kind::kTransient:
      // The machine has no process to spare now: it goes back to the front,
      // and starts pause, longer each time.
      start_backoff_ = std::min<std::chrono::milliseconds>(
          kLastStartBackoff, start_backoff_.count() ? start_backoff_ * 2 : kFirstStartBackoff);
      start_again_at_ = Clock::now() + start_backoff_;
      requeue_.push_front(c);
      spdlog::warn("{}; trying again in {}", failure.message, format_duration(start_backoff_));
      return;
    case StartFailed::Kind::kShortOfFiles:
      requeue_.push_front(c);
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
    case StartFailed::Kind::kEnvironment:
      requeue_.push_front(c);
      spdlog::error("cluster {}/{} not started: {}", c.cluster, job_.clusters, failure.message);
      stop(failure.message, false);
      return;
    case StartFailed::Kind::kCommand:
      break;
  }
  // Exit code 127 when the command could not be executed, as a shell reports it.
  auto failed = record;
  failed.log_path = failure.log_path;
  auto row = store_.record_start(job_, failed);
  AttemptEnd end;
  end.state = AttemptState::kFailed;
  end.finished_at = record.started_at;
  end.exit_code = 127;
  end.note = failure.message;
  store_.record_end(job_, row, c.cluster, end);
  ++summary_.failed_this_run;
  spdlog::error("cluster {}/{}: {}", c.cluster, job_.clusters, failure.message);
  if (done_.count() == 0) {
    // Nothing of this job has ever worked: the command is broken, not the
    // cluster. Stop rather than fail every cluster one by one.
    summary_.setup_failure = failure.message;
    stopping_ = true;
  } else {
    ++finished_;
    ++final_failures_;
  }
}

void Scheduler::finish(const ChildExit& exit) {
  auto it = running_.find(exit.pid);
  if (it == running_.end()) return;
  Running r = std::move(it->second);
  running_.erase(it);
  const auto cluster = r.what.cluster;

  bool at_budget = false;  // an OOM kill by the pool's limit, not its own cap
  AttemptEnd end;
  end.finished_at = wall_clock_now();
  end.exit_code = exit.exit_code;
  end.signal = exit.signal;
  end.user_cpu_s = exit.user_cpu_s;
  end.sys_cpu_s = exit.sys_cpu_s;
  end.peak_rss_kib = exit.peak_rss_kib;
  end.peak_cgroup_kib = exit.peak_cgroup_kib;
  if (r.timed_out) {
    // Past its limit, however it ended: even a child that could not be
    // stopped and went on to exit 0.
    end.state = AttemptState::kTimeout;
    end.note = fmt::format("timed out after {}", format_duration(*options_.timeout));
    if (r.unreachable) end.note += "; it could not be stopped and ran on until it ended";
  } else if (exit.exit_code == 0 && !exit.oom) {
    end.state = AttemptState::kDone;
  } else if (r.evicted_at) {
    end.state = AttemptState::kInterrupted;
    end.note = fmt::format("evicted at {} to keep the pool within the memory budget",
                           size_text(*r.evicted_at));
  } else if (r.signalled) {
    end.state = AttemptState::kInterrupted;
  } else if (exit.oom) {
    end.state = AttemptState::kOom;
    at_budget = killed_at_budget(r, exit);
    end.note = exit.oom_note;
    if (at_budget)
      end.note = fmt::format(
          "the kernel killed it when all clusters together reached the {} "
          "budget, at {} of its {} cap",
          size_text(budget_->total()), size_text(*exit.peak_cgroup_kib * 1024),
          size_text(*r.what.cap));
  } else {
    end.state = AttemptState::kFailed;
  }
  unwritten_ends_.push_back({r.row, cluster, end});

  // The cgroup's figure where there is one: it counts the whole tree, and
  // pages shared between its processes once.
  auto peak_bytes = exit.peak_cgroup_kib.value_or(exit.peak_rss_kib) * 1024;
  // Killed at the budget, the attempt never reached its peak: nothing to learn.
  if (budget_) {
    budget_->release(r.what.need, r.what.guessed);
    if (end.state != AttemptState::kInterrupted && !at_budget) budget_->learn(peak_bytes);
  }
  if (at_budget && !r.what.budget_oom && !stopping_) {
    // The budget's doing, as an eviction is: not the cluster's. It runs again
    // beside the others, once; a second such kill takes the OOM path below.
    ++summary_.budget_ooms;
    spdlog::warn("cluster {}/{}: {}; queueing it again (log {})", cluster, job_.clusters, end.note,
                 r.log_path);
    run_again_for_budget(r, peak_bytes);
    requeue_.back().budget_oom = true;
    return;
  }
  switch (end.state) {
    case AttemptState::kDone:
      done_.insert(cluster);
      ++summary_.done_this_run;
      ++finished_;
      break;
    case AttemptState::kInterrupted:
      if (r.evicted_at && !stopping_) {
        run_again_for_budget(r, *r.evicted_at);
      } else {
        ++summary_.interrupted;
      }
      break;
    default:
      after_unsuccessful(r, end.state, exit);
      break;
  }
}

// Was this OOM kill the pool's limit (the budget), not the attempt's own cap?
bool Scheduler::killed_at_budget(const Running& r, const ChildExit& exit) const {
  return budget_ && exit.oom && exit.peak_cgroup_kib && r.what.cap &&
         *exit.peak_cgroup_kib * 1024 + kOwnLimitSlack < *r.what.cap;
}

// Stopped for the budget's sake, not failed: back to the front of the queue,
// reserving half as much again as it had reached when it was stopped.
void Scheduler::run_again_for_budget(const Running& r, std::uint64_t reached) {
  auto c = r.what;
  c.last_attempt = r.attempt;
  c.need = std::min(budget_->total(), std::max(c.need, reached + reached / 2));
  c.guessed = false;
  requeue_.push_back(c);
}

// A cluster failed, ran out of memory or timed out: say so, and decide
// whether it runs again in this run.
void Scheduler::after_unsuccessful(const Running& r, AttemptState state, const ChildExit& exit) {
  const auto cluster = r.what.cluster;
  ++summary_.failed_this_run;
  auto peak_bytes = exit.peak_cgroup_kib.value_or(exit.peak_rss_kib) * 1024;
  if (state == AttemptState::kOom) {
    ++summary_.oom_this_run;
    auto cap = killed_at_budget(r, exit)
                   ? fmt::format(" when all clusters together reached the {} budget",
                                 size_text(budget_->total()))
               : r.what.cap ? fmt::format(" at the {} cap", size_text(*r.what.cap))
                            : "";
    spdlog::warn("cluster {}/{}: out of memory{} (peak {}; {}) (log {})", cluster, job_.clusters,
                 cap, size_text(peak_bytes), exit.oom_note, r.log_path);
    // Under a budget, do what a person would: once more, alone, with all of it.
    if (budget_ && !r.what.alone && !stopping_) {
      spdlog::info("cluster {}/{}: trying it once more alone, capped at the whole {} budget",
                   cluster, job_.clusters, size_text(budget_->total()));
      auto c = r.what;
      c.last_attempt = r.attempt;
      c.need = c.cap.emplace(budget_->total());
      c.guessed = false;
      c.alone = true;
      requeue_.push_back(c);
      return;
    }
  } else if (state == AttemptState::kTimeout) {
    ++summary_.timed_out;
    spdlog::warn("cluster {}/{}: timed out after {} (log {})", cluster, job_.clusters,
                 format_duration(*options_.timeout), r.log_path);
  } else {
    spdlog::warn("cluster {}/{} failed: {} (log {})", cluster, job_.clusters,
                 describe_ending(exit.exit_code, exit.signal), r.log_path);
  }
  const auto& retry = options_.retry;
  if (!stopping_ && r.what.retry < retry.retries &&
      retry.applies(outcome_of(state, exit), exit.exit_code)) {
    auto c = r.what;
    c.last_attempt = r.attempt;
    ++c.retry;
    auto wait = retry.backoff(c.retry, rng_);
    spdlog::info("cluster {}/{}: retry {} of {} in {}", cluster, job_.clusters, c.retry,
                 retry.retries, format_duration(wait));
    if (budget_) {
      auto fresh = candidate_for(cluster);  // its peak is known now
      c.need = fresh.need;
      c.guessed = fresh.guessed;
    }
    retry_at_.emplace(Clock::now() + wait, c);
    return;
  }
  ++finished_;
  ++final_failures_;
  if (!stopping_ && options_.halt.reached(final_failures_, finished_))
    stop(fmt::format("--halt: {}", options_.halt.describe()),
         options_.halt.when() == HaltPolicy::When::kNow);
}

// Stops starting clusters; with kill_running, also stops the running ones in
// steps: SIGTERM now, SIGKILL after the grace.
void Scheduler::stop(const std::string& why, bool kill_running) {
  if (!summary_.halted && !summary_.stop_signal) summary_.halted = why;
  stopping_ = true;
  spdlog::warn("stopping: {}{}", why,
               running_.empty() ? ""
               : kill_running
                   ? fmt::format("; stopping {} running cluster(s)", running_.size())
                   : fmt::format("; letting {} running cluster(s) finish", running_.size()));
  if (kill_running)
    for (auto& [pid, r] : running_) {
      r.signalled = true;
      terminate(pid, r);
    }
}

void Scheduler::terminate(pid_t pid, Running& r) {
  send(pid, r, SIGTERM);
  if (!r.kill_at) r.kill_at = Clock::now() + options_.grace;
}

// Signals a running cluster; says so, once, when it cannot be reached.
void Scheduler::send(pid_t pid, Running& r, int sig) {
  int err = launcher_.signal(pid, sig);
  if (err == 0 || r.unreachable) return;
  r.unreachable = true;
  spdlog::warn("cluster {}/{}: could not stop it ({} refused: {}); it runs on until it ends",
               r.what.cluster, job_.clusters, signal_name(sig), std::strerror(err));
}

void Scheduler::on_signal(int sig) {
  if (!summary_.stop_signal) {
    summary_.stop_signal = sig;
    stopping_ = true;
    if (running_.empty()) return;
    spdlog::warn("{}: stopping {} running cluster(s), killing them in {} (again to kill now)",
                 signal_name(sig), running_.size(), format_duration(options_.grace));
    for (auto& [pid, r] : running_) {
      r.signalled = true;
      terminate(pid, r);
    }
    return;
  }
  // A second signal: the user does not want to wait for the grace period.
  if (!running_.empty()) {
    spdlog::warn("{} again: killing {} cluster(s) now", signal_name(sig), running_.size());
    for (auto& [pid, r] : running_) {
      r.signalled = true;
      r.kill_at = Clock::now();
    }
  }
}

// Timeouts and the end of grace periods, each child on its own clock.
void Scheduler::enforce_deadlines() {
  auto now = Clock::now();
  for (auto& [pid, r] : running_) {
    if (r.timeout_at && now >= *r.timeout_at && !r.timed_out && !r.signalled) {
      r.timed_out = true;
      spdlog::warn("cluster {}/{}: {} timeout reached; stopping it", r.what.cluster, job_.clusters,
                   format_duration(*options_.timeout));
      terminate(pid, r);
    }
    if (r.kill_at && now >= *r.kill_at) {
      send(pid, r, SIGKILL);
      r.kill_at.reset();
    }
  }
}

// With overcommit, guesses can be wrong: read what the pool really uses, and
// stop admitting, then evict a guessed cluster, before the total passes the
// budget. (Where cgroups allow, the kernel also holds the run to the budget.)
void Scheduler::watch_memory() {
  next_watch_.reset();
  if (!budget_ || !budget_->overcommit() || stopping_ || running_.empty()) return;
  auto total = launcher_.total_memory_in_use();
  if (!total) return;
  auto budget = static_cast<double>(budget_->total());
  pressure_ = static_cast<double>(*total) >= kPressureShare * budget;
  // A victim still exiting still counts in the total: wait for its memory to
  // be given back before choosing another.
  bool victim_exiting = std::any_of(running_.begin(), running_.end(),
                                    [](const auto& entry) { return entry.second.evicted_at; });
  if (!victim_exiting && static_cast<double>(*total) >= kEvictShare * budget) {
    // The youngest guessed cluster that outgrew its guess; failing that, the
    // youngest guessed one. The youngest has the least work to lose.
    Running* victim = nullptr;
    pid_t victim_pid = 0;
    bool victim_outgrew = false;
    for (auto& [pid, r] : running_) {
      if (!r.what.guessed || r.evicted_at || r.signalled || r.timed_out) continue;
      bool outgrew = launcher_.memory_in_use(pid).value_or(0) > r.what.need;
      if (!victim || (outgrew && !victim_outgrew) ||
          (outgrew == victim_outgrew && r.started > victim->started)) {
        victim = &r;
        victim_pid = pid;
        victim_outgrew = outgrew;
      }
    }
    if (victim) {
      victim->evicted_at = launcher_.memory_in_use(victim_pid).value_or(victim->what.need);
      ++summary_.evicted;
      spdlog::info("memory at {} of the {} budget: evicting cluster {}/{} and queueing it again",
                   size_text(*total), size_text(budget_->total()), victim->what.cluster,
                   job_.clusters);
      launcher_.signal(victim_pid, SIGKILL);
    }
  }
  for (const auto& [pid, r] : running_)
    if (r.what.guessed) next_watch_ = Clock::now() + kWatchEvery;
}

std::optional<Clock::time_point> Scheduler::deadline() const {
  std::optional<Clock::time_point> earliest;
  auto consider = [&](std::optional<Clock::time_point> t) {
    if (t && (!earliest || *t < *earliest)) earliest = t;
  };
  consider(next_watch_);
  consider(progress_ ? progress_->next_tick() : std::nullopt);
  consider(start_again_at_);
  if (!stopping_ && !retry_at_.empty()) consider(retry_at_.begin()->first);
  for (const auto& [pid, r] : running_) {
    consider(r.kill_at);
    if (!r.timed_out && !r.signalled) consider(r.timeout_at);
  }
  return earliest;
}

Snapshot Scheduler::snapshot() const {
  Snapshot s;
  s.total = job_.clusters;
  s.done = done_.count();
  s.failed = final_failures_ + summary_.skipped_failed;
  s.running = running_.size();
  s.done_this_run = summary_.done_this_run;
  s.started = started_;
  return s;
}

}  // namespace runner
