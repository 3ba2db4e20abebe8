// `runner doctor`: which memory mechanism runner will use here, why not a
// better one, and what the user can do about it.
#include <fmt/format.h>

#include "runner/app.h"
#include "runner/memory.h"
#include "runner/units.h"

namespace runner {

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
      fmt::print(
          "\nTo get cgroups:\n"
          "  - with systemd: systemd-run --user --scope -p Delegate=yes runner ...\n"
          "    (or --scope as root), which gives runner a cgroup v2 subtree of its own;\n"
          "  - in a container: start it with a writable cgroup (for Docker, --cgroupns=private\n"
          "    and a cgroup v2 host), or run runner as root where cgroup v1 is mounted.\n");
      break;
  }
  if (auto avail = available_memory(probe))
    fmt::print("\nmemory available to runner (--mem-budget auto): {}\n",
               format_size_kib(*avail / 1024));
  return 0;
}

}  // namespace runner
