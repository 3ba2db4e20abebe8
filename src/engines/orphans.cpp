#include "engines/orphans.h"

#include <fmt/format.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <tuple>

#include "runner/fd.h"
#include "runner/spawn.h"
#include "runner/sysinfo.h"

namespace runner {
namespace {

// The RUNNER_ variables of a process's environment.
std::map<std::string, std::string, std::less<>> runner_environment(
    const std::filesystem::path& proc) {
  std::map<std::string, std::string, std::less<>> out;
  std::ifstream in(proc / "environ", std::ios::binary);
  std::string env((std::istreambuf_iterator<char>(in)), {});
  for (std::size_t at = 0; at < env.size();) {
    auto end = env.find('\0', at);
    if (end == std::string::npos) end = env.size();
    auto entry = std::string_view(env).substr(at, end - at);
    auto eq = entry.find('=');
    if (entry.starts_with("RUNNER_") && eq != std::string_view::npos)
      out.emplace(entry.substr(0, eq), entry.substr(eq + 1));
    at = end + 1;
  }
  return out;
}

template <class T>
std::optional<T> number_in(const std::map<std::string, std::string, std::less<>>& env,
                           std::string_view name) {
  auto it = env.find(name);
  T v{};
  if (it == env.end()) return std::nullopt;
  auto [end, ec] = std::from_chars(it->second.data(), it->second.data() + it->second.size(), v);
  if (ec != std::errc{} || end != it->second.data() + it->second.size()) return std::nullopt;
  return v;
}

// The cluster a process of a previous run carries, if it carries one.
std::optional<FoundExecution> execution_of(
    pid_t pid, const std::map<std::string, std::string, std::less<>>& env) {
  auto cluster = number_in<ClusterId>(env, "RUNNER_CLUSTER");
  auto attempt = number_in<std::uint32_t>(env, "RUNNER_ATTEMPT");
  auto job = env.find("RUNNER_JOB");
  auto started = process_started_at(pid);
  if (!cluster || !attempt || job == env.end() || !started) return std::nullopt;
  return FoundExecution{job->second, *cluster, *attempt, {host_name(), pid}, *started};
}
}  // namespace

LeftoverProcesses find_leftovers(const Leftovers& left) {
  LeftoverProcesses out;
  auto host = host_name();
  std::set<pid_t> seen;
  // A recorded child: alive, and started when its attempt did (the pid has
  // not been reused since). Start times agree to within clock ticks; allow 2 s.
  for (const auto& a : left.attempts) {
    auto pid = static_cast<pid_t>(a.where.process);
    if (a.where.host != host || pid <= 0) continue;
    auto started = process_started_at(pid);
    if (started && std::abs(*started - a.started_at) < 2.0 && seen.insert(pid).second) {
      out.pids.push_back(pid);
      out.tags.emplace_back(a.cluster, 0);
    }
  }
  // A child started just before its runner died may not be in the log yet:
  // every process carries the id of the run that started it.
  if (left.previous_runs.empty()) return out;
  std::map<std::tuple<std::string, ClusterId, std::uint32_t>, FoundExecution> executions;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    auto name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    auto env = runner_environment(entry.path());
    auto run = env.find("RUNNER_RUN");
    if (run == env.end() || std::find(left.previous_runs.begin(), left.previous_runs.end(),
                                      run->second) == left.previous_runs.end())
      continue;
    auto pid = static_cast<pid_t>(std::stol(name));
    auto e = execution_of(pid, env);
    if (seen.insert(pid).second) {
      out.pids.push_back(pid);
      out.tags.emplace_back(e ? e->cluster : 0, e ? e->attempt : 0);
    }
    if (e) {
      auto [it, fresh] = executions.try_emplace({e->job, e->cluster, e->attempt}, *e);
      if (!fresh && e->started_at < it->second.started_at) it->second = *e;
    }
  }
  for (auto& [key, e] : executions) out.found.push_back(std::move(e));
  return out;
}

bool settle_leftovers(const std::vector<pid_t>& pids, LeftoverPolicy policy, int wake_fd,
                      const std::string& whose) {
  std::vector<Fd> pidfds;
  std::vector<pollfd> fds{{wake_fd, POLLIN, 0}};
  for (pid_t pid : pids) {
    auto fd = open_pidfd(pid);
    if (fd) {
      fds.push_back({fd.get(), POLLIN, 0});
      pidfds.push_back(std::move(fd));
    }
    if (policy == LeftoverPolicy::kKill) {
      // Its whole group: each child led its own.
      ::kill(-pid, SIGKILL);
      ::kill(pid, SIGKILL);
    }
  }
  if (fds.size() > 1)
    spdlog::warn("{} {} process(es) of clusters {}",
                 policy == LeftoverPolicy::kKill ? "killed" : "waiting for", fds.size() - 1, whose);
  std::size_t left = fds.size() - 1;
  while (left > 0) {
    if (::poll(fds.data(), fds.size(), -1) < 0 && errno != EINTR) break;
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) return false;
    for (std::size_t i = 1; i < fds.size(); ++i)
      if (fds[i].fd >= 0 && (fds[i].revents & POLLIN)) {
        fds[i].fd = -1;  // poll skips negative fds
        --left;
      }
  }
  return true;
}

}  // namespace runner
