#include "runner/cli.h"

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <sstream>

#include "runner/error.h"
#include "runner/on_finish.h"
#include "runner/plan.h"
#include "runner/policy.h"
#include "runner/units.h"

namespace runner {
namespace {

constexpr const char* kRunExamples = R"(
Examples:
  runner 10000 3 -- ./migrate --cluster=
      runs ./migrate --cluster=1/10000 ... --cluster=10000/10000, 3 at a time
  runner 500 8 --job nightly -- python3 etl.py --part {i} --of {n}
  sqlite3 runner.db 'select * from progress'

The cluster token i/N is appended to the last argument when it ends with '=',
otherwise added as a last argument; {} {i} {n} in any argument place it instead.
Exit codes: 0 all done, 1 some clusters not done, 2 usage or setup error
(nothing was written), 3 the log could not be written (its disk full, or the
DB deleted or replaced while runner ran), 128+signal when stopped by a signal
(130 for Ctrl-C, 143 for SIGTERM).
Run the same command again to resume: clusters already done are skipped.)";

constexpr const char* kReportExamples = R"(
Examples:
  runner report
  runner report --job nightly --csv > peaks.csv
  runner report --mem-budget 16G
  runner report --html night.html --job nightly)";

constexpr const char* kDoctorExamples = R"(
Example:
  runner doctor)";

constexpr const char* kUnlockExamples = R"(
A job's hold says which runner runs it. A runner that died on this host
loses its hold by itself; one held from another host (a shared DB) cannot be
checked from here, and stays until cleared:
  runner unlock --db /shared/runner.db --job nightly)";

constexpr const char* kLogExamples = R"(
Examples:
  runner log 17
  runner log --db /srv/migrate/runner.db --job nightly 17 2
An attempt that ran on an SSH host is read there, over ssh.)";

constexpr const char* kStatusExamples = R"(
Examples:
  runner status
  runner status --db /srv/migrate/runner.db --job nightly)";

ClusterId parse_clusters(const std::string& text) {
  auto n = parse_count(text, 1, kMaxClusters);
  if (!n)
    throw Error(fmt::format("N '{}' is not valid: expected a whole number of clusters from 1 to {}",
                            text, kMaxClusters));
  return *n;
}

std::uint32_t parse_parallel(const std::string& text) {
  auto p = parse_count(text, 1, kMaxParallel);
  if (!p)
    throw Error(
        fmt::format("P '{}' is not valid: expected a whole number of children at once from 1 to {}",
                    text, kMaxParallel));
  return static_cast<std::uint32_t>(*p);
}

std::uint64_t parse_size_option(const std::string& option, const std::string& text) {
  auto size = parse_size(text);
  if (!size || *size < (1ULL << 20))
    throw Error(
        fmt::format("{} '{}' is not valid: expected a size of at least 1M, like 512M, 4G or 1.5G",
                    option, text));
  return *size;
}

// A duration option, or an Error naming it, its value and examples of good ones.
std::chrono::milliseconds parse_duration_option(const std::string& option, const std::string& text,
                                                const char* examples, bool above_zero = false) {
  auto d = parse_duration(text);
  if (!d || (above_zero && d->count() == 0))
    throw Error(fmt::format("{} '{}' is not valid: expected a duration {}like {}", option, text,
                            above_zero ? "above zero " : "", examples));
  return *d;
}

std::string check_job_name(const std::string& name) {
  if (!is_valid_job_name(name))
    throw Error(
        fmt::format("--job '{}' is not valid: expected 1 to 128 letters, digits, '.', '_' or '-', "
                    "not starting with "
                    "'.' or '-'",
                    name));
  return name;
}

}  // namespace

