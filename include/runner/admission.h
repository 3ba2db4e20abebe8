// What to start next, in which order and within which budget: the clusters
// not yet started (implicit, from a cursor over the done set: pending ones
// are never listed), those to run again (a requeue nothing passes, retries
// waiting out their delay), and, under --mem-budget, what each reserves. The
// scheduler's loop asks for the next candidate whenever a slot is free and
// tells what became of each; this part never starts, waits or writes.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <vector>

#include "runner/budget.h"
#include "runner/cluster.h"
#include "runner/engine.h"
#include "runner/intervals.h"
#include "runner/store.h"

namespace runner {

// A cluster about to start, with what to reserve for it and what to cap it at.
struct Candidate {
  ClusterId cluster = 0;
  std::uint32_t retry = 0;             // retries of it so far in this run
  std::uint32_t last_attempt = 0;      // its latest attempt's number, where known
  std::uint64_t need = 0;              // bytes reserved from the budget
  bool guessed = false;                // need is a learned guess (overcommit)
  bool alone = false;                  // a retry after OOM: the whole budget to itself
  bool budget_oom = false;             // the kernel killed an earlier attempt at the budget
  std::optional<std::uint64_t> limit;  // bytes: its own cap
  // Under a budget over several sites: the one whose memory it reserves.
  std::optional<std::size_t> site;
};

// A place with slots and memory of its own (a node of a Slurm allocation).
struct SiteOptions {
  std::uint32_t slots = 1;
  std::uint64_t mem_budget = 0;  // bytes, its running children together
  std::uint32_t capacity = 0;    // what its slots may grow to when a site is lost (0: slots)
};

// The order of first attempts. kHistory: clusters earlier jobs ran start
// first, longest first (largest first where memory binds), then the rest in
// index order; kIndex: 1, 2, 3 …
enum class Order { kHistory, kIndex };

struct AdmissionOptions {
  std::uint32_t parallel = 1;
  bool skip_failed = false;
  std::optional<std::uint64_t> mem_limit;   // bytes, each child's cap
  std::optional<std::uint64_t> mem_budget;  // bytes, all running children together
  bool mem_overcommit = false;
  // Under a budget: where clusters run, each with its own budget (then
  // mem_budget is unused). None: one site with P slots and mem_budget.
  std::vector<SiteOptions> sites;
  Order order = Order::kHistory;
  // The most clusters the history order lists (16 bytes each); the rest of
  // those with history follow in index order.
  std::size_t most_ordered = 65'536;
};

// How the history order was made, for runner to say.
struct OrderPlan {
  std::uint64_t with_history = 0;  // clusters left to run that earlier jobs ran
  std::size_t ordered = 0;         // of those, how many start first (the rest: by index)
  bool by_memory = false;          // largest first: memory, not P, binds
  std::size_t spread = 0;          // heavy clusters spread through a longest-first order
};

class Admission {
 public:
  Admission(Store& store, const Job& job, AdmissionOptions options);

  // Reads what resume needs from the log: the done clusters, the failed ones
  // to leave alone (--skip-failed), the peaks of earlier jobs (budget), and
  // with the history order, what earlier jobs say of the clusters left.
  void resume();
  const OrderPlan& order_plan() const { return plan_; }

  // The next candidate that may start beside `running` others now, in order:
  // the requeue first (nothing passes it), then retries whose delay is over
  // and first attempts, taking turns. None when nothing fits now.
  std::optional<Candidate> next(std::size_t running);
  // Whether anything is left to start in this run, now or later.
  bool has_work() const;
  // When the earliest waiting retry is due.
  std::optional<Clock::time_point> next_retry() const;
  // What a candidate reserves while it runs (at its site), and gives back
  // when it ends.
  void reserve(const Candidate& c);
  void release(const Candidate& c);
  // A site that can take no more (its node is gone): nothing is placed there
  // again, and the sites left share its slots as their capacities allow.
  // Returns whether it was open until now. Whether any site is left.
  bool close_site(std::size_t site);
  bool any_site_open() const;

