// A worker's journal: how each attempt started and ended, one line an
// attempt, appended before the worker tells runner, so that an outcome
// outlives a runner that was killed while the attempt ran. One run's journal
// is a lock file, held by its worker while it lives (`<run>.lock`, naming the
// worker), and segments of lines (`<run>.<k>.journal`, see wire.h). A segment
// whose every line runner has committed to its log is removed; what is left
// after the run is for the next runner to collect.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "runner/engine.h"
#include "runner/fd.h"
#include "runner/sysinfo.h"
#include "runner/wire.h"

namespace runner {

class JournalWriter {
 public:
  // Makes the folder if need be, takes the run's lock and opens the first
  // segment. With `sync`, every line is flushed to the disk (--sync full).
  // Throws std::system_error naming the file.
  JournalWriter(const std::filesystem::path& dir, const std::string& run, bool sync);
  // Removes the journal when runner committed all of it; else leaves it.
  ~JournalWriter();
  JournalWriter(const JournalWriter&) = delete;
  JournalWriter& operator=(const JournalWriter&) = delete;

  // Adds an attempt's line; returns its sequence number. Lines reach the
  // file at flush(), which the worker calls before it tells runner of them.
  std::uint64_t ended(const AttemptSpec& spec, const AttemptStarted& started,
                      const Outcome& outcome);
  void flush();
  // runner has committed every line up to `seq`: segments wholly below go.
  void acknowledged(std::uint64_t seq);

 private:
  void open_segment();

  std::filesystem::path dir_;
  std::string run_;
  bool sync_;
  Fd lock_;
  Fd segment_;
  std::uint64_t segment_number_ = 0;
  std::size_t segment_lines_ = 0;
  std::uint64_t next_seq_ = 1;
  std::uint64_t acknowledged_ = 0;
  std::map<std::uint64_t, std::uint64_t> last_seq_of_;  // segment number -> its last seq
  std::string pending_;                                 // lines not yet written
};

// One earlier run's journal, found in a folder.
class RunJournal {
 public:
  // Every run's journal in `dir`.
  static std::vector<RunJournal> find(const std::filesystem::path& dir);

  // The run it belongs to: its name, less "@<node>" where one node's worker
  // of a run spread over several wrote it.
  std::string run() const { return run_.substr(0, run_.find('@')); }
  const std::string& name() const { return run_; }
  // The worker that writes it, as its lock file names it.
  std::optional<ProcessIdentity> worker() const;
  // Takes the lock without waiting: false while its worker still lives.
  bool try_lock();
  // Waits for the lock (its worker to exit) until `wake_fd` is readable;
  // returns whether it got the lock.
  bool lock_when_free(int wake_fd);
  // The attempts it tells of, in the order they ended.
  std::vector<JournalEntry> read() const;
  // Removes the journal's files (once collected, under the lock).
  void remove();

 private:
  RunJournal(std::filesystem::path dir, std::string run)
      : dir_(std::move(dir)), run_(std::move(run)) {}
  std::vector<std::filesystem::path> segments() const;

  std::filesystem::path dir_;
  std::string run_;
  Fd lock_;
};

}  // namespace runner
