#include "runner/ssh_planner.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <boost/process.hpp>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "runner/error.h"
#include "runner/local_engine.h"
#include "runner/plan.h"
#include "runner/units.h"

namespace bp = boost::process;

namespace runner {
namespace fs = std::filesystem;
namespace {

constexpr const char* kHostForm =
    "[slots/][user@]host[:port] with an optional memory budget after a space, like "
    "8/deploy@db1:2222 16G";

// Host and user names as DNS and login names have them: nothing the remote
// shell or ssh's own option parsing would read as something else.
bool plain_name(std::string_view name) {
  if (name.empty() || name.front() == '-' || name.front() == '.') return false;
  return std::all_of(name.begin(), name.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '.' || c == '-' || c == '_';
  });
}

Error bad_host(const std::string& text, const std::string& where, const std::string& why) {
  return Error(fmt::format("{}: '{}' is not a host{}: expected {}", where, text, why, kHostForm));
}

}  // namespace

SshHost parse_host(const std::string& text, const std::string& where) {
  std::istringstream words(text);
  std::string login, budget, extra;
  words >> login >> budget >> extra;
  if (login.empty() || !extra.empty()) throw bad_host(text, where, "");
  SshHost host;
  if (auto slash = login.find('/'); slash != std::string::npos) {
    auto slots = parse_count(login.substr(0, slash), 1, kMaxParallel);
    if (!slots) throw bad_host(text, where, " (slots are a whole number from 1)");
    host.slots = static_cast<std::uint32_t>(*slots);
    login = login.substr(slash + 1);
  }
  host.name = login;
  if (auto colon = login.rfind(':'); colon != std::string::npos) {
    auto port = parse_count(login.substr(colon + 1), 1, 65535);
    if (!port) throw bad_host(text, where, " (a port is a number from 1 to 65535)");
    host.port = static_cast<std::uint16_t>(*port);
    login = login.substr(0, colon);
  }
  auto at = login.find('@');
  auto name = at == std::string::npos ? login : login.substr(at + 1);
  if (!plain_name(name) || (at != std::string::npos && !plain_name(login.substr(0, at))))
    throw bad_host(text, where, "");
  host.destination = login;
  if (!budget.empty()) {
    auto bytes = parse_size(budget);
    if (!bytes || *bytes < (1ULL << 20))
      throw bad_host(text, where,
                     fmt::format(" (its budget '{}' is not a size of at least 1M)", budget));
    host.budget = *bytes;
  }
  return host;
}

