#include "runner/app.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "runner/error.h"
#include "runner/local_launcher.h"
#include "runner/memory.h"
#include "runner/orphans.h"
#include "runner/policy.h"
#include "runner/progress.h"
#include "runner/scheduler.h"
#include "runner/signals.h"
#include "runner/store.h"
#include "runner/units.h"

namespace runner {
namespace fs = std::filesystem;
namespace {

std::shared_ptr<ProgressSink> g_sink;

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
  int fd = ::open(db.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0)
    throw Error(fmt::format("--db {}: cannot create a file in folder {}: {}", db.string(),
                            folder.string(), std::strerror(errno)));
  ::close(fd);
  ::unlink(db.c_str());
}

// The logs root need not exist yet, but the nearest folder that does must be
// writable, so that a bad --logs is refused before the log is touched.
void check_logs_root(const fs::path& root, bool from_option) {
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
}

fs::path default_logs_root(const fs::path& db) {
  auto folder = db.parent_path().empty() ? fs::path(".") : db.parent_path();
  return folder / (db.stem().string() + ".logs");
}

// Releases the job hold however the run ends.
class HoldGuard {
 public:
  HoldGuard(Store& store, const Job& job, ProcessIdentity self)
      : store_(store), job_(job), self_(std::move(self)) {
    store_.acquire_hold(job_, self_);
  }
  ~HoldGuard() {
    try {
      store_.release_hold(job_, self_);
    } catch (const std::exception& e) {
      spdlog::warn("could not release the hold on job '{}': {}", job_.name, e.what());
    }
  }
  HoldGuard(const HoldGuard&) = delete;
  HoldGuard& operator=(const HoldGuard&) = delete;

