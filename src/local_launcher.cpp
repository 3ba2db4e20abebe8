#include "runner/local_launcher.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

// vfork instead of fork: the child borrows runner's memory until it execs, so
// no page tables are copied and no copy-on-write faults follow, which is most
// of what a start costs. Boost.Process has the vfork path but enables it only
// for old POSIX feature levels; glibc's vfork is fine.
#define BOOST_POSIX_HAS_VFORK 1
#include <algorithm>
#include <boost/process/args.hpp>
#include <boost/process/child.hpp>
#include <boost/process/exe.hpp>
#include <boost/process/extend.hpp>
#include <boost/process/posix.hpp>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "runner/orphans.h"
#include "runner/sysinfo.h"

extern char** environ;

namespace runner {
namespace bp = boost::process;
namespace {

// Runs in the vforked child before exec, and in the parent around the vfork.
// Between vfork and exec only async-signal-safe calls are allowed, and
// nothing that touches runner's memory: no allocation, no logging. A failure
// there is left in the (shared) executor by set_error with a message short
// enough to need no allocation, and surfaces as a failed start in the parent.
struct ChildSetup : bp::extend::handler {
  int log_fd;
  int null_fd;
  const SignalChannel* signals;
  const Cage* cage;      // null: no cage
  const rlimit* nofile;  // the descriptor limit runner was given, if it raised its own
  char** envp;
  pid_t* failed_pid;

  template <class Executor>
  void on_setup(Executor& e) const {
    e.env = envp;
  }

  template <class Executor>
  void on_exec_setup(Executor& e) const {
    // Its own process group, so Ctrl-C in the terminal reaches the child only
    // through runner, and runner can signal the whole tree at once.
    if (::setpgid(0, 0) != 0 || ::dup2(null_fd, STDIN_FILENO) < 0 ||
        ::dup2(log_fd, STDOUT_FILENO) < 0 || ::dup2(log_fd, STDERR_FILENO) < 0 ||
        signals->restore_in_child() != 0 || (nofile && ::setrlimit(RLIMIT_NOFILE, nofile) != 0)) {
      e.set_error(std::error_code(errno, std::system_category()), "setup failed");
      ::_exit(127);
    }
    // Into the cage before exec, so that not one page escapes the cap.
    if (cage) {
      if (int err = cage->enter(); err != 0) {
        e.set_error(std::error_code(err, std::system_category()), "cage failed");
        ::_exit(127);
      }
    }
  }

  template <class Executor>
  void on_error(Executor& e, const std::error_code&) const {
    *failed_pid = e.pid;
  }
};

double seconds(const timeval& tv) {
  return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
}

// Creates an attempt's log in its folder, new: never through a symbolic link
// and never over a file that exists, whoever made it (an earlier DB that
// shared this log folder, a link planted there). A taken name gets a fresh
// one beside it: 3.1.log, then 3.1-2.log, 3.1-3.log, ... `name` is updated.
// Returns the fd, or -1 with errno set.
int create_log(int dir_fd, std::string& name) {
  constexpr int kMostNames = 1000;
  auto dot = name.rfind(".log");
  auto stem = name.substr(0, dot), extension = name.substr(dot);
  for (int n = 1; n <= kMostNames; ++n) {
    if (n > 1) name = fmt::format("{}-{}{}", stem, n, extension);
    int fd =
        ::openat(dir_fd, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd >= 0 || errno != EEXIST) return fd;
  }
  errno = EEXIST;
  return -1;
}

bool is_executable_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

}  // namespace

Resolved resolve_program(const std::string& name) {
  if (name.empty()) return {name, ENOENT};
  if (name.find('/') != std::string::npos) {
    struct stat st {};
    if (::stat(name.c_str(), &st) != 0) return {name, errno};
    if (S_ISDIR(st.st_mode)) return {name, EISDIR};
    if (::access(name.c_str(), X_OK) != 0) return {name, errno};
    return {name, 0};
  }
  const char* path_env = std::getenv("PATH");
  std::string_view dirs = path_env ? path_env : "/usr/local/bin:/usr/bin:/bin";
  while (true) {
    auto colon = dirs.find(':');
    auto dir = dirs.substr(0, colon);
    auto candidate = fmt::format("{}/{}", dir.empty() ? "." : dir, name);
    if (is_executable_file(candidate)) return {candidate, 0};
    if (colon == std::string_view::npos) break;
    dirs.remove_prefix(colon + 1);
  }
  return {name, ENOENT};
}

int check_executable_format(const std::string& path) {
  char head[4] = {};
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;  // execute-only: the start will tell
  auto n = ::read(fd, head, sizeof head);
  ::close(fd);
  if (n >= 2 && head[0] == '#' && head[1] == '!') return 0;
  if (n == 4 && std::memcmp(head,
                            "\x7f"
                            "ELF",
                            4) == 0)
    return 0;
  // Handlers registered with binfmt_misc run other formats (Java, Wine, ...).
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/sys/fs/binfmt_misc", ec)) {
    auto name = entry.path().filename();
    if (name != "register" && name != "status") return 0;
  }
  return ENOEXEC;
}

