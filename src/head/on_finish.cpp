#include "runner/on_finish.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "runner/fd.h"
#include "runner/spawn.h"
#include "runner/units.h"
#include "runner/words.h"

extern char** environ;

namespace runner {
namespace {

// What the command says is logged, up to this much.
constexpr std::size_t kMostOutput = std::size_t{16} * 1024;

// Writes the summary and the failed clusters to `file`. Returns it, or ""
// where there is none: the command runs all the same, without the file.
std::filesystem::path write_summary_file(const std::filesystem::path& file, const RunEnding& e) {
  if (file.empty()) return {};
  auto text = e.summary;
  if (!text.empty() && text.back() != '\n') text += '\n';
  if (!e.failures.empty()) {
    text += "\nfailed clusters (cluster, attempt, how, log):\n";
    for (const auto& f : e.failures)
      text +=
          fmt::format("{}\t{}\t{}\t{}\n", f.cluster, f.attempt, describe_failure(f), f.log_path);
  }
  try {
    write_whole(file, text);
    return file;
  } catch (const std::exception& error) {
    spdlog::warn("--on-finish: cannot write the summary file {}: {}", file.string(), error.what());
    return {};
  }
}

// Its environment: runner's own, but for RUNNER_* variables, and the outcome.
std::vector<std::string> hook_environment(const RunEnding& ending,
                                          const std::filesystem::path& summary_file) {
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e)
    if (std::strncmp(*e, "RUNNER_", 7) != 0) env.emplace_back(*e);
  for (auto& v : on_finish_environment(ending, summary_file)) env.push_back(std::move(v));
  return env;
}

// Starts sh -c COMMAND with `env`, the signal state runner was started with,
// in a process group of its own, stdin from /dev/null and its output into
// `out`. Returns its pid, or -1 (and says why).
pid_t spawn_hook(const std::string& command, std::vector<std::string>& env,
                 const InheritedSignals& signals, int out) {
  std::vector<char*> envp;
  envp.reserve(env.size() + 1);
  for (auto& v : env) envp.push_back(v.data());
  envp.push_back(nullptr);
  Fd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  std::vector<std::string> argv = {"sh", "-c", command};
  SpawnRequest request{"/bin/sh", &argv, envp.data(), out, null.get(), &signals};
  auto spawned = null ? spawn_child(request) : SpawnResult{-1, errno, false};
  if (spawned.error == 0) return spawned.pid;
  spdlog::error("--on-finish: cannot start /bin/sh: {}", std::strerror(spawned.error));
  return -1;
}

// What the command writes, kept up to kMostOutput; the rest is read (so
// that the command never blocks on a full pipe) and only counted.
class HookOutput {
 public:
  explicit HookOutput(Fd read_end) : fd_(std::move(read_end)) {}
  int fd() const { return fd_.get(); }
  bool open() const { return static_cast<bool>(fd_); }

  // Reads once; closes at the end of the output. Returns whether it read any.
  bool take() {
    char buffer[4096];
    auto n = ::read(fd_.get(), buffer, sizeof buffer);
    if (n == 0) fd_.reset();
    if (n <= 0) return false;
    auto got = static_cast<std::size_t>(n);
    auto kept = std::min(got, kMostOutput - text_.size());
    text_.append(buffer, kept);
    cut_ += got - kept;
    return true;
  }

  // What it wrote before it ended, without waiting for its own children,
  // which may hold the pipe open for longer.
  void take_rest() {
    if (!fd_) return;
    ::fcntl(fd_.get(), F_SETFL, O_NONBLOCK);
    while (fd_ && take()) {
    }
  }

  // One log line per line of output, and how much was left out.
  void log() const {
    for (std::size_t at = 0; at < text_.size();) {
      auto end = text_.find('\n', at);
      if (end == std::string::npos) end = text_.size();
      if (end > at) spdlog::info("--on-finish: {}", printable(text_.substr(at, end - at)));
      at = end + 1;
    }
    if (cut_ > 0)
      spdlog::warn("--on-finish: its output was cut at {} KiB: {} more byte(s) not shown",
                   kMostOutput / 1024, cut_);
  }

 private:
  Fd fd_;
  std::string text_;
  std::uint64_t cut_ = 0;
};

// Tells when the command has ended: its pidfd becomes readable, or, where
// the kernel offers none (before 5.3, or a seccomp filter refuses
// pidfd_open), a SIGCHLD arrives. SIGCHLD is blocked before the command
// starts, so that its end cannot come before runner listens for it.
class HookExit {
 public:
  HookExit() : sigchld_(SIGCHLD) {}
  void watch(pid_t pid) {
    pid_ = pid;
    pidfd_ = open_pidfd(pid);
    if (!pidfd_)
      spdlog::debug("--on-finish: pidfd_open: {}; waiting for SIGCHLD", std::strerror(errno));
  }
  int fd() const { return pidfd_ ? pidfd_.get() : sigchld_.fd(); }

