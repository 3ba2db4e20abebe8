#include "runner/collect.h"

#include <fmt/format.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include "orphans.h"
#include "runner/classify.h"
#include "runner/journal.h"
#include "runner/sysinfo.h"

namespace runner {
namespace {

// The worker a journal names, if it is this host's and still the same process.
std::optional<pid_t> live_worker(const RunJournal& journal) {
  auto who = journal.worker();
  if (!who || check_alive(*who) != Liveness::kAlive) return std::nullopt;
  return who->pid;
}

// Kills a worker of an earlier run and every process of that run.
void kill_run(const RunJournal& journal) {
  if (auto pid = live_worker(journal)) ::kill(*pid, SIGKILL);
  Leftovers left{{}, journal.run()};
  settle_leftovers(find_leftovers(left), LeftoverPolicy::kKill, -1);
}

// Records one journalled outcome the log does not have yet.
bool record(Store& store, const Job& job, const JournalEntry& e) {
  auto row = store.find_attempt(job, e.cluster, e.attempt);
  if (row && row->state != AttemptState::kRunning) return false;  // recorded already
  std::int64_t id = row ? row->row : 0;
  AttemptFacts facts;
  auto limit_kib = row ? row->mem_limit_kib : e.mem_limit_kib;
  auto timeout_s = row ? row->timeout_s : e.timeout_s;
  if (limit_kib) facts.limit = *limit_kib * 1024;
  if (timeout_s)
    facts.timeout = std::chrono::milliseconds(static_cast<std::int64_t>(*timeout_s * 1e3));
  if (!row) {
    // Started and ended while no runner recorded it.
    const auto& s = e.started;
    AttemptStart start{e.cluster,       e.attempt,   static_cast<pid_t>(s.where.process),
                       s.started_at,    s.log_path,  s.cap,
                       e.mem_limit_kib, e.timeout_s, s.where.host};
    id = store.record_start(job, start);
  }
  const auto& out = e.outcome;
  auto verdict = classify(out, facts);
  auto end = attempt_end(out, verdict);
  end.note = verdict.note.empty() ? "recorded from the journal of a runner that was killed"
                                  : verdict.note + "; recorded from the journal";
  store.record_end(job, id, e.cluster, end);
  return true;
}

}  // namespace

std::optional<Collected> collect_earlier_runs(Store& store, const Job& job,
                                              const std::filesystem::path& journal_dir,
                                              LeftoverPolicy policy, SignalSource& signals) {
  Collected collected;
  for (auto& journal : RunJournal::find(journal_dir)) {
    if (!journal.try_lock()) {
      // Its worker still runs clusters of a runner that is gone.
      if (policy == LeftoverPolicy::kKill) {
        spdlog::warn("killing the worker of an earlier run ({}) and its clusters (--orphans kill)",
                     journal.run());
        kill_run(journal);
      } else {
        auto pid = live_worker(journal);
        spdlog::warn("waiting for the worker{} of an earlier run to finish its clusters",
                     pid ? fmt::format(" (pid {})", *pid) : std::string());
      }
      if (!journal.lock_when_free(signals.fd())) return std::nullopt;
    }
    Store::Batch batch(store);
    for (const auto& e : journal.read()) {
      if (e.job != job.name || !record(store, job, e)) continue;
      ++collected.attempts;
      if (classify(e.outcome, {}).state == AttemptState::kDone) ++collected.done;
    }
    batch.commit();
    journal.remove();
  }
  if (collected.attempts > 0)
    spdlog::info("{} attempt(s) ended while no runner recorded them ({} done): recorded now",
                 collected.attempts, collected.done);
  return collected;
}

}  // namespace runner
