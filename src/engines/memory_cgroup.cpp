// Cgroup cages, v1 and v2. The two differ only in file names and in how a
// whole cgroup is killed; everything else is shared.
#include <fcntl.h>
#include <fmt/format.h>
#include <linux/magic.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstring>
#include <deque>
#include <fstream>
#include <sstream>
#include <system_error>

#include "engines/memory_internal.h"
#include "runner/fd.h"
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

// Reads a cgroup file relative to its folder into buf, without allocating.
// Returns the text, or an empty view if the file cannot be read.
std::string_view read_at(int dir_fd, const char* name, char* buf, std::size_t size) {
  Fd fd(::openat(dir_fd, name, O_RDONLY | O_CLOEXEC));
  if (!fd) return {};
  ssize_t n = ::read(fd.get(), buf, size);
  return n > 0 ? std::string_view(buf, static_cast<std::size_t>(n)) : std::string_view{};
}

std::optional<std::uint64_t> parse_u64(std::string_view text) {
  std::uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{}) return std::nullopt;
  return v;
}

std::optional<std::uint64_t> read_u64_at(int dir_fd, const char* name) {
  char buf[64];
  return parse_u64(read_at(dir_fd, name, buf, sizeof buf));
}

namespace {

// Whether the folder of `name` is a cgroupfs (v1 or v2), not a fake tree.
bool on_cgroupfs(int dir_fd, const char* name) {
  struct statfs st {};
  int rc = dir_fd == AT_FDCWD ? ::statfs(fs::path(name).parent_path().c_str(), &st)
                              : ::fstatfs(dir_fd, &st);
  return rc == 0 && (st.f_type == CGROUP2_SUPER_MAGIC || st.f_type == CGROUP_SUPER_MAGIC);
}

}  // namespace

int write_at(int dir_fd, const char* name, std::string_view text) {
  // A cgroupfs file is there or the kernel does not have it (ENOENT, where
  // O_CREAT would say EACCES); a fake tree in the tests is made as written.
  Fd fd(::openat(dir_fd, name, O_WRONLY | O_TRUNC | O_CLOEXEC));
  if (!fd && errno == ENOENT && !on_cgroupfs(dir_fd, name))
    fd.reset(::openat(dir_fd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) return errno;
  return ::write(fd.get(), text.data(), text.size()) == static_cast<ssize_t>(text.size()) ? 0
                                                                                          : errno;
}

std::optional<std::uint64_t> read_u64(const fs::path& file) {
  return read_u64_at(AT_FDCWD, file.c_str());
}

int write_text(const fs::path& file, const std::string& text) {
  return write_at(AT_FDCWD, file.c_str(), text);
}

std::vector<pid_t> procs_of(const fs::path& dir) {
  std::vector<pid_t> pids;
  std::ifstream in(dir / "cgroup.procs");
  for (pid_t p; in >> p;) pids.push_back(p);
  return pids;
}

bool has_word(std::string_view list, std::string_view word) {
  for (std::size_t at = 0; at < list.size();) {
    auto end = std::min(list.find_first_of(" \n", at), list.size());
    if (list.substr(at, end - at) == word) return true;
    at = end + 1;
  }
  return false;
}

}  // namespace cgroupfs

namespace {

// How many processes are in a cgroup and its sub-cgroups.
std::size_t processes_in(const fs::path& dir) {
  auto n = cgroupfs::procs_of(dir).size();
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec))
    if (entry.is_directory(ec)) n += processes_in(entry.path());
  return n;
}

using cgroupfs::parse_u64;
using cgroupfs::read_at;
using cgroupfs::read_u64_at;
using cgroupfs::Version;
using cgroupfs::write_at;

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

using cgroupfs::procs_of;

}  // namespace

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

