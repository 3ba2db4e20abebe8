#include "runner/spawn.h"

#include <fcntl.h>
#include <unistd.h>

// Boost.Process has the vfork path but enables it only for old POSIX
// feature levels; glibc's vfork is fine.
#define BOOST_POSIX_HAS_VFORK 1
#include <sys/wait.h>

#include <boost/process/args.hpp>
#include <boost/process/child.hpp>
#include <boost/process/exe.hpp>
#include <boost/process/extend.hpp>
#include <boost/process/posix.hpp>
#include <cerrno>

extern char** environ;

namespace runner {
namespace bp = boost::process;
namespace {

// Whether the set-up before exec went through: each step's error stops it.
bool set_up(const SpawnRequest& r) {
  if (r.own_group && ::setpgid(0, 0) != 0) return false;
  if (::dup2(r.in_fd, STDIN_FILENO) < 0 || ::dup2(r.out_fd, STDOUT_FILENO) < 0) return false;
  int err = r.err_fd == SpawnRequest::kSameAsOut ? r.out_fd : r.err_fd;
  if (err != SpawnRequest::kKeep && ::dup2(err, STDERR_FILENO) < 0) return false;
  if (r.signals && r.signals->restore() != 0) return false;
  return !r.nofile || ::setrlimit(RLIMIT_NOFILE, r.nofile) == 0;
}

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
    e.env = request->envp ? request->envp : environ;
  }

  template <class Executor>
  void on_exec_setup(Executor& e) const {
    if (!set_up(*request)) {
      e.set_error(std::error_code(errno, std::system_category()), "setup failed");
      ::_exit(127);
    }
    // Into the cage before exec, so that not one page escapes the cap.
    if (request->cage) {
      if (int err = request->cage->enter(); err != 0) {
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

}  // namespace runner
