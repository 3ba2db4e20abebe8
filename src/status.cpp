// `runner status`: where each job in the log stands, read without writing.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <string>
#include <vector>

#include "runner/app.h"
#include "runner/error.h"
#include "runner/signals.h"
#include "runner/store.h"
#include "runner/units.h"
#include "runner/words.h"

namespace runner {
namespace {

constexpr std::size_t kFailedShown = 20;

void print_job(Store& store, const Job& job, const JobProgress& p) {
  // What the log holds is printed escaped: a command line or a note must not
  // be able to drive the user's terminal.
  fmt::print("job {}: {} clusters of `{}`\n", job.name, job.clusters, printable(job.command));
  fmt::print("  done {}, failed {}, running {}, pending {}\n", p.done, p.failed, p.running,
             p.pending);
  if (auto holder = store.holder(job); holder && check_alive(holder->process) != Liveness::kDead) {
    auto elapsed = wall_clock_now() - holder->since;
    auto done = store.done_since(job, holder->since);
    auto line = fmt::format(
        "  running: pid {} on {} for {}", holder->process.pid, printable(holder->process.host),
        format_duration(std::chrono::milliseconds(static_cast<long long>(elapsed * 1e3))));
    if (done > 0 && elapsed > 0) {
      double rate = static_cast<double>(done) / elapsed;
      line += fmt::format(", {:.1f} clusters/s", rate);
      auto left = static_cast<double>(p.pending + p.running) / rate;
      line +=
          ", ETA " + format_duration(std::chrono::milliseconds(static_cast<long long>(left * 1e3)));
    }
    fmt::print("{}\n", line);
  }
  // Spread over several hosts (the nodes of a Slurm allocation): where.
  if (auto by_host = store.running_by_host(job); by_host.size() > 1) {
    std::vector<std::string> parts;
    parts.reserve(by_host.size());
    for (const auto& [host, n] : by_host) parts.push_back(fmt::format("{} {}", printable(host), n));
    fmt::print("  running by node: {}\n", fmt::join(parts, ", "));
  }
  if (p.failed == 0) return;
  fmt::print("  failed clusters:\n");
  for (const auto& f : store.failed_clusters(job, kFailedShown)) {
    auto how = describe_failure(f);
    fmt::print("    cluster {} (attempt {}): {}, log {}\n", f.cluster, f.attempt, printable(how),
               printable(f.log_path));
  }
  if (p.failed > kFailedShown)
    fmt::print(
        "    ... and {} more: sqlite3 {} \"select * from attempts where job = '{}' and "
        "state = 'failed'\"\n",
        p.failed - kFailedShown, store.path().string(), job.name);
}

}  // namespace

int show_status(const StatusArgs& args) {
  Store store(args.db, Store::Access::kReadOnly);
  auto progress = store.progress();
  bool any = false;
  for (const auto& job : store.jobs()) {
    if (args.job && job.name != *args.job) continue;
    for (const auto& p : progress)
      if (p.job == job.name) print_job(store, job, p);
    any = true;
  }
  if (!any) {
    if (args.job)
      throw Error(fmt::format("--job {}: no such job in {}", *args.job, args.db.string()));
    fmt::print("no jobs in {}\n", args.db.string());
  }
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
    fmt::print("job {}: cleared the hold of pid {} on {}, which no longer runs\n", job->name,
               who.pid, printable(who.host));
    return 0;
  }
  spdlog::warn(
      "job {}: cleared the hold of pid {} on {}; runner cannot tell from here whether it still "
      "runs: if it does, two runners may now run this job at once",
      job->name, who.pid, printable(who.host));
  return 0;
}

}  // namespace runner
