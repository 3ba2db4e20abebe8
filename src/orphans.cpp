#include "orphans.h"

#include <fmt/format.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <set>

#include "runner/fd.h"
#include "runner/sysinfo.h"

namespace runner {
namespace {

// A pidfd becomes readable when its process ends: a wait without polling for
// processes that are not runner's children.
Fd open_pidfd(pid_t pid) {
  return Fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
}

// Whether a process's environment holds exactly `wanted`.
bool environment_has(const std::filesystem::path& proc, const std::string& wanted) {
  std::ifstream in(proc / "environ", std::ios::binary);
  std::string env((std::istreambuf_iterator<char>(in)), {});
  for (std::size_t at = 0; at < env.size();) {
    auto end = env.find('\0', at);
    if (end == std::string::npos) end = env.size();
    if (std::string_view(env).substr(at, end - at) == wanted) return true;
    at = end + 1;
  }
  return false;
}

}  // namespace

std::vector<pid_t> find_leftovers(const Leftovers& left) {
  std::vector<pid_t> out;
  auto host = host_name();
  std::set<pid_t> seen;
  // A recorded child: alive, and started when its attempt did (the pid has
  // not been reused since). Start times agree to within clock ticks; allow 2 s.
  for (const auto& a : left.attempts) {
    auto pid = static_cast<pid_t>(a.where.process);
    if (a.where.host != host || pid <= 0) continue;
    auto started = process_started_at(pid);
    if (started && std::abs(*started - a.started_at) < 2.0 && seen.insert(pid).second)
      out.push_back(pid);
  }
  // A child started just before its runner died may not be in the log yet:
  // every process carries the id of the run that started it.
  if (!left.previous_run) return out;
  auto wanted = "RUNNER_RUN=" + *left.previous_run;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    auto name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    if (!environment_has(entry.path(), wanted)) continue;
    auto pid = static_cast<pid_t>(std::stol(name));
    if (seen.insert(pid).second) out.push_back(pid);
  }
  return out;
}

bool settle_leftovers(const std::vector<pid_t>& pids, LeftoverPolicy policy, int wake_fd) {
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
    spdlog::warn("{} {} process(es) of clusters an earlier runner left running",
                 policy == LeftoverPolicy::kKill ? "killed" : "waiting for", fds.size() - 1);
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