namespace {

// The text each option was given, or nothing when it was not given. An empty
// value is a value: `--timeout ""` from an unset cron variable is refused,
// never taken as "no timeout".
class Given {
 public:
  static CLI::Option* add(CLI::App& app, const std::string& name, const std::string& type,
                          const std::string& help) {
    return app.add_option(name, help)->type_name(type);
  }
  static std::optional<std::string> text(const CLI::Option* option) {
    if (option->count() == 0) return std::nullopt;
    return option->results().back();
  }
};

using Text = std::optional<std::string>;

struct RunOptions {
  CLI::Option *n, *p, *db, *job, *logs, *grace, *mem_limit, *mem_budget, *cap, *timeout, *retries,
      *retry_delay, *retry_on, *halt, *sync, *orphans, *worker, *on, *hosts, *ssh, *on_finish,
      *on_finish_limit, *order, *metrics, *log_format;
};

// "local|slurm|ssh" and what each means, from the table of planners.
std::string on_words() {
  std::string words;
  for (const auto& p : planners()) words += (words.empty() ? "" : "|") + std::string(p.word);
  return words;
}

std::string on_help() {
  std::string help = "where the clusters run:";
  for (const auto& p : planners()) help += fmt::format(" {}: {};", p.word, p.about);
  help.pop_back();
  return help;
}

void add_memory_options(CLI::App& app, RunArgs& run, RunOptions& o) {
  o.mem_limit = Given::add(app, "--mem-limit", "SIZE", "cap each child's memory (e.g. 4G)");
  o.mem_budget =
      Given::add(app, "--mem-budget", "SIZE|auto",
                 "keep all running children within this much memory (e.g. 16G, or auto); "
                 "--on slurm and ssh: on each node or host, auto being what it has for runner");
  app.add_flag(
      "--mem-overcommit", run.mem_overcommit,
      "with --mem-budget: admit unknown clusters on a learned figure, and evict if need be");
  o.cap = Given::add(app, "--cap", "auto|cgroup|rlimit|none", "how to cap memory (default auto)");
}

void add_place_options(CLI::App& app, RunOptions& o) {
  o.on = Given::add(app, "--on", on_words(), on_help());
  o.hosts = Given::add(app, "--hosts", "FILE|LIST",
                       "--on ssh: the hosts, one per line of FILE or comma-separated, each "
                       "[slots/][user@]host[:port] with an optional memory budget after a space "
                       "(e.g. 8/db1 16G)");
  o.ssh = Given::add(app, "--ssh", "COMMAND",
                     "--on ssh: the command that reaches a host, its words split on spaces "
                     "(default ssh; e.g. 'ssh -F cfg -J jump')");
}

RunOptions add_run_options(CLI::App& app, RunArgs& run) {
  RunOptions o{};
  Given g;
  o.n = g.add(app, "N", "", "number of clusters, numbered 1..N");
  o.p = g.add(app, "P", "", "most clusters running at once");
  o.db = g.add(app, "--db", "PATH", "the SQLite log (default ./runner.db)");
  o.job = g.add(app, "--job", "NAME", "job name (default: derived from the command and N)");
  o.logs = g.add(app, "--logs", "DIR", "folder for the logs (default: <db name>.logs beside it)");
  o.log_format = g.add(app, "--log-format", "stream|files",
                       "stream: each worker appends its clusters' output to one file per run; "
                       "files: a file per attempt (default files)");
  o.grace = g.add(app, "--grace", "DURATION",
                  "on a stop, time between SIGTERM and SIGKILL (default 10s)");
  app.add_flag("--skip-failed", run.skip_failed, "leave clusters that failed before alone");
  add_memory_options(app, run, o);
  o.timeout = g.add(app, "--timeout", "DURATION", "stop an attempt that runs longer (e.g. 30m)");
  o.retries = g.add(app, "--retries", "K", "run a failed cluster up to K more times (default 0)");
  o.retry_delay = g.add(app, "--retry-delay", "DURATION",
                        "wait before the first retry, doubling after (default 1s)");
  o.retry_on = g.add(app, "--retry-on", "LIST",
                     "what is retried: exit, exit:N, signal, timeout, oom (default "
                     "exit,signal,timeout)");
  o.halt = g.add(app, "--halt", "never|soon,fail=N[%]|now,fail=N[%]",
                 "give up after N (or N%) failed clusters (default never)");
  o.sync = g.add(app, "--sync", "normal|full", "what a commit survives (default normal)");
  o.orphans = g.add(app, "--orphans", "wait|kill",
                    "clusters a killed runner left running: wait for them and record how they "
                    "ended (default), or kill them and run them again (a cluster that was about "
                    "to finish then runs twice)");
  o.worker = g.add(app, "--worker", "on|off",
                   "on (default): a worker process runs the clusters and journals how each "
                   "ended, so one that finishes while runner is killed is not run again; off: "
                   "runner runs them itself");
  o.on_finish = g.add(app, "--on-finish", "COMMAND",
                      "run COMMAND through sh -c once the run ends, however it ends (also when "
                      "runner refuses to start it), with the outcome in RUNNER_* variables (see "
                      "the README)");
  o.on_finish_limit = g.add(app, "--on-finish-timeout", "DURATION",
                            "stop the --on-finish command after this long (default 1m; above "
                            "zero)");
  o.metrics = g.add(app, "--metrics", "FILE",
                    "write the run's figures there in Prometheus' text format, every few "
                    "seconds and at the end (for node_exporter's textfile collector)");
  o.order = g.add(app, "--order", "history|index",
                  "which clusters start first: those that took longest in earlier jobs with the "
                  "same command and N (default; largest first where memory binds), or 1, 2, 3 "
                  "… (index)");
  add_place_options(app, o);
  app.add_flag("-q,--quiet", run.quiet, "print only errors");
  app.add_flag("-v,--verbose", run.verbose, "print debugging detail");
  return o;
}

std::string check_choice(const std::string& option, const std::string& text,
                         std::initializer_list<const char*> choices, const char* expected) {
  for (const char* c : choices)
    if (text == c) return text;
  throw Error(fmt::format("{} '{}' is not valid: expected {}", option, text, expected));
}

void read_memory_options(const RunOptions& o, RunArgs& run) {
  if (auto t = Given::text(o.cap)) {
    auto cap = parse_cap_choice(*t);
    if (!cap)
      throw Error(
          fmt::format("--cap '{}' is not valid: expected auto, cgroup, rlimit or none", *t));
    run.cap = *cap;
  }
  if (auto t = Given::text(o.mem_limit)) run.mem_limit = parse_size_option("--mem-limit", *t);
  auto budget = Given::text(o.mem_budget);
  if (budget == "auto")
    run.mem_budget_auto = true;
  else if (budget)
    run.mem_budget = parse_size_option("--mem-budget", *budget);
  if (run.mem_overcommit && !budget)
    throw Error("--mem-overcommit needs --mem-budget: it decides how the budget is shared");
  if (run.mem_limit && run.cap == CapChoice::kNone)
    throw Error("--mem-limit cannot be enforced with --cap none: use --cap auto, cgroup or rlimit");
}

// Where the clusters run: --on, and the options of its planner.
void read_place_options(const RunOptions& o, RunArgs& run) {
  if (auto t = Given::text(o.on)) run.on = find_planner(*t).word;
  run.hosts = Given::text(o.hosts);
  run.ssh = Given::text(o.ssh);
  for (const auto* option : {o.hosts, o.ssh})
    if (option->count() > 0 && run.on != "ssh")
      throw Error(
          fmt::format("{} is for --on ssh, and this run is --on {}", option->get_name(), run.on));
  if (run.on == "ssh" && (!run.hosts || run.hosts->empty()))
    throw Error("--on ssh needs --hosts: a file of hosts, one per line, or a list like db1,8/db2");
  if (run.ssh && run.ssh->find_first_not_of(' ') == std::string::npos)
    throw Error(
        fmt::format("--ssh '{}' is not valid: expected a command, like ssh -F cfg", *run.ssh));
}

void read_reliability_options(const RunOptions& o, RunArgs& run) {
  if (auto t = Given::text(o.timeout))
    run.timeout = parse_duration_option("--timeout", *t, "90s, 30m or 2h", true);
  if (auto t = Given::text(o.retry_on)) {
    auto on = RetryPolicy::parse_on(*t);
    if (!on)
      throw Error(fmt::format(
          "--retry-on '{}' is not valid: expected a comma list of exit, exit:N, signal, timeout, "
          "oom",
          *t));
    run.retry = *on;
  }
  if (auto t = Given::text(o.retries)) {
    auto retries = parse_count(*t, 0, 1000);
    if (!retries)
      throw Error(
          fmt::format("--retries '{}' is not valid: expected a whole number from 0 to 1000", *t));
    run.retry.retries = static_cast<std::uint32_t>(*retries);
  }
  if (auto t = Given::text(o.retry_delay))
    run.retry.delay = parse_duration_option("--retry-delay", *t, "500ms, 10s or 1m");
  if (auto t = Given::text(o.halt)) {
    auto halt = HaltPolicy::parse(*t);
    if (!halt)
      throw Error(fmt::format(
          "--halt '{}' is not valid: expected never, soon,fail=N, now,fail=N or with N%", *t));
    run.halt = *halt;
  }
  if (auto t = Given::text(o.sync))
    run.sync_full = check_choice("--sync", *t, {"normal", "full"}, "normal or full") == "full";
  if (auto t = Given::text(o.orphans))
    run.orphans_wait = check_choice("--orphans", *t, {"kill", "wait"}, "wait or kill") == "wait";
  if (auto t = Given::text(o.worker))
    run.worker = check_choice("--worker", *t, {"on", "off"}, "on or off") == "on";
  if (auto t = Given::text(o.order))
    run.order_by_index =
        check_choice("--order", *t, {"history", "index"}, "history or index") == "index";
  read_place_options(o, run);
}

std::filesystem::path db_path(const Text& text, const std::filesystem::path& fallback) {
  if (!text) return fallback;
  if (text->empty()) throw Error("--db '' is not valid: expected a file path");
  return *text;
}

std::optional<std::string> job_name(const Text& text) {
  if (!text) return std::nullopt;
  return check_job_name(*text);
}

RunArgs read_run(const RunOptions& o, RunArgs run,
                 std::optional<std::vector<std::string>> command) {
  auto n = Given::text(o.n), p = Given::text(o.p);
  if (!n || !p)
    throw Error("expected N and P: runner N P [OPTIONS] -- COMMAND [ARG...]; see 'runner --help'");
  run.clusters = parse_clusters(*n);
  run.parallel = parse_parallel(*p);
  if (!command || command->empty() || command->front().empty())
    throw Error("no command after '--': write runner N P [OPTIONS] -- COMMAND [ARG...]");
  run.command = std::move(*command);
  run.db = db_path(Given::text(o.db), run.db);
  run.job = job_name(Given::text(o.job));
  if (auto t = Given::text(o.logs)) {
    if (t->empty()) throw Error("--logs '' is not valid: expected a folder path");
    run.logs = *t;
  }
  if (auto t = Given::text(o.log_format)) {
    auto format = parse_log_format(*t);
    if (!format)
      throw Error(fmt::format("--log-format '{}' is not valid: expected stream or files", *t));
    run.log_format = *format;
  }
  if (auto t = Given::text(o.grace))
    run.grace = parse_duration_option("--grace", *t, "30s, 5m or 1h");
  if (auto t = Given::text(o.on_finish)) {
    if (t->empty()) throw Error("--on-finish '' is not valid: expected a command for sh -c");
    run.on_finish = *t;
  }
  if (auto t = Given::text(o.metrics)) {
    if (t->empty()) throw Error("--metrics '' is not valid: expected a file path");
    run.metrics = *t;
  }
  if (auto t = Given::text(o.on_finish_limit)) {
    if (!run.on_finish) throw Error("--on-finish-timeout needs --on-finish");
    run.on_finish_limit = parse_duration_option("--on-finish-timeout", *t, "30s, 5m or 1h", true);
  }
  if (run.quiet && run.verbose) throw Error("-q and -v cannot be used together");
  read_memory_options(o, run);
  read_reliability_options(o, run);
  return run;
}

// What --on-finish is to hear of a start refused for its command line, as
// far as that line says it: nothing when it names no command to run.
std::optional<RefusedHook> refused_hook(const RunOptions& o, const RunArgs& flags,
                                        const std::optional<std::vector<std::string>>& command) {
  auto text = Given::text(o.on_finish);
  if (!text || text->empty()) return std::nullopt;
  RefusedHook hook;
  hook.command = *text;
  hook.quiet = flags.quiet;
  hook.verbose = flags.verbose;
  if (auto t = Given::text(o.on_finish_limit))
    if (auto d = parse_duration(*t); d && d->count() > 0) hook.limit = *d;
  if (auto db = Given::text(o.db); db && !db->empty()) hook.db = *db;
  if (auto n = Given::text(o.n)) hook.clusters = parse_count(*n, 1, kMaxClusters).value_or(0);
  auto job = Given::text(o.job);
  if (job && is_valid_job_name(*job))
    hook.job = *job;
  else if (!job && command && !command->empty() && !command->front().empty() && hook.clusters)
    hook.job = derive_job_name(CommandTemplate(*command), hook.clusters);
  return hook;
}

}  // namespace

