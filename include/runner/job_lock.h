// One runner per job, by two locks. JobLock: on this machine, by a lock that
// does not live in the DB file, so that a DB deleted or replaced while its
// runner runs cannot let a second runner take the same job through the new
// file. It is an abstract Unix socket named after the DB's path and the job:
// the kernel releases it when its holder dies, however it dies, and it leaves
// nothing on disk. JobHold: the hold recorded in the DB, which also guards
// runners on other hosts that share the DB.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>

#include "runner/fd.h"
#include "runner/store.h"
#include "runner/sysinfo.h"

namespace runner {

class JobLock {
 public:
  // Takes the lock of `job` in the DB at `db` (whose folder exists), or
  // throws Error naming the runner that holds it.
  JobLock(const std::filesystem::path& db, const std::string& job);
  JobLock(const JobLock&) = delete;
  JobLock& operator=(const JobLock&) = delete;

  // The socket's name without its leading NUL, for tests.
  const std::string& name() const { return name_; }

 private:
  int try_bind();  // 0 or the errno

  Fd fd_;
  std::string name_;
};

// The pid of the process holding the lock named `name`, if one does.
std::optional<pid_t> job_lock_holder(const std::string& name);

// Whether a recorded holder may still run the job: on this host, while its
// process lives (same pid, same start, same boot); on another host, always
// (it cannot be checked from here).
bool holder_still_runs(const Holder& holder);

// The job's hold in the DB for as long as this lives: taken at construction
// (Error naming the holder when a live one has it; a dead holder's hold is
// taken over), released at destruction.
class JobHold {
 public:
  JobHold(Store& store, const Job& job);
  ~JobHold();
  JobHold(const JobHold&) = delete;
  JobHold& operator=(const JobHold&) = delete;

 private:
  Store& store_;
  const Job& job_;
  ProcessIdentity self_;
};

}  // namespace runner
