#include "runner/app.h"

#include <SQLiteCpp/Exception.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <set>
#include <thread>

#include "head/run_checks.h"
#include "runner/collect.h"
#include "runner/error.h"
#include "runner/job_lock.h"
#include "runner/local_engine.h"
#include "runner/memory.h"
#include "runner/metrics.h"
#include "runner/on_finish.h"
#include "runner/progress.h"
#include "runner/scheduler.h"
#include "runner/signals.h"
#include "runner/sites_engine.h"
#include "runner/store.h"
#include "runner/sysinfo.h"
#include "runner/units.h"
#include "runner/words.h"
#include "runner/worker_engine.h"

namespace runner {
namespace fs = std::filesystem;
namespace {

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

// The run that left a job's attempts `running`, if it ran on this host since
// its last boot: only then can its processes still be here.
std::optional<std::string> previous_run(const std::optional<Holder>& holder) {
  if (!holder || holder->process.host != host_name() || holder->process.boot_id != boot_id())
    return std::nullopt;
  return run_id(holder->process);
}

// The runs of the job whose processes may still live here: those the DB
// holds on this host since its boot that did not end in order (runner
// unlock forgets a hold, never a run), and the last holder's run, which a DB
// from before runs were kept names only there.
std::vector<std::string> open_runs(Store& store, const Job& job,
                                   const std::optional<Holder>& holder, const std::string& self) {
  auto runs = store.open_runs(job, host_name(), boot_id());
  std::erase(runs, self);
  if (auto last = previous_run(holder);
      last && *last != self && std::find(runs.begin(), runs.end(), *last) == runs.end())
    runs.push_back(*last);
  return runs;
}

Leftovers leftovers(Store& store, const Job& job, std::vector<std::string> runs) {
  Leftovers left;
  for (const auto& l : store.left_running(job))
    left.attempts.push_back({l.cluster, Placement{l.host, l.pid}, l.started_at});
  left.previous_runs = std::move(runs);
  return left;
}

// Whose journals this run may read: this DB's, this job's, of runs it recorded.
JournalOwner journal_owner(Store& store, const Job& job, const std::optional<Holder>& holder) {
  return JournalOwner{store.db_id(), job.name, job_key(job.command, job.clusters),
                      [&store, job](const std::string& run) { return store.has_run(job, run); },
                      previous_run(holder)};
}

// Where a job's workers keep their journals: in its log folder.
fs::path journal_dir(const CheckedRun& checked) {
  return checked.log_dir / ".journal";
}

// The budget in runner's log: the run's, or each site's where they differ.
void log_budgets(const CheckedRun& checked) {
  const auto& plan = checked.plan;
  if (!checked.memory.budget) return;
  std::set<std::uint64_t> differ;
  for (const auto& site : plan.sites)
    if (site.budget) differ.insert(*site.budget);
  if (!plan.budgets_per_site || differ.size() <= 1)
    return spdlog::info("memory budget {}{}", format_size_kib(*checked.memory.budget / 1024),
                        plan.budgets_per_site ? " per " + plan.site_word : "");
  std::vector<std::string> each;
  for (const auto& site : plan.sites)
    each.push_back(
        fmt::format("{} {}", site.name, format_size_kib(site.budget.value_or(0) / 1024)));
  spdlog::info("memory budget per {}: {}", plan.site_word, fmt::join(each, ", "));
}

// The engine: the plan's sites, each a worker that runs the clusters there
// and journals their outcomes, or (--worker off) runner itself. Caps by the planned mechanism; what
// the job's last run left in its cgroups dies with --orphans kill.
std::unique_ptr<Engine> make_engine(const RunArgs& args, const CheckedRun& checked,
                                    const std::optional<Holder>& holder, const Job& job,
                                    const std::string& db_id, const SignalChannel& signals) {
  auto kill_in = args.orphans_wait ? std::nullopt : previous_run(holder);
  const auto& plan = checked.plan;
  log_budgets(checked);
  if (!plan.sites.empty()) {
    WorkerConfig config;
    config.run = run_id(current_process());
    config.journal_dir = journal_dir(checked).string();
    config.db_id = db_id;
    config.job = job.name;
    config.job_key = job_key(job.command, job.clusters);
    config.sync = args.sync_full;
    config.grace = args.grace;
    config.parallel = args.parallel;
    config.cap = args.cap;
    config.limits = args.mem_limit || checked.memory.budget;
    config.run_limit = checked.memory.budget;
    config.kill_leftovers_in = kill_in;
    config.watch_memory = checked.memory.budget && args.mem_overcommit;
    config.blocked = signals.inherited().blocked();
    config.pipe_ignored = signals.inherited().pipe_ignored();
    config.allocation = plan.allocation;
    config.db_path = claim_db_path(args.db);
    config.log_format = args.log_format;
    return std::make_unique<SitesEngine>(config, plan);
  }
  LocalEngineOptions options;
  try {
    options.caps = make_memory_caps(checked.memory.mechanism, checked.probe, kill_in);
  } catch (const std::system_error& e) {
    throw Error(fmt::format("cannot set up memory caps ({}): {}; try --cap rlimit",
                            to_string(checked.memory.mechanism), e.what()));
  }
  options.run_limit = checked.memory.budget;
  options.grace = args.grace;
  options.parallel = args.parallel;
  options.inherited = signals.inherited();
  options.log_format = args.log_format;
  return std::make_unique<LocalEngine>(std::move(options));
}

// What earlier runs' workers journalled where runner cannot read it (an SSH
// host's own disk), collected through this run's workers and recorded; the
// journals go once the log has them. False when a signal came first.
bool collect_through_engine(Engine& engine, Store& store, const Job& job, LeftoverPolicy policy,
                            int wake_fd) {
  auto journals = engine.collect(policy, wake_fd);
  if (!journals) return false;
  if (journals->empty()) return true;
  record_earlier_journals(store, job, *journals, 0);
  engine.collected();
  return true;
}

SchedulerOptions scheduler_options(const RunArgs& args, const CheckedRun& checked) {
  SchedulerOptions options;
  options.parallel = checked.plan.parallel;
  options.skip_failed = args.skip_failed;
  options.log_dir = checked.log_dir;
  options.mem_limit = args.mem_limit;
  options.mem_budget = checked.memory.budget;
  options.mem_overcommit = args.mem_overcommit;
  options.timeout = args.timeout;
  options.retry = args.retry;
  options.halt = args.halt;
  options.order = args.order_by_index ? Order::kIndex : Order::kHistory;
  // Where each site has its own budget, admission holds each to it.
  if (checked.plan.budgets_per_site)
    for (const auto& site : checked.plan.sites)
      options.sites.push_back({site.slots, *site.budget, site.capacity});
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

int stopped_while_waiting(SignalSource& signals) {
  auto pending = signals.drain();
  int sig = pending.empty() ? SIGTERM : pending.front();
  Printer(stderr).print(
      fmt::format("runner: {} while waiting for clusters left running; nothing was started\n",
                  signal_name(sig)));
  return 128 + sig;
}

Progress::Mode output_mode(const RunArgs& args) {
  if (args.quiet) return Progress::Mode::kSilent;
  return ::isatty(STDOUT_FILENO) ? Progress::Mode::kTerminal : Progress::Mode::kPlain;
}

// A run that ended with every cluster done: when, for status and metrics
// (runner_last_success_timestamp_seconds). The log failing here costs that
// record only.
void remember_success(Store& store, const Job& job) {
  try {
    store.record_success(job, wall_clock_now());
  } catch (const std::exception& e) {
    spdlog::warn("cannot record the run's success in the log: {}", e.what());
  }
}

// Ends the runs given in the log, in one transaction.
void end_runs(Store& store, const Job& job, const std::vector<std::string>& runs) {
  if (runs.empty()) return;
  Store::Batch batch(store);
  store.end_runs(job, runs);
  batch.commit();
}

// How the run ended, in the summary printed and in `ending`.
int run_ended(const RunArgs& args, Store& store, const Job& job, const RunSummary& summary,
              RunEnding& ending) {
  ending.done_this_run = summary.done_this_run;
  ending.failed_this_run = summary.failed_this_run;
  if (summary.setup_failure) throw Error(*summary.setup_failure);
  if (summary.exit_code() == 0) remember_success(store, job);
  auto text =
      summary_text(summary, job, store.failed_clusters(job, kSummaryFailures), args.db.string());
  if (!args.quiet) Printer(stdout).print(text);
  ending.summary = text;
  ending.outcome = summary.stop_signal        ? "stopped"
                   : summary.halted           ? "halted"
                   : summary.exit_code() == 0 ? "done"
                                              : "failed";
  return summary.exit_code();
}

// The run, once its job is open in the log; says in `ending` how it went.
int run_opened(const RunArgs& args, const CheckedRun& checked, Store& store, const Job& job,
               SignalChannel& signals, ProgressSink& sink, RunEnding& ending,
               MetricsWriter* metrics, MetricsFacts& facts) {
  auto previous_holder = store.holder(job);
  JobHold hold(store, job);
  make_job_log_dir(checked.log_dir);
  // The run is in the DB before anything of it can run: the next runner
  // looks for what it left, whatever happens to the hold.
  auto self = run_id(current_process());
  auto earlier = open_runs(store, job, previous_holder, self);
  {
    Store::Batch batch(store);
    store.record_run(job, self, current_process());
    batch.commit();
  }

  Progress progress(stdout, output_mode(args));
  SinkBinding binding(sink, &progress);
  // What earlier runs left: outcomes their workers journalled are recorded
  // (waiting for a worker that still runs); clusters that a killed runner
  // left running must not run twice at once.
  auto policy = args.orphans_wait ? LeftoverPolicy::kWait : LeftoverPolicy::kKill;
  ending.outcome = "stopped";
  ending.summary = "stopped while waiting for clusters left running; nothing was started";
  if (!collect_earlier_runs(store, job, journal_dir(checked),
                            journal_owner(store, job, previous_holder), policy, signals))
    return stopped_while_waiting(signals);
  RunSummary summary;
  {
    auto engine = make_engine(args, checked, previous_holder, job, store.db_id(), signals);
    if (!checked.plan.shares_log_folder &&
        !collect_through_engine(*engine, store, job, policy, signals.fd()))
      return stopped_while_waiting(signals);
    auto found = engine->settle(leftovers(store, job, earlier), policy, signals.fd());
    if (!found) return stopped_while_waiting(signals);
    // Nothing of the earlier runs runs any more: each execution has its row.
    record_found(store, job, *found, checked.log_dir, policy);
    end_runs(store, job, earlier);
    Scheduler scheduler(store, job, checked.command, *engine, signals, &progress,
                        scheduler_options(args, checked));
    scheduler.set_metrics(metrics);
    summary = run_to_the_end(scheduler, args.db);
    facts = scheduler.metrics_facts();
  }
  // The engine is gone, and its worker with it: nothing of this run runs.
  end_runs(store, job, {self});
  return run_ended(args, store, job, summary, ending);
}

// --metrics, once more at the end: the job's figures as the log has them,
// this run's end and exit code.
void final_metrics(MetricsWriter* metrics, Store& store, const Job& job, MetricsFacts facts,
                   double started_at, int code) {
  if (!metrics) return;
  facts.job = job.name;
  facts.clusters = job.clusters;
  if (facts.started_at == 0) facts.started_at = started_at;
  try {
    for (const auto& p : store.progress())
      if (p.job == job.name) {
        facts.done = p.done;
        facts.failed = p.failed;
        facts.running = p.running;
      }
  } catch (const std::exception& e) {
    spdlog::warn("--metrics: cannot read the job's figures: {}", e.what());
  }
  try {
    facts.last_success_at = store.job_times(job).last_success_at;
  } catch (const std::exception& e) {
    spdlog::warn("--metrics: cannot read the job's last success: {}", e.what());
  }
  facts.reserved_bytes = facts.budget_bytes ? std::optional<std::uint64_t>(0) : std::nullopt;
  facts.in_use_bytes.reset();
  facts.finished_at = wall_clock_now();
  facts.exit_code = code;
  metrics->write(facts);
}

// --on-finish, with the job's figures as the log has them now.
void on_finish(const RunArgs& args, Store& store, const Job& job, const CheckedRun& checked,
               const SignalChannel& signals, RunEnding& ending, int code) {
  if (!args.on_finish) return;
  ending.job = job.name;
  ending.db = fs::absolute(args.db);
  ending.exit_code = code;
  ending.clusters = job.clusters;
  try {
    for (const auto& p : store.progress())
      if (p.job == job.name) {
        ending.done = p.done;
        ending.failed = p.failed;
      }
    ending.failures = store.failed_clusters(job, kSummaryFailures);
  } catch (const std::exception& e) {
    // The log itself failed: the command still hears how the run ended.
    spdlog::warn("--on-finish: cannot read the job's figures: {}", e.what());
  }
  run_on_finish(*args.on_finish, args.on_finish_limit, ending, checked.log_dir / "finish.txt",
                signals.inherited());
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

namespace {

// The run once its job is open in the log: however it ends from here,
// --metrics and --on-finish say so.
int run_open_job(const RunArgs& args, const CheckedRun& checked, Store& store, const Job& job,
                 SignalChannel& signals, ProgressSink& sink) {
  auto started_at = wall_clock_now();
  std::optional<MetricsWriter> metrics;
  if (args.metrics) metrics.emplace(*args.metrics, store.job_times(job).last_success_at);
  auto* writer = metrics ? &*metrics : nullptr;
  MetricsFacts facts;
  RunEnding ending;
  try {
    auto code = run_opened(args, checked, store, job, signals, sink, ending, writer, facts);
    final_metrics(writer, store, job, facts, started_at, code);
    on_finish(args, store, job, checked, signals, ending, code);
    return code;
  } catch (const Error& e) {
    ending.outcome = e.code() == ExitCode::kLogLost ? "log-lost" : "setup-error";
    ending.summary = e.what();
    final_metrics(writer, store, job, facts, started_at, static_cast<int>(e.code()));
    on_finish(args, store, job, checked, signals, ending, static_cast<int>(e.code()));
    throw;
  }
}

// What --on-finish is told of a start refused before its job was open.
RefusedHook refused_hook(const RunArgs& args, const std::string& job_name,
                         const InheritedSignals& inherited) {
  RefusedHook hook{.command = *args.on_finish,
                   .limit = args.on_finish_limit,
                   .db = args.db,
                   .job = job_name,
                   .clusters = args.clusters,
                   .signals = inherited,
                   .quiet = args.quiet,
                   .verbose = args.verbose};
  if (hook.job.empty())
    hook.job = args.job.value_or(derive_job_name(CommandTemplate(args.command), args.clusters));
  return hook;
}

}  // namespace

int run_job(const RunArgs& args) {
  InheritedSignals inherited;  // before runner changes them
  auto sink = setup_logging(args.quiet, args.verbose);
  std::string job_name;
  bool opened = false;
  try {
    // Everything the user typed is checked before the log is created or written.
    auto checked = check_run(args);
    job_name = checked.job_name;
    // One runner per job and DB on this host, even through a re-created DB file.
    JobLock lock(args.db, checked.job_name);
    // runner's own signals are blocked from here on and handled in the loop.
    SignalChannel signals{SIGINT, SIGTERM, SIGHUP};
    Store store(args.db, Store::Access::kReadWrite,
                args.sync_full ? Store::Sync::kFull : Store::Sync::kNormal,
                wait_for_other_writers(args.db));
    auto job = store.open_job(checked.job_name, args.clusters, checked.command.display());
    opened = true;
    return run_open_job(args, checked, store, job, signals, *sink);
  } catch (const Error& e) {
    // Refused before the job was open: nothing is written, and the
    // --on-finish command hears of it all the same.
    if (opened || !args.on_finish) throw;
    throw RefusedStart(e, refused_hook(args, job_name, inherited));
  }
}

}  // namespace runner
