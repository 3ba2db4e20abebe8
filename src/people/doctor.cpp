// `runner doctor`: which memory mechanism runner will use here, why not a
// better one, and what the user can do about it. What it says of cgroups it
// has tried: the probe makes the cgroups a run makes, and undoes them.
#include <fmt/format.h>

#include "runner/app.h"
#include "runner/memory.h"
#include "runner/units.h"

namespace runner {
namespace {

// Where runner sits on v2, in words, for a probe that found it usable.
std::string placement_words(const MemoryProbe& probe) {
  auto dir = probe.v2_dir->string();
  switch (probe.v2_placement) {
    case V2Placement::kRoot:
      return fmt::format(
          "root: runner runs in the root cgroup {}; each attempt gets a cgroup below it", dir);
    case V2Placement::kDelegated:
      return fmt::format(
          "delegated: runner's cgroup {} is its own (a unit with Delegate=yes, a scope, or a "
          "container's cgroup); for a run, the processes in it move into {}/runner-leaf, each "
          "attempt gets a cgroup beside it, and all is put back at the end",
          dir, dir);
    case V2Placement::kUser:
      return fmt::format(
          "user: runner's cgroup {} is delegated to this user (the subtree systemd gives each "
          "user); for a run, the processes in it move into {}/runner-leaf, each attempt gets "
          "a cgroup beside it, and all is put back at the end; no root needed",
          dir, dir);
    case V2Placement::kNone:
      break;
  }
  return "none";
}

void print_v2_notes(const MemoryProbe& probe) {
  if (!probe.v2_peak)
    fmt::print(
        "note: this kernel has no memory.peak (kernels from 5.19 have it): peak_cgroup_kib stays "
        "empty and peak_rss_kib is what the budget learns from\n");
  if (!probe.v2_swap && machine_has_swap())
    fmt::print(
        "note: this kernel does not account swap per cgroup (no memory.swap.max) and the "
        "machine has swap: a capped attempt may swap past its cap\n");
}

}  // namespace

int show_doctor(const DoctorArgs&) {
  auto probe = probe_memory();
  fmt::print("Memory caps on this machine, best first:\n");
  if (probe.v2_dir)
    fmt::print("  cgroup v2: usable, below {}\n", probe.v2_dir->string());
  else
    fmt::print("  cgroup v2: not usable: {}\n", probe.v2_why_not);
  if (probe.v1_dir)
    fmt::print("  cgroup v1: usable, below {}\n", probe.v1_dir->string());
  else
    fmt::print("  cgroup v1: not usable: {}\n", probe.v1_why_not);
  fmt::print("  rlimit:    always usable (RLIMIT_DATA, per process, no peak and no certain OOM)\n");

  auto mechanism = choose_mechanism(CapChoice::kAuto, probe);
  fmt::print("\nrunner will use: {}", to_string(mechanism));
  switch (mechanism) {
    case CapMechanism::kCgroupV2:
    case CapMechanism::kCgroupV1:
      fmt::print(
          " (one cgroup per attempt: the whole process tree is capped, its true peak is\n"
          "measured, and an OOM kill is told apart from a crash)\n");
      break;
    default:
      fmt::print(
          " (the cap applies to each process on its own, counts memory it reserves\n"
          "rather than uses, and an OOM death is only guessed at from the log)\n");
      break;
  }
  if (mechanism == CapMechanism::kCgroupV2) {
    fmt::print("cgroup v2 placement: {}\n", placement_words(probe));
    print_v2_notes(probe);
  } else if (mechanism != CapMechanism::kCgroupV1 && !probe.v2_fix.empty()) {
    fmt::print("cgroup v2 placement: none: {}\n", probe.v2_why_not);
    fmt::print("the fix: {}\n", probe.v2_fix);
  } else if (mechanism != CapMechanism::kCgroupV1) {
    fmt::print(
        "\nTo get cgroups: run on a machine with cgroup v2 (every current distribution), from\n"
        "  systemd-run --user --scope -p Delegate=yes runner ...   (or as root where cgroup v1\n"
        "  has the memory controller mounted)\n");
  }
  if (auto avail = available_memory(probe))
    fmt::print("\nmemory available to runner (--mem-budget auto): {}\n",
               format_size_kib(*avail / 1024));
  return 0;
}

}  // namespace runner
