// Choosing a memory mechanism, and the ones that need no cgroup: rlimit and none.
#include "runner/memory.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <pwd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <system_error>

#include "engines/memory_internal.h"
#include "runner/error.h"

namespace runner {
namespace fs = std::filesystem;
namespace {

struct Mounts {
  std::optional<fs::path> v2, v1_memory;
};

Mounts read_mounts(const fs::path& file) {
  Mounts m;
  std::ifstream in(file);
  std::string device, point, type, options;
  std::string rest;
  while (in >> device >> point >> type >> options) {
    std::getline(in, rest);
    if (type == "cgroup2" && !m.v2) m.v2 = point;
    // The first mount of each is the machine's own: a later one is a bind
    // mount (a chroot's, a container's) of the same hierarchy.
    if (type == "cgroup" && !m.v1_memory) {
      std::istringstream opts(options);
      for (std::string o; std::getline(opts, o, ',');)
        if (o == "memory") m.v1_memory = point;
    }
  }
  return m;
}

struct OwnCgroups {
  std::optional<std::string> v2, v1_memory;  // paths inside each hierarchy
};

OwnCgroups read_self_cgroup(const fs::path& file) {
  OwnCgroups own;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) {
    auto a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    auto controllers = line.substr(a + 1, b - a - 1);
    auto path = line.substr(b + 1);
    if (line.substr(0, a) == "0" && controllers.empty()) own.v2 = path;
    std::istringstream list(controllers);
    for (std::string c; std::getline(list, c, ',');)
      if (c == "memory") own.v1_memory = path;
  }
  return own;
}

// Can runner make (and remove) a folder here? The real proof on a cgroupfs.
std::string try_child(const fs::path& dir) {
  auto probe = dir / fmt::format("runner-probe-{}", ::getpid());
  if (::mkdir(probe.c_str(), 0755) != 0)
    return fmt::format("cannot create a cgroup in {}: {}", dir.string(), std::strerror(errno));
  ::rmdir(probe.c_str());
  return "";
}

// The fix, in one line, for a machine where v2 is there but runner cannot
// have a cgroup of its own on it.
std::string v2_fix(const fs::path& mount, const fs::path& dir, int error) {
  if (!cgroupfs::has_word(cgroupfs::read_text(mount / "cgroup.controllers"), "memory"))
    return ::geteuid() == 0 ? "the memory controller is not on cgroup v2 here: boot with cgroup v2 "
                              "alone (systemd.unified_cgroup_hierarchy=1), or mount cgroup v1's "
                              "memory controller"
                            : "the memory controller is not on cgroup v2 here: ask an admin for "
                              "cgroup v2 (systemd.unified_cgroup_hierarchy=1 at boot)";
  if (error == EROFS)
    return "the cgroup filesystem is mounted read-only here (a container's default): give the "
           "container a writable cgroup namespace of its own";
  if (::geteuid() == 0)
    return "systemd-run --scope -p Delegate=yes runner ...  (in a unit: Delegate=yes)";
  auto uid = ::geteuid();
  // systemd delegates user@UID.service to each user with a session (or
  // lingering); a scope of one's own below it is a command away.
  bool user_manager = fs::exists(fmt::format("/run/user/{}/systemd", uid));
  for (auto at = dir; !user_manager && at.has_relative_path(); at = at.parent_path())
    user_manager = fs::exists(at / fmt::format("user@{}.service", uid));
  if (user_manager) return "systemd-run --user --scope -p Delegate=yes runner ...";
  const passwd* pw = ::getpwuid(uid);
  return fmt::format(
      "loginctl enable-linger {0} (once, by an admin), then from a session of {0}: "
      "systemd-run --user --scope -p Delegate=yes runner ...",
      pw ? std::string(pw->pw_name) : std::to_string(uid));
}

// Tries what a run will do on v2: take the home (the leaf, memory for the
// children), make a run folder with memory for its own children and an
// attempt's cgroup in it, and write its memory.max. All of it is undone.
void try_v2(const fs::path& mount, const fs::path& own, MemoryProbe& probe) {
  try {
    CgroupHome home(own);
    auto folder = home.dir() / fmt::format("runner-probe-{}", ::getpid());
    auto slot = folder / "s1";
    auto undo = [&] {
      ::rmdir(slot.c_str());
      ::rmdir(folder.c_str());
    };
    auto step = [&](int error, const std::string& what) {
      if (error == 0) return;
      undo();
      throw CgroupError(error, what);
    };
    step(::mkdir(folder.c_str(), 0755) == 0 ? 0 : errno, "cannot create cgroup " + folder.string());
    step(cgroupfs::write_text(folder / "cgroup.subtree_control", "+memory"),
         "cannot enable the memory controller below " + folder.string());
    home.settled();
    step(::mkdir(slot.c_str(), 0755) == 0 ? 0 : errno, "cannot create cgroup " + slot.string());
    step(cgroupfs::write_text(slot / "memory.max", "max"),
         "cannot write memory.max of " + slot.string());
    probe.v2_peak = ::access((slot / "memory.peak").c_str(), F_OK) == 0;
    probe.v2_swap = ::access((slot / "memory.swap.max").c_str(), F_OK) == 0;
    probe.v2_placement = home.is_root()     ? V2Placement::kRoot
                         : ::geteuid() == 0 ? V2Placement::kDelegated
                                            : V2Placement::kUser;
    probe.v2_dir = home.dir();
    undo();
  } catch (const std::system_error& e) {
    probe.v2_why_not = e.what();
    probe.v2_fix = v2_fix(mount, own, e.code().value());
  }
}

// Where runner's v2 cgroup is usable, and how: tried for real, or (fake trees
// in tests) read from the files.
void probe_v2(const fs::path& mount, const fs::path& dir, bool try_it, MemoryProbe& probe) {
  if (!fs::is_directory(dir)) {
    probe.v2_why_not = fmt::format("runner's v2 cgroup {} is not visible", dir.string());
    return;
  }
  if (try_it) return try_v2(mount, dir, probe);
  auto home = dir.filename() == CgroupHome::kLeafName ? dir.parent_path() : dir;
  std::string controllers = cgroupfs::read_text(home / "cgroup.controllers");
  if (!cgroupfs::has_word(controllers, "memory"))
    probe.v2_why_not =
        fmt::format("the memory controller is not offered to cgroup {} (it offers: {})",
                    home.string(), controllers.empty() ? "nothing" : controllers);
  else if (::access(home.c_str(), W_OK) != 0)
    probe.v2_why_not = fmt::format("cgroup {} is not delegated to this user", home.string());
  else
    probe.v2_dir = home;
}

class RlimitCage : public Cage {
 public:
  explicit RlimitCage(std::uint64_t limit) : limit_{limit, limit} {}
  int enter() const noexcept override { return ::setrlimit(RLIMIT_DATA, &limit_) == 0 ? 0 : errno; }
  MemoryUse measure() override { return {}; }

