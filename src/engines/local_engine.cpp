#include "runner/local_engine.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "engines/local_spawn.h"
#include "engines/orphans.h"
#include "runner/sysinfo.h"
#include "runner/units.h"
#include "runner/words.h"

extern char** environ;

namespace runner {
namespace {

// A cgroup OOM-killed at its own limit peaks within a few pages of it.
constexpr std::uint64_t kOwnLimitSlack = 8ULL << 20;

double seconds(const timeval& tv) {
  return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
}

bool is_executable_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

// Which failure a start's errno is: runner short of open files, or its own
// means failing otherwise.
AttemptNotStarted::Why why_of(int err) {
  return err == EMFILE || err == ENFILE ? AttemptNotStarted::Why::kShortOfFiles
                                        : AttemptNotStarted::Why::kEnvironment;
}

AttemptNotStarted not_started(const AttemptSpec& spec, AttemptNotStarted::Why why,
                              std::string message) {
  AttemptNotStarted n;
  n.id = spec.id;
  n.why = why;
  n.message = std::move(message);
  return n;
}

// The cluster and attempt a process was started for, from its RUNNER_*
// variables; {0, 0} for a process without them.
struct Tag {
  ClusterId cluster = 0;
  std::uint32_t attempt = 0;
  bool operator==(const Tag&) const = default;
};

Tag tag_of(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/environ", pid), std::ios::binary);
  std::string env((std::istreambuf_iterator<char>(in)), {});
  Tag tag;
  for (std::size_t at = 0; at < env.size();) {
    auto end = env.find('\0', at);
    if (end == std::string::npos) end = env.size();
    auto var = std::string_view(env).substr(at, end - at);
    auto read = [&](std::string_view name, auto& into) {
      if (!var.starts_with(name)) return;
      auto digits = var.substr(name.size());
      std::from_chars(digits.data(), digits.data() + digits.size(), into);
    };
    read("RUNNER_CLUSTER=", tag.cluster);
    read("RUNNER_ATTEMPT=", tag.attempt);
    at = end + 1;
  }
  return tag;
}

// A child's environment: runner's own plus what tells it which cluster it is.
class ChildEnvironment {
 public:
  ChildEnvironment(const std::vector<char*>& base, const AttemptSpec& spec)
      : vars_{fmt::format("RUNNER_CLUSTER={}", spec.cluster),
              fmt::format("RUNNER_CLUSTERS={}", spec.clusters),
              fmt::format("RUNNER_ATTEMPT={}", spec.attempt),
              fmt::format("RUNNER_JOB={}", spec.job)},
        envp_(base) {
    for (auto& v : vars_) envp_.push_back(v.data());
    envp_.push_back(nullptr);
  }
  ChildEnvironment(const ChildEnvironment&) = delete;  // envp_ points into vars_
  ChildEnvironment& operator=(const ChildEnvironment&) = delete;
  char** envp() { return envp_.data(); }