namespace {

// The subcommands that read the log, each an option table and a reading of it.
struct Subcommands {
  CLI::App *status, *report, *unlock, *doctor, *log, *worker;
  CLI::Option *status_db, *status_job;
  CLI::Option *report_db, *report_job, *report_budget, *report_html;
  CLI::Option *log_db, *log_job, *log_cluster, *log_attempt, *log_ssh;
  CLI::Option *unlock_db, *unlock_job, *worker_kill_run, *worker_check, *worker_check_dir,
      *worker_check_shared, *worker_check_allocation, *worker_check_db, *worker_check_job,
      *worker_cat_log;
  bool csv = false, json = false, status_json = false, worker_check_resources = false;
};

void add_subcommands(CLI::App& app, Subcommands& sub) {
  Given g;
  const char* db_help = "the SQLite log (default ./runner.db)";
  sub.status = app.add_subcommand("status", "Where each job in the log stands.");
  sub.status_db = g.add(*sub.status, "--db", "PATH", db_help);
  sub.status_job = g.add(*sub.status, "--job", "NAME", "only this job");
  sub.status->add_flag("--json", sub.status_json,
                       "the same as JSON: an array of jobs (fields in the README)");
  sub.status->footer(kStatusExamples);

  sub.report =
      app.add_subcommand("report", "Per-cluster attempts, state, duration and peak memory.");
  sub.report_db = g.add(*sub.report, "--db", "PATH", db_help);
  sub.report_job = g.add(*sub.report, "--job", "NAME", "only this job");
  sub.report->add_flag("--csv", sub.csv, "one row per cluster, peaks in MiB");
  sub.report->add_flag("--json", sub.json, "the whole report as JSON");
  sub.report_budget =
      g.add(*sub.report, "--mem-budget", "SIZE", "say the highest P that fits this budget");
  sub.report_html = g.add(*sub.report, "--html", "FILE",
                          "write a page that shows how the job ran (one self-contained HTML "
                          "file: timeline, memory, numbers)");
  sub.report->footer(kReportExamples);

  sub.unlock =
      app.add_subcommand("unlock", "Clear a job's hold left by a runner that cannot clear it.");
  sub.unlock_db = g.add(*sub.unlock, "--db", "PATH", db_help);
  sub.unlock_job = g.add(*sub.unlock, "--job", "NAME", "the job whose hold to clear")->required();
  sub.unlock->footer(kUnlockExamples);

  sub.log = app.add_subcommand("log", "One attempt's output, wherever it ran.");
  sub.log_db = g.add(*sub.log, "--db", "PATH", db_help);
  sub.log_job = g.add(*sub.log, "--job", "NAME", "the job (default: the DB's only job)");
  sub.log_cluster = g.add(*sub.log, "CLUSTER", "", "the cluster, 1..N")->required();
  sub.log_attempt = g.add(*sub.log, "ATTEMPT", "", "its attempt (default: the latest)");
  sub.log_ssh = g.add(*sub.log, "--ssh", "COMMAND",
                      "how to reach the host it ran on, as the run's --ssh (default ssh)");
  sub.log->footer(kLogExamples);

  sub.doctor = app.add_subcommand(
      "doctor", "How runner can cap memory on this machine, and what would make it better.");
  sub.doctor->footer(kDoctorExamples);
  // Not for people: the process runner starts to run its clusters. No group: not in --help.
  sub.worker = app.add_subcommand("worker", "")->group("");
  sub.worker_kill_run = g.add(*sub.worker, "--kill-run", "RUN", "");
  sub.worker_check = g.add(*sub.worker, "--check", "PROGRAM", "");
  sub.worker_check_dir = g.add(*sub.worker, "--check-dir", "PATH", "");
  sub.worker_check_shared = g.add(*sub.worker, "--check-shared", "PATH", "");
  sub.worker->add_flag("--check-resources", sub.worker_check_resources, "");
  sub.worker_check_allocation = g.add(*sub.worker, "--check-allocation", "ID", "");
  sub.worker_check_db = g.add(*sub.worker, "--check-db", "PATH", "");
  sub.worker_check_job = g.add(*sub.worker, "--check-job", "NAME", "");
  sub.worker_cat_log = g.add(*sub.worker, "--cat-log", "REF", "");
}

LogArgs read_log_args(const Subcommands& sub) {
  LogArgs log;
  log.db = db_path(Given::text(sub.log_db), log.db);
  log.job = job_name(Given::text(sub.log_job));
  auto cluster = *Given::text(sub.log_cluster);
  auto n = parse_count(cluster, 1, kMaxClusters);
  if (!n)
    throw Error(
        fmt::format("CLUSTER '{}' is not valid: expected a cluster number from 1", cluster));
  log.cluster = *n;
  if (auto t = Given::text(sub.log_attempt)) {
    auto a = parse_count(*t, 1, UINT32_MAX);
    if (!a)
      throw Error(fmt::format("ATTEMPT '{}' is not valid: expected an attempt number from 1", *t));
    log.attempt = static_cast<std::uint32_t>(*a);
  }
  log.ssh = Given::text(sub.log_ssh);
  return log;
}

// The subcommand given, read into its values; nothing when none was.
std::optional<Invocation> read_subcommand(const Subcommands& sub, bool has_command) {
  for (auto* cmd : {sub.status, sub.report, sub.unlock, sub.doctor, sub.log, sub.worker})
    if (cmd->parsed() && has_command)
      throw Error(fmt::format("'runner {}' takes no command after '--'", cmd->get_name()));
  if (sub.status->parsed()) {
    StatusArgs status;
    status.db = db_path(Given::text(sub.status_db), status.db);
    status.job = job_name(Given::text(sub.status_job));
    status.json = sub.status_json;
    return status;
  }
  if (sub.report->parsed()) {
    if (sub.csv && sub.json) throw Error("--csv and --json cannot be used together");
    if (Given::text(sub.report_html) && (sub.csv || sub.json))
      throw Error("--html writes a page of its own: it cannot be used with --csv or --json");
    ReportArgs report;
    report.db = db_path(Given::text(sub.report_db), report.db);
    report.job = job_name(Given::text(sub.report_job));
    if (sub.csv) report.format = ReportArgs::Format::kCsv;
    if (sub.json) report.format = ReportArgs::Format::kJson;
    if (auto t = Given::text(sub.report_budget))
      report.mem_budget = parse_size_option("--mem-budget", *t);
    if (auto t = Given::text(sub.report_html)) {
      if (t->empty()) throw Error("--html: give the file to write, e.g. --html report.html");
      report.html = *t;
    }
    return report;
  }
  if (sub.unlock->parsed()) {
    UnlockArgs unlock;
    unlock.db = db_path(Given::text(sub.unlock_db), unlock.db);
    unlock.job = *job_name(Given::text(sub.unlock_job));
    return unlock;
  }
  if (sub.doctor->parsed()) return DoctorArgs{};
  if (sub.log->parsed()) return read_log_args(sub);
  if (sub.worker->parsed())
    return WorkerArgs{Given::text(sub.worker_kill_run),  Given::text(sub.worker_check),
                      Given::text(sub.worker_check_dir), Given::text(sub.worker_check_shared),
                      sub.worker_check_resources,        Given::text(sub.worker_check_allocation),
                      Given::text(sub.worker_check_db),  Given::text(sub.worker_check_job),
                      Given::text(sub.worker_cat_log)};
  return std::nullopt;
}

}  // namespace

