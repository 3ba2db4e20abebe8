#include "runner/app.h"

#include <SQLiteCpp/Exception.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "runner/error.h"
#include "runner/job_lock.h"
#include "runner/local_launcher.h"
#include "runner/memory.h"
#include "runner/orphans.h"
#include "runner/policy.h"
#include "runner/progress.h"
#include "runner/scheduler.h"
#include "runner/signals.h"
#include "runner/store.h"
#include "runner/units.h"
#include "runner/words.h"

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
  // access() says yes to root on /proc or a read-only mount: make a folder
  // there, and leave nothing behind.
  auto trial = probe / fmt::format(".runner-probe-{}", ::getpid());
  if (::mkdir(trial.c_str(), 0700) != 0)
    throw Error(fmt::format("{}: cannot create a folder in {}: {}", what, probe.string(),
                            std::strerror(errno)));
  ::rmdir(trial.c_str());
}

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

void make_job_log_dir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir.parent_path(), ec);
  if (ec || (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST))
    throw Error(fmt::format("cannot create log folder {}: {}", dir.string(),
                            ec ? ec.message() : std::strerror(errno)));
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) throw not_a_real_folder(dir, errno == ELOOP);
  ::close(fd);
}

fs::path default_logs_root(const fs::path& db) {
  auto folder = db.parent_path().empty() ? fs::path(".") : db.parent_path();
  return folder / (db.stem().string() + ".logs");
}

// Points the log sink at the live status line for as long as it exists.
class SinkBinding {
 public:
  SinkBinding(ProgressSink& sink, Progress* progress) : sink_(sink) {
    sink_.set_progress(progress);
  }
  ~SinkBinding() { sink_.set_progress(nullptr); }
  SinkBinding(const SinkBinding&) = delete;
  SinkBinding& operator=(const SinkBinding&) = delete;

 private:
  ProgressSink& sink_;
};

// Another writer (a sqlite3 shell in a transaction, say) makes runner wait,
// for as long as it takes, rather than fail: backing off from 1 ms to 50 ms
// between tries, and saying so about every 10 s.
Store::BusyWait wait_for_other_writers(const fs::path& db) {
  return [db, waited_ms = std::int64_t{0}](int tries) mutable {
    int ms = std::min(50, 1 + tries);
    if (tries == 0) waited_ms = 0;
    auto before = waited_ms;
    waited_ms += ms;
    if (before / 10'000 != waited_ms / 10'000)
      spdlog::warn("{} is locked by another writer; waiting ({}s so far)", db.string(),
                   waited_ms / 1000);
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return true;
  };
}

// What the run did, in words: the lines runner prints at the end.
std::string summary_text(const RunSummary& s, Store& store, const Job& job, const RunArgs& args) {
  auto took = format_duration(s.elapsed);
  if (s.stop_signal) {
    auto waiting =
        s.waiting_again ? fmt::format(", {} waiting to run again", s.waiting_again) : std::string();
    return fmt::format(
        "job {}: stopped by {} after {}: {}/{} done, {} interrupted{}; run the same command "
        "again to resume\n",
        job.name, signal_name(*s.stop_signal), took, s.done, s.clusters, s.interrupted, waiting);
  }
  if (s.setup_failure) return "";  // main prints the error itself
  auto evicted = s.evicted
                     ? fmt::format(", {} evicted and rerun to stay within the budget", s.evicted)
                     : std::string();
  if (s.budget_ooms)
    evicted += fmt::format(", {} killed by the kernel at the budget and rerun", s.budget_ooms);
  if (s.retried || s.timed_out)
    evicted += fmt::format(", {} retried, {} timed out", s.retried, s.timed_out);
  if (s.done == s.clusters)
    return fmt::format("job {}: all {} clusters done ({} in this run{}, {})\n", job.name,
                       s.clusters, s.done_this_run, evicted, took);
  std::string text;
  if (s.halted) text += fmt::format("job {}: stopped early: {}\n", job.name, *s.halted);
  text += fmt::format(
      "job {}: {}/{} done, {} failed in this run{}{}, {}\n", job.name, s.done, s.clusters,
      s.failed_this_run,
      s.oom_this_run ? fmt::format(" ({} out of memory)", s.oom_this_run) : std::string(),
      s.skipped_failed ? fmt::format(", {} left alone (--skip-failed)", s.skipped_failed)
                       : std::string(),
      took);
  if (s.too_big > 0)
    text += fmt::format(
        "  {} cluster(s) need more than the whole memory budget and were not started\n", s.too_big);
  auto failed = store.failed_clusters(job, 10);
  for (const auto& f : failed)
    text += fmt::format("  cluster {}: {} (log {})\n", f.cluster, printable(describe_failure(f)),
                        printable(f.log_path));
  if (failed.size() == 10)
    text += fmt::format("  more: runner status --db {} --job {}\n", args.db.string(), job.name);
  return text;
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
                                        const RunArgs& args,
                                        const std::optional<Holder>& previous_holder) {
  std::unique_ptr<MemoryCaps> caps;
  // What this job's last runner left in its cgroups dies with --orphans kill.
  std::optional<ProcessIdentity> kill_leftovers_of;
  if (previous_holder && !args.orphans_wait) kill_leftovers_of = previous_holder->process;
  try {
    caps = make_memory_caps(plan.mechanism, probe, kill_leftovers_of);
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
  options.retry = args.retry;
  options.halt = args.halt;
  return options;
}

// A log that cannot be written ends the run (the scheduler has stopped its
// children by then): a documented exit code, and a line that says so.
RunSummary run_to_the_end(Scheduler& scheduler, const fs::path& db) {
  try {
    return scheduler.run();
  } catch (const SQLite::Exception& e) {
    throw Error(fmt::format("--db {}: cannot write the log: {}; the running clusters were "
                            "stopped and run again on the next start",
                            db.string(), e.what()),
                ExitCode::kLogLost);
  }
}

}  // namespace

