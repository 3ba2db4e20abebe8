// `runner status`: where each job in the log stands, read without writing.
#include <fmt/format.h>

#include "runner/app.h"
#include "runner/error.h"
#include "runner/signals.h"
#include "runner/store.h"
#include "runner/units.h"

namespace runner {
namespace {

constexpr std::size_t kFailedShown = 20;

void print_job(Store& store, const Job& job, const JobProgress& p) {
  fmt::print("job {}: {} clusters of `{}`\n", job.name, job.clusters, job.command);
  fmt::print("  done {}, failed {}, running {}, pending {}\n", p.done, p.failed, p.running,
             p.pending);
  if (auto holder = store.holder(job); holder && check_alive(holder->process) != Liveness::kDead) {
    auto elapsed = wall_clock_now() - holder->since;
    auto done = store.done_since(job, holder->since);
    auto line = fmt::format(
        "  running: pid {} on {} for {}", holder->process.pid, holder->process.host,
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
  if (p.failed == 0) return;
  fmt::print("  failed clusters:\n");
  for (const auto& f : store.failed_clusters(job, kFailedShown)) {
    auto how = describe_failure(f);
    fmt::print("    cluster {} (attempt {}): {}, log {}\n", f.cluster, f.attempt, how, f.log_path);
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

}  // namespace runner
