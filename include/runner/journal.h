// A worker's journal: how each attempt started and ended, one line a start
// and one an end, appended before the worker tells runner, so that an
// outcome outlives a runner that was killed while the attempt ran. One
// worker's journal is a lock file, held by the worker while it lives
// (`<worker>.lock`, naming the worker), and segments of lines
// (`<worker>.<k>.journal`), in the job's log folder's `.journal`. Each file
// starts with a header (see wire.h) that binds it to the DB, the job (its
// name, command and N) and the run. A segment whose every line runner has
// committed to its log is removed; what is left after the run is for the
// next runner to collect.
//
// The reader trusts nothing it did not write: the folder and its files are
// opened without following links and without blocking, only regular files
// are read, a journal is read only when its header names this DB, this job
// and a run this DB recorded for it, and a worker is waited for or killed
// only when the process that holds its lock is proven to be that worker.
// Anything else is left alone and named.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runner/engine.h"
#include "runner/error.h"
#include "runner/fd.h"
#include "runner/spawn.h"
#include "runner/sysinfo.h"
#include "runner/wire.h"

namespace runner {

class JournalWriter {
 public:
  // Makes the folder if need be, takes the worker's lock and opens the first
  // segment. With `sync`, every end is flushed to the disk (--sync full).
  // Throws std::system_error naming the file.
  JournalWriter(const std::filesystem::path& dir, const JournalHeader& header, bool sync);
  // Removes the journal when runner committed all of it; else leaves it.
  ~JournalWriter();
  JournalWriter(const JournalWriter&) = delete;
  JournalWriter& operator=(const JournalWriter&) = delete;

  // Adds an attempt's line: its start (no outcome) or its end; returns the
  // line's sequence number. Lines reach the file at flush(), which the
  // worker calls before it tells runner of them.
  std::uint64_t add(const JournalEntry& entry);
  void flush();
  // What the process of an attempt whose start was flushed writes of itself
  // as it starts: the line that names it, in the segment being written.
  ProcessNote process_note(const std::string& job, ClusterId cluster, std::uint32_t attempt) const;
  // runner has committed every line up to `seq`: segments wholly below go.
  void acknowledged(std::uint64_t seq);

 private:
  void open_segment();
  std::string segment_name(std::uint64_t k) const;

  Fd dir_;
  std::filesystem::path path_;
  JournalHeader header_;
  bool sync_;
  bool sync_due_ = false;  // an end is among the lines not yet written
  Fd lock_;
  Fd segment_;
  std::uint64_t segment_number_ = 0;
  std::size_t segment_lines_ = 0;
  std::uint64_t next_seq_ = 1;
  std::uint64_t acknowledged_ = 0;
  std::map<std::uint64_t, std::uint64_t> last_seq_of_;  // segment number -> its last seq (0: none)
  std::string pending_;                                 // lines not yet written
};

// Whose journals a runner may read.
struct JournalOwner {
  std::string db_id;
  std::string job;
  std::string job_key;
  // Whether the DB recorded this run of the job (a run id, less "@<node>").
  std::function<bool(const std::string& run)> is_run;
  // A version-1 journal (no header) is read only for this run: the one the
  // DB last recorded holding the job.
  std::optional<std::string> legacy_run;
};

// One earlier worker's journal, found in a folder.
class RunJournal {
 public:
  // The journals in `dir` that `owner` may read; what else is there is
  // named in `ignored`, one line each. Throws Error when `dir` is there but
  // is not a folder (a link, say).
  static std::vector<RunJournal> find(const std::filesystem::path& dir, const JournalOwner& owner,
                                      std::vector<std::string>& ignored);

  // The run it belongs to: its worker's name, less "@<node>".
  std::string run() const { return name_.substr(0, name_.find('@')); }
  const std::string& name() const { return name_; }
  // The worker that writes it, as its lock file names it.
  const ProcessIdentity& worker() const { return worker_; }
  // Who holds its lock, by /proc/locks (on this host; none where it cannot
  // be told, as for a lock taken on another host).
  std::optional<pid_t> holder() const;
  // Whether the process holding its lock is that worker, on this host
  // (its pid and start, and its name runner-worker).
  bool held_by_its_worker() const;
  // Takes the lock without waiting: kHeld while its worker still lives;
  // kGone when the journal went meanwhile (another runner collected it).
  enum class Lock { kTaken, kHeld, kGone };
  Lock try_lock();
  // Waits for the lock (its worker to exit) until `wake_fd` is readable;
  // returns whether it got the lock.
  bool lock_when_free(int wake_fd);
  // The attempts it tells of, starts and ends, in the order they were
  // written, less the starts its worker took back (they did not happen);
  // lines that are whole but do not decode are counted in `garbled`.
  std::vector<JournalEntry> read(std::size_t& garbled) const;
  // Removes the journal's files (once collected, under the lock).
  void remove();

 private:
  RunJournal(std::shared_ptr<Fd> dir, std::filesystem::path path, std::string name,
             std::optional<JournalHeader> header, ProcessIdentity worker)
      : dir_(std::move(dir)),
        path_(std::move(path)),
        name_(std::move(name)),
        header_(std::move(header)),
        worker_(std::move(worker)) {}
  std::vector<std::string> segments() const;
  std::optional<std::pair<dev_t, ino_t>> lock_file_id() const;

  std::shared_ptr<Fd> dir_;
  std::filesystem::path path_;
  std::string name_;
  std::optional<JournalHeader> header_;  // none: version 1
  ProcessIdentity worker_;
  Fd lock_;
};

// Opens `name` in the folder `dir_fd` for reading as a regular file only:
// no link is followed, a FIFO does not block, a device is refused. Returns
// an empty Fd (errno set: ELOOP, EINVAL for not a regular file) if not.
Fd open_regular(int dir_fd, const std::string& name);

// The job's log folder, where its logs and its journals live, is a real
// folder below the logs root, never a link: made by runner once the job is
// open, and by a worker on a host that does not share runner's folders.
void make_job_log_dir(const std::filesystem::path& dir);
// The error for a log folder that is a link (or not a folder).
Error not_a_real_log_folder(const std::filesystem::path& dir, bool link);

// Waits for (or, with kKill, kills) the worker of each journal that still
// runs, until `wake_fd` is readable (then false). A lock held by a process
// that is not the worker its lock file names is not waited for: that
// journal is dropped from the list and left alone.
bool wait_for_journal_workers(std::vector<RunJournal>& journals, LeftoverPolicy policy,
                              int wake_fd);

}  // namespace runner
