// Before a run: what the workers of earlier runs journalled and their runner
// never recorded is recorded now, as it ended (a cluster that finished while
// runner was killed is `done`, and is not run again); a start they
// journalled gets its row, so that every execution has one. A worker that
// still runs is waited for, without polling (or, with --orphans kill,
// killed: its clusters then run again).
//
// Nothing is believed because it is in a folder: a journal is read only when
// it is this DB's, this job's and of a run the DB recorded (see journal.h),
// and each of its lines is applied only when it names an attempt the DB
// recorded as started, or a start the DB never heard of that continues the
// cluster's attempts. Everything else is reported and left alone.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "runner/engine.h"
#include "runner/journal.h"
#include "runner/signals.h"
#include "runner/store.h"

namespace runner {

struct Collected {
  std::uint64_t attempts = 0;  // outcomes recorded from journals
  std::uint64_t done = 0;      // of which done
  std::uint64_t started = 0;   // starts recorded whose end no journal told
  std::uint64_t refused = 0;   // lines not applied, reported
};

// Returns nothing when one of runner's signals came first.
std::optional<Collected> collect_earlier_runs(Store& store, const Job& job,
                                              const std::filesystem::path& journal_dir,
                                              const JournalOwner& owner, LeftoverPolicy policy,
                                              SignalSource& signals);

// Records journal lines (each journal's in its order) as the verdicts of
// judge_line allow, and says what was recorded and what was not.
Collected record_journal_entries(Store& store, const Job& job, std::vector<JournalEntry> entries,
                                 std::size_t garbled);

// The same for journals an engine read where they were written (an SSH
// host's own disk): only those of runs this DB recorded for the job.
Collected record_earlier_journals(Store& store, const Job& job,
                                  const std::vector<Engine::EarlierJournal>& journals,
                                  std::size_t garbled);

// What to do with one journal line, given what the log has of its attempt
// (`row`) and the next attempt number of its cluster there.
struct Apply {};    // record it
struct Already {};  // the log has it already
struct Refuse {     // report it, apply nothing
  std::string why;
};
using LineVerdict = std::variant<Apply, Already, Refuse>;
LineVerdict judge_line(const Job& job, const JournalEntry& entry,
                       const std::optional<Store::AttemptRow>& row, std::uint32_t next_attempt);

// Gives each execution an earlier run left running, found by its run id and
// unknown to the log, its row: ended `interrupted`, for it was killed or
// ended unwatched. Returns how many rows were written.
std::size_t record_found(Store& store, const Job& job, const std::vector<FoundExecution>& found,
                         const std::filesystem::path& log_dir, LeftoverPolicy policy);

}  // namespace runner
