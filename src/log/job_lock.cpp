#include "runner/job_lock.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <system_error>

#include "runner/cluster.h"
#include "runner/error.h"
#include "runner/sysinfo.h"
#include "runner/words.h"

namespace runner {
namespace {

// The abstract address of a name: a leading NUL, then the name (not NUL-terminated).
socklen_t address_of(const std::string& name, sockaddr_un& addr) {
  addr = {};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path + 1, name.data(), name.size());
  return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
}

std::string lock_name(const std::filesystem::path& db, const std::string& job) {
  // The folder exists: its canonical path names the same folder however it
  // was reached (relative, through a link).
  auto folder = db.parent_path().empty() ? std::filesystem::path(".") : db.parent_path();
  auto where = std::filesystem::canonical(folder) / db.filename();
  return fmt::format("runner-job-{:016x}", stable_hash(fmt::format("{}\n{}", where.string(), job)));
}

// "pid 4242 on web1 since 2026-12-01 03:00:02", as the DB's hold says it.
std::string describe_lock_holder(std::optional<pid_t> pid) {
  if (!pid) return "another runner on this host";
  Holder holder;
  holder.process.pid = *pid;
  holder.process.host = host_name();
  if (auto started = process_started_at(*pid)) {
    holder.since = *started;
    return describe_holder(holder);
  }
  return fmt::format("pid {} on {}", *pid, holder.process.host);
}

}  // namespace

JobLock::JobLock(const std::filesystem::path& db, const std::string& job)
    : name_(lock_name(db, job)) {
  // A runner killed while starting a child leaves that child a copy of the
  // lock until it execs (the socket closes on exec), a few milliseconds at
  // most: while the holder named is dead, try again for a moment.
  constexpr auto kDeadHolderGrace = std::chrono::seconds(2);
  auto give_up = std::chrono::steady_clock::now() + kDeadHolderGrace;
  for (;;) {
    int err = try_bind();
    if (err == 0) return;
    if (err != EADDRINUSE) throw std::system_error(err, std::generic_category(), "bind " + name_);
    auto holder = job_lock_holder(name_);
    bool holder_dead = holder && !process_start_ticks(*holder);
    if (!holder_dead || std::chrono::steady_clock::now() >= give_up)
      throw Error(
          fmt::format("job '{}' in {} is already being run by {}; wait for it to finish or stop it",
                      job, db.string(), describe_lock_holder(holder)));
    ::usleep(5000);
  }
}

int JobLock::try_bind() {
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return errno;
  sockaddr_un addr{};
  auto len = address_of(name_, addr);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), len) != 0 ||
      ::listen(fd.get(), 8) != 0)
    return errno;
  fd_ = std::move(fd);
  return 0;
}

std::optional<pid_t> job_lock_holder(const std::string& name) {
  // The holder listens and never accepts: a connection waits in its queue,
  // and the socket's credentials name the process that bound it. Non-blocking,
  // so that a full queue is an answer ("someone"), not a wait.
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return std::nullopt;
  sockaddr_un addr{};
  auto len = address_of(name, addr);
  std::optional<pid_t> pid;
  ucred cred{};
  socklen_t cred_len = sizeof cred;
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), len) == 0 &&
      ::getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) == 0)
    pid = cred.pid;
  return pid;
}

bool holder_still_runs(const Holder& holder) {
  return check_alive(holder.process) != Liveness::kDead;
}

JobHold::JobHold(Store& store, const Job& job)
    : store_(store), job_(job), self_(current_process()) {
  auto live = store_.acquire_hold(job_, self_, holder_still_runs);
  if (live)
    throw Error(fmt::format("job '{}' is already being run by {}; wait for it to finish or stop it",
                            job_.name, describe_holder(*live)));
}

JobHold::~JobHold() {
  try {
    store_.release_hold(job_, self_);
  } catch (const std::exception& e) {
    spdlog::warn("could not release the hold on job '{}': {}", job_.name, e.what());
  }
}

}  // namespace runner
