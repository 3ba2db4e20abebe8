#include "runner/scheduler.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "runner/signals.h"
#include "runner/sysinfo.h"

namespace runner {
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
      if (running_.empty() && (stopping_ || !more_)) break;

      auto wake = launcher_.wait(deadline());
      exits = std::move(wake.exits);
      for (int sig : wake.signals) on_signal(sig);
      if (kill_at_ && Clock::now() >= *kill_at_) {
        spdlog::warn("grace period over: killing {} cluster(s) still running", running_.size());
        signal_all(SIGKILL);
        kill_at_.reset();
      }
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

void Scheduler::fill() {
  while (!stopping_ && running_.size() < options_.parallel) {
    auto c = next_cluster();
    if (!c) return;
    start(*c);
  }
}

void Scheduler::start(ClusterId cluster) {
  LaunchSpec spec;
  spec.cluster = cluster;
  spec.clusters = job_.clusters;
  spec.attempt = store_.next_attempt(job_, cluster);
  spec.job = job_.name;
  spec.argv = command_.render(cluster, job_.clusters);
  spec.log_path = (options_.log_dir / fmt::format("{}.{}.log", cluster, spec.attempt)).string();

  AttemptStart record{cluster, spec.attempt, 0, wall_clock_now(), spec.log_path};
  auto result = launcher_.start(spec);
  if (auto* started = std::get_if<Started>(&result)) {
    record.pid = started->pid;
    auto row = store_.record_start(job_, record);
    running_.emplace(started->pid, Running{cluster, spec.attempt, row, spec.log_path});
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
  store_.record_end(job_, row, cluster, end);
  ++summary_.failed_this_run;
  spdlog::error("cluster {}/{}: {}", cluster, job_.clusters, failure.message);
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

  AttemptEnd end;
  end.finished_at = wall_clock_now();
  end.exit_code = exit.exit_code;
  end.signal = exit.signal;
  end.user_cpu_s = exit.user_cpu_s;
  end.sys_cpu_s = exit.sys_cpu_s;
  end.peak_rss_kib = exit.peak_rss_kib;
  if (exit.exit_code == 0)
    end.state = AttemptState::kDone;
  else if (r.signalled)
    end.state = AttemptState::kInterrupted;
  else
    end.state = AttemptState::kFailed;
  store_.record_end(job_, r.row, r.cluster, end);

  switch (end.state) {
    case AttemptState::kDone:
      done_.insert(r.cluster);
      ++summary_.done_this_run;
      break;
    case AttemptState::kFailed:
      ++summary_.failed_this_run;
      spdlog::warn("cluster {}/{} failed: {} (log {})", r.cluster, job_.clusters,
                   describe_ending(exit.exit_code, exit.signal), r.log_path);
      break;
    default:
      ++summary_.interrupted;
      break;
  }
}

void Scheduler::on_signal(int sig) {
  if (!summary_.stop_signal) {
    summary_.stop_signal = sig;
    stopping_ = true;
    if (running_.empty()) return;
    spdlog::warn("{}: stopping {} running cluster(s), killing them in {} (again to kill now)",
                 signal_name(sig), running_.size(),
                 fmt::format("{:.1f}s", static_cast<double>(options_.grace.count()) / 1e3));
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
  auto tick = progress_ ? progress_->next_tick() : std::nullopt;
  if (kill_at_ && tick) return std::min(*kill_at_, *tick);
  return kill_at_ ? kill_at_ : tick;
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
