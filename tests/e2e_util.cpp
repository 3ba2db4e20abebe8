#include "e2e_util.h"

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <spawn.h>
#include <sys/inotify.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "runner/memory.h"

extern char** environ;

namespace runner::testing {

TempDir::TempDir() {
  std::string tmpl = (fs::temp_directory_path() / "runner-test-XXXXXX").string();
  if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  // RUNNER_TEST_KEEP=1 keeps a failed test's folder, to look into.
  if (std::getenv("RUNNER_TEST_KEEP") && ::testing::Test::HasFailure()) {
    std::fprintf(stderr, "kept %s\n", path_.c_str());
    return;
  }
  std::error_code ec;
  fs::remove_all(path_, ec);
}

RunnerProcess::RunnerProcess(const std::vector<std::string>& args, const fs::path& cwd,
                             Streams streams, const std::string& program) {
  static int counter = 0;
  ++counter;
  out_path_ = cwd / ("runner-out-" + std::to_string(counter) + ".txt");
  err_path_ = cwd / ("runner-err-" + std::to_string(counter) + ".txt");
  std::vector<std::string> argv_s = {program.empty() ? runner_bin() : program};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addchdir_np(&fa, cwd.c_str());
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  if (streams.out >= 0)
    posix_spawn_file_actions_adddup2(&fa, streams.out, 1);
  else
    posix_spawn_file_actions_addopen(&fa, 1, out_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (streams.err >= 0)
    posix_spawn_file_actions_adddup2(&fa, streams.err, 2);
  else
    posix_spawn_file_actions_addopen(&fa, 2, err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  // runner is started the way cron would start it: default signal mask.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  int rc = posix_spawn(&pid_, argv[0], &fa, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) throw std::runtime_error("posix_spawn runner failed");
}

RunnerProcess::~RunnerProcess() {
  if (status_ || pid_ <= 0) return;
  // A runner the test left running is stopped as a user would stop it, so
  // that it stops its clusters too: killed outright, its worker would let
  // them run on after the test. A runner that will not stop is killed.
  // Its exit makes the pidfd readable; the timeout bounds one that will not stop.
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
  ::kill(pid_, SIGTERM);
  if (pidfd >= 0) {
    pollfd p{pidfd, POLLIN, 0};
    while (::poll(&p, 1, 20'000) < 0 && errno == EINTR) {
    }
    ::close(pidfd);
  }
  if (!exited()) {
    ::kill(pid_, SIGKILL);
    wait();
  }
}

void RunnerProcess::signal(int sig) const {
  ::kill(pid_, sig);
}

int RunnerProcess::wait() {
  if (!status_) {
    int st = 0;
    while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
    }
    status_ = st;
  }
  if (WIFEXITED(*status_)) return WEXITSTATUS(*status_);
  return 128 + WTERMSIG(*status_);
}

bool RunnerProcess::exited() {
  if (status_) return true;
  int st = 0;
  if (::waitpid(pid_, &st, WNOHANG) != pid_) return false;
  status_ = st;
  return true;
}

std::string RunnerProcess::out() const {
  return read_file(out_path_);
}
std::string RunnerProcess::err() const {
  return read_file(err_path_);
}

Result run_runner(const std::vector<std::string>& args, const fs::path& cwd) {
  RunnerProcess p(args, cwd);
  Result r;
  r.code = p.wait();
  r.out = p.out();
  r.err = p.err();
  return r;
}

Result run_shell(const std::string& script, const fs::path& cwd) {
  RunnerProcess p({"-c", script}, cwd, Streams(), "/bin/sh");
  Result r;
  r.code = p.wait();
  r.out = p.out();
  r.err = p.err();
  return r;
}

bool wait_until(const fs::path& dir, const std::function<bool()>& pred,
                std::chrono::seconds limit) {
  int fd = ::inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (fd < 0) throw std::runtime_error("inotify_init1 failed");
  ::inotify_add_watch(fd, dir.c_str(), IN_CREATE | IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO);
  auto deadline = std::chrono::steady_clock::now() + limit;
  bool ok = false;
  while (!(ok = pred()) && std::chrono::steady_clock::now() < deadline) {
    // Woken by any change in dir; the timeout only bounds a change that
    // inotify does not see (a write from another mount namespace, say).
    pollfd p{fd, POLLIN, 0};
    ::poll(&p, 1, 50);
    char buf[4096];
    while (::read(fd, buf, sizeof buf) > 0) {
    }
  }
  ::close(fd);
  return ok;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::map<long, int> counted(const fs::path& record, const std::string& what) {
  std::map<long, int> n;
  for (const auto& line : read_lines(record))
    if (line.rfind(what + " ", 0) == 0) ++n[std::stol(line.substr(what.size() + 1))];
  return n;
}

std::vector<std::string> read_lines(const fs::path& path) {
  std::vector<std::string> lines;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::size_t count_lines(const fs::path& path) {
  return read_lines(path).size();
}

std::string query(const fs::path& db, const std::string& sql) {
  SQLite::Database d(db.string(), SQLite::OPEN_READONLY, 10'000);
  SQLite::Statement q(d, sql);
  if (!q.executeStep()) return "";
  return q.getColumn(0).isNull() ? "" : q.getColumn(0).getString();
}

bool wait_for_running(const fs::path& dir, int n) {
  return wait_until(dir, [&] {
    try {
      return query(dir / "runner.db", "SELECT coalesce(sum(running), 0) FROM progress") ==
             std::to_string(n);
    } catch (const std::exception&) {
      return false;  // not created yet
    }
  });
}

std::vector<std::string> with_child(std::vector<std::string> runner_args,
                                    const std::vector<std::string>& child_args) {
  runner_args.push_back("--");
  runner_args.push_back(child_bin());
  runner_args.insert(runner_args.end(), child_args.begin(), child_args.end());
  return runner_args;
}

bool process_exists(pid_t pid) {
  auto stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  auto close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] != 'Z';
}

std::optional<fs::path> cgroup_dir(std::string* why) {
  auto probe = probe_memory();
  if (probe.v2_dir) return probe.v2_dir;
  if (probe.v1_dir) return probe.v1_dir;
  *why = probe.v2_why_not + "; " + probe.v1_why_not;
  return std::nullopt;
}

pid_t worker_of(pid_t runner) {
  std::ifstream children("/proc/" + std::to_string(runner) + "/task/" + std::to_string(runner) +
                         "/children");
  for (pid_t pid; children >> pid;)
    if (read_file("/proc/" + std::to_string(pid) + "/comm") == "runner-worker\n") return pid;
  return 0;
}

bool cgroup_required() {
  return std::getenv("RUNNER_TEST_REQUIRE_CGROUP") != nullptr;
}

std::string child_bin() {
  return TEST_CHILD_BIN;
}
std::string runner_bin() {
  // RUNNER_TEST_RUNNER: another build of runner, to see a test fail
  // without the change it checks.
  if (const char* other = std::getenv("RUNNER_TEST_RUNNER"); other && *other) return other;
  return RUNNER_BIN;
}

}  // namespace runner::testing
