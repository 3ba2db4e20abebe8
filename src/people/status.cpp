// `runner status`: where each job in the log stands, read without writing.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "runner/app.h"
#include "runner/error.h"
#include "runner/json_text.h"
#include "runner/signals.h"
#include "runner/store.h"
#include "runner/units.h"
#include "runner/words.h"

namespace runner {
namespace {

constexpr std::size_t kFailedShown = 20;

// What `runner status` says of one job, gathered once and then printed as
// text or as JSON: both say the same.
struct JobStatus {
  Job job;
  JobProgress progress;
  JobTimes times;
  struct Runner {
    ProcessIdentity process;
    double since = 0;  // epoch seconds
    double running_for_s = 0;
    std::optional<double> clusters_per_s, eta_s;
  };
  std::optional<Runner> runner;  // the live runner holding it, if any
  std::vector<std::pair<std::string, std::uint64_t>> running_by_node;  // over several hosts
  std::vector<FailedCluster> failed;                                   // the first kFailedShown
};

JobStatus gather(Store& store, const Job& job, const JobProgress& p) {
  JobStatus s{job, p, store.job_times(job), std::nullopt, {}, {}};
  if (auto holder = store.holder(job); holder && check_alive(holder->process) != Liveness::kDead) {
    JobStatus::Runner r{holder->process, holder->since, wall_clock_now() - holder->since, {}, {}};
    auto done = store.done_since(job, holder->since);
    if (done > 0 && r.running_for_s > 0) {
      r.clusters_per_s = static_cast<double>(done) / r.running_for_s;
      r.eta_s = static_cast<double>(p.pending + p.running) / *r.clusters_per_s;
    }
    s.runner = r;
  }
  if (auto by_host = store.running_by_host(job); by_host.size() > 1)
    for (const auto& [host, n] : by_host) s.running_by_node.emplace_back(host, n);
  if (p.failed > 0) s.failed = store.failed_clusters(job, kFailedShown);
  return s;
}

std::string duration_text(double seconds) {
  return format_duration(std::chrono::milliseconds(static_cast<long long>(seconds * 1e3)));
}

void print_job(const Store& store, const JobStatus& s) {
  const auto& p = s.progress;
  // What the log holds is printed escaped: a command line or a note must not
  // be able to drive the user's terminal.
  fmt::print("job {}: {} clusters of `{}`\n", s.job.name, s.job.clusters, printable(s.job.command));
  fmt::print("  done {}, failed {}, running {}, pending {}\n", p.done, p.failed, p.running,
             p.pending);
  fmt::print("  made {}; last run to end all done: {}\n", local_time(s.times.created_at),
             s.times.last_success_at ? local_time(*s.times.last_success_at) : "none yet");
  if (s.runner) {
    auto line = fmt::format("  running: pid {} on {} since {} ({})", s.runner->process.pid,
                            printable(s.runner->process.host), local_time(s.runner->since),
                            duration_text(s.runner->running_for_s));
    if (s.runner->clusters_per_s)
      line += fmt::format(", {:.1f} clusters/s, ETA {}", *s.runner->clusters_per_s,
                          duration_text(*s.runner->eta_s));
    fmt::print("{}\n", line);
  }
  // Spread over several hosts (the nodes of a Slurm allocation): where.
  if (!s.running_by_node.empty()) {
    std::vector<std::string> parts;
    parts.reserve(s.running_by_node.size());
    for (const auto& [host, n] : s.running_by_node)
      parts.push_back(fmt::format("{} {}", printable(host), n));
    fmt::print("  running by node: {}\n", fmt::join(parts, ", "));
  }
  if (p.failed == 0) return;
  fmt::print("  failed clusters:\n");
  for (const auto& f : s.failed)
    fmt::print("    cluster {} (attempt {}): {}{}, {}\n", f.cluster, f.attempt,
               printable(describe_failure(f)),
               f.finished_at ? " at " + local_time(*f.finished_at) : "",
               printable(describe_log(f)));
  if (p.failed > kFailedShown)
    fmt::print(
        "    ... and {} more: sqlite3 {} \"select * from attempts where job = '{}' and "
        "state = 'failed'\"\n",
        p.failed - kFailedShown, store.path().string(), s.job.name);
}

nlohmann::json job_json(const JobStatus& s) {
  using nlohmann::json;
  auto maybe = [](const auto& v) { return v ? json(*v) : json(nullptr); };
  auto time = [](const std::optional<double>& t) { return t ? json(utc_time(*t)) : json(nullptr); };
  const auto& p = s.progress;
  json out = {{"job", s.job.name},
              {"clusters", s.job.clusters},
              {"command", s.job.command},
              {"created", utc_time(s.times.created_at)},
              {"last_success", time(s.times.last_success_at)},
              {"done", p.done},
              {"failed", p.failed},
              {"running", p.running},
              {"pending", p.pending},
              {"runner", nullptr},
              {"running_by_node", json::object()},
              {"failed_clusters", json::array()},
              {"failed_shown", s.failed.size()}};
  if (s.runner)
    out["runner"] = {{"pid", s.runner->process.pid},
                     {"host", s.runner->process.host},
                     {"since", utc_time(s.runner->since)},
                     {"running_for_s", s.runner->running_for_s},
                     {"clusters_per_s", maybe(s.runner->clusters_per_s)},
                     {"eta_s", maybe(s.runner->eta_s)}};
  for (const auto& [host, n] : s.running_by_node) out["running_by_node"][host] = n;
  for (const auto& f : s.failed)
    out["failed_clusters"].push_back(
        {{"cluster", f.cluster},
         {"attempt", f.attempt},
         {"state", to_string(f.state)},
         {"exit_code", maybe(f.exit_code)},
         {"signal", maybe(f.signal)},
         {"ending", describe_failure(f)},
         {"finished", time(f.finished_at)},
         {"log_path", f.log_path.empty() ? nlohmann::json() : nlohmann::json(f.log_path)}});
  return out;
}

}  // namespace

int show_status(const StatusArgs& args) {
  Store store(args.db, Store::Access::kReadOnly);
  auto progress = store.progress();
  bool any = false;
  auto jobs = nlohmann::json::array();
  for (const auto& job : store.jobs()) {
    if (args.job && job.name != *args.job) continue;
    for (const auto& p : progress) {
      if (p.job != job.name) continue;
      auto s = gather(store, job, p);
      if (args.json)
        jobs.push_back(job_json(s));
      else
        print_job(store, s);
    }
    any = true;
  }
  if (!any && args.job)
    throw Error(fmt::format("--job {}: no such job in {}", *args.job, args.db.string()));
  if (args.json)
    fmt::print("{}\n", json_text(jobs));
  else if (!any)
    fmt::print("no jobs in {}\n", args.db.string());
  return 0;
}

int unlock_job(const UnlockArgs& args) {
  if (!std::filesystem::exists(args.db))
    throw Error(fmt::format("--db {}: no such file; pass the --db that the job ran with",
                            args.db.string()));
  Store store(args.db, Store::Access::kReadWrite);
  auto job = store.find_job(args.job);
  if (!job) throw Error(fmt::format("--job {}: no such job in {}", args.job, args.db.string()));
  auto holder = store.holder(*job);
  if (!holder) {
    fmt::print("job {}: no runner holds it; nothing to do\n", job->name);
    return 0;
  }
  const auto& who = holder->process;
  auto liveness = check_alive(who);
  if (liveness == Liveness::kAlive)
    throw Error(fmt::format(
        "job '{}' is held by pid {} on this host, which is running; stop it (kill {}) instead "
        "of unlocking",
        job->name, who.pid, who.pid));
  store.clear_hold(*job);
  if (liveness == Liveness::kDead) {
    fmt::print(
        "job {}: cleared the hold of pid {} on {}, which no longer runs; what its run may have "
        "left running is still found by the next start, and waited for (or killed with "
        "--orphans kill)\n",
        job->name, who.pid, printable(who.host));
    return 0;
  }
  spdlog::warn(
      "job {}: cleared the hold of pid {} on {}; runner cannot tell from here whether it still "
      "runs: if it does, two runners may now run this job at once",
      job->name, who.pid, printable(who.host));
  return 0;
}

}  // namespace runner
