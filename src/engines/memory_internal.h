// Shared by memory.cpp and memory_cgroup.cpp: reading and writing cgroupfs files.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "runner/fd.h"
#include "runner/memory.h"

namespace runner {
namespace cgroupfs {

enum class Version { kV1, kV2 };

std::string read_text(const std::filesystem::path& file);  // trimmed; "" if unreadable
std::optional<std::uint64_t> read_u64(const std::filesystem::path& file);
// Returns 0 or the errno of the failed open or write.
int write_text(const std::filesystem::path& file, const std::string& text);
// The same relative to an open folder (AT_FDCWD: the working folder), without
// allocating: read_at fills buf and returns the text, empty if unreadable.
std::string_view read_at(int dir_fd, const char* name, char* buf, std::size_t size);
std::optional<std::uint64_t> parse_u64(std::string_view text);
std::optional<std::uint64_t> read_u64_at(int dir_fd, const char* name);
int write_at(int dir_fd, const char* name, std::string_view text);
// The processes in a cgroup (its cgroup.procs), none if unreadable.
std::vector<pid_t> procs_of(const std::filesystem::path& dir);
// Whether a space-separated list (cgroup.controllers, cgroup.subtree_control) names `word`.
bool has_word(std::string_view list, std::string_view word);

}  // namespace cgroupfs

// A cgroup step that failed: what it was and, where there is one, the errno.
class CgroupError : public std::system_error {
 public:
  CgroupError(int error, const std::string& what)
      : std::system_error(error, std::generic_category()),
        text_(error != 0 ? what + ": " + std::strerror(error) : what) {}
  const char* what() const noexcept override { return text_.c_str(); }

 private:
  std::string text_;
};

// runner's home on cgroup v2: the cgroup below which its run folders go,
// taken for as long as the object lives. v2 lets a cgroup other than the root
// give memory to its children only while it holds no process, so the
// processes of runner's own cgroup (runner among them) move into a leaf,
// `runner-leaf`, beside the run folders, and memory is enabled for the
// cgroup's children. The last runner to leave turns it off again and moves
// the processes back. A runner started inside such a leaf takes the leaf's
// parent as its home. Throws std::system_error naming the step that failed,
// having put back what it changed.
class CgroupHome {
 public:
  static constexpr const char* kLeafName = "runner-leaf";

  explicit CgroupHome(const std::filesystem::path& own);
  ~CgroupHome();
  CgroupHome(const CgroupHome&) = delete;
  CgroupHome& operator=(const CgroupHome&) = delete;

  // The home stays locked against other runners' leaving (which could turn
  // memory off) until the caller's run folder has memory for its children.
  void settled();

  const std::filesystem::path& dir() const { return dir_; }
  bool is_root() const { return root_; }

 private:
  void enter();
  void put_back();

  std::filesystem::path dir_;
  std::filesystem::path leaf_;
  bool root_ = false;
  bool enabled_ = false;  // this runner turned memory on
  Fd lock_;               // the home folder, flock'ed while runners take or leave it
};

// The cgroup folder of one run: runner-<run id>.
std::string run_folder_name(const std::string& run);

// Cgroup caps below `own_dir`, runner's own cgroup in that hierarchy.
// Its run folder is named after `run` ("": this process's id).
// `home`, where given, is kept for the caps' life and left after their run
// folder is removed.
std::unique_ptr<MemoryCaps> make_cgroup_caps(
    cgroupfs::Version version, const std::filesystem::path& own_dir,
    const std::optional<std::string>& kill_leftovers = std::nullopt, const std::string& run = "",
    std::unique_ptr<CgroupHome> home = nullptr);

// Kills everything in a cgroup and its sub-cgroups, then removes them.
bool kill_and_remove(const std::filesystem::path& dir, cgroupfs::Version version);

// Removes run folders that runners which are gone left below own_dir: the
// empty ones, and the one named `kill_in`, killing what is still in it.
// Returns how many folders were removed.
std::size_t sweep_stale_runs(const std::filesystem::path& own_dir,
                             const std::optional<std::string>& kill_in);

}  // namespace runner
