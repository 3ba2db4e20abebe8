#include "runner/slurm_engine.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <poll.h>

#include <boost/process.hpp>
#include <cerrno>
#include <cstdlib>
#include <sstream>
#include <system_error>

#include "runner/error.h"

namespace bp = boost::process;

namespace runner {
namespace {

std::string env_or_empty(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

// The node names of a Slurm host list ("n[1-3],gpu01"), as Slurm expands them.
std::vector<std::string> expand_host_list(const std::string& list) {
  bp::ipstream out;
  std::error_code ec;
  bp::child scontrol(bp::search_path("scontrol"), "show", "hostnames", list, bp::std_out > out,
                     bp::std_err > bp::null, ec);
  if (ec) throw Error(fmt::format("--on slurm: cannot run scontrol: {}", ec.message()));
  std::vector<std::string> names;
  for (std::string line; std::getline(out, line);)
    if (!line.empty()) names.push_back(line);
  scontrol.wait();
  if (scontrol.exit_code() != 0 || names.empty())
    throw Error(fmt::format("--on slurm: scontrol cannot expand the node list '{}'", list));
  return names;
}

}  // namespace

std::vector<std::uint32_t> parse_cpus_per_node(const std::string& text) {
  std::vector<std::uint32_t> out;
  auto bad = [&] {
    return Error(
        fmt::format("--on slurm: SLURM_JOB_CPUS_PER_NODE '{}' is not a list like 4(x2),2", text));
  };
  std::size_t at = 0;
  while (at < text.size()) {
    auto end = text.find(',', at);
    if (end == std::string::npos) end = text.size();
    auto part = text.substr(at, end - at);
    std::uint64_t count = 0, times = 1;
    auto paren = part.find('(');
    try {
      std::size_t used = 0;
      count = std::stoull(part.substr(0, paren), &used);
      if (used != (paren == std::string::npos ? part.size() : paren)) throw bad();
      if (paren != std::string::npos) {
        if (!part.ends_with(")") || part.compare(paren, 2, "(x") != 0) throw bad();
        auto inner = part.substr(paren + 2, part.size() - paren - 3);
        times = std::stoull(inner, &used);
        if (used != inner.size()) throw bad();
      }
    } catch (const std::logic_error&) {
      throw bad();
    }
    if (count == 0 || times == 0 || count > 1'000'000 || times > 1'000'000) throw bad();
    out.insert(out.end(), times, static_cast<std::uint32_t>(count));
    at = end + 1;
  }
  if (out.empty()) throw bad();
  return out;
}

std::optional<SlurmAllocation> slurm_allocation() {
  auto job = env_or_empty("SLURM_JOB_ID");
  if (job.empty()) return std::nullopt;
  auto list = env_or_empty("SLURM_JOB_NODELIST");
  if (list.empty())
    throw Error(
        fmt::format("--on slurm: SLURM_JOB_ID is {} but SLURM_JOB_NODELIST is not set", job));
  auto names = expand_host_list(list);
  auto cpus_text = env_or_empty("SLURM_JOB_CPUS_PER_NODE");
  auto cpus = cpus_text.empty() ? std::vector<std::uint32_t>(names.size(), 1)
                                : parse_cpus_per_node(cpus_text);
  if (cpus.size() != names.size())
    throw Error(
        fmt::format("--on slurm: SLURM_JOB_CPUS_PER_NODE '{}' names {} node(s), the node "
                    "list '{}' {}",
                    cpus_text, cpus.size(), list, names.size()));
  SlurmAllocation a{job, {}};
  for (std::size_t i = 0; i < names.size(); ++i) a.nodes.push_back({names[i], cpus[i]});
  return a;
}

std::vector<std::pair<std::string, std::uint64_t>> parse_node_memory(const std::string& text) {
  std::vector<std::pair<std::string, std::uint64_t>> out;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    std::string nodes;
    std::optional<std::uint64_t> mb;
    for (std::string word; words >> word;) {
      if (word.starts_with("Nodes=")) nodes = word.substr(6);
      if (word.starts_with("Mem=")) {
        auto digits = word.substr(4);
        if (!digits.empty() && digits.find_first_not_of("0123456789") == std::string::npos)
          mb = std::stoull(digits);
      }
    }
    // "NumNodes=3" and the job's own "Nodes" summary carry no Mem=.
    if (!nodes.empty() && mb) out.emplace_back(nodes, *mb * 1024 * 1024);
  }
  return out;
}

void read_node_memory(SlurmAllocation& allocation) {
  bp::ipstream out;
  std::error_code ec;
  bp::child scontrol(bp::search_path("scontrol"), "show", "job", "-d", allocation.job_id,
                     bp::std_out > out, bp::std_err > bp::null, ec);
  if (ec) throw Error(fmt::format("--on slurm: cannot run scontrol: {}", ec.message()));
  std::string text((std::istreambuf_iterator<char>(out)), std::istreambuf_iterator<char>());
  scontrol.wait();
  if (scontrol.exit_code() != 0)
    throw Error(fmt::format("--on slurm: scontrol cannot show Slurm job {}", allocation.job_id));
  for (const auto& [list, bytes] : parse_node_memory(text))
    for (const auto& name : expand_host_list(list))
      for (auto& node : allocation.nodes)
        if (node.name == name) node.memory = bytes;
}

std::vector<std::uint32_t> spread_slots(std::uint32_t parallel,
                                        const std::vector<std::uint32_t>& cpus) {
  std::vector<std::uint32_t> slots(cpus.size(), 0);
  // One at a time, round the nodes, to each that has a CPU left.
  bool gave = true;
  while (parallel > 0 && gave) {
    gave = false;
    for (std::size_t i = 0; i < cpus.size() && parallel > 0; ++i) {
      if (slots[i] >= cpus[i]) continue;
      ++slots[i];
      --parallel;
      gave = true;
    }
  }
  return slots;
}

void check_nodes(const SlurmAllocation& allocation, const std::vector<std::uint32_t>& slots,
                 const std::string& runner, const std::string& program, const std::string& dir,
                 const std::string& shared) {
  std::vector<std::string> nodes;
  for (std::size_t i = 0; i < allocation.nodes.size(); ++i)
    if (slots[i] > 0) nodes.push_back(allocation.nodes[i].name);
  std::vector<std::string> args = {"--nodes=" + std::to_string(nodes.size()),
                                   "--ntasks=" + std::to_string(nodes.size()),
                                   "--ntasks-per-node=1",
                                   "--nodelist=" + fmt::format("{}", fmt::join(nodes, ",")),
                                   "--overlap",
                                   "--quiet",
                                   runner,
                                   "worker",
                                   "--check-dir",
                                   dir};
  if (!program.empty()) {
    args.emplace_back("--check");
    args.push_back(program);
  }
  if (!shared.empty()) {
    args.emplace_back("--check-shared");
    args.push_back(shared);
  }
  bp::ipstream out, err;
  std::error_code ec;
  bp::child srun(bp::search_path("srun"), args, bp::std_in<bp::null, bp::std_out> out,
                 bp::std_err > err, ec);
  if (ec) throw Error(fmt::format("--on slurm: cannot run srun: {}", ec.message()));
  std::vector<std::string> ok, wrong, errors;
  for (std::string line; std::getline(out, line);) {
    if (line.rfind("ok ", 0) == 0)
      ok.push_back(line.substr(3));
    else if (!line.empty())
      wrong.push_back(line);
  }
  for (std::string line; std::getline(err, line);)
    if (line.find("error") != std::string::npos) errors.push_back(line);
  srun.wait();
  if (!wrong.empty()) throw Error(fmt::format("--on slurm: on node {}", wrong.front()));
  if (ok.size() != nodes.size())
    throw Error(fmt::format(
        "--on slurm: runner ({}) cannot run on every node of the allocation: {}", runner,
        errors.empty() ? fmt::format("srun exited with code {}", srun.exit_code())
                       : errors.front()));
}

SlurmEngine::SlurmEngine(const WorkerConfig& config, const SlurmAllocation& allocation,
                         const std::vector<std::uint32_t>& slots,
                         const std::vector<std::uint64_t>& budgets, const std::string& runner) {
  for (std::size_t i = 0; i < allocation.nodes.size(); ++i) {
    if (slots[i] == 0) continue;
    const auto& node = allocation.nodes[i];
    auto c = config;
    c.parallel = slots[i];
    c.node = node.name;
    if (!budgets.empty()) c.run_limit = budgets[i];
    WorkerLaunch launch;
    // One step per node for the whole run: it may share the node's CPUs and
    // memory with the job's other steps, and its worker alone decides what
    // runs there.
    launch.argv = {"srun",      "--nodes=1", "--ntasks=1", "--nodelist=" + node.name,
                   "--overlap", "--mem=0",   "--quiet",    "--job-name=runner-worker",
                   runner};
    launch.site = node.name;
    launch.most_starts = 1;
    launch.leftovers_here = false;
    // What a worker that died there left: killed by a step of its own.
    launch.kill_leftovers = {"srun",       "--nodes=1",   "--ntasks=1", "--nodelist=" + node.name,
                             "--overlap",  "--quiet",     runner,       "worker",
                             "--kill-run", worker_name(c)};
    nodes_.push_back({std::make_unique<WorkerEngine>(std::move(c), std::move(launch)), slots[i]});
  }
}

SlurmEngine::Node* SlurmEngine::roomiest() {
  Node* best = nullptr;
  double best_load = 0;
  for (auto& node : nodes_) {
    if (!node.worker->can_start()) continue;
    auto load = static_cast<double>(node.worker->in_flight()) / node.slots;
    if (!best || load < best_load) {
      best = &node;
      best_load = load;
    }
  }
  return best;
}

std::optional<EngineEvent> SlurmEngine::start(AttemptSpec spec) {
  if (spec.site) {
    auto& named = nodes_.at(*spec.site);
    if (!named.worker->can_start())
      return AttemptNotStarted{spec.id, AttemptNotStarted::Why::kSiteGone,
                               fmt::format("node {}: its worker is gone; it takes no more clusters",
                                           named.worker->site()),
                               "", ""};
  }
  auto* node = spec.site ? &nodes_[*spec.site] : roomiest();
  if (!node)
    return AttemptNotStarted{spec.id, AttemptNotStarted::Why::kEnvironment,
                             "no node of the allocation is left to run it", "", ""};
  auto id = spec.id;
  node_of_[id] = node;
  auto answer = node->worker->start(std::move(spec));
  if (answer && !std::holds_alternative<AttemptStarted>(*answer)) node_of_.erase(id);
  return answer;
}

void SlurmEngine::stop(AttemptId id, StopMode mode) {
  if (auto it = node_of_.find(id); it != node_of_.end()) it->second->worker->stop(id, mode);
}

std::vector<EngineEvent> SlurmEngine::take_events() {
  std::vector<EngineEvent> out;
  for (auto& node : nodes_)
    for (auto& event : node.worker->take_events()) {
      auto id = std::visit([](const auto& e) { return e.id; }, event);
      if (!std::holds_alternative<AttemptStarted>(event)) node_of_.erase(id);
      out.push_back(std::move(event));
    }
  return out;
}

std::vector<EngineEvent> SlurmEngine::wait(std::optional<Clock::time_point> deadline, int wake_fd) {
  for (auto& node : nodes_) node.worker->flush();
  auto events = take_events();
  while (events.empty()) {
    std::vector<pollfd> fds;
    for (auto& node : nodes_) fds.push_back({node.worker->fd(), POLLIN, 0});
    fds.push_back({wake_fd, POLLIN, 0});
    // Also when a worker must be looked at: one that stopped answering.
    auto until = deadline;
    for (auto& node : nodes_)
      if (auto check = node.worker->next_check(); check && (!until || *check < *until))
        until = check;
    timespec ts{};
    if (until) {
      auto left = std::max(Clock::duration::zero(), *until - Clock::now());
      auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
      ts = {static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
    }
    int ready = ::ppoll(fds.data(), fds.size(), until ? &ts : nullptr, nullptr);
    if (ready < 0 && errno != EINTR)
      throw std::system_error(errno, std::generic_category(), "ppoll");
    for (std::size_t i = 0; i < nodes_.size(); ++i)
      if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) nodes_[i].worker->read();
    events = take_events();
    if (!events.empty()) break;
    if (fds.back().revents & (POLLIN | POLLHUP | POLLERR)) break;
    if (ready == 0)
      for (auto& node : nodes_) node.worker->check(Clock::now());
    if (ready == 0 && deadline && Clock::now() >= *deadline) break;
  }
  return events;
}

std::optional<std::vector<FoundExecution>> SlurmEngine::settle(const Leftovers& left,
                                                               LeftoverPolicy policy, int wake_fd) {
  // Each node's worker settles what was left on its node.
  std::vector<FoundExecution> found;
  bool settled = true;
  for (auto& node : nodes_) {
    if (node.worker->fd() < 0) continue;
    auto here = node.worker->settle(left, policy, wake_fd);
    if (!here) settled = false;
    if (here) found.insert(found.end(), here->begin(), here->end());
  }
  if (!settled) return std::nullopt;
  return found;
}

void SlurmEngine::acknowledged() {
  for (auto& node : nodes_) node.worker->acknowledged();
}

std::size_t SlurmEngine::queue_ahead() const {
  std::size_t ahead = 0;
  for (const auto& node : nodes_)
    if (node.worker->fd() >= 0) ahead += node.worker->queue_ahead();
  return ahead;
}

std::optional<std::uint64_t> SlurmEngine::memory_in_use(AttemptId id) const {
  auto it = node_of_.find(id);
  if (it == node_of_.end()) return std::nullopt;
  return it->second->worker->memory_in_use(id);
}

}  // namespace runner
