#include "runner/admission.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <deque>
#include <functional>
#include <utility>

#include "runner/plan.h"
#include "runner/units.h"

namespace runner {
namespace {

// How far past the cursor the budget looks for clusters that fit while an
// earlier one waits for memory.
constexpr std::size_t kLookahead = 64;

// Where P binds, duration decides, but the clusters that need more than an
// equal share of the budget (heavy ones) are spread through the order: among
// any `slots` consecutive starts, at most as many as their share of the list
// (rounded up). Heavy clusters started together slow one another (memory
// bandwidth, page faults), and a budget they fill leaves slots to the small
// ones alone. Otherwise the order stays longest first: each place takes the
// longer of the next heavy and the next light cluster.
// Returns how many heavy clusters it spread (none when all or none are heavy).
template <typename Heavy>
std::size_t spread_heavy(std::vector<Store::ClusterHistory>& order, std::size_t slots,
                         Heavy heavy) {
  using History = Store::ClusterHistory;
  std::vector<History> heavies, lights;
  for (const auto& h : order) (heavy(h) ? heavies : lights).push_back(h);
  if (heavies.empty() || lights.empty()) return 0;
  slots = std::max<std::size_t>(slots, 1);
  const auto per_window = (heavies.size() * slots + order.size() - 1) / order.size();
  std::deque<std::size_t> recent;  // places of the latest heavy ones, at most per_window
  std::size_t h = 0, l = 0;
  for (std::size_t at = 0; at < order.size(); ++at) {
    while (!recent.empty() && recent.front() + slots <= at) recent.pop_front();
    bool room = recent.size() < per_window;
    bool take_heavy = h < heavies.size() &&
                      (l == lights.size() || (room && heavies[h].seconds >= lights[l].seconds));
    if (take_heavy) {
      order[at] = heavies[h++];
      recent.push_back(at);
    } else {
      order[at] = lights[l++];
    }
  }
  return heavies.size();
}

}  // namespace

Admission::Admission(Store& store, const Job& job, AdmissionOptions options)
    : store_(store), job_(job), options_(std::move(options)) {
  auto sites = options_.sites;
  if (sites.empty() && options_.mem_budget)
    sites.push_back({options_.parallel, *options_.mem_budget});
  for (const auto& site : sites) {
    auto cap = options_.mem_limit.value_or(site.mem_budget);
    sites_.push_back({MemoryBudget(site.mem_budget, cap, options_.mem_overcommit, site.slots),
                      site.slots, std::max(site.capacity, site.slots)});
    if (site.mem_budget > sites_[largest_].budget.total()) largest_ = sites_.size() - 1;
  }
}

std::uint64_t Admission::reserved() const {
  std::uint64_t sum = 0;
  for (const auto& site : sites_) sum += site.budget.reserved();
  return sum;
}

std::uint64_t Admission::largest_budget() const {
  std::uint64_t most = 0;
  for (const auto& site : sites_) most = std::max(most, site.budget.total());
  return most;
}

std::optional<std::uint64_t> Admission::budget_of(const Candidate& c) const {
  if (sites_.empty()) return std::nullopt;
  return sites_.at(c.site.value_or(0)).budget.total();
}

void Admission::learn(std::uint64_t peak_bytes) {
  for (auto& site : sites_) site.budget.learn(peak_bytes);
}

bool Admission::close_site(std::size_t site) {
  if (!std::exchange(sites_.at(site).open, false)) return false;
  std::uint32_t parallel = 0;
  std::vector<std::uint32_t> capacity;
  for (const auto& s : sites_) {
    parallel += s.slots;
    capacity.push_back(s.open ? s.capacity : 0);
  }
  auto slots = spread_slots(parallel, capacity);
  for (std::size_t k = 0; k < sites_.size(); ++k) sites_[k].slots = slots[k];
  return true;
}

bool Admission::any_site_open() const {
  return sites_.empty() ||
         std::any_of(sites_.begin(), sites_.end(), [](const Site& s) { return s.open; });
}

void Admission::resume() {
  done_ = store_.done_clusters(job_);
  fresh_from_ = store_.highest_attempted(job_) + 1;
  if (options_.skip_failed)
    for (const auto& f : store_.failed_clusters(job_)) skip_.insert(f.cluster);
  if (sites_.empty() && options_.order == Order::kIndex) return;
  auto related = store_.related_jobs(job_);
  if (!sites_.empty()) history_jobs_ = related;
  if (options_.order == Order::kHistory) plan_order(std::move(related));
}

namespace {

using HistoryOrder =
    std::function<bool(const Store::ClusterHistory&, const Store::ClusterHistory&)>;

// Whether a starts before b: the larger first key (its peak, where memory
// comes first, else its seconds), then the larger other key, then the lower
// index.
HistoryOrder ahead_by(bool memory_first) {
  return [memory_first](const Store::ClusterHistory& a, const Store::ClusterHistory& b) {
    auto key = [memory_first](const Store::ClusterHistory& h) {
      auto peak = static_cast<double>(h.peak_kib);
      return memory_first ? std::pair(peak, h.seconds) : std::pair(h.seconds, peak);
    };
    if (key(a) != key(b)) return key(a) > key(b);
    return a.cluster < b.cluster;
  };
}

// A heap that keeps the first `most` in its order, the last of them on top.
void keep_first(std::vector<Store::ClusterHistory>& heap, const Store::ClusterHistory& h,
                std::size_t most, const HistoryOrder& first) {
  if (heap.size() == most && !first(h, heap.front())) return;
  heap.push_back(h);
  std::push_heap(heap.begin(), heap.end(), first);
  if (heap.size() > most) {
    std::pop_heap(heap.begin(), heap.end(), first);
    heap.pop_back();
  }
}

}  // namespace

// Longest first (LPT): the long clusters start while there is still time to
// run the short ones beside them. Where memory rather than P binds, largest
// first: the big ones are placed while there is room, the small fill in.
// Only the first `most_ordered` of either order are kept: what comes after
// them is short (or small) enough to run in index order, and memory stays
// bounded however long the history.
void Admission::plan_order(std::vector<std::int64_t> jobs) {
  jobs.erase(jobs.begin());  // the job's own done clusters never run again
  if (jobs.empty()) return;
  using History = Store::ClusterHistory;
  const auto longer = ahead_by(false), larger = ahead_by(true);
  const auto most = std::max<std::size_t>(options_.most_ordered, 1);
  std::vector<History> longest, largest;
  auto keep = [most](std::vector<History>& heap, const History& h, const HistoryOrder& first) {
    keep_first(heap, h, most, first);
  };
  // The two terms of the run's lower bound, as far as history tells:
  // memory-seconds over the budget, and seconds over the slots.
  double seconds = 0, byte_seconds = 0;
  const MemoryBudget* budget = this->budget();
  store_.cluster_history(jobs, job_.clusters, [&](const History& h) {
    if (h.cluster < 1 || h.cluster > job_.clusters || done_.contains(h.cluster) ||
        skip_.contains(h.cluster))
      return;
    ++plan_.with_history;
    seconds += h.seconds;
    keep(longest, h, longer);
    if (!budget) return;
    byte_seconds += static_cast<double>(budget->need_from_history(h.peak_kib * 1024)) * h.seconds;
    keep(largest, h, larger);
  });
  double room = 0, slots = 0;
  for (const auto& site : sites_) {
    room += static_cast<double>(site.budget.total());
    slots += site.slots;
  }
  plan_.by_memory = room > 0 && slots > 0 && byte_seconds / room > seconds / slots;
  auto& chosen = plan_.by_memory ? largest : longest;
  std::sort(chosen.begin(), chosen.end(), ahead_by(plan_.by_memory));
  if (budget && !plan_.by_memory) {
    auto share = room / slots;
    plan_.spread = spread_heavy(chosen, static_cast<std::size_t>(slots), [&](const History& h) {
      return static_cast<double>(budget->need_from_history(h.peak_kib * 1024)) > share;
    });
  }
  ordered_.reserve(chosen.size());
  for (const auto& h : chosen) ordered_.push_back(h.cluster);
  ordered_by_index_ = ordered_;
  std::sort(ordered_by_index_.begin(), ordered_by_index_.end());
  plan_.ordered = ordered_.size();
}

bool Admission::has_work() const {
  return more_ || ordered_at_ < ordered_.size() || !deferred_.empty() || !requeue_.empty() ||
         !ready_retries_.empty() || !retry_at_.empty();
}

std::optional<Clock::time_point> Admission::next_retry() const {
  if (retry_at_.empty()) return std::nullopt;
  return retry_at_.begin()->first;
}

// The ordered clusters first, then the cursor's, which passes them.
std::optional<ClusterId> Admission::next_cluster() {
  if (ordered_at_ < ordered_.size()) return ordered_[ordered_at_++];
  while (more_) {
    cursor_ = done_.next_absent(cursor_);
    if (cursor_ > job_.clusters) {
      more_ = false;
      break;
    }
    ClusterId c = cursor_++;
    if (!skip_.contains(c) &&
        !std::binary_search(ordered_by_index_.begin(), ordered_by_index_.end(), c))
      return c;
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
  const auto* budget = this->budget();
  if (!budget) return c;
  if (!c.limit) c.limit = largest_budget();
  if (auto peak = store_.peak_kib(history_jobs_, cluster)) {
    c.need = budget->need_from_history(*peak * 1024);
  } else {
    c.need = budget->unknown_need();
    c.guessed = budget->overcommit();
  }
  return c;
}

// One site: the scheduler keeps to P. Several: the open site with a free
// slot where it fits and most memory is left.
bool Admission::place(Candidate& c) const {
  if (sites_.empty()) return true;
  if (sites_.size() == 1) {
    c.site.reset();
    return c.alone ? running_ == 0 : sites_.front().budget.fits(c.need, c.guessed);
  }
  std::optional<std::size_t> best;
  std::uint64_t best_room = 0;
  for (std::size_t k = 0; k < sites_.size(); ++k) {
    const auto& site = sites_[k];
    if (!site.open || site.running >= site.slots) continue;
    bool fits = c.alone ? site.running == 0 && c.need <= site.budget.total()
                        : site.budget.fits(c.need, c.guessed);
    auto room = site.budget.total() - std::min(site.budget.total(), site.budget.reserved());
    if (fits && (!best || room > best_room)) {
      best = k;
      best_room = room;
    }
  }
  c.site = best;
  return best.has_value();
}

void Admission::reserve(const Candidate& c) {
  if (sites_.empty()) return;
  auto& site = sites_.at(c.site.value_or(0));
  site.budget.reserve(c.need, c.guessed);
  ++site.running;
}

void Admission::release(const Candidate& c) {
  if (sites_.empty()) return;
  auto& site = sites_.at(c.site.value_or(0));
  site.budget.release(c.need, c.guessed);
  --site.running;
}

std::optional<Candidate> Admission::next(std::size_t running) {
  running_ = running;
  // Clusters to run again in this run at once go first, in order: nothing
  // passes them (an OOM retry waiting to run alone, an evicted cluster).
  if (!requeue_.empty()) {
    if (!place(requeue_.front())) return std::nullopt;
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
    if (!place(*it)) continue;
    auto c = *it;
    ready_retries_.erase(it);
    return c;
  }
  return std::nullopt;
}

std::optional<Candidate> Admission::take_first_attempt() {
  if (sites_.empty()) {
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
    if (!place(*it)) continue;
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
    if (c.need > largest_budget()) {
      ++too_big_;
      spdlog::error(
          "cluster {}/{} needs {} (its recorded peak), more than the {} budget: not started",
          c.cluster, job_.clusters, format_size_kib(c.need / 1024),
          format_size_kib(largest_budget() / 1024));
      continue;
    }
    if (place(c)) {
      if (!deferred_.empty()) ++head_passed_;
      return c;
    }
    deferred_.push_back(c);
  }
  return std::nullopt;
}

}  // namespace runner
