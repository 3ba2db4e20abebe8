#include "runner/cli.h"

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <sstream>

#include "runner/error.h"
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
Exit codes: 0 all done, 1 some clusters failed, 2 usage or setup error,
128+signal when stopped by a signal (130 for Ctrl-C, 143 for SIGTERM).
Run the same command again to resume: clusters already done are skipped.)";

constexpr const char* kReportExamples = R"(
Examples:
  runner report
  runner report --job nightly --csv > peaks.csv
  runner report --mem-budget 16G)";

constexpr const char* kDoctorExamples = R"(
Example:
  runner doctor)";

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
    throw Error(fmt::format(
        "--job '{}' is not valid: use 1 to 128 letters, digits, '.', '_' or '-'", name));
  return name;
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
  std::string n_text, p_text, grace_text, job;
  std::string db_text = run.db.string(), logs_text;
  app.add_option("N", n_text, "number of clusters, numbered 1..N");
  app.add_option("P", p_text, "most clusters running at once");
  app.add_option("--db", db_text, "the SQLite log (default ./runner.db)");
  app.add_option("--job", job, "job name (default: derived from the command and N)");
  app.add_option("--logs", logs_text, "folder for the logs (default: beside the DB)");
  app.add_option("--grace", grace_text,
                 "on a stop, time between SIGTERM and SIGKILL (default 10s)");
  app.add_flag("--skip-failed", run.skip_failed, "leave clusters that failed before alone");
  std::string mem_limit_text, mem_budget_text, cap_text;
  app.add_option("--mem-limit", mem_limit_text, "cap each child's memory (e.g. 4G)");
  app.add_option("--mem-budget", mem_budget_text,
                 "keep all running children within this much memory (e.g. 16G, or auto)");
  app.add_flag(
      "--mem-overcommit", run.mem_overcommit,
      "with --mem-budget: admit unknown clusters on a learned figure, and evict if need be");
  app.add_option("--cap", cap_text, "how to cap memory: auto (default), cgroup, rlimit or none");
  std::string timeout_text, retries_text, retry_delay_text, sync_text, orphans_text;
  app.add_option("--timeout", timeout_text, "stop an attempt that runs longer (e.g. 30m)");
  app.add_option("--retries", retries_text, "run a failed cluster up to K more times (default 0)");
  app.add_option("--retry-delay", retry_delay_text,
                 "wait before the first retry, doubling after (default 1s)");
  app.add_option(
      "--retry-on", run.retry_on,
      "what is retried: exit, exit:N, signal, timeout, oom (default exit,signal,timeout)");
  app.add_option("--halt", run.halt, "never (default), soon,fail=N[%] or now,fail=N[%]");
  app.add_option("--sync", sync_text, "normal (default) or full: see the README");
  app.add_option("--orphans", orphans_text,
                 "kill (default) or wait for clusters a killed runner left running");
  app.add_flag("-q,--quiet", run.quiet, "print only errors");
  app.add_flag("-v,--verbose", run.verbose, "print debugging detail");

  StatusArgs status;
  std::string status_db = status.db.string(), status_job;
  auto* status_cmd = app.add_subcommand("status", "Where each job in the log stands.");
  status_cmd->add_option("--db", status_db, "the SQLite log (default ./runner.db)");
  status_cmd->add_option("--job", status_job, "only this job");
  status_cmd->footer(kStatusExamples);

  ReportArgs report;
  std::string report_db = report.db.string(), report_job, report_budget;
  bool csv = false, json = false;
  auto* report_cmd =
      app.add_subcommand("report", "Per-cluster attempts, state, duration and peak memory.");
  report_cmd->add_option("--db", report_db, "the SQLite log (default ./runner.db)");
  report_cmd->add_option("--job", report_job, "only this job");
  report_cmd->add_flag("--csv", csv, "one row per cluster, peaks in MiB");
  report_cmd->add_flag("--json", json, "the whole report as JSON");
  report_cmd->add_option("--mem-budget", report_budget, "say the highest P that fits this budget");
  report_cmd->footer(kReportExamples);

  auto* doctor_cmd = app.add_subcommand(
      "doctor", "How runner can cap memory on this machine, and what would make it better.");
  doctor_cmd->footer(kDoctorExamples);

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
    throw Error(fmt::format("{}; see 'runner --help'", e.what()));
  }

  if (status_cmd->parsed()) {
    if (command) throw Error("'runner status' takes no command after '--'");
    status.db = status_db;
    if (!status_job.empty()) status.job = check_job_name(status_job);
    return status;
  }

  if (report_cmd->parsed()) {
    if (command) throw Error("'runner report' takes no command after '--'");
    if (csv && json) throw Error("--csv and --json cannot be used together");
    report.db = report_db;
    if (!report_job.empty()) report.job = check_job_name(report_job);
    if (csv) report.format = ReportArgs::Format::kCsv;
    if (json) report.format = ReportArgs::Format::kJson;
    if (!report_budget.empty())
      report.mem_budget = parse_size_option("--mem-budget", report_budget);
    return report;
  }
  if (doctor_cmd->parsed()) {
    if (command) throw Error("'runner doctor' takes no command after '--'");
    return DoctorArgs{};
  }

  if (n_text.empty() || p_text.empty())
    throw Error("expected N and P: runner N P [OPTIONS] -- COMMAND [ARG...]; see 'runner --help'");
  run.clusters = parse_clusters(n_text);
  run.parallel = parse_parallel(p_text);
  if (!command || command->empty() || command->front().empty())
    throw Error("no command after '--': write runner N P [OPTIONS] -- COMMAND [ARG...]");
  run.command = std::move(*command);
  run.db = db_text;
  if (db_text.empty()) throw Error("--db '' is not valid: expected a file path");
  if (!job.empty()) run.job = check_job_name(job);
  if (!logs_text.empty()) run.logs = logs_text;
  if (!grace_text.empty())
    run.grace = parse_duration_option("--grace", grace_text, "30s, 5m or 1h");
  if (run.quiet && run.verbose) throw Error("-q and -v cannot be used together");
  if (!cap_text.empty()) {
    auto cap = parse_cap_choice(cap_text);
    if (!cap)
      throw Error(
          fmt::format("--cap '{}' is not valid: expected auto, cgroup, rlimit or none", cap_text));
    run.cap = *cap;
  }
  if (!mem_limit_text.empty()) run.mem_limit = parse_size_option("--mem-limit", mem_limit_text);
  if (mem_budget_text == "auto")
    run.mem_budget_auto = true;
  else if (!mem_budget_text.empty())
    run.mem_budget = parse_size_option("--mem-budget", mem_budget_text);
  if (run.mem_overcommit && mem_budget_text.empty())
    throw Error("--mem-overcommit needs --mem-budget: it decides how the budget is shared");
  if (run.mem_limit && run.cap == CapChoice::kNone)
    throw Error("--mem-limit cannot be enforced with --cap none: use --cap auto, cgroup or rlimit");
  if (!timeout_text.empty())
    run.timeout = parse_duration_option("--timeout", timeout_text, "90s, 30m or 2h", true);
  if (!retries_text.empty()) {
    auto retries = parse_count(retries_text, 0, 1000);
    if (!retries)
      throw Error(fmt::format("--retries '{}' is not valid: expected a whole number from 0 to 1000",
                              retries_text));
    run.retries = static_cast<std::uint32_t>(*retries);
  }
  if (!retry_delay_text.empty())
    run.retry_delay = parse_duration_option("--retry-delay", retry_delay_text, "500ms, 10s or 1m");
  if (!RetryPolicy::parse_on(run.retry_on))
    throw Error(fmt::format(
        "--retry-on '{}' is not valid: expected a comma list of exit, exit:N, signal, timeout, oom",
        run.retry_on));
  if (!HaltPolicy::parse(run.halt))
    throw Error(fmt::format(
        "--halt '{}' is not valid: expected never, soon,fail=N, now,fail=N or with N%", run.halt));
  if (!sync_text.empty() && sync_text != "normal" && sync_text != "full")
    throw Error(fmt::format("--sync '{}' is not valid: expected normal or full", sync_text));
  run.sync_full = sync_text == "full";
  if (!orphans_text.empty() && orphans_text != "kill" && orphans_text != "wait")
    throw Error(fmt::format("--orphans '{}' is not valid: expected kill or wait", orphans_text));
  run.orphans_wait = orphans_text == "wait";
  return run;
}

}  // namespace runner