LocalLauncher::LocalLauncher(SignalChannel& signals, MemoryCaps* caps)
    : signals_(signals), caps_(caps) {
  dev_null_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (dev_null_ < 0) throw std::system_error(errno, std::generic_category(), "open /dev/null");
  for (char** e = environ; e && *e; ++e)
    if (std::strncmp(*e, "RUNNER_", 7) != 0) base_env_.push_back(*e);
  // Every process of this run carries its id: after a kill -9 of runner, the
  // next one finds them all by it (see orphans.h).
  run_var_ = "RUNNER_RUN=" + run_id(current_process());
  base_env_.push_back(run_var_.data());
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
}

LocalLauncher::~LocalLauncher() {
  // Nothing runner started outlives it: kill what is left and collect it.
  for (auto& [pid, child] : children_) {
    ::kill(-pid, SIGKILL);
    ::kill(pid, SIGKILL);
  }
  if (log_dir_fd_ >= 0) ::close(log_dir_fd_);
  // A descendant is adopted only once the process between it and runner has
  // died, which may be after any one look: look again until none is left.
  for (int i = 0; i < 2000; ++i) {
    kill_strays(true);
    pid_t pid = ::waitpid(-1, nullptr, WNOHANG);
    if (pid < 0) break;  // ECHILD: all collected
    if (pid == 0) ::usleep(1000);
  }
  ::close(dev_null_);
}

void LocalLauncher::reserve_descriptors(std::size_t parallel) {
  constexpr std::size_t kPerCluster = 5, kForRunner = 64;
  rlimit given{};
  if (::getrlimit(RLIMIT_NOFILE, &given) != 0) return;
  auto need = static_cast<rlim_t>(parallel * kPerCluster + kForRunner);
  if (given.rlim_cur == RLIM_INFINITY || given.rlim_cur >= need) return;
  rlimit raised = given;
  raised.rlim_cur = given.rlim_max == RLIM_INFINITY ? need : std::min(need, given.rlim_max);
  if (raised.rlim_cur <= given.rlim_cur || ::setrlimit(RLIMIT_NOFILE, &raised) != 0) return;
  children_nofile_ = given;
  if (raised.rlim_cur < need)
    spdlog::warn("{} clusters at once may need {} open files; the limit is {} (ulimit -Hn)",
                 parallel, need, raised.rlim_cur);
}

namespace {

// The RUNNER_CLUSTER and RUNNER_ATTEMPT a process was started with.
std::string env_tag_of(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/environ", pid), std::ios::binary);
  std::string env((std::istreambuf_iterator<char>(in)), {});
  std::string tag;
  for (std::size_t at = 0; at < env.size();) {
    auto end = env.find('\0', at);
    if (end == std::string::npos) end = env.size();
    auto var = std::string_view(env).substr(at, end - at);
    if (var.starts_with("RUNNER_CLUSTER=") || var.starts_with("RUNNER_ATTEMPT=")) {
      tag += var;
      tag += '\n';
    }
    at = end + 1;
  }
  return tag;
}

}  // namespace