 private:
  rlimit limit_;
};

// Without a limit there is nothing for rlimit to do in the child.
class EmptyCage : public Cage {
 public:
  int enter() const noexcept override { return 0; }
  MemoryUse measure() override { return {}; }
};

class RlimitCaps : public MemoryCaps {
 public:
  CapMechanism mechanism() const override { return CapMechanism::kRlimit; }
  std::unique_ptr<Cage> cage(std::optional<std::uint64_t> limit) override {
    if (!limit) return std::make_unique<EmptyCage>();
    return std::make_unique<RlimitCage>(*limit);
  }
};

}  // namespace

std::string to_string(CapMechanism m) {
  switch (m) {
    case CapMechanism::kCgroupV2:
      return "cgroup-v2";
    case CapMechanism::kCgroupV1:
      return "cgroup-v1";
    case CapMechanism::kRlimit:
      return "rlimit";
    case CapMechanism::kNone:
      return "none";
  }
  return "none";
}

std::string to_string(V2Placement p) {
  switch (p) {
    case V2Placement::kRoot:
      return "root";
    case V2Placement::kDelegated:
      return "delegated";
    case V2Placement::kUser:
      return "user";
    case V2Placement::kNone:
      return "none";
  }
  return "none";
}

std::optional<CapChoice> parse_cap_choice(std::string_view text) {
  if (text == "auto") return CapChoice::kAuto;
  if (text == "cgroup") return CapChoice::kCgroup;
  if (text == "rlimit") return CapChoice::kRlimit;
  if (text == "none") return CapChoice::kNone;
  return std::nullopt;
}

MemoryProbe probe_memory(const ProbeSources& sources) {
  MemoryProbe probe;
  auto mounts = read_mounts(sources.mounts);
  auto own = read_self_cgroup(sources.self_cgroup);

  if (!mounts.v2 || !own.v2)
    probe.v2_why_not = "no cgroup v2 hierarchy is mounted";
  else if (auto inside = fs::path(*own.v2).relative_path(); inside.empty())
    probe_v2(*mounts.v2, *mounts.v2, sources.try_mkdir, probe);
  else
    probe_v2(*mounts.v2, *mounts.v2 / inside, sources.try_mkdir, probe);

  if (!mounts.v1_memory || !own.v1_memory) {
    probe.v1_why_not = "no cgroup v1 memory controller is mounted";
  } else {
    auto dir = *mounts.v1_memory / fs::path(*own.v1_memory).relative_path();
    if (!fs::is_directory(dir))
      probe.v1_why_not = fmt::format("runner's v1 memory cgroup {} is not visible", dir.string());
    else if (::access(dir.c_str(), W_OK) != 0)
      probe.v1_why_not =
          fmt::format("runner's v1 memory cgroup {} is not writable by this user", dir.string());
    else if (auto why = sources.try_mkdir ? try_child(dir) : ""; !why.empty())
      probe.v1_why_not = why;
    else
      probe.v1_dir = dir;
  }
  return probe;
}

