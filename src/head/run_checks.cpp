#include "head/run_checks.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "runner/error.h"
#include "runner/fd.h"
#include "runner/journal.h"
#include "runner/local_engine.h"
#include "runner/metrics.h"
#include "runner/units.h"

namespace runner {
namespace fs = std::filesystem;
namespace {

// The DB's folder must exist and be writable before anything is created.
void check_db_path(const fs::path& db) {
  auto folder = db.parent_path().empty() ? fs::path(".") : db.parent_path();
  std::error_code ec;
  if (!fs::exists(folder, ec))
    throw Error(fmt::format("--db {}: folder {} does not exist", db.string(), folder.string()));
  if (!fs::is_directory(folder, ec))
    throw Error(fmt::format("--db {}: {} is not a folder", db.string(), folder.string()));
  if (fs::is_directory(db, ec))
    throw Error(fmt::format("--db {}: is a folder; pass a file path", db.string()));
  if (::access(folder.c_str(), W_OK) != 0)
    throw Error(fmt::format("--db {}: folder {} is not writable: {}", db.string(), folder.string(),
                            std::strerror(errno)));
  if (fs::exists(db, ec)) {
    if (::access(db.c_str(), R_OK | W_OK) != 0)
      throw Error(fmt::format("--db {}: {}", db.string(), std::strerror(errno)));
    return;
  }
  // access() says yes to root on a read-only mount: try creating the file, and
  // leave nothing behind; SQLite creates it for real once all checks passed.
  Fd trial(::open(db.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (!trial)
    throw Error(fmt::format("--db {}: cannot create a file in folder {}: {}", db.string(),
                            folder.string(), std::strerror(errno)));
  ::unlink(db.c_str());
}

// The logs root need not exist yet, but the nearest folder that does must be
// writable, so that a bad --logs is refused before the log is touched.
// Returns that folder.
fs::path check_logs_root(const fs::path& root, bool from_option) {
  auto what = from_option ? fmt::format("--logs {}", root.string())
                          : fmt::format("log folder {}", root.string());
  std::error_code ec;
  auto probe = fs::absolute(root, ec);
  while (!fs::exists(probe, ec) && probe.has_parent_path() && probe != probe.parent_path())
    probe = probe.parent_path();
  if (!fs::is_directory(probe, ec))
    throw Error(fmt::format("{}: {} is not a folder", what, probe.string()));
  if (::access(probe.c_str(), W_OK) != 0)
    throw Error(fmt::format("{}: folder {} is not writable", what, probe.string()));
  // access() says yes to root on /proc or a read-only mount: make a folder
  // there, and leave nothing behind.
  auto trial = probe / fmt::format(".runner-probe-{}", ::getpid());
  if (::mkdir(trial.c_str(), 0700) != 0)
    throw Error(fmt::format("{}: cannot create a folder in {}: {}", what, probe.string(),
                            std::strerror(errno)));
  ::rmdir(trial.c_str());
  return probe;
}

// The job's own log folder is checked before anything is written, and
// made (journal.h) once the job is open.
void check_job_log_dir(const fs::path& dir) {
  struct stat st {};
  if (::lstat(dir.c_str(), &st) == 0 && !S_ISDIR(st.st_mode))
    throw not_a_real_log_folder(dir, S_ISLNK(st.st_mode));
}

}  // namespace

namespace {

fs::path default_logs_root(const fs::path& db) {
  auto folder = db.parent_path().empty() ? fs::path(".") : db.parent_path();
  return folder / (db.stem().string() + ".logs");
}

// A command that cannot be found is refused before anything is written.
void check_command(const CommandTemplate& command) {
  if (command.render(1, 1).front() != command.program()) return;  // {i} in the program
  auto resolved = resolve_program(command.program());
  if (resolved.error == 0 && check_executable_format(resolved.path) == ENOEXEC)
    throw Error(fmt::format(
        "cannot execute {}: {}: it is neither a program nor a script starting with #!; add a "
        "#! line, or run it through its interpreter (sh {})",
        command.program(), std::strerror(ENOEXEC), command.program()));
  if (resolved.error == 0) return;
  bool bare_name = command.program().find('/') == std::string::npos;
  throw Error(fmt::format(
      "cannot execute {}: {}", command.program(),
      resolved.error == ENOENT && bare_name ? "not found in PATH" : std::strerror(resolved.error)));
}

}  // namespace

MemoryPlan plan_memory_impl(const RunArgs& args, const MemoryProbe& probe,
                            std::optional<std::uint64_t> node_budget) {
  MemoryPlan plan{choose_mechanism(args.cap, probe), args.mem_budget};
  if (node_budget) {
    plan.budget = node_budget;
  } else if (args.mem_budget_auto) {
    plan.budget = available_memory(probe);
    if (!plan.budget)
      throw Error("--mem-budget auto: cannot tell how much memory is available here");
  }
  if (plan.budget && args.mem_limit && *args.mem_limit > *plan.budget)
    throw Error(
        fmt::format("--mem-limit {} is more than the --mem-budget {}: no cluster could use it",
                    format_size_kib(*args.mem_limit / 1024), format_size_kib(*plan.budget / 1024)));
  // An rlimit with no limit to set does nothing: say so in the log as "none".
  if (plan.mechanism == CapMechanism::kRlimit && !args.mem_limit && !plan.budget)
    plan.mechanism = CapMechanism::kNone;
  return plan;
}

namespace {

// A cap asked for where no memory cgroup can be had: said once, with what
// would give one, since a per-process limit is not what people mean by a
// cap (a forked process gets an allowance of its own, an out-of-memory end
// is only guessed from the log).
void warn_of_rlimit(const RunArgs& args, const CheckedRun& run) {
  if (args.cap != CapChoice::kAuto || run.memory.mechanism != CapMechanism::kRlimit) return;
  const auto& probe = run.probe;
  spdlog::warn(
      "no memory cgroup can be had here ({}): each process of a cluster is capped instead "
      "(RLIMIT_DATA, an allowance per process), an out-of-memory end is only likely, and no "
      "group peak is measured; {}",
      probe.v2_why_not.empty() ? probe.v1_why_not : probe.v2_why_not,
      probe.v2_fix.empty() ? "see runner doctor" : "the fix: " + probe.v2_fix);
}

// Where a cluster's cap must fit, where each site has its own budget: the
// largest site's (a cluster whose cap only that one takes runs there).
std::optional<std::uint64_t> largest_budget(const Plan& plan) {
  std::optional<std::uint64_t> largest;
  if (!plan.budgets_per_site) return largest;
  for (const auto& site : plan.sites)
    if (site.budget) largest = std::max(largest.value_or(*site.budget), *site.budget);
  return largest;
}

}  // namespace

CheckedRun check_run(const RunArgs& args) {
  check_db_path(args.db);
  if (args.metrics) check_metrics_path(*args.metrics);
  // Log paths are recorded absolute, so they work from wherever sqlite3 runs.
  auto logs_root = fs::absolute(args.logs.value_or(default_logs_root(args.db))).lexically_normal();
  auto logs_folder = check_logs_root(logs_root, args.logs.has_value());
  CheckedRun run{CommandTemplate(args.command), "", "", probe_memory(), {}};
  check_command(run.command);
  run.job_name = args.job.value_or(derive_job_name(run.command, args.clusters));
  run.log_dir = logs_root / run.job_name;
  check_job_log_dir(run.log_dir);
  run.plan = find_planner(args.on).plan({args, run.command, run.probe, logs_folder, run.job_name});
  run.memory = plan_memory_impl(args, run.probe, largest_budget(run.plan));
  if (run.plan.on == "local") warn_of_rlimit(args, run);
  // A plan without budgets of its own gives its sites the run's.
  if (!run.plan.budgets_per_site)
    for (auto& site : run.plan.sites) site.budget = run.memory.budget;
  return run;
}

}  // namespace runner
