// Choosing a memory mechanism, and the ones that need no cgroup: rlimit and none.
#include "runner/memory.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>

#include "memory_internal.h"
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
    if (type == "cgroup") {
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

  if (!mounts.v2 || !own.v2) {
    probe.v2_why_not = "no cgroup v2 hierarchy is mounted";
  } else {
    auto dir = *mounts.v2 / fs::path(*own.v2).relative_path();
    std::string controllers = cgroupfs::read_text(dir / "cgroup.controllers");
    if (!fs::is_directory(dir))
      probe.v2_why_not = fmt::format("runner's v2 cgroup {} is not visible", dir.string());
    else if ((" " + controllers + " ").find(" memory") == std::string::npos)
      probe.v2_why_not = fmt::format(
          "the memory controller is not enabled for runner's v2 cgroup {} (it offers: {})",
          dir.string(), controllers.empty() ? "nothing" : controllers);
    else if (::access(dir.c_str(), W_OK) != 0)
      probe.v2_why_not =
          fmt::format("runner's v2 cgroup {} is not delegated to this user", dir.string());
    else if (auto why = sources.try_mkdir ? try_child(dir) : ""; !why.empty())
      probe.v2_why_not = why;
    else
      probe.v2_dir = dir;
  }

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
    case CapMechanism::kCgroupV2:
      return make_cgroup_caps(cgroupfs::Version::kV2, *probe.v2_dir, kill_leftovers, run);
    case CapMechanism::kCgroupV1:
      return make_cgroup_caps(cgroupfs::Version::kV1, *probe.v1_dir, kill_leftovers, run);
    case CapMechanism::kRlimit:
      return std::make_unique<RlimitCaps>();
    case CapMechanism::kNone:
      return nullptr;
  }
  return nullptr;
}

std::optional<std::string> allocation_failure_sign(const fs::path& log) {
  // What Python, NumPy, C++, the JVM, glibc and shells print when an
  // allocation fails: enough to say "likely out of memory", never certain.
  static constexpr std::string_view kSigns[] = {
      "MemoryError",        "std::bad_alloc",           "Cannot allocate memory",
      "Unable to allocate", "OutOfMemoryError",         "out of memory",
      "Out of memory",      "memory allocation failed", "failed to allocate",
  };
  std::ifstream in(log, std::ios::binary);
  if (!in) return std::nullopt;
  in.seekg(0, std::ios::end);
  auto size = static_cast<std::streamoff>(in.tellg());
  constexpr std::streamoff kTail = std::streamoff{64} * 1024;
  in.seekg(std::max<std::streamoff>(0, size - kTail));
  std::string tail((std::istreambuf_iterator<char>(in)), {});
  for (auto sign : kSigns)
    if (tail.find(sign) != std::string::npos) return std::string(sign);
  return std::nullopt;
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