namespace {

// At most this much may still be charged to a v1 cgroup when its attempt
// ends for the next attempt to use it: kernel objects and a little page cache
// (a fresh cgroup's first charge is itself 256 KiB, the kernel's batch). A
// later peak may include it.
constexpr std::uint64_t kReusableCharge = 1 << 20;
// Up to this much, the cgroup rests: what an exited process leaves charged is
// mostly kernel objects freed a few milliseconds later, after an RCU grace
// period. Short clusters back to back leave a cgroup over the mark one time
// in twenty; replacing it costs more than the start of a small cluster.
// More, or still over the mark after kRestFor, and the cgroup is removed.
constexpr std::uint64_t kRestingCharge = 4 << 20;
constexpr auto kRestFor = std::chrono::milliseconds(100);
constexpr std::size_t kMostResting = 16;

// A cgroup file kept open across attempts, opened on first use. Each read
// starts at offset 0, where the kernel renders the file afresh.
class KeptFile {
 public:
  KeptFile(const char* name, int flags) : name_(name), flags_(flags) {}
  KeptFile(const KeptFile&) = delete;
  KeptFile& operator=(const KeptFile&) = delete;

  std::string_view read(int dir_fd, char* buf, std::size_t size) {
    if (!open(dir_fd)) return {};
    ssize_t n = ::pread(fd_.get(), buf, size, 0);
    return n > 0 ? std::string_view(buf, static_cast<std::size_t>(n)) : std::string_view{};
  }
  std::optional<std::uint64_t> read_u64(int dir_fd) {
    char buf[64];
    return parse_u64(read(dir_fd, buf, sizeof buf));
  }
  int write(int dir_fd, std::string_view text) {
    if (!open(dir_fd)) return errno;
    return ::pwrite(fd_.get(), text.data(), text.size(), 0) == static_cast<ssize_t>(text.size())
               ? 0
               : errno;
  }
  void close() { fd_.reset(); }

 private:
  bool open(int dir_fd) {
    if (!fd_) fd_.reset(::openat(dir_fd, name_, flags_ | O_CLOEXEC));
    return static_cast<bool>(fd_);
  }

  const char* name_;
  int flags_;
  Fd fd_;
};

// The value of `key` in a "key value" text (memory.events, memory.oom_control).
std::optional<std::uint64_t> value_of(std::string_view text, std::string_view key) {
  for (std::size_t at = 0; at < text.size();) {
    auto eol = std::min(text.find('\n', at), text.size());
    auto line = text.substr(at, eol - at);
    if (line.starts_with(key) && line.size() > key.size() && line[key.size()] == ' ')
      return parse_u64(line.substr(key.size() + 1));
    at = eol + 1;
  }
  return std::nullopt;
}

// One cgroup folder below the run's, with what its attempts need kept open:
// the folder, the file the child joins it by between vfork and exec, the
// peak and the OOM count. On v1 a slot cages one attempt after another;
// making and removing a memory cgroup costs more than a small child's start.
struct Slot {
  Slot(fs::path where, Version v)
      : dir(std::move(where)),
        version(v),
        // Only v1 resets its peak, by a write.
        peak(files(v).peak, v == Version::kV1 ? O_RDWR : O_RDONLY),
        oom(files(v).oom_file, O_RDONLY) {}
  Slot(const Slot&) = delete;
  Slot& operator=(const Slot&) = delete;
  ~Slot() { close(); }

  void close() {
    peak.close();
    oom.close();
    join_fd.reset();
    dir_fd.reset();
  }

  // Closes the descriptors, kills whatever is left in the cgroup, removes it.
  bool destroy() {
    close();
    return kill_and_remove(dir, version);
  }

  // Processes killed for memory so far. Under memory.oom.group the kernel
  // counts the victim twice, once when it chooses it and again as one of
  // the group it kills with it (oom_kill 2 for one python process killed
  // alone); each such group kill is counted in oom_group_kill (on kernels
  // without that field, a slot has at most one: its whole attempt dies).
  std::uint64_t oom_kills() {
    char buf[512];
    auto text = oom.read(dir_fd.get(), buf, sizeof buf);
    auto kills = value_of(text, "oom_kill").value_or(0);
    if (!group_kill || kills == 0) return kills;
    auto groups = value_of(text, "oom_group_kill").value_or(1);
    return std::max<std::uint64_t>(kills - std::min(kills, groups), 1);
  }