std::vector<SshHost> read_hosts(const std::string& option) {
  std::vector<SshHost> hosts;
  std::error_code ec;
  if (fs::is_regular_file(option, ec)) {
    std::ifstream in(option);
    if (!in) throw Error(fmt::format("--hosts {}: cannot read it", option));
    int number = 0;
    for (std::string line; std::getline(in, line);) {
      ++number;
      if (auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      hosts.push_back(parse_host(line, fmt::format("--hosts {}, line {}", option, number)));
    }
  } else {
    std::istringstream list(option);
    for (std::string item; std::getline(list, item, ',');)
      hosts.push_back(parse_host(item, "--hosts"));
  }
  if (hosts.empty())
    throw Error(
        fmt::format("--hosts '{}' names no host: expected a file of hosts or a list like "
                    "db1,8/db2",
                    option));
  std::set<std::string> seen;
  for (const auto& h : hosts)
    if (!seen.insert(h.name).second)
      throw Error(
          fmt::format("--hosts: host {} is named twice; give it once, with its slots "
                      "(8/{})",
                      h.name, h.name));
  return hosts;
}

std::vector<std::string> ssh_words(const std::optional<std::string>& option) {
  std::vector<std::string> words;
  std::istringstream text(option.value_or("ssh"));
  for (std::string word; text >> word;) words.push_back(word);
  return words;
}

std::vector<std::string> ssh_argv(const std::vector<std::string>& ssh, const SshHost& host,
                                  const std::string& command) {
  auto argv = ssh;
  // After the user's words, which win where they say the same: no question
  // can be answered, and an unreachable host is given up in time.
  argv.insert(argv.end(), {"-o", "BatchMode=yes", "-o", "ConnectTimeout=10"});
  if (host.port) argv.insert(argv.end(), {"-p", std::to_string(*host.port)});
  argv.insert(argv.end(), {"--", host.destination, command});
  return argv;
}

std::string shell_quote(const std::string& text) {
  std::string out = "'";
  for (char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

namespace {

// What a host said to the check: its CPUs and free memory, or why it is
// left out (it cannot be reached), or why the run is refused.
struct HostCheck {
  bool reached = false;
  std::uint32_t cpus = 1;
  std::uint64_t memory = 0;
  std::string wrong;        // it answered: what is wrong there
  std::string unreachable;  // ssh's own words
};

HostCheck check_host(const std::vector<std::string>& ssh, const SshHost& host,
                     const std::string& command) {
  HostCheck check;
  auto argv = ssh_argv(ssh, host, command);
  bp::ipstream out, err;
  std::error_code ec;
  bp::child child(resolve_program(argv.front()).path,
                  std::vector<std::string>(argv.begin() + 1, argv.end()),
                  bp::std_in<bp::null, bp::std_out> out, bp::std_err > err, ec);
  if (ec) {
    check.wrong = fmt::format("cannot run {}: {}", argv.front(), ec.message());
    return check;
  }
  std::string said, last_error;
  for (std::string line; std::getline(out, line);)
    if (said.empty()) said = line;
  for (std::string line; std::getline(err, line);)
    if (!line.empty()) last_error = line;
  child.wait();
  std::istringstream words(said);
  std::string ok, name;
  if (words >> ok >> name >> check.cpus >> check.memory && ok == "ok") {
    check.reached = true;
  } else if (child.exit_code() == 255) {
    check.unreachable = last_error.empty() ? "ssh exited with code 255" : last_error;
  } else if (child.exit_code() == 127) {
    check.wrong = "runner's binary is not there at the same path (" + last_error + ")";
  } else {
    check.wrong = said.empty()
                      ? fmt::format("{} (exit code {})", last_error, child.exit_code())
                      : said.substr(said.find(": ") == std::string::npos ? 0 : said.find(": ") + 2);
  }
  return check;
}

// Every host at once, each over one connection of its own.
std::vector<HostCheck> check_hosts(const std::vector<std::string>& ssh,
                                   const std::vector<SshHost>& hosts, const std::string& command) {
  std::vector<HostCheck> checks(hosts.size());
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < hosts.size(); ++i)
    threads.emplace_back([&, i] { checks[i] = check_host(ssh, hosts[i], command); });
  for (auto& t : threads) t.join();
  return checks;
}

// What runs `runner` on a host, in the folder runner runs in here.
std::string remote_runner(const std::string& dir, const std::string& runner) {
  return fmt::format("cd {} && exec {}", shell_quote(dir), shell_quote(runner));
}

WorkerLaunch host_launch(const std::vector<std::string>& ssh, const SshHost& host,
                         const std::string& dir, const std::string& runner) {
  WorkerLaunch launch;
  launch.argv = ssh_argv(ssh, host, remote_runner(dir, runner));
  launch.site = host.name;
  launch.most_starts = 1;
  launch.leftovers_here = false;
  launch.kill_leftovers = launch.argv;
  return launch;
}

// A host's budget, where the run has budgets: its own, else --mem-budget's,
// else what it has free.
std::uint64_t host_budget(const RunArgs& args, const SshHost& host, const HostCheck& check) {
  if (host.budget) return *host.budget;
  if (args.mem_budget) return *args.mem_budget;
  if (check.memory == 0)
    throw Error(fmt::format(
        "--on ssh: host {} cannot tell how much memory it has free; give its budget in --hosts "
        "({} 16G) or pass --mem-budget SIZE",
        host.name, host.name));
  return check.memory;
}

}  // namespace

Plan plan_ssh(const PlanRequest& request) {
  const auto& args = request.args;
  if (!args.worker)
    throw Error("--on ssh runs a worker on every host: --worker off is for --on local");
  auto hosts = read_hosts(args.hosts.value_or(""));
  auto ssh = ssh_words(args.ssh);
  auto runner = own_binary("ssh");
  auto dir = fs::current_path().string();
  const auto& command = request.command;
  bool templated = command.render(1, 1).front() != command.program();
  // A folder the host lacks is for runner's check to name, not for the shell.
  auto check = fmt::format("cd {} 2>/dev/null; exec {} worker --check-resources --check-dir {}{}",
                           shell_quote(dir), shell_quote(runner), shell_quote(dir),
                           templated ? "" : " --check " + shell_quote(command.program()));
  auto checks = check_hosts(ssh, hosts, check);
  std::vector<std::uint32_t> capacity;
  for (std::size_t i = 0; i < hosts.size(); ++i) {
    if (!checks[i].wrong.empty())
      throw Error(fmt::format("--on ssh: on host {}: {}", hosts[i].name, checks[i].wrong));
    if (!checks[i].reached)
      spdlog::warn("host {} cannot be reached ({}); the run goes on without it", hosts[i].name,
                   checks[i].unreachable);
    capacity.push_back(checks[i].reached ? hosts[i].slots.value_or(checks[i].cpus) : 0);
  }
  auto slots = spread_slots(args.parallel, capacity);
  bool budgets = args.mem_budget || args.mem_budget_auto ||
                 std::any_of(hosts.begin(), hosts.end(), [](const auto& h) { return h.budget; });
  Plan plan{.on = "ssh",
            .budgets_per_site = budgets,
            .shares_log_folder = false,
            .site_word = "host",
            .none_left = "no host of --hosts is left to run it"};
  for (std::size_t i = 0; i < hosts.size(); ++i) {
    if (slots[i] == 0) continue;
    std::optional<std::uint64_t> budget;
    if (budgets) budget = host_budget(args, hosts[i], checks[i]);
    plan.sites.push_back(
        {hosts[i].name, host_launch(ssh, hosts[i], dir, runner), slots[i], budget, capacity[i]});
    plan.parallel += slots[i];
  }
  if (plan.sites.empty())
    throw Error(fmt::format("--on ssh: no host of --hosts can be reached ({}: {})", hosts[0].name,
                            checks[0].unreachable));
  if (plan.parallel < args.parallel)
    spdlog::warn("P is {} but the hosts that can be reached take {} at once", args.parallel,
                 plan.parallel);
  return plan;
}

}  // namespace runner
