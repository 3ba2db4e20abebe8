#include "run_checks.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

#include "runner/error.h"
#include "runner/fd.h"
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

// A file of a name no other run would choose, in the log folder, for the
// nodes to look for; gone again when the check is over.
class SharedMarker {
 public:
  explicit SharedMarker(const fs::path& folder) {
    std::random_device random;
    path_ = folder / fmt::format(".runner-shared-{}-{:08x}", ::getpid(), random());
    Fd fd(::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (!fd)
      throw Error(fmt::format("cannot create a file in log folder {}: {}", folder.string(),
                              std::strerror(errno)));
  }
  SharedMarker(const SharedMarker&) = delete;
  SharedMarker& operator=(const SharedMarker&) = delete;
  ~SharedMarker() { ::unlink(path_.c_str()); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// The job's own log folder, below the logs root, is never a symbolic link
// (nor a file): runner writes only into a real folder there. Checked before
// anything is written; made once the job is open.
Error not_a_real_folder(const fs::path& dir, bool link) {
  return Error(fmt::format(
      "log folder {} is {}: runner writes logs only into a real folder below the logs root; "
      "remove it, or pass another --logs or --job",
      dir.string(), link ? "a symbolic link" : "not a folder"));
}

void check_job_log_dir(const fs::path& dir) {
  struct stat st {};
  if (::lstat(dir.c_str(), &st) == 0 && !S_ISDIR(st.st_mode))
    throw not_a_real_folder(dir, S_ISLNK(st.st_mode));
}

}  // namespace

void make_job_log_dir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir.parent_path(), ec);
  if (ec || (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST))
    throw Error(fmt::format("cannot create log folder {}: {}", dir.string(),
                            ec ? ec.message() : std::strerror(errno)));
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) throw not_a_real_folder(dir, errno == ELOOP);
}

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

// Under --mem-budget, what each node's clusters may use together: the size
// given, or (auto) what Slurm allocated to the job there.
std::vector<std::uint64_t> node_budgets(const RunArgs& args, SlurmAllocation& allocation,
                                        const std::vector<std::uint32_t>& slots) {
  if (!args.mem_budget && !args.mem_budget_auto) return {};
  if (args.mem_budget) return std::vector<std::uint64_t>(slots.size(), *args.mem_budget);
  read_node_memory(allocation);
  std::vector<std::uint64_t> budgets;
  for (std::size_t i = 0; i < slots.size(); ++i) {
    const auto& node = allocation.nodes[i];
    if (slots[i] > 0 && node.memory.value_or(0) == 0)
      throw Error(fmt::format(
          "--mem-budget auto: Slurm job {} has no memory of its own on node {}; ask for some "
          "(salloc --mem=SIZE) or pass --mem-budget SIZE, per node",
          allocation.job_id, node.name));
    budgets.push_back(node.memory.value_or(0));
  }
  return budgets;
}

// --on slurm: the allocation runner runs in, and P spread over its nodes.
SlurmPlan plan_slurm(const RunArgs& args) {
  auto allocation = slurm_allocation();
  if (!allocation)
    throw Error(fmt::format(
        "--on slurm: runner is not inside a Slurm allocation (SLURM_JOB_ID is not set); run it "
        "as salloc -N 4 --ntasks-per-node={} runner --on slurm ..., or put that runner line in "
        "an sbatch script",
        std::max<std::uint32_t>(1, args.parallel / 4)));
  if (!args.worker)
    throw Error("--on slurm runs a worker on every node: --worker off is for --on local");
  std::vector<std::uint32_t> cpus;
  std::uint64_t all_cpus = 0;
  for (const auto& node : allocation->nodes) {
    cpus.push_back(node.cpus);
    all_cpus += node.cpus;
  }
  SlurmPlan plan{*allocation, spread_slots(args.parallel, cpus), {}, 0, ""};
  plan.budgets = node_budgets(args, plan.allocation, plan.slots);
  for (auto n : plan.slots) plan.parallel += n;
  if (plan.parallel < args.parallel) {
    auto nodes = allocation->nodes.size();
    spdlog::warn(
        "P is {} but Slurm job {} has {} CPU(s) on {} node(s): at most {} cluster(s) run at once; "
        "for {}, ask for salloc -N {} --ntasks-per-node={}",
        args.parallel, allocation->job_id, all_cpus, nodes, plan.parallel, args.parallel, nodes,
        (args.parallel + nodes - 1) / nodes);
  }
  return plan;
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
  if (!args.on_slurm) {
    run.memory = plan_memory_impl(args, run.probe, std::nullopt);
  } else {
    run.slurm = plan_slurm(args);
    // A cluster's cap must fit the smallest node's budget.
    const auto& budgets = run.slurm->budgets;
    std::optional<std::uint64_t> smallest;
    for (std::size_t i = 0; i < budgets.size(); ++i)
      if (run.slurm->slots[i] > 0) smallest = std::min(smallest.value_or(budgets[i]), budgets[i]);
    run.memory = plan_memory_impl(args, run.probe, smallest);
    // The nodes run the binary at the path this one has.
    std::error_code ec;
    auto self = fs::read_symlink("/proc/self/exe", ec);
    if (ec)
      throw Error(
          fmt::format("--on slurm: cannot tell where runner's binary is: {}", ec.message()));
    run.slurm->runner = self.string();
    bool templated = run.command.render(1, 1).front() != run.command.program();
    // The nodes write the logs and journals the head reads: they must see its log folder.
    SharedMarker marker(logs_folder);
    check_nodes(run.slurm->allocation, run.slurm->slots, run.slurm->runner,
                templated ? "" : run.command.program(), fs::current_path().string(),
                marker.path().string());
  }
  return run;
}

}  // namespace runner