  fs::path dir;
  Version version;
  Fd dir_fd;
  Fd join_fd;
  KeptFile peak;
  KeptFile oom;
  bool group_kill = false;             // v2: memory.oom.group is set
  std::optional<std::uint64_t> limit;  // what its limit files say; none: unlimited
  std::uint64_t oom_kills_before = 0;  // counted during earlier attempts
};

class CgroupCaps;

class CgroupCage : public Cage {
 public:
  CgroupCage(CgroupCaps& caps, std::unique_ptr<Slot> slot) : caps_(caps), slot_(std::move(slot)) {}
  ~CgroupCage() override;

  // "0" is the writer itself: the child, which has one thread until exec.
  int enter() const noexcept override {
    return ::write(slot_->join_fd.get(), "0", 1) == 1 ? 0 : errno;
  }

  MemoryUse measure() override;
  void release() override;

  std::optional<std::uint64_t> current_bytes() const override {
    return read_u64_at(slot_->dir_fd.get(), files(slot_->version).usage);
  }

  void signal_all(int sig) const override {
    for (pid_t p : procs_of(slot_->dir)) ::kill(p, sig);
  }

  std::string cgroup() const override { return slot_ ? slot_->dir.string() : ""; }

 private:
  CgroupCaps& caps_;
  std::unique_ptr<Slot> slot_;
  std::optional<std::uint64_t> measured_oom_kills_;  // as measure() read them
};

class CgroupCaps : public MemoryCaps {
 public:
  CgroupCaps(Version version, const fs::path& own_dir,
             const std::optional<std::string>& kill_leftovers, const std::string& run,
             std::unique_ptr<CgroupHome> home)
      : version_(version), own_dir_(own_dir), home_(std::move(home)) {
    make_run_folder(kill_leftovers, run);
    if (home_) home_->settled();
  }
  ~CgroupCaps() override {
    for (auto& slot : returned_) slot->destroy();
    for (auto& slot : idle_) slot->destroy();
    for (auto& r : resting_) r.slot->destroy();
    returned_.clear();
    idle_.clear();
    resting_.clear();
    // What is left is in slots not its own: clusters of a dead worker of the
    // run that runner adopted, and runner removes the folder after them.
    if (processes_in(run_dir_) == 0 && !kill_and_remove(run_dir_, version_))
      spdlog::warn("could not remove cgroup {}", run_dir_.string());
    // Folders spared at the start because processes were still in them.
    sweep_stale_runs(own_dir_, std::nullopt);
  }

  CapMechanism mechanism() const override {
    return version_ == Version::kV1 ? CapMechanism::kCgroupV1 : CapMechanism::kCgroupV2;
  }

  std::unique_ptr<Cage> cage(std::optional<std::uint64_t> limit) override {
    // One slot more than ever ran at once lets the next start go ahead
    // while the slot of the attempt that just ended waits for tidy().
    std::size_t slots = in_use_ + returned_.size() + idle_.size();
    if (idle_.empty() && !returned_.empty() && slots > most_in_use_) tidy();
    std::unique_ptr<Slot> slot;
    if (!idle_.empty()) {
      slot = std::move(idle_.back());
      idle_.pop_back();
    } else if (slot = rested(); !slot) {
      slot = make_slot();
    }
    try {
      set_limit(*slot, limit);
    } catch (...) {
      slot->destroy();
      throw;
    }
    most_in_use_ = std::max(most_in_use_, ++in_use_);
    return std::make_unique<CgroupCage>(*this, std::move(slot));
  }

  // A slot whose attempt never ran is removed.
  void drop(std::unique_ptr<Slot> slot) {
    remove(std::move(slot));
    --in_use_;
  }

