// One runner per job and DB on this machine, by a lock that does not live in
// the DB file: a DB deleted or replaced while its runner runs must not let a
// second runner take the same job through the new file. The lock is an
// abstract Unix socket named after the DB's path and the job: the kernel
// releases it when its holder dies, however it dies, and it leaves nothing on
// disk. (The hold recorded in the DB still guards runners on other hosts.)
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>

namespace runner {

class JobLock {
 public:
  // Takes the lock of `job` in the DB at `db` (whose folder exists), or
  // throws Error naming the runner that holds it.
  JobLock(const std::filesystem::path& db, const std::string& job);
  ~JobLock();
  JobLock(const JobLock&) = delete;
  JobLock& operator=(const JobLock&) = delete;

  // The socket's name without its leading NUL, for tests.
  const std::string& name() const { return name_; }

 private:
  int try_bind();  // 0 or the errno

  int fd_ = -1;
  std::string name_;
};

// The pid of the process holding the lock named `name`, if one does.
std::optional<pid_t> job_lock_holder(const std::string& name);

}  // namespace runner
