#include "runner/scheduler.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "runner/signals.h"
#include "runner/sysinfo.h"
#include "runner/units.h"

namespace runner {
namespace {

// How far past the cursor the budget looks for clusters that fit while an
// earlier one waits for memory.
constexpr std::size_t kLookahead = 64;
// With overcommit, real usage is read this often while guessed clusters run.
constexpr auto kWatchEvery = std::chrono::milliseconds(50);
// Stop admitting at this share of the budget; evict the youngest guess at the second.
constexpr double kPressureShare = 0.90;
constexpr double kEvictShare = 0.97;

std::string size_text(std::uint64_t bytes) {
  return format_size_kib(bytes / 1024);
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
      options_(std::move(options)) {
  summary_.clusters = job_.clusters;
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
  if (options_.skip_failed)
    for (const auto& f : store_.failed_clusters(job_)) skip_.insert(f.cluster);
  summary_.skipped_failed = skip_.size();
  if (budget_) history_jobs_ = store_.related_jobs(job_);

  std::vector<ChildExit> exits;
  try {
    for (;;) {
      // One transaction per wakeup: the ends just reaped and the starts they
      // make room for. A completion is acknowledged (counted, shown) only
      // after this commit.
      {
        Store::Batch batch(store_);
        for (const auto& e : exits) finish(e);
        if (!stopping_) fill();
        batch.commit();
      }
      exits.clear();
      if (progress_) progress_->update(snapshot(), Clock::now());
      if (running_.empty() && (stopping_ || !has_work())) break;

      auto wake = launcher_.wait(deadline());
      exits = std::move(wake.exits);
      for (int sig : wake.signals) on_signal(sig);
      if (kill_at_ && Clock::now() >= *kill_at_) {
        spdlog::warn("grace period over: killing {} cluster(s) still running", running_.size());
        signal_all(SIGKILL);
        kill_at_.reset();
      }
      watch_memory();
    }
  } catch (...) {
    // runner cannot keep its log: leave no child running unrecorded.
    signal_all(SIGKILL);
    throw;
  }
  if (progress_) progress_->finish();
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
  return budget_->fits(c.need);
}

std::optional<Scheduler::Candidate> Scheduler::next_candidate() {
  if (!budget_) {
    auto c = next_cluster();
    if (!c) return std::nullopt;
    return candidate_for(*c);
  }
  // Clusters to run again in this run go first, in order: nothing passes them.
  if (!requeue_.empty()) {
    if (!fits(requeue_.front())) return std::nullopt;
    auto c = requeue_.front();
    requeue_.pop_front();
    return c;
  }
  // Then those set aside for want of memory, oldest first.
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
  while (!stopping_ && !pressure_ && running_.size() < options_.parallel) {
    auto c = next_candidate();
    if (!c) return;
    start(*c);
  }
}

void Scheduler::start(const Candidate& c) {
  LaunchSpec spec;
  spec.cluster = c.cluster;
  spec.clusters = job_.clusters;
  spec.attempt = store_.next_attempt(job_, c.cluster);
  spec.job = job_.name;
  spec.argv = command_.render(c.cluster, job_.clusters);
  spec.log_path = (options_.log_dir / fmt::format("{}.{}.log", c.cluster, spec.attempt)).string();
  spec.mem_limit = c.cap;

  AttemptStart record{c.cluster, spec.attempt, 0, wall_clock_now(), spec.log_path};
  record.cap = launcher_.cap_name();
  if (c.cap) record.mem_limit_kib = *c.cap / 1024;
  auto result = launcher_.start(spec);
  if (auto* started = std::get_if<Started>(&result)) {
    record.pid = started->pid;
    auto row = store_.record_start(job_, record);
    running_.emplace(started->pid,
                     Running{c, spec.attempt, row, spec.log_path, Clock::now(), false, {}});
    if (budget_) budget_->reserve(c.need);
    return;
  }
  // The start itself failed: recorded as a failed attempt with exit code 127,
  // as a shell reports a command it cannot execute.
  const auto& failure = std::get<StartFailed>(result);
  auto row = store_.record_start(job_, record);
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
  }
}

void Scheduler::finish(const ChildExit& exit) {
  auto it = running_.find(exit.pid);
  if (it == running_.end()) return;
  Running r = std::move(it->second);
  running_.erase(it);
  const auto cluster = r.what.cluster;

  AttemptEnd end;
  end.finished_at = wall_clock_now();
  end.exit_code = exit.exit_code;
  end.signal = exit.signal;
  end.user_cpu_s = exit.user_cpu_s;
  end.sys_cpu_s = exit.sys_cpu_s;
  end.peak_rss_kib = exit.peak_rss_kib;
  end.peak_cgroup_kib = exit.peak_cgroup_kib;
  if (exit.exit_code == 0 && !exit.oom) {
    end.state = AttemptState::kDone;
  } else if (r.evicted_at) {
    end.state = AttemptState::kInterrupted;
    end.note = fmt::format("evicted at {} to keep the pool within the memory budget",
                           size_text(*r.evicted_at));
  } else if (r.signalled) {
    end.state = AttemptState::kInterrupted;
  } else if (exit.oom) {
    end.state = AttemptState::kOom;
    end.note = exit.oom_note;
  } else {
    end.state = AttemptState::kFailed;
  }
  store_.record_end(job_, r.row, cluster, end);

  // The cgroup's figure where there is one: it counts the whole tree, and
  // pages shared between its processes once.
  auto peak_bytes = exit.peak_cgroup_kib.value_or(exit.peak_rss_kib) * 1024;
  if (budget_) {
    budget_->release(r.what.need);
    if (end.state != AttemptState::kInterrupted) budget_->learn(peak_bytes);
  }
  switch (end.state) {
    case AttemptState::kDone:
      done_.insert(cluster);
      ++summary_.done_this_run;
      break;
    case AttemptState::kOom: {
      ++summary_.failed_this_run;
      ++summary_.oom_this_run;
      auto cap = r.what.cap ? fmt::format(" at the {} cap", size_text(*r.what.cap)) : "";
      spdlog::warn("cluster {}/{}: out of memory{} (peak {}; {}) (log {})", cluster, job_.clusters,
                   cap, size_text(peak_bytes), exit.oom_note, r.log_path);
      // Under a budget, do what a person would: once more, alone, with all of it.
      if (budget_ && !r.what.alone && !stopping_) {
        spdlog::info("cluster {}/{}: trying it once more alone, capped at the whole {} budget",
                     cluster, job_.clusters, size_text(budget_->total()));
        requeue_.push_back(Candidate{cluster, budget_->total(), false, true, budget_->total()});
      }
      break;
    }
    case AttemptState::kFailed:
      ++summary_.failed_this_run;
      spdlog::warn("cluster {}/{} failed: {} (log {})", cluster, job_.clusters,
                   describe_ending(exit.exit_code, exit.signal), r.log_path);
      break;
    default:
      if (r.evicted_at && !stopping_) {
        // Evicted, not failed: it goes back to the front of the queue, reserving
        // more than it had reached when it was stopped.
        auto c = r.what;
        c.need = std::min(budget_->total(), std::max(c.need, *r.evicted_at + *r.evicted_at / 2));
        c.guessed = false;
        requeue_.push_back(c);
      } else {
        ++summary_.interrupted;
      }
      break;
  }
}

// With overcommit, guesses can be wrong: read what the pool really uses, and
// stop admitting, then evict the youngest guessed cluster, before the total
// passes the budget. (Where cgroups allow, the kernel also holds the run to
// the budget as a whole.)
void Scheduler::watch_memory() {
  next_watch_.reset();
  if (!budget_ || !budget_->overcommit() || stopping_ || running_.empty()) return;
  auto total = launcher_.total_memory_in_use();
  if (!total) return;
  auto budget = static_cast<double>(budget_->total());
  pressure_ = static_cast<double>(*total) >= kPressureShare * budget;
  if (static_cast<double>(*total) >= kEvictShare * budget) {
    // The youngest guessed cluster that outgrew its guess; failing that, the
    // youngest guessed one. The youngest has the least work to lose.
    Running* youngest = nullptr;
    pid_t youngest_pid = 0;
    bool youngest_outgrew = false;
    for (auto& [pid, r] : running_) {
      if (!r.what.guessed || r.evicted_at || r.signalled) continue;
      bool outgrew = launcher_.memory_in_use(pid).value_or(0) > r.what.need;
      if (!youngest || (outgrew && !youngest_outgrew) ||
          (outgrew == youngest_outgrew && r.started > youngest->started)) {
        youngest = &r;
        youngest_pid = pid;
        youngest_outgrew = outgrew;
      }
    }
    if (youngest) {
      youngest->evicted_at = launcher_.memory_in_use(youngest_pid).value_or(youngest->what.need);
      ++summary_.evicted;
      spdlog::info("memory at {} of the {} budget: evicting cluster {}/{} and queueing it again",
                   size_text(*total), size_text(budget_->total()), youngest->what.cluster,
                   job_.clusters);
      launcher_.signal(youngest_pid, SIGKILL);
    }
  }
  for (const auto& [pid, r] : running_)
    if (r.what.guessed) next_watch_ = Clock::now() + kWatchEvery;
}

void Scheduler::on_signal(int sig) {
  if (!summary_.stop_signal) {
    summary_.stop_signal = sig;
    stopping_ = true;
    if (running_.empty()) return;
    spdlog::warn("{}: stopping {} running cluster(s), killing them in {} (again to kill now)",
                 signal_name(sig), running_.size(), format_duration(options_.grace));
    signal_all(SIGTERM);
    kill_at_ = Clock::now() + options_.grace;
    return;
  }
  // A second signal: the user does not want to wait for the grace period.
  if (!running_.empty()) {
    spdlog::warn("{} again: killing {} cluster(s) now", signal_name(sig), running_.size());
    signal_all(SIGKILL);
  }
  kill_at_.reset();
}

void Scheduler::signal_all(int sig) {
  for (auto& [pid, r] : running_) {
    launcher_.signal(pid, sig);
    r.signalled = true;
  }
}

std::optional<Clock::time_point> Scheduler::deadline() const {
  std::optional<Clock::time_point> earliest;
  for (auto t : {kill_at_, next_watch_, progress_ ? progress_->next_tick() : std::nullopt})
    if (t && (!earliest || *t < *earliest)) earliest = t;
  return earliest;
}

Snapshot Scheduler::snapshot() const {
  Snapshot s;
  s.total = job_.clusters;
  s.done = done_.count();
  s.failed = summary_.failed_this_run + summary_.skipped_failed;
  s.running = running_.size();
  s.done_this_run = summary_.done_this_run;
  s.started = started_;
  return s;
}

}  // namespace runner
