// Cgroup cages, v1 and v2. The two differ only in file names and in how a
// whole cgroup is killed; everything else is shared.
#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <sstream>
#include <system_error>

#include "memory_internal.h"
#include "runner/sysinfo.h"

namespace runner {
namespace fs = std::filesystem;

namespace cgroupfs {

std::string read_text(const fs::path& file) {
  std::ifstream in(file);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  return text;
}

std::optional<std::uint64_t> read_u64(const fs::path& file) {
  auto text = read_text(file);
  if (text.empty() || !std::isdigit(static_cast<unsigned char>(text[0]))) return std::nullopt;
  return std::stoull(text);
}

std::optional<std::uint64_t> read_key(const fs::path& file, const std::string& key) {
  std::ifstream in(file);
  std::string k;
  std::uint64_t v = 0;
  while (in >> k >> v)
    if (k == key) return v;
  return std::nullopt;
}

int write_text(const fs::path& file, const std::string& text) {
  int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return errno;
  int err = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) ? 0 : errno;
  ::close(fd);
  return err;
}

}  // namespace cgroupfs

namespace {

using cgroupfs::Version;

// The files that differ between the two versions.
struct Files {
  const char* limit;
  const char* peak;
  const char* usage;
  const char* oom_file;
};
constexpr Files kV1Files{"memory.limit_in_bytes", "memory.max_usage_in_bytes",
                         "memory.usage_in_bytes", "memory.oom_control"};
constexpr Files kV2Files{"memory.max", "memory.peak", "memory.current", "memory.events"};

const Files& files(Version v) {
  return v == Version::kV1 ? kV1Files : kV2Files;
}

std::vector<pid_t> procs_of(const fs::path& dir) {
  std::vector<pid_t> pids;
  std::ifstream in(dir / "cgroup.procs");
  for (pid_t p; in >> p;) pids.push_back(p);
  return pids;
}

// Kills everything in a cgroup and its sub-cgroups, then removes them, deepest
// first. A v1 cgroup can only be removed once its last process is gone, and a
// killed process takes a moment to go: retry for a short while.
bool kill_and_remove(const fs::path& dir, Version version) {
  for (int round = 0; round < 2000; ++round) {
    // Nearly always the attempt left nothing behind and this is all it takes.
    if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) return true;
    if (errno != EBUSY) return false;  // ENOTEMPTY: not a cgroup at all
    // Something is left: sub-cgroups the attempt made, or processes.
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec))
      if (entry.is_directory(ec)) kill_and_remove(entry.path(), version);
    if (version == Version::kV2) cgroupfs::write_text(dir / "cgroup.kill", "1");
    for (pid_t p : procs_of(dir)) ::kill(p, SIGKILL);
    if (round > 0) ::usleep(1000);
  }
  return false;
}

class CgroupCage : public Cage {
 public:
  CgroupCage(fs::path dir, Version version) : dir_(std::move(dir)), version_(version) {}
  ~CgroupCage() override {
    if (procs_fd_ >= 0) ::close(procs_fd_);
    if (!collected_) kill_and_remove(dir_, version_);
  }

