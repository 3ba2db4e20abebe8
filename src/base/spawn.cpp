#include "runner/spawn.h"

#include <fcntl.h>
#include <unistd.h>

// Boost.Process has the vfork path but enables it only for old POSIX
// feature levels; glibc's vfork is fine.
#define BOOST_POSIX_HAS_VFORK 1
#include <sys/syscall.h>
#include <sys/uio.h>
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

// The child's note of itself: one write, so that a reader finds it whole or
// cut short, never mixed with another line. Best effort: without it, the
// start is known as before, without its process.
void write_note(const ProcessNote& note) {
  char digits[24];
  char* end = digits + sizeof digits;
  char* at = end;
  *--at = '\n';
  for (auto pid = static_cast<unsigned long>(::getpid()); at == end - 1 || pid > 0; pid /= 10)
    *--at = static_cast<char>('0' + pid % 10);
  iovec parts[] = {{const_cast<char*>(note.line.data()), note.line.size()},
                   {at, static_cast<std::size_t>(end - at)}};
  while (::writev(note.fd, parts, 2) < 0 && errno == EINTR) {
  }
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
    if (request->note && request->note->fd >= 0) write_note(*request->note);
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

Fd open_pidfd(pid_t pid) {
  return Fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
}

ChildLook look_at_child(pid_t pid) {
  siginfo_t info{};
  ChildEnd end;
  // glibc's waitid passes no rusage; the system call fills it, also with
  // WNOWAIT.
  while (::syscall(SYS_waitid, P_PID, pid, &info, WEXITED | WNOHANG | WNOWAIT, &end.usage) != 0)
    if (errno != EINTR) return {};  // ECHILD: not runner's child
  if (info.si_pid != pid) return {true, std::nullopt};
  if (info.si_code == CLD_EXITED)
    end.status = W_EXITCODE(info.si_status, 0);
  else
    end.status = info.si_status | (info.si_code == CLD_DUMPED ? WCOREFLAG : 0);
  return {true, end};
}

std::optional<ChildEnd> peek_end(pid_t pid) {
  return look_at_child(pid).end;
}

void reap_child(pid_t pid) {
  while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
}

void reap_ended_children(const std::function<bool(pid_t)>& keep) {
  for (;;) {
    siginfo_t info{};
    if (::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid == 0) return;
    if (keep(info.si_pid)) return;
    reap_child(info.si_pid);
  }
}

}  // namespace runner