 private:
  Store& store_;
  const Job& job_;
  ProcessIdentity self_;
};

// Points the log sink at the live status line for as long as it exists.
class SinkBinding {
 public:
  explicit SinkBinding(Progress* progress) {
    if (g_sink) g_sink->set_progress(progress);
  }
  ~SinkBinding() {
    if (g_sink) g_sink->set_progress(nullptr);
  }
  SinkBinding(const SinkBinding&) = delete;
  SinkBinding& operator=(const SinkBinding&) = delete;
};

void print_summary(const RunSummary& s, Store& store, const Job& job, const RunArgs& args) {
  auto took = format_duration(s.elapsed);
  if (s.stop_signal) {
    fmt::print(
        "job {}: stopped by {} after {}: {}/{} done, {} interrupted; run the same command "
        "again to resume\n",
        job.name, signal_name(*s.stop_signal), took, s.done, s.clusters, s.interrupted);
    return;
  }
  if (s.setup_failure) return;  // main prints the error itself
  auto evicted = s.evicted
                     ? fmt::format(", {} evicted and rerun to stay within the budget", s.evicted)
                     : std::string();
  if (s.budget_ooms)
    evicted += fmt::format(", {} killed by the kernel at the budget and rerun", s.budget_ooms);
  if (s.retried || s.timed_out)
    evicted += fmt::format(", {} retried, {} timed out", s.retried, s.timed_out);
  if (s.done == s.clusters) {
    fmt::print("job {}: all {} clusters done ({} in this run{}, {})\n", job.name, s.clusters,
               s.done_this_run, evicted, took);
    return;
  }
  if (s.halted) fmt::print("job {}: stopped early: {}\n", job.name, *s.halted);
  auto failed = store.failed_clusters(job, 10);
  fmt::print("job {}: {}/{} done, {} failed in this run{}{}, {}\n", job.name, s.done, s.clusters,
             s.failed_this_run,
             s.oom_this_run ? fmt::format(" ({} out of memory)", s.oom_this_run) : std::string(),
             s.skipped_failed ? fmt::format(", {} left alone (--skip-failed)", s.skipped_failed)
                              : std::string(),
             took);
  if (s.too_big > 0)
    fmt::print("  {} cluster(s) need more than the whole memory budget and were not started\n",
               s.too_big);
  for (const auto& f : failed) {
    auto how = describe_failure(f);
    fmt::print("  cluster {}: {} (log {})\n", f.cluster, how, f.log_path);
  }
  if (failed.size() == 10)
    fmt::print("  more: runner status --db {} --job {}\n", args.db.string(), job.name);
}

// A command that cannot be found is refused before anything is written.
void check_command(const CommandTemplate& command) {
  if (command.render(1, 1).front() != command.program()) return;  // {i} in the program
  auto resolved = resolve_program(command.program());
  if (resolved.error == 0) return;
  bool bare_name = command.program().find('/') == std::string::npos;
  throw Error(fmt::format(
      "cannot execute {}: {}", command.program(),
      resolved.error == ENOENT && bare_name ? "not found in PATH" : std::strerror(resolved.error)));
}

struct MemoryPlan {
  CapMechanism mechanism = CapMechanism::kNone;
  std::optional<std::uint64_t> budget;  // bytes
};

MemoryPlan plan_memory(const RunArgs& args, const MemoryProbe& probe) {
  MemoryPlan plan{choose_mechanism(args.cap, probe), args.mem_budget};
  if (args.mem_budget_auto) {
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

std::unique_ptr<MemoryCaps> set_up_caps(const MemoryPlan& plan, const MemoryProbe& probe,
                                        const RunArgs& args) {
  std::unique_ptr<MemoryCaps> caps;
  try {
    caps = make_memory_caps(plan.mechanism, probe, !args.orphans_wait);
  } catch (const std::system_error& e) {
    throw Error(fmt::format("cannot set up memory caps ({}): {}; try --cap rlimit",
                            to_string(plan.mechanism), e.what()));
  }
  if (!plan.budget) return caps;
  // Where cgroups allow, the kernel itself holds the run to the budget.
  if (caps && !caps->set_total_limit(*plan.budget))
    spdlog::warn("could not set the {} budget on the run's cgroup",
                 format_size_kib(*plan.budget / 1024));
  spdlog::info("memory budget {}, caps by {}", format_size_kib(*plan.budget / 1024),
               to_string(plan.mechanism));
  return caps;
}

SchedulerOptions scheduler_options(const RunArgs& args, const fs::path& log_dir,
                                   std::optional<std::uint64_t> budget) {
  SchedulerOptions options;
  options.parallel = args.parallel;
  options.grace = args.grace;
  options.skip_failed = args.skip_failed;
  options.log_dir = log_dir;
  options.mem_limit = args.mem_limit;
  options.mem_budget = budget;
  options.mem_overcommit = args.mem_overcommit;
  options.timeout = args.timeout;
  // Both were checked when the command line was parsed.
  options.retry = *RetryPolicy::parse_on(args.retry_on);
  options.retry.retries = args.retries;
  options.retry.delay = args.retry_delay;
  options.halt = *HaltPolicy::parse(args.halt);
  return options;
}

}  // namespace

void setup_logging(bool quiet, bool verbose) {
  g_sink = std::make_shared<ProgressSink>(nullptr);
  auto logger = std::make_shared<spdlog::logger>("runner", g_sink);
  logger->set_pattern("runner: %^%l%$: %v");
  logger->set_level(quiet     ? spdlog::level::err
                    : verbose ? spdlog::level::debug
                              : spdlog::level::info);
  spdlog::set_default_logger(logger);
}

int run_job(const RunArgs& args) {
  // Everything the user typed is checked before the log is created or written.
  check_db_path(args.db);
  // Log paths are recorded absolute, so they work from wherever sqlite3 runs.
  auto logs_root = fs::absolute(args.logs.value_or(default_logs_root(args.db))).lexically_normal();
  check_logs_root(logs_root, args.logs.has_value());
  CommandTemplate command(args.command);
  check_command(command);
  auto job_name = args.job.value_or(derive_job_name(command, args.clusters));
  auto probe = probe_memory();
  auto memory = plan_memory(args, probe);

  // Signals are blocked from here on and handled in the scheduler's loop.
  SignalChannel signals{SIGINT, SIGTERM, SIGHUP};
  Store store(args.db, Store::Access::kReadWrite,
              args.sync_full ? Store::Sync::kFull : Store::Sync::kNormal);
  auto job = store.open_job(job_name, args.clusters, command.display());
  auto previous_holder = store.holder(job);
  HoldGuard hold(store, job, current_process());

  auto log_dir = logs_root / job.name;
  std::error_code ec;
  fs::create_directories(log_dir, ec);
  if (ec)
    throw Error(fmt::format("cannot create log folder {}: {}", log_dir.string(), ec.message()));

  auto mode = args.quiet                ? Progress::Mode::kSilent
              : ::isatty(STDOUT_FILENO) ? Progress::Mode::kTerminal
                                        : Progress::Mode::kPlain;
  Progress progress(stdout, mode);
  SinkBinding binding(&progress);
  auto caps = set_up_caps(memory, probe, args);

  // Clusters that a killed runner left running must not run twice at once.
  auto orphans = find_orphans(store.left_running(job), previous_holder);
  auto policy = args.orphans_wait ? OrphanPolicy::kWait : OrphanPolicy::kKill;
  if (auto sig = settle_orphans(orphans, policy, signals)) {
    fmt::print(stderr, "runner: {} while waiting for clusters left running; nothing was started\n",
               signal_name(*sig));
    return 128 + *sig;
  }
  LocalLauncher launcher(signals, caps.get());
  launcher.reserve_descriptors(args.parallel);
  Scheduler scheduler(store, job, command, launcher, &progress,
                      scheduler_options(args, log_dir, memory.budget));
  auto summary = scheduler.run();

  if (summary.setup_failure) throw Error(*summary.setup_failure);
  if (!args.quiet) print_summary(summary, store, job, args);
  return summary.exit_code();
}

}  // namespace runner
