#include "runner/collect.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <tuple>

#include "engines/orphans.h"
#include "runner/classify.h"
#include "runner/sysinfo.h"
#include "runner/units.h"
#include "runner/words.h"

namespace runner {
namespace fs = std::filesystem;
namespace {

// At most this many refused lines are named one by one.
constexpr std::size_t kNamedRefusals = 5;

// Marks each end whose start its journal holds before it (a version-1
// journal has no starts: its ends are taken as they are).
void mark_journalled_starts(std::vector<JournalEntry>& entries) {
  std::set<std::tuple<std::string, ClusterId, std::uint32_t>> started;
  for (auto& e : entries) {
    auto key = std::tuple(e.job, e.cluster, e.attempt);
    if (!e.outcome)
      started.insert(key);
    else if (e.version < 2 || started.contains(key))
      e.start_journalled = true;
  }
}

// Records one line the verdict lets through.
void apply(Store& store, const Job& job, const JournalEntry& e,
           const std::optional<Store::AttemptRow>& row, Collected& collected) {
  std::int64_t id = row ? row->row : 0;
  if (row && row->pid == 0 && e.started.where.process > 0)
    store.set_started(id, static_cast<pid_t>(e.started.where.process), e.started.started_at,
                      e.started.log_path, e.started.cap);
  if (!row) {
    const auto& s = e.started;
    AttemptStart start{e.cluster,       e.attempt,   static_cast<pid_t>(s.where.process),
                       s.started_at,    s.log_path,  s.cap,
                       e.mem_limit_kib, e.timeout_s, s.where.host};
    id = store.record_start(job, start);
  }
  if (!e.outcome) {
    ++collected.started;
    return;
  }
  AttemptFacts facts;
  auto limit_kib = row ? row->mem_limit_kib : e.mem_limit_kib;
  auto timeout_s = row ? row->timeout_s : e.timeout_s;
  if (limit_kib) facts.limit = *limit_kib * 1024;
  if (timeout_s)
    facts.timeout = std::chrono::milliseconds(static_cast<std::int64_t>(*timeout_s * 1e3));
  auto verdict = classify(*e.outcome, facts);
  auto end = attempt_end(*e.outcome, verdict);
  end.note = verdict.note.empty() ? "recorded from the journal of a runner that was killed"
                                  : verdict.note + "; recorded from the journal";
  store.record_end(job, id, e.cluster, end);
  ++collected.attempts;
  if (verdict.state == AttemptState::kDone) ++collected.done;
}

// Says what was recorded from journals, and what was not applied.
void report_collected(Collected& collected, std::size_t garbled,
                      const std::vector<std::string>& refusals) {
  if (garbled > 0 || !refusals.empty())
    spdlog::warn(
        "{} journal line(s) not applied{}{}", garbled + refusals.size(),
        garbled > 0 ? fmt::format(" ({} not runner's lines)", garbled) : "",
        refusals.empty()
            ? ""
            : ": " +
                  printable(fmt::format(
                      "{}", fmt::join(refusals.begin(),
                                      refusals.begin() + std::min(refusals.size(), kNamedRefusals),
                                      "; "))));
  collected.refused += garbled;
  if (collected.attempts > 0)
    spdlog::info("{} attempt(s) ended while no runner recorded them ({} done): recorded now",
                 collected.attempts, collected.done);
}

}  // namespace

LineVerdict judge_line(const Job& job, const JournalEntry& e,
                       const std::optional<Store::AttemptRow>& row, std::uint32_t next_attempt) {
  if (e.job != job.name) return Refuse{fmt::format("it names job '{}'", printable(e.job))};
  if (e.cluster < 1 || e.cluster > job.clusters)
    return Refuse{
        fmt::format("cluster {} is not one of the job's 1 to {}", e.cluster, job.clusters)};
  if (row) {
    if (row->state != AttemptState::kRunning) return Already{};
    if (!e.outcome) return Already{};
    // The attempt the log recorded as started: the same process (a row from
    // a journalled start has no process yet).
    bool same = row->pid == 0 || (row->pid == e.started.where.process &&
                                  std::abs(row->started_at - e.started.started_at) < 2.0);
    if (!same)
      return Refuse{fmt::format("cluster {} attempt {} was not started as the log says (pid {})",
                                e.cluster, e.attempt, e.started.where.process)};
    return Apply{};
  }
  if (e.attempt != next_attempt)
    return Refuse{
        fmt::format("attempt {} of cluster {} does not follow the log's attempts (the "
                    "next is {})",
                    e.attempt, e.cluster, next_attempt)};
  // A worker journals every start before the process exists: an end whose
  // start is neither in the log nor in its journal is no execution of it.
  if (e.outcome && !e.start_journalled)
    return Refuse{
        fmt::format("cluster {} attempt {} ends with no start before it", e.cluster, e.attempt)};
  return Apply{};
}

Collected record_journal_entries(Store& store, const Job& job, std::vector<JournalEntry> entries,
                                 std::size_t garbled) {
  Collected collected;
  mark_journalled_starts(entries);
  // By cluster and attempt (each journal's lines in their order): a retry's
  // start follows its cluster's earlier attempts.
  std::stable_sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    return std::pair(a.cluster, a.attempt) < std::pair(b.cluster, b.attempt);
  });
  std::vector<std::string> refusals;
  Store::Batch batch(store);
  for (const auto& e : entries) {
    auto row = e.cluster >= 1 && e.cluster <= job.clusters
                   ? store.find_attempt(job, e.cluster, e.attempt)
                   : std::nullopt;
    auto next = row ? 0 : store.next_attempt(job, e.cluster);
    auto verdict = judge_line(job, e, row, next);
    if (auto* refuse = std::get_if<Refuse>(&verdict)) {
      ++collected.refused;
      refusals.push_back(refuse->why);
    } else if (std::holds_alternative<Apply>(verdict)) {
      apply(store, job, e, row, collected);
    }
  }
  batch.commit();
  report_collected(collected, garbled, refusals);
  return collected;
}

