#include "runner/sites_engine.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <poll.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <numeric>
#include <system_error>

namespace runner {

SitesEngine::SitesEngine(const WorkerConfig& config, const Plan& plan)
    : site_word_(plan.site_word), none_left_(plan.none_left) {
  for (const auto& site : plan.sites) {
    auto c = config;
    c.parallel = site.slots;
    c.node = site.name;
    c.run_limit = site.budget;
    sites_.push_back({std::make_unique<WorkerEngine>(std::move(c), site.launch), site.slots,
                      std::max(site.capacity, site.slots)});
  }
  open_ = sites_.size();
}

void SitesEngine::share_lost_slots() {
  std::uint32_t parallel = 0;
  std::vector<std::uint32_t> capacity;
  for (const auto& site : sites_) {
    parallel += site.slots;
    capacity.push_back(site.worker->can_start() ? site.capacity : 0);
  }
  auto open = static_cast<std::size_t>(
      std::count_if(capacity.begin(), capacity.end(), [](auto c) { return c > 0; }));
  if (open == open_) return;
  open_ = open;
  auto slots = spread_slots(parallel, capacity);
  std::vector<std::string> shares;
  for (std::size_t i = 0; i < sites_.size(); ++i) {
    auto& site = sites_[i];
    site.slots = slots[i];
    if (!capacity[i]) continue;
    site.worker->set_slots(slots[i]);
    shares.push_back(fmt::format("{} {}", site.worker->site(), slots[i]));
  }
  if (!shares.empty())
    spdlog::warn("a {} was lost: the {}s left run up to {} cluster(s) at once ({})", site_word_,
                 site_word_, std::accumulate(slots.begin(), slots.end(), 0U),
                 fmt::join(shares, ", "));
}

SitesEngine::Site* SitesEngine::roomiest() {
  Site* best = nullptr;
  double best_load = 0;
  for (auto& site : sites_) {
    if (!site.worker->can_start()) continue;
    auto load = static_cast<double>(site.worker->in_flight()) / site.slots;
    if (!best || load < best_load) {
      best = &site;
      best_load = load;
    }
  }
  return best;
}

std::optional<EngineEvent> SitesEngine::start(AttemptSpec spec) {
  if (spec.site) {
    auto& named = sites_.at(*spec.site);
    if (!named.worker->can_start())
      return AttemptNotStarted{spec.id, AttemptNotStarted::Why::kSiteGone,
                               fmt::format("{} {}: its worker is gone; it takes no more clusters",
                                           site_word_, named.worker->site()),
                               "", ""};
  }
  auto* site = spec.site ? &sites_[*spec.site] : roomiest();
  // With one site, its worker says itself why it takes no more.
  if (!site && sites_.size() == 1) site = &sites_.front();
  if (!site)
    return AttemptNotStarted{spec.id, AttemptNotStarted::Why::kEnvironment, none_left_, "", ""};
  auto id = spec.id;
  site_of_[id] = site;
  auto answer = site->worker->start(std::move(spec));
  if (answer && !std::holds_alternative<AttemptStarted>(*answer)) site_of_.erase(id);
  return answer;
}

void SitesEngine::stop(AttemptId id, StopMode mode) {
  if (auto it = site_of_.find(id); it != site_of_.end()) it->second->worker->stop(id, mode);
}

std::vector<EngineEvent> SitesEngine::take_events() {
  std::vector<EngineEvent> out;
  for (auto& site : sites_)
    for (auto& event : site.worker->take_events()) {
      auto id = std::visit([](const auto& e) { return e.id; }, event);
      if (!std::holds_alternative<AttemptStarted>(event)) site_of_.erase(id);
      out.push_back(std::move(event));
    }
  share_lost_slots();
  return out;
}

void SitesEngine::poll_workers(std::optional<Clock::time_point> deadline, int wake_fd, bool& woken,
                               bool& timed_out) {
  std::vector<pollfd> fds;
  for (auto& site : sites_) fds.push_back({site.worker->fd(), POLLIN, 0});
  fds.push_back({wake_fd, POLLIN, 0});
  // Also when a worker must be looked at: one that stopped answering.
  auto until = deadline;
  for (auto& site : sites_) until = earliest(until, site.worker->next_check());
  timespec ts = until ? time_left(*until) : timespec{};
  int ready = ::ppoll(fds.data(), fds.size(), until ? &ts : nullptr, nullptr);
  if (ready < 0 && errno != EINTR) throw std::system_error(errno, std::generic_category(), "ppoll");
  for (std::size_t i = 0; i < sites_.size(); ++i)
    if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) sites_[i].worker->read();
  woken = fds.back().revents & (POLLIN | POLLHUP | POLLERR);
  // Each worker due a look gets it, however busy the others are: a silent
  // one is not missed while another keeps runner awake.
  auto now = Clock::now();
  for (auto& site : sites_)
    if (auto due = site.worker->next_check(); due && *due <= now) site.worker->check(now);
  timed_out = ready == 0 && deadline && Clock::now() >= *deadline;
}

std::vector<EngineEvent> SitesEngine::wait(std::optional<Clock::time_point> deadline, int wake_fd) {
  for (auto& site : sites_) site.worker->flush();
  auto events = take_events();
  bool woken = false, timed_out = false;
  while (events.empty() && !woken && !timed_out) {
    // Nothing will come when no worker is left or has anything to look at
    // again, and no deadline is waited for.
    if (!deadline && std::all_of(sites_.begin(), sites_.end(), [](const Site& s) {
          return s.worker->fd() < 0 && !s.worker->next_check();
        }))
      break;
    poll_workers(deadline, wake_fd, woken, timed_out);
    events = take_events();
  }
  return events;
}

std::optional<std::vector<FoundExecution>> SitesEngine::settle(const Leftovers& left,
                                                               LeftoverPolicy policy, int wake_fd) {
  // Each site's worker settles what was left there.
  std::vector<FoundExecution> found;
  bool settled = true;
  for (auto& site : sites_) {
    if (site.worker->fd() < 0) continue;
    auto here = site.worker->settle(left, policy, wake_fd);
    if (!here) settled = false;
    if (here) found.insert(found.end(), here->begin(), here->end());
  }
  if (!settled) return std::nullopt;
  return found;
}

std::optional<std::vector<Engine::EarlierJournal>> SitesEngine::collect(LeftoverPolicy policy,
                                                                        int wake_fd) {
  std::vector<EarlierJournal> all;
  for (auto& site : sites_) {
    if (site.worker->fd() < 0) continue;
    auto here = site.worker->collect(policy, wake_fd);
    if (!here) return std::nullopt;
    for (auto& journal : *here) all.push_back(std::move(journal));
  }
  return all;
}

void SitesEngine::collected() {
  for (auto& site : sites_) site.worker->collected();
}

void SitesEngine::acknowledged() {
  for (auto& site : sites_) site.worker->acknowledged();
}

std::size_t SitesEngine::queue_ahead() const {
  std::size_t ahead = 0;
  for (const auto& site : sites_)
    if (site.worker->fd() >= 0) ahead += site.worker->queue_ahead();
  return ahead;
}

std::optional<std::uint64_t> SitesEngine::memory_in_use(AttemptId id) const {
  auto it = site_of_.find(id);
  if (it == site_of_.end()) return std::nullopt;
  return it->second->worker->memory_in_use(id);
}

std::optional<std::uint64_t> SitesEngine::total_memory_in_use() const {
  // Meaningful as one figure only where the run has one budget: one site.
  if (sites_.size() != 1) return std::nullopt;
  return sites_.front().worker->total_memory_in_use();
}

}  // namespace runner