 private:
  std::string vars_[4];
  std::vector<char*> envp_;
};

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
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return 0;  // execute-only: the start will tell
  auto n = ::read(fd.get(), head, sizeof head);
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

MemoryKill whose_limit(std::uint64_t peak_bytes, std::optional<std::uint64_t> own_cap,
                       bool run_is_limited) {
  if (run_is_limited && own_cap && peak_bytes + kOwnLimitSlack < *own_cap) return MemoryKill::kPool;
  return MemoryKill::kOwnCap;
}

LocalEngine::LocalEngine(LocalEngineOptions options)
    : options_(std::move(options)),
      dev_null_(::open("/dev/null", O_RDONLY | O_CLOEXEC)),
      ends_(::epoll_create1(EPOLL_CLOEXEC)) {
  if (!dev_null_) throw std::system_error(errno, std::generic_category(), "open /dev/null");
  if (!ends_) throw std::system_error(errno, std::generic_category(), "epoll_create1");
  for (char** e = environ; e && *e; ++e)
    if (std::strncmp(*e, "RUNNER_", 7) != 0) base_env_.push_back(*e);
  // Every process of this run carries its id: after a kill -9 of runner, the
  // next one finds them all by it (see orphans.h).
  run_id_ = options_.run.empty() ? runner::run_id(current_process()) : options_.run;
  run_var_ = "RUNNER_RUN=" + run_id_;
  base_env_.push_back(run_var_.data());
  if (!options_.site.empty()) {
    site_var_ = "RUNNER_SITE=" + options_.site;
    base_env_.push_back(site_var_.data());
  }
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
    spdlog::warn("cannot become a child subreaper ({}): descendants that daemonise escape runner",
                 std::strerror(errno));
  // Where cgroups allow, the kernel itself holds the run to the budget.
  if (options_.run_limit && options_.caps && !options_.caps->set_total_limit(*options_.run_limit))
    spdlog::warn("could not set the {} budget on the run's cgroup",
                 format_size_kib(*options_.run_limit / 1024));
  reserve_descriptors(options_.parallel);
}

LocalEngine::~LocalEngine() {
  // Nothing runner started outlives it: kill what is left and collect it.
  for (auto& [pid, child] : children_) {
    ::kill(-pid, SIGKILL);
    ::kill(pid, SIGKILL);
  }
  // A descendant is adopted only once the process between it and runner has
  // died, which may be after any one look: look again until none is left.
  for (int i = 0; i < 2000; ++i) {
    kill_strays(true);
    pid_t pid = ::waitpid(-1, nullptr, WNOHANG);
    if (pid < 0) break;  // ECHILD: all collected
    if (pid == 0) ::usleep(1000);
  }
}

// Makes room for `parallel` clusters at once: each holds a few descriptors
// in runner (its log while starting, its pidfd; with cgroups, its cgroup
// folder, cgroup.procs, peak and OOM count). Raises the soft RLIMIT_NOFILE as far as
// the hard limit allows when it is too low; children get the original.
void LocalEngine::reserve_descriptors(std::size_t parallel) {
  constexpr std::size_t kPerCluster = 6, kForRunner = 64;
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

std::optional<EngineEvent> LocalEngine::start(AttemptSpec spec) {
  auto event = try_start(spec);
  // Cgroups kept for later attempts hold open files: let them go, once.
  auto* failed = std::get_if<AttemptNotStarted>(&event);
  if (failed && failed->why == AttemptNotStarted::Why::kShortOfFiles && options_.caps &&
      options_.caps->release_spares())
    event = try_start(spec);
  return event;
}

std::optional<AttemptNotStarted> LocalEngine::open_log_folder(const AttemptSpec& spec) {
  // The log folder stays open: each log is created relative to it, without
  // walking the whole path again.
  if (spec.log_dir != log_dir_ || !log_dir_fd_) {
    // The job's folder itself is never a link (the logs root above it may be).
    log_dir_fd_.reset(
        ::open(spec.log_dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    log_dir_ = spec.log_dir;
    if (!log_dir_fd_) {
      int err = errno;
      return not_started(
          spec, why_of(err),
          fmt::format("cannot open log folder {}: {}", spec.log_dir, std::strerror(err)));
    }
  }
  // A log folder with no room left fails every start: stop, do not fail clusters.
  struct statvfs space {};
  if (::fstatvfs(log_dir_fd_.get(), &space) == 0 && space.f_bavail * space.f_frsize < 64UL * 1024)
    return not_started(
        spec, AttemptNotStarted::Why::kEnvironment,
        fmt::format("log folder {}/ is full: {}", spec.log_dir, std::strerror(ENOSPC)));
  return std::nullopt;
}

std::optional<AttemptNotStarted> LocalEngine::resolve(const AttemptSpec& spec) {
  // Clusters nearly always run the same program: resolve it once, not per start.
  const auto& program = spec.argv.front();
  if (program == resolved_name_) return std::nullopt;
  auto resolved = resolve_program(program);
  if (resolved.error != 0)
    return not_started(
        spec, AttemptNotStarted::Why::kCommand,
        fmt::format("cannot execute {}: {}", program, std::strerror(resolved.error)));
  resolved_name_ = program;
  resolved_path_ = resolved.path;
  return std::nullopt;
}

// The stream is made at the first start: one file (and its index) for all of
// this engine's attempts.
std::optional<AttemptNotStarted> LocalEngine::open_stream(const AttemptSpec& spec) {
  if (stream_ && stream_dir_ == spec.log_dir) return std::nullopt;
  try {
    stream_ = std::make_unique<StreamWriter>(log_dir_fd_.get(), spec.log_dir, run_id_);
    stream_dir_ = spec.log_dir;
  } catch (const std::system_error& e) {
    stream_.reset();
    return not_started(spec, why_of(e.code().value()), e.what());
  }
  if (!outputs_) outputs_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!outputs_) return not_started(spec, why_of(errno), "epoll_create1 failed");
  return std::nullopt;
}

// Files form: the attempt's own file, created new. Stream form: a pipe,
// whose read end the engine watches; a pipe costs less than a file's
// creation, which on a journalling filesystem is most of a start.
std::optional<AttemptNotStarted> LocalEngine::open_output(const AttemptSpec& spec, Output& out) {
  if (options_.log_format == LogFormat::kFiles) {
    out.log_name = spec.log_name;
    out.child_end.reset(create_log(log_dir_fd_.get(), out.log_name));
    if (!out.child_end) {
      int err = errno;
      return not_started(spec, why_of(err),
                         fmt::format("cannot create log {}/{}: {}", spec.log_dir, spec.log_name,
                                     std::strerror(err)));
    }
    out.log_path = fmt::format("{}/{}", spec.log_dir, out.log_name);
    return std::nullopt;
  }
  if (auto failed = open_stream(spec)) return failed;
  int ends[2];
  if (::pipe2(ends, O_CLOEXEC) != 0) {
    int err = errno;
    return not_started(spec, why_of(err),
                       fmt::format("cannot make a pipe: {}", std::strerror(err)));
  }
  out.read_end.reset(ends[0]);
  out.child_end.reset(ends[1]);
  // Only the engine's end: the child's stdout stays blocking.
  ::fcntl(ends[0], F_SETFL, O_NONBLOCK);
  out.log_path = stream_ref(stream_->path(), spec.cluster, spec.attempt);
  return std::nullopt;
}

std::string LocalEngine::log_path_for(const AttemptSpec& spec) {
  if (options_.log_format == LogFormat::kStream && !open_log_folder(spec) && !open_stream(spec))
    return stream_ref(stream_->path(), spec.cluster, spec.attempt);
  return fmt::format("{}/{}", spec.log_dir, spec.log_name);
}

EngineEvent LocalEngine::try_start(const AttemptSpec& spec) {
  if (auto failed = open_log_folder(spec)) return *failed;
  if (auto failed = resolve(spec)) return *failed;
  std::unique_ptr<Cage> cage;
  if (options_.caps) {
    try {
      cage = options_.caps->cage(spec.mem_limit);
    } catch (const std::system_error& e) {
      return not_started(spec, why_of(e.code().value()), e.what());
    }
  }
  Output out;
  if (auto failed = open_output(spec, out)) return *failed;
  ChildEnvironment env(base_env_, spec);
  SpawnRequest request{resolved_path_,  &spec.argv,
                       env.envp(),      out.child_end.get(),
                       dev_null_.get(), &options_.inherited,
                       cage.get(),      children_nofile_ ? &*children_nofile_ : nullptr};
  ProcessNote note;
  if (options_.process_note) {
    note = options_.process_note(spec);
    request.note = &note;
  }
  auto spawned = spawn_child(request);
  if (spawned.error == 0) {
    Child child{spec, std::move(cage), out.log_path, out.log_name};
    child.output = std::move(out.read_end);
    if (spec.timeout) child.timeout_at = Clock::now() + *spec.timeout;
    auto& placed = children_.emplace(spawned.pid, std::move(child)).first->second;
    watch_output(spawned.pid, placed);
    watch_end(spawned.pid, placed);
    pid_of_[spec.id] = spawned.pid;
    return AttemptStarted{spec.id, Placement{host_, spawned.pid}, out.log_path, wall_clock_now(),
                          cap_name()};
  }
  if (spawned.exec_failed) return exec_failed(spec, out, spawned.error);
  // No process could be made: the machine is short of them for now.
  if (!out.log_name.empty()) ::unlinkat(log_dir_fd_.get(), out.log_name.c_str(), 0);
  auto why = spawned.error == EAGAIN || spawned.error == ENOMEM ? AttemptNotStarted::Why::kNoProcess
                                                                : why_of(spawned.error);
  return not_started(spec, why,
                     fmt::format("cannot start {}: fork failed: {}", spec.argv.front(),
                                 std::strerror(spawned.error)));
}

// The attempt failed at its exec: recorded, with its log saying why.
EngineEvent LocalEngine::exec_failed(const AttemptSpec& spec, const Output& out, int error) {
  auto failed =
      not_started(spec, AttemptNotStarted::Why::kCommand,
                  fmt::format("cannot execute {}: {}", spec.argv.front(), std::strerror(error)));
  auto line = fmt::format("runner: {}\n", failed.message);
  bool kept = options_.log_format == LogFormat::kFiles
                  ? ::write(out.child_end.get(), line.data(), line.size()) >= 0
                  : stream_->append(spec.cluster, spec.attempt, line) == 0;
  if (kept) failed.log_path = out.log_path;
  failed.cap = cap_name();
  return failed;
}

// Its end is told by its pidfd; without one, it is looked at on every SIGCHLD.
void LocalEngine::watch_end(pid_t pid, Child& child) {
  child.ended = open_pidfd(pid);
  epoll_event e{};
  e.events = EPOLLIN;
  e.data.u64 = static_cast<std::uint64_t>(pid);
  if (child.ended && ::epoll_ctl(ends_.get(), EPOLL_CTL_ADD, child.ended.get(), &e) == 0) return;
  child.ended.reset();
  ++unwatched_;
}

void LocalEngine::watch_output(pid_t pid, const Child& child) {
  if (!child.output) return;
  epoll_event e{};
  e.events = EPOLLIN;
  e.data.u64 = static_cast<std::uint64_t>(pid);
  if (::epoll_ctl(outputs_.get(), EPOLL_CTL_ADD, child.output.get(), &e) != 0)
    spdlog::warn("cannot watch the output of cluster {}/{}: {}", child.spec.cluster,
                 child.spec.clusters, std::strerror(errno));
}

// What the children wrote since the last look: one read each that is ready,
// so that a talkative child does not keep the others waiting.
void LocalEngine::read_outputs() {
  epoll_event ready[64];
  int n = ::epoll_wait(outputs_.get(), ready, 64, 0);
  for (int i = 0; i < n; ++i) {
    auto it = children_.find(static_cast<pid_t>(ready[i].data.u64));
    if (it != children_.end()) read_output(it->second, false);
  }
}

// Appends what the child's pipe holds to the stream; with `to_the_end`,
// everything there is (its process has ended). Closes the pipe at its end.
void LocalEngine::read_output(Child& child, bool to_the_end) {
  if (buffer_.empty()) buffer_.resize(std::size_t{1} << 16);
  while (child.output) {
    ssize_t n = ::read(child.output.get(), buffer_.data(), buffer_.size());
    if (n < 0 && errno == EINTR) continue;
    if (n == 0 || (n < 0 && errno != EAGAIN)) {
      // Its last writer is gone (closing also takes it out of the epoll set).
      child.output.reset();
      return;
    }
    if (n < 0) return;  // nothing more for now
    keep_output(child, std::string_view(buffer_.data(), static_cast<std::size_t>(n)));
    if (!to_the_end) return;
  }
}

void LocalEngine::keep_output(Child& child, std::string_view data) {
  child.wrote = true;
  if (child.spec.mem_limit && options_.caps &&
      options_.caps->mechanism() == CapMechanism::kRlimit) {
    constexpr std::size_t kTail = std::size_t{64} * 1024;
    child.tail.append(data);
    if (child.tail.size() > kTail) child.tail.erase(0, child.tail.size() - kTail);
  }
  int err = stream_->append(child.spec.cluster, child.spec.attempt, data);
  if (err == 0 || stream_failed_) return;
  stream_failed_ = true;
  spdlog::warn("cannot append to {}: {}; clusters' output is lost until it can", stream_->path(),
               std::strerror(err));
}

void LocalEngine::stop(AttemptId id, StopMode mode) {
  auto it = pid_of_.find(id);
  if (it == pid_of_.end()) return;
  auto& child = children_.at(it->second);
  if (mode == StopMode::kNow) {
    send(it->second, child, SIGKILL);
    child.kill_at.reset();
    return;
  }
  // Stopped by runner, it is no longer timed: its end is runner's doing.
  child.timeout_at.reset();
  send(it->second, child, SIGTERM);
  if (!child.kill_at) child.kill_at = Clock::now() + options_.grace;
}

// Signals a child's whole process group (and its cgroup); says so, once,
// when it cannot be reached.
void LocalEngine::send(pid_t pid, Child& child, int sig) {
  // The child leads its own group: signal the group, so grandchildren get it
  // too. The child is not reaped yet, so its group id cannot have been reused.
  // The group succeeds when any one of its processes could be signalled.
  int err = ::kill(-pid, sig) == 0 ? 0 : errno;
  // A stopped child cannot act on SIGTERM until it is continued.
  if (sig == SIGTERM) ::kill(-pid, SIGCONT);
  // Processes that left the group (setsid) are still in the cgroup.
  if (child.cage) child.cage->signal_all(sig);
  if (err == 0 || err == ESRCH || !child.unstoppable.empty()) return;
  child.unstoppable = fmt::format("{} refused: {}", signal_name(sig), std::strerror(err));
  spdlog::warn("cluster {}/{}: could not stop it ({}); it runs on until it ends",
               child.spec.cluster, child.spec.clusters, child.unstoppable);
}

// Timeouts and the end of grace periods, each child on its own clock.
void LocalEngine::enforce_deadlines() {
  auto now = Clock::now();
  for (auto& [pid, child] : children_) {
    if (child.timeout_at && now >= *child.timeout_at) {
      child.timeout_at.reset();
      child.timed_out = true;
      spdlog::warn("cluster {}/{}: {} timeout reached; stopping it", child.spec.cluster,
                   child.spec.clusters, format_duration(*child.spec.timeout));
      send(pid, child, SIGTERM);
      if (!child.kill_at) child.kill_at = now + options_.grace;
    }
    if (child.kill_at && now >= *child.kill_at) {
      send(pid, child, SIGKILL);
      child.kill_at.reset();
    }
  }
}

std::optional<Clock::time_point> LocalEngine::next_deadline() const {
  std::optional<Clock::time_point> earliest;
  for (const auto& [pid, child] : children_)
    for (auto t : {child.timeout_at, child.kill_at})
      if (t && (!earliest || *t < *earliest)) earliest = t;
  return earliest;
}

std::vector<EngineEvent> LocalEngine::wait(std::optional<Clock::time_point> deadline, int wake_fd) {
  for (;;) {
    child_ended_.drain();
    reap();
    enforce_deadlines();
    if (!events_.empty()) return std::exchange(events_, {});
    if (options_.caps) options_.caps->tidy();
    // Sleep until a child ends (SIGCHLD stays blocked, so one that ends
    // between the reap above and here still wakes us), wake_fd is readable,
    // or the earlier of the caller's deadline and our own passes.
    auto until = earliest(deadline, next_deadline());
    timespec ts = until ? time_left(*until) : timespec{};
    // Stream form: or a child wrote something.
    pollfd fds[] = {
        {child_ended_.fd(), POLLIN, 0}, {wake_fd, POLLIN, 0}, {outputs_.get(), POLLIN, 0}};
    int ready = ::ppoll(fds, 3, until ? &ts : nullptr, nullptr);
    if (ready < 0 && errno != EINTR)
      throw std::system_error(errno, std::generic_category(), "ppoll");
    if (fds[2].revents & POLLIN) read_outputs();
    if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) return {};
    // Children that never stop writing do not hold the caller past its deadline.
    bool only_output = ready > 0 && !(fds[0].revents & POLLIN);
    if (until == deadline && (ready == 0 || (only_output && Clock::now() >= *until))) return {};
  }
}

// Children that ended since the last look are told of; those told of at
// the last wait() are reaped now, their ends acted on.
void LocalEngine::reap() {
  for (pid_t pid : std::exchange(to_reap_, {})) reap_child(pid);
  bool cluster_ended = false;
  for (pid_t pid : ended_children()) {
    auto end = peek_end(pid);
    if (!end) continue;
    end_child(pid, *end);
    cluster_ended = true;
  }
  reap_adopted_descendants();
  // A cgroup takes every descendant with its cluster; without one, adopted
  // descendants are looked for.
  if (cluster_ended && !has_cgroups()) kill_strays(false);
}

// The children whose pidfd says they ended, and those without one. One
// look takes them all: a pidfd stays readable until its child is ended here.
std::vector<pid_t> LocalEngine::ended_children() {
  std::vector<pid_t> out;
  std::vector<epoll_event> ready(std::max<std::size_t>(children_.size(), 1));
  int n = ::epoll_wait(ends_.get(), ready.data(), static_cast<int>(ready.size()), 0);
  out.reserve(static_cast<std::size_t>(std::max(n, 0)) + unwatched_);
  for (int i = 0; i < n; ++i) out.push_back(static_cast<pid_t>(ready[i].data.u64));
  if (unwatched_ > 0)
    for (const auto& [pid, child] : children_)
      if (!child.ended) out.push_back(pid);
  return out;
}

void LocalEngine::end_child(pid_t pid, const ChildEnd& end) {
  auto it = children_.find(pid);
  if (it == children_.end()) return;
  auto& child = it->second;
  // What is left of its process group goes with it. The group's id cannot
  // have been reused: the child, not reaped yet, still holds it.
  ::kill(-pid, SIGKILL);
  // All it wrote is in its pipe by now; what is left of its group is dying.
  read_output(child, true);
  child.output.reset();
  if (!child.ended) --unwatched_;
  events_.push_back(AttemptEnded{child.spec.id, outcome_of(child, end)});
  pid_of_.erase(child.spec.id);
  if (options_.reap_when_released)
    unreleased_.emplace(child.spec.id, pid);
  else
    to_reap_.push_back(pid);
  children_.erase(it);  // its pidfd closed, out of the epoll set
}

void LocalEngine::release(AttemptId id) {
  auto it = unreleased_.find(id);
  if (it == unreleased_.end()) return;
  to_reap_.push_back(it->second);
  unreleased_.erase(it);
}

// Descendants adopted once their parent died (runner is their subreaper)
// are collected as they end. The first child that ended being a cluster's
// own process, told of and not reaped yet, the rest wait for the next look.
void LocalEngine::reap_adopted_descendants() {
  reap_ended_children([&](pid_t pid) {
    return children_.contains(pid) ||
           std::find(to_reap_.begin(), to_reap_.end(), pid) != to_reap_.end() ||
           std::any_of(unreleased_.begin(), unreleased_.end(),
                       [&](const auto& entry) { return entry.second == pid; });
  });
}

Outcome outcome_of_end(const ChildEnd& end) {
  const auto& [status, usage] = end;
  Outcome out;
  if (WIFEXITED(status)) out.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) out.killed_by = WTERMSIG(status);
  out.finished_at = wall_clock_now();
  out.user_cpu_s = seconds(usage.ru_utime);
  out.sys_cpu_s = seconds(usage.ru_stime);
  out.rss_peak_kib = static_cast<std::uint64_t>(usage.ru_maxrss);
  return out;
}

Outcome LocalEngine::outcome_of(Child& child, const ChildEnd& end) {
  auto out = outcome_of_end(end);
  out.timed_out = child.timed_out;
  out.unstoppable = child.unstoppable;
  judge_memory(child, out);
  drop_empty_log(child, out);
  return out;
}

// An attempt that wrote nothing keeps nothing: in files form its empty file
// goes, and the log records that it wrote nothing.
void LocalEngine::drop_empty_log(const Child& child, Outcome& out) {
  if (options_.log_format == LogFormat::kStream) {
    out.wrote_nothing = !child.wrote;
    return;
  }
  struct stat st {};
  if (child.log_name.empty() || child.spec.log_dir != log_dir_ ||
      ::fstatat(log_dir_fd_.get(), child.log_name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 ||
      !S_ISREG(st.st_mode) || st.st_size != 0)
    return;
  out.wrote_nothing = ::unlinkat(log_dir_fd_.get(), child.log_name.c_str(), 0) == 0;
}

// What the cage saw: the cgroup's peak and OOM kills, which are certain; or,
// under an rlimit, the signs of a failed allocation in the log, which are not.
void LocalEngine::judge_memory(Child& child, Outcome& out) {
  if (!child.cage) return;
  auto use = child.cage->measure();
  child.cage->release();
  if (use.peak_bytes) out.cgroup_peak_kib = *use.peak_bytes / 1024;
  if (use.oom_kills > 0) {
    out.memory_kill = whose_limit(use.peak_bytes.value_or(0), child.spec.mem_limit,
                                  options_.run_limit.has_value());
    out.memory_note =
        fmt::format("the kernel killed {} process(es) of it for memory", use.oom_kills);
    return;
  }
  bool failed = out.killed_by || out.exit_code.value_or(0) != 0;
  if (failed && child.spec.mem_limit && options_.caps->mechanism() == CapMechanism::kRlimit) {
    auto sign = options_.log_format == LogFormat::kStream ? allocation_failure_sign_in(child.tail)
                                                          : allocation_failure_sign(child.log_path);
    if (sign) {
      out.memory_kill = MemoryKill::kOwnCap;
      out.memory_note = fmt::format("likely: under the rlimit cap its log shows '{}'", *sign);
    }
  }
}

// Children of runner that are not a running cluster's own process were
// adopted: descendants whose parent died (runner is their subreaper). Each is
// killed once the attempt whose RUNNER_* variables it carries is no longer
// running; with `all`, every one.
void LocalEngine::kill_strays(bool all) {
  std::ifstream in(fmt::format("/proc/self/task/{}/children", ::getpid()));
  std::vector<pid_t> strays;
  for (pid_t pid; in >> pid;)
    if (!children_.contains(pid)) strays.push_back(pid);
  for (pid_t pid : strays) {
    if (!all) {
      auto tag = tag_of(pid);
      bool owner_runs = std::any_of(children_.begin(), children_.end(), [&](const auto& entry) {
        return Tag{entry.second.spec.cluster, entry.second.spec.attempt} == tag;
      });
      if (owner_runs) continue;
    }
    ::kill(pid, SIGKILL);
  }
}

std::optional<std::vector<FoundExecution>> LocalEngine::settle(const Leftovers& left,
                                                               LeftoverPolicy policy, int wake_fd) {
  auto found = find_leftovers(left);
  if (!settle_leftovers(found.pids, policy, wake_fd)) return std::nullopt;
  return std::move(found.found);
}

bool LocalEngine::has_cgroups() const {
  return options_.caps && (options_.caps->mechanism() == CapMechanism::kCgroupV1 ||
                           options_.caps->mechanism() == CapMechanism::kCgroupV2);
}

std::string LocalEngine::cap_name() const {
  return options_.caps ? to_string(options_.caps->mechanism()) : "none";
}

std::optional<std::uint64_t> LocalEngine::memory_in_use(AttemptId id) const {
  auto it = pid_of_.find(id);
  if (it == pid_of_.end()) return std::nullopt;
  const auto& child = children_.at(it->second);
  return child.cage ? child.cage->current_bytes() : std::nullopt;
}

std::optional<std::uint64_t> LocalEngine::total_memory_in_use() const {
  return options_.caps ? options_.caps->total_bytes() : std::nullopt;
}

}  // namespace runner