// Children of runner that are not a running cluster's own process were
// adopted: descendants whose parent died (runner is their subreaper). Each is
// killed once the cluster whose RUNNER_* variables it carries is no longer
// running; with `all`, every one.
void LocalLauncher::kill_strays(bool all) {
  std::ifstream in(fmt::format("/proc/self/task/{}/children", ::getpid()));
  std::vector<pid_t> strays;
  for (pid_t pid; in >> pid;)
    if (!children_.contains(pid)) strays.push_back(pid);
  for (pid_t pid : strays) {
    if (!all) {
      auto tag = env_tag_of(pid);
      bool owner_runs = false;
      for (const auto& [main, child] : children_) owner_runs = owner_runs || child.env_tag == tag;
      if (owner_runs) continue;
    }
    ::kill(pid, SIGKILL);
  }
}

namespace {

// Which failure a start's errno is: runner short of open files, or its own
// means failing otherwise.
StartFailed::Kind kind_of(int err) {
  return err == EMFILE || err == ENFILE ? StartFailed::Kind::kShortOfFiles
                                        : StartFailed::Kind::kEnvironment;
}

}  // namespace

StartResult LocalLauncher::start(const LaunchSpec& spec) {
  auto result = try_start(spec);
  // Cgroups kept for later attempts hold open files: let them go, once.
  auto* failed = std::get_if<StartFailed>(&result);
  if (failed && failed->kind == StartFailed::Kind::kShortOfFiles && caps_ &&
      caps_->release_spares())
    result = try_start(spec);
  return result;
}

std::optional<StartFailed> LocalLauncher::open_log_folder(const std::string& folder) {
  // The log folder stays open: each log is created relative to it, without
  // walking the whole path again.
  if (folder != log_dir_ || log_dir_fd_ < 0) {
    if (log_dir_fd_ >= 0) ::close(log_dir_fd_);
    // The job's folder itself is never a link (the logs root above it may be).
    log_dir_fd_ = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    log_dir_ = folder;
    if (log_dir_fd_ < 0) {
      int err = errno;
      return StartFailed{err,
                         fmt::format("cannot open log folder {}: {}", folder, std::strerror(err)),
                         kind_of(err)};
    }
  }
  // A log folder with no room left fails every start: stop, do not fail clusters.
  struct statvfs space {};
  if (::fstatvfs(log_dir_fd_, &space) == 0 && space.f_bavail * space.f_frsize < 64UL * 1024)
    return StartFailed{ENOSPC,
                       fmt::format("log folder {} is full: {}", folder, std::strerror(ENOSPC)),
                       StartFailed::Kind::kEnvironment};
  return std::nullopt;
}

std::optional<StartFailed> LocalLauncher::resolve(const std::string& program) {
  // Clusters nearly always run the same program: resolve it once, not per start.
  if (program == resolved_name_) return std::nullopt;
  auto resolved = resolve_program(program);
  if (resolved.error != 0)
    return StartFailed{resolved.error, fmt::format("cannot execute {}: {}", program,
                                                   std::strerror(resolved.error))};
  resolved_name_ = program;
  resolved_path_ = resolved.path;
  return std::nullopt;
}

