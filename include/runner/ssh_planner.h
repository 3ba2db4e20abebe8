// --on ssh: the planner that spreads a run over plain servers reached with
// the system's ssh (plan_ssh, in plan.h). Hosts are written as GNU
// parallel's --sshlogin has them, [slots/][user@]host[:port], with an
// optional memory budget after a space; one worker per host, started over
// one ssh connection for the whole run, journals on its own host. What it
// reads of the user's words is here, for the tests.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace runner {

struct SshHost {
  std::string name;         // [user@]host[:port], as written: the site's name
  std::string destination;  // [user@]host, for ssh
  std::optional<std::uint16_t> port;
  std::optional<std::uint32_t> slots;   // clusters at once; none: its CPUs
  std::optional<std::uint64_t> budget;  // bytes; none: --mem-budget's, or what it has free
};

// One host as written ("8/deploy@db1:2222 16G"). Throws Error naming `where`
// (the option, or the file and line) and what would be accepted.
SshHost parse_host(const std::string& text, const std::string& where);

// --hosts: the file it names (one host a line; blank lines and # comments
// skipped), or else a comma-separated list. Throws Error on a bad host, a
// host named twice, or no host at all.
std::vector<SshHost> read_hosts(const std::string& option);

// The words of --ssh (default "ssh"), split on spaces.
std::vector<std::string> ssh_words(const std::optional<std::string>& option);

// What runs `command` (a shell command line) on the host: the ssh words,
// runner's own options, the port, the destination and the command.
std::vector<std::string> ssh_argv(const std::vector<std::string>& ssh, const SshHost& host,
                                  const std::string& command);

// `text` as one word for the remote shell.
std::string shell_quote(const std::string& text);

}  // namespace runner
