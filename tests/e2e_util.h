// Helpers for tests that run the real runner binary on test_child.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace runner::testing {

namespace fs = std::filesystem;

// A fresh folder, removed with everything in it at the end of the test.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

// Where a runner's stdout and stderr go instead of their files, where set.
struct Streams {
  int out = -1;
  int err = -1;
};

// A runner process started in the background, its output going to files.
// `program`, where given, runs instead of runner (a shell around it, say).
class RunnerProcess {
 public:
  RunnerProcess(const std::vector<std::string>& args, const fs::path& cwd,
                Streams streams = Streams(), const std::string& program = "");
  ~RunnerProcess();  // kills it if it still runs
  RunnerProcess(const RunnerProcess&) = delete;
  RunnerProcess& operator=(const RunnerProcess&) = delete;

  pid_t pid() const { return pid_; }
  void signal(int sig) const;
  // Waits for the exit; returns the exit code, or 128 + signal.
  int wait();
  // Whether it has exited (collecting it if so), without waiting.
  bool exited();
  std::string out() const;
  std::string err() const;

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
  fs::path out_path_, err_path_;
};

struct Result {
  int code = -1;
  std::string out, err;
};

// Runs runner to the end with the given arguments in cwd.
Result run_runner(const std::vector<std::string>& args, const fs::path& cwd);
// Runs `sh -c script` to the end in cwd (for runner under a ulimit, say).
Result run_shell(const std::string& script, const fs::path& cwd);

// Blocks until pred() holds, re-checking whenever something changes in dir
// (inotify), for at most `limit`. Returns whether pred() held.
bool wait_until(const fs::path& dir, const std::function<bool()>& pred,
                std::chrono::seconds limit = std::chrono::seconds(60));

std::string read_file(const fs::path& path);
std::vector<std::string> read_lines(const fs::path& path);
std::size_t count_lines(const fs::path& path);

// How many times each cluster did `what` ("start", "end"), by the record
// test_child keeps with --record.
std::map<long, int> counted(const fs::path& record, const std::string& what);

// One value from a read-only query, as text ("" for NULL).
std::string query(const fs::path& db, const std::string& sql);

// Waits until the log in dir/runner.db shows n attempts running: runner
// commits starts in groups, so a child can be up before its attempt is.
bool wait_for_running(const fs::path& dir, int n);

// runner's arguments, then "--", test_child and the child's arguments.
std::vector<std::string> with_child(std::vector<std::string> runner_args,
                                    const std::vector<std::string>& child_args);

// Alive, and not a zombie waiting for whoever adopted it to collect it.
bool process_exists(pid_t pid);

// runner's worker: its child named runner-worker (0 before it is started).
pid_t worker_of(pid_t runner);

// runner's own cgroup folder in the hierarchy it will use, or a reason to skip.
std::optional<fs::path> cgroup_dir(std::string* why);

// Where the environment says cgroups must be there (RUNNER_TEST_REQUIRE_CGROUP,
// as the cgroup v2 guest sets it), their absence fails the test instead.
bool cgroup_required();

#define REQUIRE_CGROUP(dir)                                                         \
  std::string why_not;                                                              \
  auto dir = cgroup_dir(&why_not);                                                  \
  if (!dir && cgroup_required()) FAIL() << "no cgroup can be created: " << why_not; \
  if (!dir) GTEST_SKIP() << "no cgroup can be created on this machine: " << why_not

// The test child's path and the runner binary's.
std::string child_bin();
std::string runner_bin();

}  // namespace runner::testing
