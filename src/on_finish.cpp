#include "runner/on_finish.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <spawn.h>
#include <spdlog/spdlog.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "runner/fd.h"
#include "runner/units.h"
#include "runner/words.h"

extern char** environ;

namespace runner {
namespace {

// What the command says is logged, up to this much.
constexpr std::size_t kMostOutput = std::size_t{16} * 1024;

void write_summary_file(const std::filesystem::path& file, const RunEnding& e) {
  auto text = e.summary;
  if (!text.empty() && text.back() != '\n') text += '\n';
  if (!e.failures.empty()) {
    text += "\nfailed clusters (cluster, attempt, how, log):\n";
    for (const auto& f : e.failures)
      text +=
          fmt::format("{}\t{}\t{}\t{}\n", f.cluster, f.attempt, describe_failure(f), f.log_path);
  }
  write_whole(file, text);
}

}  // namespace

std::vector<std::string> on_finish_environment(const RunEnding& e,
                                               const std::filesystem::path& summary_file) {
  return {
      "RUNNER_JOB=" + e.job,
      "RUNNER_DB=" + e.db.string(),
      fmt::format("RUNNER_EXIT_CODE={}", e.exit_code),
      "RUNNER_OUTCOME=" + e.outcome,
      fmt::format("RUNNER_CLUSTERS={}", e.clusters),
      fmt::format("RUNNER_DONE={}", e.done),
      fmt::format("RUNNER_FAILED={}", e.failed),
      fmt::format("RUNNER_DONE_THIS_RUN={}", e.done_this_run),
      fmt::format("RUNNER_FAILED_THIS_RUN={}", e.failed_this_run),
      "RUNNER_SUMMARY=" + e.summary,
      "RUNNER_SUMMARY_FILE=" + summary_file.string(),
  };
}

int run_on_finish(const std::string& command, std::chrono::milliseconds limit,
                  const RunEnding& ending, const std::filesystem::path& file,
                  const InheritedSignals& signals) {
  std::filesystem::path summary_file;
  try {
    write_summary_file(file, ending);
    summary_file = file;
  } catch (const std::exception& e) {
    spdlog::warn("--on-finish: cannot write the summary file {}: {}", file.string(), e.what());
  }
  // Its environment: runner's own, but for RUNNER_* variables, and the outcome.
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e)
    if (std::strncmp(*e, "RUNNER_", 7) != 0) env.emplace_back(*e);
  for (auto& v : on_finish_environment(ending, summary_file)) env.push_back(std::move(v));
  std::vector<char*> envp;
  envp.reserve(env.size() + 1);
  for (auto& v : env) envp.push_back(v.data());
  envp.push_back(nullptr);

  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) {
    spdlog::error("--on-finish: cannot start it: pipe: {}", std::strerror(errno));
    return -1;
  }
  Fd read_end(out[0]), write_end(out[1]);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, write_end.get(), STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, write_end.get(), STDERR_FILENO);
  // The signal state runner was started with, in a process group of its own.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setsigmask(&attr, &signals.mask());
  sigset_t defaults;
  sigemptyset(&defaults);
  if (!signals.pipe_ignored()) sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  const char* argv[] = {"sh", "-c", command.c_str(), nullptr};
  pid_t pid = -1;
  int err =
      posix_spawn(&pid, "/bin/sh", &actions, &attr, const_cast<char* const*>(argv), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  write_end.reset();
  if (err != 0) {
    spdlog::error("--on-finish: cannot start /bin/sh: {}", std::strerror(err));
    return -1;
  }
  Fd exited(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  // Its output until it ends (or the limit passes); what its own children
  // keep writing after it ended is not waited for.
  std::string output;
  auto take = [&]() {
    char buffer[4096];
    auto n = ::read(read_end.get(), buffer, sizeof buffer);
    if (n > 0 && output.size() < kMostOutput)
      output.append(
          buffer, std::min<std::size_t>(static_cast<std::size_t>(n), kMostOutput - output.size()));
    if (n == 0) read_end.reset();
    return n > 0;
  };
  auto deadline = std::chrono::steady_clock::now() + limit;
  bool killed = false;
  if (!exited) spdlog::warn("--on-finish: cannot watch it (pidfd_open: {})", std::strerror(errno));
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      ::kill(-pid, SIGKILL);
      killed = true;
      break;
    }
    pollfd fds[] = {{exited.get(), POLLIN, 0}, {read_end.get(), POLLIN, 0}};
    if (::poll(fds, read_end ? 2 : 1, static_cast<int>(left.count())) < 0 && errno != EINTR) break;
    if (read_end && (fds[1].revents & (POLLIN | POLLHUP))) take();
    if (fds[0].revents & POLLIN) break;  // it ended
  }
  // What it wrote before it ended, without waiting for its own children.
  if (read_end) {
    ::fcntl(read_end.get(), F_SETFL, O_NONBLOCK);
    while (read_end && take()) {
    }
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  for (std::size_t at = 0; at < output.size();) {
    auto end = output.find('\n', at);
    if (end == std::string::npos) end = output.size();
    if (end > at) spdlog::info("--on-finish: {}", printable(output.substr(at, end - at)));
    at = end + 1;
  }
  if (killed) {
    spdlog::error("--on-finish: it did not end within {}; killed it", format_duration(limit));
    return -1;
  }
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  if (code == 0)
    spdlog::info("--on-finish: ended with exit code 0");
  else
    spdlog::warn("--on-finish: ended with exit code {}", code);
  return code;
}

}  // namespace runner