std::optional<Collected> collect_earlier_runs(Store& store, const Job& job,
                                              const fs::path& journal_dir,
                                              const JournalOwner& owner, LeftoverPolicy policy,
                                              SignalSource& signals) {
  std::vector<std::string> ignored;
  auto journals = RunJournal::find(journal_dir, owner, ignored);
  for (const auto& why : ignored) spdlog::warn("ignoring {}", printable(why));
  if (!wait_for_journal_workers(journals, policy, signals.fd())) return std::nullopt;
  std::vector<JournalEntry> entries;
  std::size_t garbled = 0;
  for (const auto& journal : journals) {
    auto read = journal.read(garbled);
    entries.insert(entries.end(), read.begin(), read.end());
  }
  auto collected = record_journal_entries(store, job, std::move(entries), garbled);
  for (auto& journal : journals) journal.remove();
  return collected;
}

Collected record_earlier_journals(Store& store, const Job& job,
                                  const std::vector<Engine::EarlierJournal>& journals,
                                  std::size_t garbled) {
  std::vector<JournalEntry> entries;
  std::set<std::string> unknown;
  for (const auto& journal : journals) {
    garbled += journal.garbled;
    if (journal.lines.empty()) continue;
    // Only runs this DB recorded for the job: a journal bound to this DB
    // and job that names another run is no run of this log's.
    if (!store.has_run(job, journal.run)) {
      unknown.insert(journal.run);
      continue;
    }
    for (const auto& line : journal.lines) {
      try {
        if (auto e = decode_journal(Fields(line), kWireVersion)) entries.push_back(std::move(*e));
      } catch (const WireError&) {
        ++garbled;
      }
    }
  }
  for (const auto& run : unknown)
    spdlog::warn("ignoring the journal of run {}, which this DB did not record", printable(run));
  return record_journal_entries(store, job, std::move(entries), garbled);
}

std::size_t record_found(Store& store, const Job& job, const std::vector<FoundExecution>& found,
                         const fs::path& log_dir, LeftoverPolicy policy) {
  std::size_t written = 0;
  if (found.empty()) return 0;
  Store::Batch batch(store);
  for (const auto& f : found) {
    if (f.job != job.name || f.cluster < 1 || f.cluster > job.clusters || f.attempt == 0) continue;
    if (store.find_attempt(job, f.cluster, f.attempt)) continue;
    if (f.attempt != store.next_attempt(job, f.cluster)) {
      spdlog::warn(
          "a process of an earlier run said it was cluster {} attempt {}, which does not "
          "follow the log's attempts; not recorded",
          f.cluster, f.attempt);
      continue;
    }
    auto log = log_dir / fmt::format("{}.{}.log", f.cluster, f.attempt);
    std::error_code ec;
    AttemptStart start{f.cluster,
                       f.attempt,
                       static_cast<pid_t>(f.where.process),
                       f.started_at,
                       fs::exists(log, ec) ? log.string() : "",
                       "",
                       std::nullopt,
                       std::nullopt,
                       f.where.host};
    auto row = store.record_start(job, start);
    AttemptEnd end;
    end.state = AttemptState::kInterrupted;
    end.finished_at = wall_clock_now();
    end.note = policy == LeftoverPolicy::kKill
                   ? "started by a run whose runner and worker were killed before it was "
                     "recorded; killed (--orphans kill)"
                   : "started by a run whose runner and worker were killed before it was "
                     "recorded; it ran to its end unwatched, and how it ended is not known";
    store.record_end(job, row, f.cluster, end);
    ++written;
  }
  batch.commit();
  if (written > 0)
    spdlog::warn("{} execution(s) of earlier runs that the log did not know of recorded now",
                 written);
  return written;
}

}  // namespace runner