Invocation parse_command_line(const std::vector<std::string>& args) {
  // Everything after the first "--" is the command, untouched by option parsing:
  // a child's own --help or -v must never reach runner's parser.
  auto dash = std::find(args.begin(), args.end(), "--");
  std::vector<std::string> own(args.begin(), dash);
  std::optional<std::vector<std::string>> command;
  if (dash != args.end()) command.emplace(dash + 1, args.end());

  CLI::App app{"Runs a job split into N clusters, P at a time, and logs every attempt in SQLite.",
               "runner"};
  app.set_version_flag("--version", std::string("runner ") + RUNNER_VERSION);
  app.footer(kRunExamples);
  RunArgs run;
  auto run_options = add_run_options(app, run);
  Subcommands sub;
  add_subcommands(app, sub);
  try {
    std::vector<std::string> reversed(own.rbegin(), own.rend());  // CLI11 pops from the back
    app.parse(reversed);
  } catch (const CLI::CallForHelp& e) {
    std::ostringstream out, err;
    app.exit(e, out, err);
    return PrintAndExit{out.str()};
  } catch (const CLI::CallForVersion& e) {
    std::ostringstream out, err;
    app.exit(e, out, err);
    return PrintAndExit{out.str()};
  } catch (const CLI::ParseError& e) {
    Error error(fmt::format("{}; see 'runner --help'", e.what()));
    if (auto hook = refused_hook(run_options, run, command)) throw RefusedStart(error, *hook);
    throw error;
  }
  if (auto invocation = read_subcommand(sub, command.has_value())) return *invocation;
  // A run refused for its command line still runs its --on-finish command.
  try {
    return read_run(run_options, run, command);
  } catch (const Error& e) {
    if (auto hook = refused_hook(run_options, run, command)) throw RefusedStart(e, *hook);
    throw;
  }
}

}  // namespace runner