std::shared_ptr<ProgressSink> setup_logging(bool quiet, bool verbose) {
  auto sink = std::make_shared<ProgressSink>(nullptr);
  auto logger = std::make_shared<spdlog::logger>("runner", sink);
  logger->set_pattern("runner: %^%l%$: %v");
  logger->set_level(quiet     ? spdlog::level::err
                    : verbose ? spdlog::level::debug
                              : spdlog::level::info);
  spdlog::set_default_logger(logger);
  return sink;
}

int run_job(const RunArgs& args) {
  auto sink = setup_logging(args.quiet, args.verbose);
  // Everything the user typed is checked before the log is created or written.
  check_db_path(args.db);
  // Log paths are recorded absolute, so they work from wherever sqlite3 runs.
  auto logs_root = fs::absolute(args.logs.value_or(default_logs_root(args.db))).lexically_normal();
  check_logs_root(logs_root, args.logs.has_value());
  CommandTemplate command(args.command);
  check_command(command);
  auto job_name = args.job.value_or(derive_job_name(command, args.clusters));
  check_job_log_dir(logs_root / job_name);
  auto probe = probe_memory();
  auto memory = plan_memory(args, probe);

  // One runner per job and DB on this host, even through a re-created DB file.
  JobLock lock(args.db, job_name);
  // Signals are blocked from here on and handled in the scheduler's loop.
  SignalChannel signals{SIGINT, SIGTERM, SIGHUP};
  Store store(args.db, Store::Access::kReadWrite,
              args.sync_full ? Store::Sync::kFull : Store::Sync::kNormal,
              wait_for_other_writers(args.db));
  auto job = store.open_job(job_name, args.clusters, command.display());
  auto previous_holder = store.holder(job);
  JobHold hold(store, job);

  auto log_dir = logs_root / job.name;
  make_job_log_dir(log_dir);

  auto mode = args.quiet                ? Progress::Mode::kSilent
              : ::isatty(STDOUT_FILENO) ? Progress::Mode::kTerminal
                                        : Progress::Mode::kPlain;
  Progress progress(stdout, mode);
  SinkBinding binding(*sink, &progress);
  auto caps = set_up_caps(memory, probe, args, previous_holder);

  // Clusters that a killed runner left running must not run twice at once.
  auto orphans = find_orphans(store.left_running(job), previous_holder);
  auto policy = args.orphans_wait ? OrphanPolicy::kWait : OrphanPolicy::kKill;
  if (auto sig = settle_orphans(orphans, policy, signals)) {
    Printer(stderr).print(
        fmt::format("runner: {} while waiting for clusters left running; nothing was started\n",
                    signal_name(*sig)));
    return 128 + *sig;
  }
  LocalLauncher launcher(signals, caps.get());
  launcher.reserve_descriptors(args.parallel);
  Scheduler scheduler(store, job, command, launcher, &progress,
                      scheduler_options(args, log_dir, memory.budget));
  auto summary = run_to_the_end(scheduler, args.db);

  if (summary.setup_failure) throw Error(*summary.setup_failure);
  if (!args.quiet) Printer(stdout).print(summary_text(summary, store, job, args));
  return summary.exit_code();
}

}  // namespace runner
