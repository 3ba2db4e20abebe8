#include "runner/admission.h"

#include <spdlog/spdlog.h>

#include "runner/units.h"

namespace runner {
namespace {

// How far past the cursor the budget looks for clusters that fit while an
// earlier one waits for memory.
constexpr std::size_t kLookahead = 64;

}  // namespace

Admission::Admission(Store& store, const Job& job, AdmissionOptions options)
    : store_(store), job_(job), options_(options) {
  if (options_.mem_budget) {
    auto cap = options_.mem_limit.value_or(*options_.mem_budget);
    budget_.emplace(*options_.mem_budget, cap, options_.mem_overcommit, options_.parallel);
  }
}

void Admission::resume() {
  done_ = store_.done_clusters(job_);
  fresh_from_ = store_.highest_attempted(job_) + 1;
  if (options_.skip_failed)
    for (const auto& f : store_.failed_clusters(job_)) skip_.insert(f.cluster);
  if (budget_) history_jobs_ = store_.related_jobs(job_);
}

bool Admission::has_work() const {
  return more_ || !deferred_.empty() || !requeue_.empty() || !ready_retries_.empty() ||
         !retry_at_.empty();
}

std::optional<Clock::time_point> Admission::next_retry() const {
  if (retry_at_.empty()) return std::nullopt;
  return retry_at_.begin()->first;
}

std::optional<ClusterId> Admission::next_cluster() {
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
Candidate Admission::candidate_for(ClusterId cluster) {
  Candidate c;
  c.cluster = cluster;
  c.limit = options_.mem_limit;
  if (!budget_) return c;
  if (!c.limit) c.limit = budget_->total();
  if (auto peak = store_.peak_kib(history_jobs_, cluster)) {
    c.need = budget_->need_from_history(*peak * 1024);
  } else {
    c.need = budget_->unknown_need();
    c.guessed = budget_->overcommit();
  }
  return c;
}

bool Admission::fits(const Candidate& c) const {
  if (!budget_) return true;
  if (c.alone) return running_ == 0;
  return budget_->fits(c.need, c.guessed);
}

void Admission::reserve(const Candidate& c) {
  if (budget_) budget_->reserve(c.need, c.guessed);
}

void Admission::release(const Candidate& c) {
  if (budget_) budget_->release(c.need, c.guessed);
}

std::optional<Candidate> Admission::next(std::size_t running) {
  running_ = running;
  // Clusters to run again in this run at once go first, in order: nothing
  // passes them (an OOM retry waiting to run alone, an evicted cluster).
  if (!requeue_.empty()) {
    if (!fits(requeue_.front())) return std::nullopt;
    auto c = requeue_.front();
    requeue_.pop_front();
    return c;
  }
  // Retries whose delay is over and first attempts take turns, so that
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

std::optional<Candidate> Admission::take_ready_retry() {
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

std::optional<Candidate> Admission::take_first_attempt() {
  if (!budget_) {
    auto c = next_cluster();
    if (!c) return std::nullopt;
    return candidate_for(*c);
  }
  return take_deferred_or_new();
}

// Under a budget: those set aside for want of memory, oldest first; then new
// ones, unless the oldest set-aside cluster has been passed often enough: it
// must not wait for ever behind smaller ones.
std::optional<Candidate> Admission::take_deferred_or_new() {
  for (auto it = deferred_.begin(); it != deferred_.end(); ++it) {
    if (!fits(*it)) continue;
    auto c = *it;
    head_passed_ = it == deferred_.begin() ? 0 : head_passed_ + 1;
    deferred_.erase(it);
    return c;
  }
  if (!deferred_.empty() && head_passed_ >= options_.parallel) return std::nullopt;
  while (deferred_.size() < kLookahead) {
    auto next = next_cluster();
    if (!next) return std::nullopt;
    auto c = candidate_for(*next);
    if (c.need > budget_->total()) {
      ++too_big_;
      spdlog::error(
          "cluster {}/{} needs {} (its recorded peak), more than the {} budget: not started",
          c.cluster, job_.clusters, format_size_kib(c.need / 1024),
          format_size_kib(budget_->total() / 1024));
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

}  // namespace runner
