#include "runner/sysinfo.h"

#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace runner {

std::string run_id(const ProcessIdentity& runner) {
  return fmt::format("{}-{}", runner.pid, runner.start_ticks);
}

std::string host_name() {
  // On a site of a run (an SSH host, a node of a Slurm allocation), the
  // site's name: several may share one machine's hostname.
  for (const char* name : {"RUNNER_SITE", "SLURMD_NODENAME"})
    if (const char* site = std::getenv(name); site && *site) return site;
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

std::string boot_id() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(in, id);
  return id;
}

std::optional<std::uint64_t> process_start_ticks(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/stat", pid));
  std::string stat;
  if (!std::getline(in, stat)) return std::nullopt;
  // The command name (field 2) may hold spaces and parentheses: fields after it
  // are counted from the last ')'. starttime is field 22.
  auto close = stat.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(stat.substr(close + 2));
  std::string field;
  for (int i = 3; i <= 22; ++i) {
    if (!(rest >> field)) return std::nullopt;
  }
  // A zombie has exited already; it holds nothing.
  if (stat[close + 2] == 'Z') return std::nullopt;
  return std::stoull(field);
}

ProcessIdentity current_process() {
  ProcessIdentity self;
  self.pid = ::getpid();
  self.host = host_name();
  self.boot_id = boot_id();
  self.start_ticks = process_start_ticks(self.pid).value_or(0);
  return self;
}

Liveness check_alive(const ProcessIdentity& who) {
  if (who.host != host_name()) return Liveness::kUnknown;
  if (who.boot_id != boot_id()) return Liveness::kDead;  // the host rebooted since
  auto ticks = process_start_ticks(who.pid);
  return ticks && *ticks == who.start_ticks ? Liveness::kAlive : Liveness::kDead;
}

double wall_clock_now() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

std::optional<double> process_started_at(pid_t pid) {
  auto ticks = process_start_ticks(pid);
  if (!ticks) return std::nullopt;
  static const double boot = [] {
    std::ifstream in("/proc/stat");
    for (std::string key; in >> key;) {
      if (key == "btime") {
        double t = 0;
        in >> t;
        return t;
      }
      in.ignore(4096, '\n');
    }
    return 0.0;
  }();
  return boot + static_cast<double>(*ticks) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

}  // namespace runner
