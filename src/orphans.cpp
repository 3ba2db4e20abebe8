#include "runner/orphans.h"

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

#include "runner/sysinfo.h"

namespace runner {
namespace {

// A pidfd becomes readable when its process ends: a wait without polling for
// processes that are not runner's children.
int open_pidfd(pid_t pid) {
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

}  // namespace

std::string run_id(const ProcessIdentity& runner) {
  return fmt::format("{}-{}", runner.pid, runner.start_ticks);
}

std::vector<Orphan> find_orphans(const std::vector<LeftRunning>& left,
                                 const std::optional<Holder>& previous) {
  std::vector<Orphan> out;
  if (previous && previous->process.boot_id != boot_id()) return out;  // rebooted since
  auto host = host_name();
  std::set<pid_t> seen;
  // A recorded child: alive, and started when its attempt did (the pid has
  // not been reused since). Start times agree to within clock ticks; allow 2 s.
  for (const auto& l : left) {
    if (l.host != host || l.pid <= 0) continue;
    auto started = process_started_at(l.pid);
    if (started && std::abs(*started - l.started_at) < 2.0 && seen.insert(l.pid).second)
      out.push_back(Orphan{l.cluster, l.pid});
  }
  // A child started just before its runner died may not be in the log yet:
  // every process carries the id of the run that started it.
  if (previous && previous->process.host == host) {
    auto wanted = "RUNNER_RUN=" + run_id(previous->process);
    for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
      auto name = entry.path().filename().string();
      if (name.find_first_not_of("0123456789") != std::string::npos) continue;
      std::ifstream in(entry.path() / "environ", std::ios::binary);
      std::string env((std::istreambuf_iterator<char>(in)), {});
      for (std::size_t at = 0; at < env.size();) {
        auto end = env.find('\0', at);
        if (end == std::string::npos) end = env.size();
        if (std::string_view(env).substr(at, end - at) == wanted) {
          auto pid = static_cast<pid_t>(std::stol(name));
          if (seen.insert(pid).second) out.push_back(Orphan{0, pid});
          break;
        }
        at = end + 1;
      }
    }
  }
  return out;
}

std::optional<int> settle_orphans(const std::vector<Orphan>& orphans, OrphanPolicy policy,
                                  SignalChannel& signals) {
  std::vector<pollfd> fds{{signals.fd(), POLLIN, 0}};
  for (const auto& o : orphans) {
    int fd = open_pidfd(o.pid);
    if (fd >= 0) fds.push_back({fd, POLLIN, 0});
    if (policy == OrphanPolicy::kKill) {
      // Its whole group: each child led its own.
      ::kill(-o.pid, SIGKILL);
      ::kill(o.pid, SIGKILL);
    }
  }
  if (fds.size() > 1)
    spdlog::warn("{} {} process(es) of clusters an earlier runner left running",
                 policy == OrphanPolicy::kKill ? "killed" : "waiting for", fds.size() - 1);
  std::optional<int> interrupted;
  std::size_t left = fds.size() - 1;
  while (left > 0) {
    if (::poll(fds.data(), fds.size(), -1) < 0 && errno != EINTR) break;
    for (int sig : signals.drain())
      if (sig != SIGCHLD && !interrupted) interrupted = sig;
    if (interrupted) break;
    for (std::size_t i = 1; i < fds.size(); ++i)
      if (fds[i].fd >= 0 && (fds[i].revents & POLLIN)) {
        ::close(fds[i].fd);
        fds[i].fd = -1;  // poll skips negative fds
        --left;
      }
  }
  for (std::size_t i = 1; i < fds.size(); ++i)
    if (fds[i].fd >= 0) ::close(fds[i].fd);
  return interrupted;
}

}  // namespace runner