  // What comes back. A start that could not happen now goes first again; a
  // cluster to run again at once joins the requeue; a retry waits until `at`.
  void first_again(const Candidate& c) { requeue_.push_front(c); }
  void run_again(const Candidate& c) { requeue_.push_back(c); }
  void retry_at(Clock::time_point at, const Candidate& c) { retry_at_.emplace(at, c); }
  // A fresh candidate for `cluster` (its need from the peaks known now).
  Candidate candidate_for(ClusterId cluster);

  // The done clusters of the job, kept in step with what is committed.
  void mark_done(ClusterId cluster) { done_.insert(cluster); }
  std::uint64_t done_count() const { return done_.count(); }
  // Whether a cluster never had an attempt before this run began.
  bool never_attempted(ClusterId cluster) const { return cluster >= fresh_from_; }

  // The budget of the largest site (every site learns the same peaks): what
  // a cluster of unknown need reserves is its cap up to that budget, so that
  // it goes only where its cap fits; none without --mem-budget.
  const MemoryBudget* budget() const { return sites_.empty() ? nullptr : &sites_[largest_].budget; }
  // The budget of the site a candidate runs at, if any.
  std::optional<std::uint64_t> budget_of(const Candidate& c) const;
  // What the running clusters reserve, over all sites.
  std::uint64_t reserved() const;
  // The largest site's budget: what one cluster may have all to itself.
  std::uint64_t largest_budget() const;
  // A finished cluster's peak, for every site's learned figures.
  void learn(std::uint64_t peak_bytes);
  std::uint64_t skipped_failed() const { return skip_.size(); }
  std::uint64_t too_big() const { return too_big_; }
  // Clusters queued to run again in this run (requeue and retries).
  std::uint64_t waiting_again() const {
    return requeue_.size() + ready_retries_.size() + retry_at_.size();
  }

 private:
  std::optional<ClusterId> next_cluster();
  // The history order: the clusters earlier jobs ran, in the order to start them.
  void plan_order(std::vector<std::int64_t> related_jobs);
  std::optional<Candidate> take_first_attempt();
  std::optional<Candidate> take_deferred_or_new();
  std::optional<Candidate> take_ready_retry();
  // Whether it fits now, and where: sets its site.
  bool place(Candidate& c) const;

  Store& store_;
  const Job& job_;
  AdmissionOptions options_;
  std::size_t running_ = 0;  // as the last call to next() said

  IntervalSet done_;
  std::set<ClusterId> skip_;  // failed clusters left alone (--skip-failed)
  ClusterId cursor_ = 1;      // every cluster below it has been started or skipped
  ClusterId fresh_from_ = 1;  // clusters from here on were never attempted
  bool more_ = true;          // clusters remain below N to be started
  // With the history order: the clusters with history, in the order they
  // start (before the cursor's), and the same in index order (the cursor
  // passes them). Only these are listed; the rest stay implicit.
  std::vector<ClusterId> ordered_;
  std::size_t ordered_at_ = 0;
  std::vector<ClusterId> ordered_by_index_;
  OrderPlan plan_;

  std::deque<Candidate> requeue_;  // to run again in this run; nothing passes them
  std::multimap<Clock::time_point, Candidate> retry_at_;  // waiting out their delay
  std::deque<Candidate> ready_retries_;
  bool retry_turn_ = false;  // retries and first attempts take turns

  // Memory budget, when there is one: one per site.
  struct Site {
    MemoryBudget budget;
    std::uint32_t slots = 1;
    std::uint32_t capacity = 1;
    std::size_t running = 0;
    bool open = true;
  };
  std::vector<Site> sites_;
  std::size_t largest_ = 0;  // the site with the largest budget
  std::vector<std::int64_t> history_jobs_;
  std::deque<Candidate> deferred_;  // did not fit yet; later clusters may pass them
  std::size_t head_passed_ = 0;     // how often the oldest deferred one was passed
  std::uint64_t too_big_ = 0;       // need more than the whole budget: not started
};

}  // namespace runner
