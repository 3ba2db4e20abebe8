// Memory caps and peaks, per mechanism. For each attempt runner makes a Cage:
// a cgroup of its own (v2 or v1) where the machine allows one, or a setrlimit
// applied in the child where it does not. A cgroup also gives the attempt's
// true peak (counting grandchildren, and pages shared between processes once)
// and a count of OOM kills, which tells an out-of-memory death from a crash.
//
// MemoryCaps owns one run's cgroup folder, `runner-<pid>-<start>`, below
// runner's own cgroup; every cage is a folder `s<k>` inside it. When its
// attempt ends, MemoryCaps::tidy checks it: on v1 a folder its attempt left
// empty cages a later attempt (its peak reset), at once or after resting
// until its charge falls; otherwise it is removed. Folders left by a runner
// that died are swept on the next start.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace runner {

enum class CapMechanism { kCgroupV2, kCgroupV1, kRlimit, kNone };
std::string to_string(CapMechanism m);

// What --cap asks for: auto picks the best the machine offers.
enum class CapChoice { kAuto, kCgroup, kRlimit, kNone };
std::optional<CapChoice> parse_cap_choice(std::string_view text);

// Where runner sits in a cgroup v2 tree, when it can have cgroups there:
// the root cgroup (a machine's own, as root); a cgroup delegated to it as
// root (a unit with Delegate=yes, a container's cgroup namespace); or, as an
// ordinary user, a cgroup of the subtree systemd delegates to each user.
enum class V2Placement { kNone, kRoot, kDelegated, kUser };
std::string to_string(V2Placement p);

// Where this process's cgroups are, and what it may do with them.
struct MemoryProbe {
  // Where run folders go on v2: runner's own cgroup, whose processes a run
  // moves into a leaf beside them (the root cgroup's stay where they are).
  std::optional<std::filesystem::path> v2_dir;
  std::string v2_why_not;
  std::string v2_fix;  // where v2 is there but not usable: what would make it so
  V2Placement v2_placement = V2Placement::kNone;
  bool v2_peak = false;  // memory.peak, which kernels before 5.19 lack
  bool v2_swap = false;  // memory.swap.max: the kernel accounts swap per cgroup
  std::optional<std::filesystem::path> v1_dir;  // own v1 memory cgroup, usable
  std::string v1_why_not;
};

// The files the probe reads; tests point them at a fake tree.
struct ProbeSources {
  std::filesystem::path self_cgroup = "/proc/self/cgroup";
  std::filesystem::path mounts = "/proc/self/mounts";
  // Try what a run does (make the cgroups, enable memory, write a cap) and
  // undo it; false: judge from the files alone.
  bool try_mkdir = true;
};
MemoryProbe probe_memory(const ProbeSources& sources = {});

// The mechanism for a choice; throws Error when --cap cgroup cannot be had.
CapMechanism choose_mechanism(CapChoice choice, const MemoryProbe& probe);

// What a cage measured over its attempt's life.
struct MemoryUse {
  std::optional<std::uint64_t> peak_bytes;  // cgroups only
  std::uint64_t oom_kills = 0;
};

class Cage {
 public:
  virtual ~Cage() = default;
  // Runs in the child between fork and exec: async-signal-safe only. Joins the
  // cgroup or sets the rlimit. Returns 0 or an errno.
  virtual int enter() const noexcept = 0;
  // After the attempt's main process ended: its peak and OOM kills.
  virtual MemoryUse measure() = 0;
  // Then hands the cgroup back, once: MemoryCaps::tidy kills whatever is left
  // in it and uses it again or removes it. A cage never released is removed.
  virtual void release() {}
  // Memory charged to the cage now (cgroups only).
  virtual std::optional<std::uint64_t> current_bytes() const { return std::nullopt; }
  // Signals every process in the cage (cgroups only; a no-op otherwise).
  virtual void signal_all(int) const {}
  // The cgroup folder, for messages and tests ("" without one).
  virtual std::string cgroup() const { return ""; }
};

class MemoryCaps {
 public:
  virtual ~MemoryCaps() = default;
  virtual CapMechanism mechanism() const = 0;
  // A cage with an optional cap in bytes. Throws std::system_error.
  virtual std::unique_ptr<Cage> cage(std::optional<std::uint64_t> limit) = 0;
  // All cages together: usage now, and a hard limit on the sum (cgroups only).
  virtual std::optional<std::uint64_t> total_bytes() const { return std::nullopt; }
  virtual bool set_total_limit(std::uint64_t) { return false; }
  // Gives up what is kept for later attempts (cgroups and their open files),
  // when runner is short of open files. Returns whether anything was given up.
  virtual bool release_spares() { return false; }
  // Work left by attempts that ended which need not delay the next start
  // (checking their cgroups for leftovers, to use them again or remove them).
  // Call before sleeping.
  virtual void tidy() {}
};

// kNone gives nullptr: no cages at all. Empty cgroup folders that runners
// which died left behind are removed. One that still holds processes is
// removed, killing them, only when it is the folder of the run
// `kill_leftovers_in` (this job's last run, with --orphans kill): another
// job's processes are never runner's to kill.
// The run's cgroup folder is named after `run` (its id; "": this process's).
std::unique_ptr<MemoryCaps> make_memory_caps(
    CapMechanism mechanism, const MemoryProbe& probe,
    const std::optional<std::string>& kill_leftovers_in = std::nullopt,
    const std::string& run = "");

// Removes the cgroups a run's worker made, once that worker is dead (killed
// before it could): the run folder, killing what is left in it, and, on v2,
// the leaf, where no other runner uses the cgroup.
void remove_run_cgroups(const std::string& run);

// For rlimit, where the kernel does not say: signs in an attempt's log that it
// died for want of memory ("MemoryError", "std::bad_alloc", ...). Returns the
// sign found, reading only the end of the log.
std::optional<std::string> allocation_failure_sign(const std::filesystem::path& log);
// The same in the end of an attempt's output, held in memory (the stream form).
std::optional<std::string> allocation_failure_sign_in(std::string_view tail);

// Whether any swap is on (/proc/swaps lists more than its heading).
bool machine_has_swap();

// What is available to runner: the limit of the cgroup it lives in, else
// MemAvailable. For --mem-budget auto.
std::optional<std::uint64_t> available_memory(const MemoryProbe& probe);

}  // namespace runner