StartResult LocalLauncher::try_start(const LaunchSpec& spec) {
  auto slash = spec.log_path.rfind('/');
  auto folder = spec.log_path.substr(0, slash + 1);
  if (auto failed = open_log_folder(folder)) return *failed;
  if (auto failed = resolve(spec.argv.front())) return *failed;
  std::unique_ptr<Cage> cage;
  if (caps_) {
    try {
      cage = caps_->cage(spec.mem_limit);
    } catch (const std::system_error& e) {
      return StartFailed{e.code().value(), e.what(), kind_of(e.code().value())};
    }
  }
  auto log_name = spec.log_path.substr(slash + 1);
  int log_fd = create_log(log_dir_fd_, log_name);
  if (log_fd < 0) {
    int err = errno;
    return StartFailed{err,
                       fmt::format("cannot create log {}: {}", spec.log_path, std::strerror(err)),
                       kind_of(err)};
  }
  auto result = spawn(spec, log_fd, cage.get());
  if (auto* started = std::get_if<Started>(&result)) {
    started->log_path = folder + log_name;
    auto tag = fmt::format("RUNNER_CLUSTER={}\nRUNNER_ATTEMPT={}\n", spec.cluster, spec.attempt);
    children_.emplace(started->pid,
                      Child{std::move(cage), started->log_path, spec.mem_limit, std::move(tag)});
  } else if (auto& failed = std::get<StartFailed>(result);
             failed.kind == StartFailed::Kind::kCommand) {
    // The attempt is recorded with its log, which says why.
    failed.log_path = folder + log_name;
    auto line = fmt::format("runner: {}\n", failed.message);
    if (::write(log_fd, line.data(), line.size()) < 0) failed.log_path.clear();
  } else {
    // The cluster never started: no log of an attempt that was not made.
    ::unlinkat(log_dir_fd_, log_name.c_str(), 0);
  }
  ::close(log_fd);
  return result;
}

StartResult LocalLauncher::spawn(const LaunchSpec& spec, int log_fd, const Cage* cage) {
  // The child's environment: runner's own plus what tells it which cluster it is.
  std::string vars[] = {
      fmt::format("RUNNER_CLUSTER={}", spec.cluster),
      fmt::format("RUNNER_CLUSTERS={}", spec.clusters),
      fmt::format("RUNNER_ATTEMPT={}", spec.attempt),
      fmt::format("RUNNER_JOB={}", spec.job),
  };
  std::vector<char*> envp = base_env_;
  for (auto& v : vars) envp.push_back(v.data());
  envp.push_back(nullptr);

  pid_t failed_pid = -1;
  ChildSetup setup;
  setup.log_fd = log_fd;
  setup.null_fd = dev_null_;
  setup.signals = &signals_;
  setup.cage = cage;
  setup.nofile = children_nofile_ ? &*children_nofile_ : nullptr;
  setup.envp = envp.data();
  setup.failed_pid = &failed_pid;

  std::error_code ec;
  const auto& program = spec.argv.front();
  std::vector<std::string> args(spec.argv.begin() + 1, spec.argv.end());
  bp::child child(bp::exe = resolved_path_, bp::args = args, setup, bp::posix::use_vfork, ec);
  if (ec) {
    int err = ec.value();
    if (failed_pid <= 0) {
      // No process could be made: the machine is short of them for now.
      auto kind = err == EAGAIN || err == ENOMEM ? StartFailed::Kind::kTransient : kind_of(err);
      return StartFailed{
          err, fmt::format("cannot start {}: fork failed: {}", program, std::strerror(err)), kind};
    }
    // The child could not exec. Boost.Process may have collected it already;
    // if not, it is ours alone to collect.
    ::waitpid(failed_pid, nullptr, 0);
    return StartFailed{err, fmt::format("cannot execute {}: {}", program, std::strerror(err))};
  }
  // runner reaps its children itself with wait4, which Boost.Process's own
  // wait would pre-empt and lose the rusage.
  child.detach();
  return Started{child.id(), ""};
}

void LocalLauncher::reap(Wakeup& into) {
  bool cluster_ended = false;
  for (;;) {
    int status = 0;
    rusage usage{};
    pid_t pid = ::wait4(-1, &status, WNOHANG, &usage);
    if (pid <= 0) break;  // 0: children remain, none ended; -1 (ECHILD): none at all
    auto it = children_.find(pid);
    if (it == children_.end()) continue;  // an adopted descendant: collected, nothing more
    ChildExit exit;
    exit.pid = pid;
    if (WIFEXITED(status)) exit.exit_code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) exit.signal = WTERMSIG(status);
    exit.user_cpu_s = seconds(usage.ru_utime);
    exit.sys_cpu_s = seconds(usage.ru_stime);
    exit.peak_rss_kib = static_cast<std::uint64_t>(usage.ru_maxrss);
    // What is left of its process group goes with it. The group cannot have
    // been reused: its id stays taken while any member lives.
    ::kill(-pid, SIGKILL);
    judge_memory(it->second, exit);
    children_.erase(it);
    into.exits.push_back(exit);
    cluster_ended = true;
  }
  // A cgroup takes every descendant with its cluster; without one, adopted
  // descendants are looked for.
  if (cluster_ended && !has_cgroups()) kill_strays(false);
}