  // Takes a slot back once its attempt is over, for tidy().
  void give_back(std::unique_ptr<Slot> slot, std::uint64_t oom_kills_now) {
    slot->oom_kills_before = oom_kills_now;
    returned_.push_back(std::move(slot));
    --in_use_;
  }

  // Each slot given back is kept for the next attempt when nothing of its
  // last one is left in it, left to rest when a little too much is still
  // charged to it, else removed with whatever is left in it.
  void tidy() override {
    for (auto& slot : returned_) {
      auto charged = empty(*slot) ? reset_peak(*slot) : std::nullopt;
      if (charged && *charged <= kReusableCharge) {
        idle_.push_back(std::move(slot));
      } else if (charged && *charged <= kRestingCharge && resting_.size() < kMostResting) {
        resting_.push_back({std::move(slot), std::chrono::steady_clock::now()});
      } else {
        remove(std::move(slot));
      }
    }
    returned_.clear();
  }

  bool release_spares() override {
    tidy();
    bool any = !idle_.empty() || !resting_.empty();
    for (auto& slot : idle_) remove(std::move(slot));
    for (auto& r : resting_) remove(std::move(r.slot));
    idle_.clear();
    resting_.clear();
    return any;
  }

  std::optional<std::uint64_t> total_bytes() const override {
    return cgroupfs::read_u64(run_dir_ / files(version_).usage);
  }

  bool set_total_limit(std::uint64_t bytes) override {
    return cgroupfs::write_text(run_dir_ / files(version_).limit, std::to_string(bytes)) == 0;
  }

 private:
  // The run's folder, with memory for its children on v2; what runners that
  // died left beside it is swept first.
  void make_run_folder(const std::optional<std::string>& kill_leftovers, const std::string& run) {
    sweep_stale_runs(own_dir_, kill_leftovers);
    run_dir_ = own_dir_ / run_folder_name(run.empty() ? run_id(current_process()) : run);
    // A run has one worker at a time: a folder of its name is a dead
    // worker's of the same run. runner killed what that worker left but the
    // clusters it adopted, which run on in their slots: the folder is kept
    // for them, and removed with everything else at the end. An empty one
    // is made anew.
    if (::mkdir(run_dir_.c_str(), 0755) != 0 && errno == EEXIST && processes_in(run_dir_) == 0 &&
        kill_and_remove(run_dir_, version_))
      ::mkdir(run_dir_.c_str(), 0755);
    if (!fs::is_directory(run_dir_))
      throw std::system_error(errno, std::generic_category(),
                              "cannot create cgroup " + run_dir_.string());
    // v2 lets a cgroup's children use a controller only when the cgroup
    // enables it for them.
    if (version_ == Version::kV2)
      if (int err = cgroupfs::write_text(run_dir_ / "cgroup.subtree_control", "+memory")) {
        kill_and_remove(run_dir_, version_);
        throw std::system_error(err, std::generic_category(),
                                "cannot enable the memory controller below " + run_dir_.string());
      }
  }

