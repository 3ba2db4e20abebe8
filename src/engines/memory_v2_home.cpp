// Where runner's cgroups go on cgroup v2, and what it takes to put them there.
//
// v2 lets a cgroup hand a controller to its children only while it holds no
// process itself ("no internal processes"); only the root is exempt. runner
// sits in the cgroup it was started in: a unit's with Delegate=yes, a
// container's own, a user's under user@UID.service. So, before a run makes
// its folders there, every process of that cgroup moves into a leaf,
// `runner-leaf`, and memory is enabled for the cgroup's children; the run
// folders are made beside the leaf. The last runner to leave turns memory off
// again and moves the processes back, as it found them.
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

#include "engines/memory_internal.h"

namespace runner {
namespace fs = std::filesystem;
namespace {

using cgroupfs::procs_of;

// What a failed step of taking a home says, with its errno (0: none).
[[noreturn]] void fail(int error, const std::string& what) {
  throw CgroupError(error, what);
}

std::string comm_of(pid_t pid) {
  return cgroupfs::read_text(fmt::format("/proc/{}/comm", pid));
}

// Moves every process of `from` into `to`, until `from` holds none: a
// process may fork while it moves. Returns 0, or the errno of a process
// that cannot be moved (and which one in *stuck).
int move_all(const fs::path& from, const fs::path& to, pid_t* stuck) {
  Fd procs(::open((to / "cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC));
  if (!procs) {
    *stuck = 0;
    return errno;
  }
  for (int round = 0; round < 100; ++round) {
    auto pids = procs_of(from);
    if (pids.empty()) return 0;
    for (pid_t pid : pids) {
      auto text = std::to_string(pid);
      // A process that exited meanwhile has nothing left to move.
      if (::write(procs.get(), text.data(), text.size()) < 0 && errno != ESRCH) {
        *stuck = pid;
        return errno;
      }
    }
  }
  *stuck = procs_of(from).empty() ? 0 : procs_of(from).front();
  return *stuck == 0 ? 0 : EAGAIN;
}

bool memory_enabled(const fs::path& dir) {
  return cgroupfs::has_word(cgroupfs::read_text(dir / "cgroup.subtree_control"), "memory");
}

}  // namespace

CgroupHome::CgroupHome(const fs::path& own) {
  dir_ = own.filename() == kLeafName ? own.parent_path() : own;
  leaf_ = dir_ / kLeafName;
  // The root cgroup alone has no cgroup.type; a container's namespace root
  // is a cgroup like any other.
  root_ = ::access((dir_ / "cgroup.type").c_str(), F_OK) != 0;
  lock_.reset(::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!lock_) fail(errno, "cannot open cgroup " + dir_.string());
  // Runners that share the cgroup take and leave it one at a time.
  while (::flock(lock_.get(), LOCK_EX) != 0)
    if (errno != EINTR) fail(errno, "cannot lock cgroup " + dir_.string());
  try {
    enter();
  } catch (...) {
    ::flock(lock_.get(), LOCK_UN);
    throw;
  }
}

void CgroupHome::settled() {
  ::flock(lock_.get(), LOCK_UN);
}

void CgroupHome::enter() {
  auto offered = cgroupfs::read_text(dir_ / "cgroup.controllers");
  if (!cgroupfs::has_word(offered, "memory"))
    fail(0, fmt::format("the memory controller is not offered to cgroup {} (it offers: {})",
                        dir_.string(), offered.empty() ? "nothing" : offered));
  if (memory_enabled(dir_)) return;  // by another runner, or by whoever set the cgroup up
  if (!root_ && !procs_of(dir_).empty()) {
    if (::mkdir(leaf_.c_str(), 0755) != 0 && errno != EEXIST)
      fail(errno, "cannot create cgroup " + leaf_.string());
    pid_t stuck = 0;
    if (int err = move_all(dir_, leaf_, &stuck)) {
      put_back();
      fail(err, stuck ? fmt::format("cannot move process {} ({}) out of cgroup {}", stuck,
                                    comm_of(stuck), dir_.string())
                      : "cannot move processes into cgroup " + leaf_.string());
    }
  }
  if (int err = cgroupfs::write_text(dir_ / "cgroup.subtree_control", "+memory")) {
    put_back();
    fail(err, "cannot enable the memory controller for the children of cgroup " + dir_.string());
  }
  enabled_ = true;
}

// Memory off again for the cgroup's children, and its processes back in it.
// Fails quietly while another runner's folders still use memory there: the
// last to leave puts things back.
void CgroupHome::put_back() {
  bool leaf = ::access(leaf_.c_str(), F_OK) == 0;
  if (!leaf && !(root_ && enabled_)) return;
  if (memory_enabled(dir_) && cgroupfs::write_text(dir_ / "cgroup.subtree_control", "-memory"))
    return;
  if (root_ || !leaf) return;
  pid_t stuck = 0;
  for (int round = 0; round < 10; ++round) {
    if (move_all(leaf_, dir_, &stuck) != 0) return;
    if (::rmdir(leaf_.c_str()) == 0 || errno != EBUSY) return;
  }
}

CgroupHome::~CgroupHome() {
  while (::flock(lock_.get(), LOCK_EX) != 0)
    if (errno != EINTR) return;
  put_back();
  ::flock(lock_.get(), LOCK_UN);
}

}  // namespace runner
