#include "engines/local_spawn.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

// vfork instead of fork: the child borrows runner's memory until it execs, so
// no page tables are copied and no copy-on-write faults follow, which is most
// of what a start costs. Boost.Process has the vfork path but enables it only
// for old POSIX feature levels; glibc's vfork is fine.
#define BOOST_POSIX_HAS_VFORK 1
#include <sys/wait.h>

#include <boost/process/args.hpp>
#include <boost/process/child.hpp>
#include <boost/process/exe.hpp>
#include <boost/process/extend.hpp>
#include <boost/process/posix.hpp>
#include <cerrno>

namespace runner {
namespace bp = boost::process;
namespace {

// Runs in the vforked child before exec, and in the parent around the vfork.
// Between vfork and exec only async-signal-safe calls are allowed, and
// nothing that touches runner's memory: no allocation, no logging. A failure
// there is left in the (shared) executor by set_error with a message short
// enough to need no allocation, and surfaces as a failed start in the parent.
struct ChildSetup : bp::extend::handler {
  const SpawnRequest* request;
  pid_t* failed_pid;

  template <class Executor>
  void on_setup(Executor& e) const {
    e.env = request->envp;
  }

  template <class Executor>
  void on_exec_setup(Executor& e) const {
    const auto& r = *request;
    // Its own process group, so Ctrl-C in the terminal reaches the child only
    // through runner, and runner can signal the whole tree at once.
    if (::setpgid(0, 0) != 0 || ::dup2(r.null_fd, STDIN_FILENO) < 0 ||
        ::dup2(r.log_fd, STDOUT_FILENO) < 0 || ::dup2(r.log_fd, STDERR_FILENO) < 0 ||
        r.signals->restore() != 0 || (r.nofile && ::setrlimit(RLIMIT_NOFILE, r.nofile) != 0)) {
      e.set_error(std::error_code(errno, std::system_category()), "setup failed");
      ::_exit(127);
    }
    // Into the cage before exec, so that not one page escapes the cap.
    if (r.cage) {
      if (int err = r.cage->enter(); err != 0) {
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

}  // namespace

SpawnResult spawn_child(const SpawnRequest& request) {
  pid_t failed_pid = -1;
  ChildSetup setup;
  setup.request = &request;
  setup.failed_pid = &failed_pid;
  std::error_code ec;
  std::vector<std::string> args(request.argv->begin() + 1, request.argv->end());
  bp::child child(bp::exe = request.path, bp::args = args, setup, bp::posix::use_vfork, ec);
  if (ec) {
    SpawnResult failed{-1, ec.value(), failed_pid > 0};
    // The child could not exec. Boost.Process may have collected it already;
    // if not, it is ours alone to collect.
    if (failed.exec_failed) ::waitpid(failed_pid, nullptr, 0);
    return failed;
  }
  // runner reaps its children itself with wait4, which Boost.Process's own
  // wait would pre-empt and lose the rusage.
  child.detach();
  return SpawnResult{child.id(), 0, false};
}

int create_log(int dir_fd, std::string& name) {
  constexpr int kMostNames = 1000;
  auto dot = name.rfind('.');
  auto stem = name.substr(0, dot);
  auto extension = dot == std::string::npos ? std::string() : name.substr(dot);
  for (int n = 1; n <= kMostNames; ++n) {
    if (n > 1) name = fmt::format("{}-{}{}", stem, n, extension);
    int fd =
        ::openat(dir_fd, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd >= 0 || errno != EEXIST) return fd;
  }
  errno = EEXIST;
  return -1;
}

}  // namespace runner