  std::unique_ptr<Slot> make_slot() {
    // A name taken is a dead worker's slot, which may hold an adopted cluster.
    auto slot = std::make_unique<Slot>(run_dir_ / fmt::format("s{}", ++slots_made_), version_);
    while (::mkdir(slot->dir.c_str(), 0755) != 0) {
      if (errno != EEXIST)
        throw std::system_error(errno, std::generic_category(),
                                "cannot create cgroup " + slot->dir.string());
      slot = std::make_unique<Slot>(run_dir_ / fmt::format("s{}", ++slots_made_), version_);
    }
    slot->dir_fd.reset(::open(slot->dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    // On v1 the child joins by `tasks`, as a thread: moving one thread of
    // one's own takes no lock over every process of the machine, where
    // `cgroup.procs` waits for an RCU grace period (milliseconds) whenever
    // joins came less often than that. v2 joins by cgroup.procs. O_CREAT
    // changes nothing on a cgroupfs, where the file is always there.
    const char* join = version_ == Version::kV1 ? "tasks" : "cgroup.procs";
    if (slot->dir_fd.get())
      slot->join_fd.reset(::openat(slot->dir_fd.get(), join, O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
    if (!slot->join_fd) {
      int err = errno;
      slot->destroy();
      throw std::system_error(err, std::generic_category(),
                              "cannot open " + (slot->dir / join).string());
    }
    if (version_ == Version::kV2) {
      // The whole tree dies together on OOM.
      int err = write_at(slot->dir_fd.get(), "memory.oom.group", "1");
      slot->group_kill = err == 0;
      if (err != 0)
        spdlog::warn(
            "cannot write memory.oom.group of {}: {}; an OOM kill may leave part of an "
            "attempt's tree alive until its end",
            slot->dir.string(), std::strerror(err));
    } else if (!memsw_) {
      memsw_ = ::faccessat(slot->dir_fd.get(), "memory.memsw.limit_in_bytes", F_OK, 0) == 0;
    }
    return slot;
  }

  // Writes the cap, and no swap beside it: a capped cluster must not slow to
  // a crawl instead of failing. v1 wants memsw.limit >= limit at every step,
  // so memsw goes first when the cap rises and last when it falls.
  void set_limit(Slot& slot, std::optional<std::uint64_t> limit) {
    if (slot.limit == limit) return;
    const char* limit_file = files(version_).limit;
    auto value =
        limit ? std::to_string(*limit) : std::string(version_ == Version::kV1 ? "-1" : "max");
    bool rising = !limit || (slot.limit && *limit > *slot.limit);
    auto write = [&](const char* name, std::string_view text) {
      if (int err = write_at(slot.dir_fd.get(), name, text); err != 0)
        throw std::system_error(err, std::generic_category(),
                                fmt::format("cannot write {} of {}", name, slot.dir.string()));
    };
    if (version_ == Version::kV2) {
      write(limit_file, value);
      // A cap that lets the attempt swap is no cap: it slows to a crawl
      // instead of ending oom. Without swap on the machine it cannot anyway.
      int err = write_at(slot.dir_fd.get(), "memory.swap.max", "0");
      if (err != 0 && !swap_warned_ && machine_has_swap()) {
        swap_warned_ = true;
        spdlog::warn(
            "cannot write memory.swap.max of {}: {}; capped attempts may swap past their cap",
            slot.dir.string(),
            err == ENOENT ? "this kernel does not account swap per cgroup" : std::strerror(err));
      }
    } else if (!*memsw_) {
      write(limit_file, value);
    } else if (rising) {
      write("memory.memsw.limit_in_bytes", value);
      write(limit_file, value);
    } else {
      write(limit_file, value);
      write("memory.memsw.limit_in_bytes", value);
    }
    slot.limit = limit;
  }

  // Only v1 lets the peak be reset (v2's memory.peak only on recent kernels).
  // A cgroup used again must hold no process and no sub-cgroup.
  bool empty(const Slot& slot) const {
    if (version_ != Version::kV1 || !slot.dir_fd.get()) return false;
    struct stat st {};
    if (::fstat(slot.dir_fd.get(), &st) != 0 || st.st_nlink != 2) return false;  // sub-cgroups
    char buf[16];
    return read_at(slot.dir_fd.get(), "cgroup.procs", buf, sizeof buf).empty();
  }

  // Writing anything resets the peak to what is charged now, which it then reads.
  static std::optional<std::uint64_t> reset_peak(Slot& slot) {
    if (slot.peak.write(slot.dir_fd.get(), "0") != 0) return std::nullopt;
    return slot.peak.read_u64(slot.dir_fd.get());
  }

  // The longest-resting slot whose charge has fallen to the mark; slots that
  // rested long enough without falling are removed.
  std::unique_ptr<Slot> rested() {
    auto now = std::chrono::steady_clock::now();
    for (auto it = resting_.begin(); it != resting_.end();) {
      auto charged = reset_peak(*it->slot);
      if (charged && *charged <= kReusableCharge) {
        auto slot = std::move(it->slot);
        resting_.erase(it);
        return slot;
      }
      if (charged && now - it->since < kRestFor) {
        ++it;
        continue;
      }
      remove(std::move(it->slot));
      it = resting_.erase(it);
    }
    return nullptr;
  }

  static void remove(std::unique_ptr<Slot> slot) {
    if (!slot->destroy())
      spdlog::warn("could not remove cgroup {}: {}", slot->dir.string(), std::strerror(errno));
  }

  Version version_;
  fs::path own_dir_;
  std::unique_ptr<CgroupHome> home_;  // v2: left once the run folder is gone
  fs::path run_dir_;
  struct Resting {
    std::unique_ptr<Slot> slot;
    std::chrono::steady_clock::time_point since;
  };
  std::vector<std::unique_ptr<Slot>> returned_;  // given back, not yet tidied
  std::vector<std::unique_ptr<Slot>> idle_;
  std::deque<Resting> resting_;
  std::size_t in_use_ = 0;
  std::size_t most_in_use_ = 0;
  unsigned slots_made_ = 0;
  std::optional<bool> memsw_;  // v1: does the kernel account swap (found on the first slot)
  bool swap_warned_ = false;
};

CgroupCage::~CgroupCage() {
  if (slot_) caps_.drop(std::move(slot_));
}

MemoryUse CgroupCage::measure() {
  MemoryUse use;
  auto oom_kills = slot_->oom_kills();
  measured_oom_kills_ = oom_kills;
  use.peak_bytes = slot_->peak.read_u64(slot_->dir_fd.get());
  use.oom_kills = oom_kills - std::min(oom_kills, slot_->oom_kills_before);
  return use;
}

void CgroupCage::release() {
  if (!slot_) return;
  // Counted from here on by the slot's next attempt: what this one was
  // charged with, as measured just now (its processes have ended).
  auto oom_kills = measured_oom_kills_ ? *measured_oom_kills_ : slot_->oom_kills();
  caps_.give_back(std::move(slot_), oom_kills);
}

}  // namespace

std::string run_folder_name(const std::string& run) {
  return "runner-" + run;
}

std::unique_ptr<MemoryCaps> make_cgroup_caps(Version version, const fs::path& own_dir,
                                             const std::optional<std::string>& kill_leftovers,
                                             const std::string& run,
                                             std::unique_ptr<CgroupHome> home) {
  return std::make_unique<CgroupCaps>(version, own_dir, kill_leftovers, run, std::move(home));
}

std::size_t sweep_stale_runs(const fs::path& own_dir, const std::optional<std::string>& kill_in) {
  std::size_t removed = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(own_dir, ec)) {
    unsigned long pid = 0, ticks = 0;
    auto name = entry.path().filename().string();
    // A probe folder whose runner was killed between making and removing it.
    if (char end = 0; std::sscanf(name.c_str(), "runner-probe-%lu%c", &pid, &end) == 1) {
      if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH &&
          ::rmdir(entry.path().c_str()) == 0)
        ++removed;
      continue;
    }
    if (!entry.is_directory(ec) || std::sscanf(name.c_str(), "runner-%lu-%lu", &pid, &ticks) != 2)
      continue;
    ProcessIdentity who{static_cast<pid_t>(pid), host_name(), boot_id(), ticks};
    if (check_alive(who) == Liveness::kAlive) continue;  // another runner's, still running
    // What a dead runner of another job (or DB) left running is not ours.
    auto left = processes_in(entry.path());
    if (left > 0 && name != kill_in) continue;
    auto version = fs::exists(entry.path() / "cgroup.controllers") ? Version::kV2 : Version::kV1;
    if (left > 0)
      spdlog::warn("killing {} process(es) that the job's last runner (pid {}) left in cgroup {}",
                   left, pid, entry.path().string());
    if (kill_and_remove(entry.path(), version)) ++removed;
  }
  if (removed > 0) spdlog::info("removed {} cgroup folder(s) left by runners that died", removed);
  return removed;
}

}  // namespace runner