CapMechanism choose_mechanism(CapChoice choice, const MemoryProbe& probe) {
  switch (choice) {
    case CapChoice::kNone:
      return CapMechanism::kNone;
    case CapChoice::kRlimit:
      return CapMechanism::kRlimit;
    case CapChoice::kAuto:
    case CapChoice::kCgroup:
      if (probe.v2_dir) return CapMechanism::kCgroupV2;
      if (probe.v1_dir) return CapMechanism::kCgroupV1;
      if (choice == CapChoice::kAuto) return CapMechanism::kRlimit;
      throw Error(
          fmt::format("--cap cgroup: no cgroup can be had here ({}; {}); see 'runner doctor', "
                      "or use --cap rlimit",
                      probe.v2_why_not, probe.v1_why_not));
  }
  return CapMechanism::kNone;
}

std::unique_ptr<MemoryCaps> make_memory_caps(CapMechanism mechanism, const MemoryProbe& probe,
                                             const std::optional<std::string>& kill_leftovers_in,
                                             const std::string& run) {
  std::optional<std::string> kill_leftovers;
  if (kill_leftovers_in) kill_leftovers = run_folder_name(*kill_leftovers_in);
  switch (mechanism) {
    case CapMechanism::kCgroupV2: {
      // The home is taken for the run (its processes moved into the leaf);
      // the probe put everything back after trying.
      auto home = std::make_unique<CgroupHome>(*probe.v2_dir);
      auto dir = home->dir();
      return make_cgroup_caps(cgroupfs::Version::kV2, dir, kill_leftovers, run, std::move(home));
    }
    case CapMechanism::kCgroupV1:
      return make_cgroup_caps(cgroupfs::Version::kV1, *probe.v1_dir, kill_leftovers, run);
    case CapMechanism::kRlimit:
      return std::make_unique<RlimitCaps>();
    case CapMechanism::kNone:
      return nullptr;
  }
  return nullptr;
}

std::optional<std::string> allocation_failure_sign_in(std::string_view tail) {
  // What Python, NumPy, C++, the JVM, glibc and shells print when an
  // allocation fails: enough to say "likely out of memory", never certain.
  static constexpr std::string_view kSigns[] = {
      "MemoryError",        "std::bad_alloc",           "Cannot allocate memory",
      "Unable to allocate", "OutOfMemoryError",         "out of memory",
      "Out of memory",      "memory allocation failed", "failed to allocate",
  };
  for (auto sign : kSigns)
    if (tail.find(sign) != std::string_view::npos) return std::string(sign);
  return std::nullopt;
}

std::optional<std::string> allocation_failure_sign(const fs::path& log) {
  std::ifstream in(log, std::ios::binary);
  if (!in) return std::nullopt;
  in.seekg(0, std::ios::end);
  auto size = static_cast<std::streamoff>(in.tellg());
  constexpr std::streamoff kTail = std::streamoff{64} * 1024;
  in.seekg(std::max<std::streamoff>(0, size - kTail));
  std::string tail((std::istreambuf_iterator<char>(in)), {});
  return allocation_failure_sign_in(tail);
}

void remove_run_cgroups(const std::string& run) {
  ProbeSources read_only;
  read_only.try_mkdir = false;
  auto probe = probe_memory(read_only);
  std::error_code ec;
  if (probe.v1_dir && fs::exists(*probe.v1_dir / run_folder_name(run), ec))
    kill_and_remove(*probe.v1_dir / run_folder_name(run), cgroupfs::Version::kV1);
  if (probe.v2_dir && fs::exists(*probe.v2_dir / run_folder_name(run), ec)) {
    kill_and_remove(*probe.v2_dir / run_folder_name(run), cgroupfs::Version::kV2);
    // Taken and left at once: the last runner to leave puts the cgroup back.
    try {
      CgroupHome home(*probe.v2_dir);
      home.settled();
    } catch (const std::system_error&) {
    }
  }
}

bool machine_has_swap() {
  std::ifstream in("/proc/swaps");
  std::string line;
  return std::getline(in, line) && std::getline(in, line);
}

std::optional<std::uint64_t> available_memory(const MemoryProbe& probe) {
  std::optional<std::uint64_t> best;
  // The cgroup runner lives in may allow less than the machine has.
  if (probe.v2_dir) {
    auto max = cgroupfs::read_text(*probe.v2_dir / "memory.max");
    auto current = cgroupfs::read_u64(*probe.v2_dir / "memory.current");
    if (!max.empty() && max.rfind("max", 0) != 0 && current) {
      auto limit = std::stoull(max);
      best = limit > *current ? limit - *current : 0;
    }
  }
  if (!best && probe.v1_dir) {
    auto limit = cgroupfs::read_u64(*probe.v1_dir / "memory.limit_in_bytes");
    auto usage = cgroupfs::read_u64(*probe.v1_dir / "memory.usage_in_bytes");
    // An unlimited v1 cgroup reports a limit near 2^63.
    if (limit && usage && *limit < (1ULL << 60)) best = *limit > *usage ? *limit - *usage : 0;
  }
  std::ifstream meminfo("/proc/meminfo");
  for (std::string key; meminfo >> key;) {
    std::uint64_t kib = 0;
    meminfo >> kib;
    meminfo.ignore(64, '\n');
    if (key == "MemAvailable:") {
      auto avail = kib * 1024;
      if (!best || avail < *best) best = avail;
      break;
    }
  }
  return best;
}

}  // namespace runner