Wakeup LocalLauncher::wait(std::optional<Clock::time_point> deadline) {
  Wakeup wake;
  for (;;) {
    for (int sig : signals_.drain())
      if (sig != SIGCHLD) wake.signals.push_back(sig);
    reap(wake);
    if (!wake.exits.empty() || !wake.signals.empty()) return wake;

    if (caps_) caps_->tidy();
    // Sleep until the signalfd is readable (a child ended or a signal came)
    // or the deadline passes. The signals stay blocked throughout, so one
    // that arrives between the checks above and here still wakes us.
    timespec ts{};
    timespec* timeout = nullptr;
    if (deadline) {
      auto left = std::max(Clock::duration::zero(), *deadline - Clock::now());
      auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
      ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
      ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
      timeout = &ts;
    }
    pollfd pfd{signals_.fd(), POLLIN, 0};
    int ready = ::ppoll(&pfd, 1, timeout, nullptr);
    if (ready == 0) return wake;  // deadline
    if (ready < 0 && errno != EINTR)
      throw std::system_error(errno, std::generic_category(), "ppoll");
  }
}

// What the cage saw: the cgroup's peak and OOM kills, which are certain; or,
// under an rlimit, the signs of a failed allocation in the log, which are not.
void LocalLauncher::judge_memory(Child& child, ChildExit& exit) {
  if (!child.cage) return;
  auto use = child.cage->collect();
  if (use.peak_bytes) exit.peak_cgroup_kib = *use.peak_bytes / 1024;
  if (use.oom_kills > 0) {
    exit.oom = true;
    exit.oom_note = fmt::format("the kernel killed {} process(es) of it for memory", use.oom_kills);
    return;
  }
  bool failed = exit.signal || exit.exit_code.value_or(0) != 0;
  if (failed && child.mem_limit && caps_->mechanism() == CapMechanism::kRlimit) {
    if (auto sign = allocation_failure_sign(child.log_path)) {
      exit.oom = true;
      exit.oom_note = fmt::format("likely: under the rlimit cap its log shows '{}'", *sign);
    }
  }
}

int LocalLauncher::signal(pid_t pid, int sig) {
  // The child leads its own group: signal the group, so grandchildren get it
  // too. The child is not reaped yet, so its group id cannot have been reused.
  // The group succeeds when any one of its processes could be signalled.
  int err = ::kill(-pid, sig) == 0 ? 0 : errno;
  // A stopped child cannot act on SIGTERM until it is continued.
  if (sig == SIGTERM) ::kill(-pid, SIGCONT);
  // Processes that left the group (setsid) are still in the cgroup.
  if (auto it = children_.find(pid); it != children_.end() && it->second.cage)
    it->second.cage->signal_all(sig);
  return err == ESRCH ? 0 : err;  // ESRCH: the group is gone already
}

bool LocalLauncher::has_cgroups() const {
  return caps_ && (caps_->mechanism() == CapMechanism::kCgroupV1 ||
                   caps_->mechanism() == CapMechanism::kCgroupV2);
}

std::string LocalLauncher::cap_name() const {
  return caps_ ? to_string(caps_->mechanism()) : "none";
}

std::optional<std::uint64_t> LocalLauncher::memory_in_use(pid_t pid) const {
  auto it = children_.find(pid);
  if (it == children_.end() || !it->second.cage) return std::nullopt;
  return it->second.cage->current_bytes();
}

std::optional<std::uint64_t> LocalLauncher::total_memory_in_use() const {
  return caps_ ? caps_->total_bytes() : std::nullopt;
}

}  // namespace runner