  // After fd() was readable: whether the command has ended (then status() says how).
  bool ended() {
    if (!pidfd_) sigchld_.drain();
    int got = 0;
    while ((got = ::waitpid(pid_, &status_, pidfd_ ? 0 : WNOHANG)) < 0 && errno == EINTR) {
    }
    return got == pid_;
  }
  // Kills its whole process group and collects it.
  void kill() {
    ::kill(-pid_, SIGKILL);
    while (::waitpid(pid_, &status_, 0) < 0 && errno == EINTR) {
    }
  }
  int status() const { return status_; }

 private:
  BlockedSignal sigchld_;
  pid_t pid_ = -1;
  Fd pidfd_;
  int status_ = 0;
};

// Takes the command's output until it ends or `limit` passes (then its
// whole process group is killed). Returns whether it ended by itself.
bool wait_for_hook(HookExit& exit, HookOutput& output, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      exit.kill();
      return false;
    }
    pollfd fds[] = {{exit.fd(), POLLIN, 0}, {output.fd(), POLLIN, 0}};
    if (::poll(fds, output.open() ? 2 : 1, static_cast<int>(left.count())) < 0 && errno != EINTR) {
      spdlog::error("--on-finish: cannot wait for it: poll: {}", std::strerror(errno));
      exit.kill();
      return false;
    }
    if (output.open() && (fds[1].revents & (POLLIN | POLLHUP))) output.take();
    if ((fds[0].revents & POLLIN) && exit.ended()) return true;
  }
}

}  // namespace

std::vector<std::string> on_finish_environment(const RunEnding& e,
                                               const std::filesystem::path& summary_file) {
  // A refused start knows no counts: they are empty rather than a false 0.
  auto count = [&](std::uint64_t n) { return e.counted ? std::to_string(n) : std::string(); };
  return {
      "RUNNER_JOB=" + e.job,
      "RUNNER_DB=" + e.db.string(),
      fmt::format("RUNNER_EXIT_CODE={}", e.exit_code),
      "RUNNER_OUTCOME=" + e.outcome,
      "RUNNER_CLUSTERS=" + (e.clusters ? std::to_string(e.clusters) : std::string()),
      "RUNNER_DONE=" + count(e.done),
      "RUNNER_FAILED=" + count(e.failed),
      "RUNNER_DONE_THIS_RUN=" + count(e.done_this_run),
      "RUNNER_FAILED_THIS_RUN=" + count(e.failed_this_run),
      "RUNNER_SUMMARY=" + e.summary,
      "RUNNER_SUMMARY_FILE=" + summary_file.string(),
  };
}

int run_on_finish(const std::string& command, std::chrono::milliseconds limit,
                  const RunEnding& ending, const std::filesystem::path& file,
                  const InheritedSignals& signals) {
  auto env = hook_environment(ending, write_summary_file(file, ending));
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) {
    spdlog::error("--on-finish: cannot start it: pipe: {}", std::strerror(errno));
    return -1;
  }
  HookOutput output{Fd(out[0])};
  Fd write_end(out[1]);
  HookExit exit;
  auto pid = spawn_hook(command, env, signals, write_end.get());
  write_end.reset();
  if (pid < 0) return -1;
  exit.watch(pid);
  bool ended = wait_for_hook(exit, output, limit);
  output.take_rest();
  output.log();
  if (!ended) {
    spdlog::error("--on-finish: it did not end within {}; killed it", format_duration(limit));
    return -1;
  }
  auto status = exit.status();
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  // A command that failed is how a night's news got lost: an error, which
  // -q still prints (and cron mails).
  if (code == 0)
    spdlog::info("--on-finish: ended with exit code 0");
  else
    spdlog::error("--on-finish: ended with exit code {}", code);
  return code;
}

void hear_of_refusal(const RefusedStart& refused) {
  const auto& hook = refused.hook();
  RunEnding ending;
  ending.job = hook.job;
  std::error_code ec;
  ending.db = std::filesystem::absolute(hook.db, ec);
  ending.exit_code = static_cast<int>(refused.code());
  ending.outcome = "refused";
  ending.clusters = hook.clusters;
  ending.counted = false;
  ending.summary = refused.what();
  // Nothing of the job's is written: the summary goes to a file of its own
  // in the temporary folder, there while the command runs.
  const char* tmp = std::getenv("TMPDIR");
  auto pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/runner-refused-XXXXXX";
  Fd made(::mkstemp(pattern.data()));
  std::filesystem::path file = made ? pattern : "";
  if (!made)
    spdlog::warn("--on-finish: cannot make a summary file in {}: {}", tmp && *tmp ? tmp : "/tmp",
                 std::strerror(errno));
  run_on_finish(hook.command, hook.limit, ending, file, hook.signals);
  if (made) ::unlink(file.c_str());
}

}  // namespace runner