  void create(std::optional<std::uint64_t> limit) {
    if (::mkdir(dir_.c_str(), 0755) != 0 && errno != EEXIST)
      throw std::system_error(errno, std::generic_category(),
                              "cannot create cgroup " + dir_.string());
    if (limit) {
      auto bytes = std::to_string(*limit);
      check(cgroupfs::write_text(dir_ / files(version_).limit, bytes), files(version_).limit);
      // No swap: a capped cluster must not slow to a crawl instead of failing.
      if (version_ == Version::kV1) {
        if (fs::exists(dir_ / "memory.memsw.limit_in_bytes"))
          check(cgroupfs::write_text(dir_ / "memory.memsw.limit_in_bytes", bytes),
                "memory.memsw.limit_in_bytes");
      } else {
        cgroupfs::write_text(dir_ / "memory.swap.max", "0");
      }
    }
    // The whole tree dies together on OOM (v2).
    if (version_ == Version::kV2) cgroupfs::write_text(dir_ / "memory.oom.group", "1");
    // O_CREAT changes nothing on a cgroupfs, where the file is always there.
    procs_fd_ = ::open((dir_ / "cgroup.procs").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (procs_fd_ < 0)
      throw std::system_error(errno, std::generic_category(),
                              "cannot open " + (dir_ / "cgroup.procs").string());
  }

  int enter() const noexcept override {
    // No allocation here: format the pid by hand into a stack buffer.
    char buf[24];
    char* end = buf + sizeof buf;
    char* p = end;
    for (auto pid = static_cast<unsigned long>(::getpid()); p == end || pid > 0; pid /= 10)
      *--p = static_cast<char>('0' + pid % 10);
    auto n = end - p;
    return ::write(procs_fd_, p, static_cast<std::size_t>(n)) == n ? 0 : errno;
  }

  MemoryUse collect() override {
    MemoryUse use;
    use.peak_bytes = cgroupfs::read_u64(dir_ / files(version_).peak);
    use.oom_kills = cgroupfs::read_key(dir_ / files(version_).oom_file, "oom_kill").value_or(0);
    collected_ = true;
    if (!kill_and_remove(dir_, version_))
      spdlog::warn("could not remove cgroup {}: {}", dir_.string(), std::strerror(errno));
    return use;
  }

  std::optional<std::uint64_t> current_bytes() const override {
    return cgroupfs::read_u64(dir_ / files(version_).usage);
  }

  void signal_all(int sig) const override {
    for (pid_t p : procs_of(dir_)) ::kill(p, sig);
  }

 private:
  void check(int err, const char* what) {
    if (err != 0)
      throw std::system_error(err, std::generic_category(),
                              fmt::format("cannot write {} of {}", what, dir_.string()));
  }

  fs::path dir_;
  Version version_;
  int procs_fd_ = -1;
  bool collected_ = false;
};

class CgroupCaps : public MemoryCaps {
 public:
  CgroupCaps(Version version, const fs::path& own_dir, bool kill_leftovers)
      : version_(version), own_dir_(own_dir) {
    sweep_stale_runs(own_dir, kill_leftovers);
    auto self = current_process();
    run_dir_ = own_dir / fmt::format("runner-{}-{}", self.pid, self.start_ticks);
    if (::mkdir(run_dir_.c_str(), 0755) != 0)
      throw std::system_error(errno, std::generic_category(),
                              "cannot create cgroup " + run_dir_.string());
    // v2 lets a cgroup's children use a controller only when the cgroup
    // enables it for them.
    if (version_ == Version::kV2)
      cgroupfs::write_text(run_dir_ / "cgroup.subtree_control", "+memory");
  }
  ~CgroupCaps() override {
    if (!kill_and_remove(run_dir_, version_))
      spdlog::warn("could not remove cgroup {}", run_dir_.string());
    // Folders spared at the start because processes were still in them.
    sweep_stale_runs(own_dir_, false);
  }

  CapMechanism mechanism() const override {
    return version_ == Version::kV1 ? CapMechanism::kCgroupV1 : CapMechanism::kCgroupV2;
  }

  std::unique_ptr<Cage> cage(const std::string& name, std::optional<std::uint64_t> limit) override {
    auto cage = std::make_unique<CgroupCage>(run_dir_ / name, version_);
    cage->create(limit);
    return cage;
  }

  std::optional<std::uint64_t> total_bytes() const override {
    return cgroupfs::read_u64(run_dir_ / files(version_).usage);
  }

  bool set_total_limit(std::uint64_t bytes) override {
    return cgroupfs::write_text(run_dir_ / files(version_).limit, std::to_string(bytes)) == 0;
  }

 private:
  Version version_;
  fs::path own_dir_;
  fs::path run_dir_;
};

}  // namespace

std::unique_ptr<MemoryCaps> make_cgroup_caps(Version version, const fs::path& own_dir,
                                             bool kill_leftovers) {
  return std::make_unique<CgroupCaps>(version, own_dir, kill_leftovers);
}

namespace {

bool holds_processes(const fs::path& dir) {
  if (!procs_of(dir).empty()) return true;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec))
    if (entry.is_directory(ec) && holds_processes(entry.path())) return true;
  return false;
}

}  // namespace

std::size_t sweep_stale_runs(const fs::path& own_dir, bool kill) {
  std::size_t removed = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(own_dir, ec)) {
    unsigned long pid = 0, ticks = 0;
    auto name = entry.path().filename().string();
    if (!entry.is_directory(ec) || std::sscanf(name.c_str(), "runner-%lu-%lu", &pid, &ticks) != 2)
      continue;
    ProcessIdentity who{static_cast<pid_t>(pid), host_name(), boot_id(), ticks};
    if (check_alive(who) == Liveness::kAlive) continue;  // another runner's, still running
    if (!kill && holds_processes(entry.path())) continue;
    auto version = fs::exists(entry.path() / "cgroup.controllers") ? Version::kV2 : Version::kV1;
    if (kill_and_remove(entry.path(), version)) ++removed;
  }
  if (removed > 0) spdlog::info("removed {} cgroup folder(s) left by runners that died", removed);
  return removed;
}

}  // namespace runner
