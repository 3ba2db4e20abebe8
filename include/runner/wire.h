// The wire: every line runner and its workers exchange, and every line a
// worker's journal and lock file hold. One line a message: a letter that
// names it, then tab-separated fields. Text fields are bytes (paths and
// arguments need not be UTF-8) with tab, newline and backslash escaped;
// numbers are decimal; "-" is a figure not known. A JSON object would cost
// about 14 µs to write and read back, more than an attempt's whole budget
// for them, and could not carry bytes that are not UTF-8.
//
// Versions. runner's config carries kWireVersion; a worker of another
// version refuses it ("failed": the runner on that host is not the same).
// A journal starts with a header naming its version, the DB, the job and
// the run; its lock file says the same and names the worker. Version 1
// (runner up to 0.1) had no header and a JSON lock file: it is read where
// its run is the one the DB last recorded. A journal of a newer version than
// this runner knows is left alone and the job refused, so that what it
// holds is not lost: the newer runner records it. A version-1 runner ignores
// a version-2 journal (its lines are not what it reads), and so would run
// again what it holds: run a newer runner's job to its end before going
// back to an older one. Version 3 adds the log format (--log-format) to the
// config and, to each outcome, whether the attempt wrote nothing; it reads
// version 2 journals, whose outcomes lack that figure. Version 4 adds the
// journal line for a start that did not happen ('N'): a version-3 runner
// would take the start before it for one that ran, so it refuses the
// journal as a newer one's. Version 5 adds the line that names a start's
// process ('S'), written by the process itself before it execs.
//
// Whatever comes from a pipe or a file is input: a line that does not
// decode throws WireError, which says what was wrong.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "runner/engine.h"
#include "runner/memory.h"
#include "runner/stream_log.h"
#include "runner/sysinfo.h"

namespace runner {

constexpr std::uint32_t kWireVersion = 5;

class WireError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The fields of one line, unescaped. kind() is its letter.
class Fields {
 public:
  explicit Fields(std::string_view line);
  char kind() const { return kind_; }
  std::size_t size() const { return fields_.size(); }
  const std::string& text(std::size_t i) const;
  std::uint64_t count(std::size_t i) const;
  std::int64_t number(std::size_t i) const;
  double real(std::size_t i) const;
  template <class T>
  std::optional<T> maybe(std::size_t i) const;  // "-" for none
  // Throws unless there are at least n fields.
  void need(std::size_t n) const;

 private:
  char kind_ = 0;
  std::vector<std::string> fields_;  // after the letter
};

// What a worker is told first: how to run its clusters, and whose they are.
struct WorkerConfig {
  std::string run;          // the run's id: RUNNER_RUN of its processes, its journal's name
  std::string journal_dir;  // where the journal goes
  std::string node;         // the node it runs on, where a run spreads over several; "" here
  std::string db_id;        // the DB the run records into (its journal is bound to it)
  std::string job;          // the job's name and key (command and N), likewise
  std::string job_key;
  bool sync = false;  // flush every journal line to the disk
  std::chrono::milliseconds grace{10'000};
  std::size_t parallel = 1;
  CapChoice cap = CapChoice::kAuto;
  bool limits = false;                           // some attempt has a cap (--mem-limit or a budget)
  std::optional<std::uint64_t> run_limit;        // bytes: all clusters together (the budget)
  std::optional<std::string> kill_leftovers_in;  // the run whose cgroup leftovers may be killed
  bool watch_memory = false;                     // report memory in use every 50 ms
  std::vector<int> blocked;                      // the signal mask runner was started with
  bool pipe_ignored = false;                     // and whether SIGPIPE was ignored
  LogFormat log_format = LogFormat::kFiles;      // --log-format: a file per attempt, or a stream
  // The allocation whose node it claims for its job (see node_claim.h), and
  // the DB's path that names the job there; "" claims nothing.
  std::string allocation;
  std::string db_path;
};

// The worker's name: its journal's, its processes' RUNNER_RUN. The run's id,
// and "@<node>" on a node of several.
std::string worker_name(const WorkerConfig& config);

// runner to worker.
std::string encode_config(const WorkerConfig& config);
WorkerConfig decode_config(const Fields& f);  // throws WireError naming a version it cannot speak
std::string encode_start(const AttemptSpec& spec);
AttemptSpec decode_start(const Fields& f);
std::string encode_stop(AttemptId id, bool now);
std::string encode_committed(std::uint64_t seq);
std::string encode_settle(const Leftovers& left, LeftoverPolicy policy);
std::pair<Leftovers, LeftoverPolicy> decode_settle(const Fields& f);
std::string encode_bye();
// How many clusters the worker runs at once from now on (another site was
// lost, and this one takes a larger share of P).
std::string encode_slots(std::size_t slots);
// Collect the journals earlier runs left here (waiting for or killing their
// workers), then forget those collected once runner has them in its log.
std::string encode_collect(LeftoverPolicy policy);
std::string encode_forget_collected();

// Worker to runner: an event, with the journal's sequence number where the
// event was journalled.
std::string encode_event(const EngineEvent& event, std::optional<std::uint64_t> seq);
EngineEvent decode_event(const Fields& f, std::optional<std::uint64_t>& seq);
std::string encode_ready(pid_t pid, const std::string& host);
std::string encode_failed(const std::string& message);
std::string encode_log(std::string_view level, std::string_view text);
// Memory in use: all attempts together (if known), and each one's.
std::string encode_usage(std::optional<std::uint64_t> total,
                         const std::vector<std::pair<AttemptId, std::uint64_t>>& of);
std::string encode_settled(bool settled, const std::vector<FoundExecution>& found);
std::string encode_stopped(int signal);
// One line of a journal collected here ('o': the run, the line), and the
// end of what was collected ('d': how many lines were not runner's).
std::string encode_collected_line(const std::string& run, const std::string& line);
std::string encode_collected_end(std::size_t garbled);
std::string encode_alive();

// The journal. Its header, first in every segment and in the lock file:
// whose journal it is.
struct JournalHeader {
  std::uint32_t version = kWireVersion;
  std::string db_id;
  std::string job;
  std::string job_key;
  std::string worker;  // the worker's name: the run, and "@<node>" on a node of several
};
std::string encode_header(const JournalHeader& h);
std::optional<JournalHeader> decode_header(const Fields& f);

// A journal line: how one attempt started (kind 'B', no outcome yet) or
// started and ended ('J'), all a later runner needs to record it.
struct JournalEntry {
  std::string job;
  ClusterId cluster = 0;
  std::uint32_t attempt = 0;
  AttemptStarted started;
  std::optional<std::uint64_t> mem_limit_kib;
  std::optional<double> timeout_s;
  std::optional<Outcome> outcome;  // none: only its start is known
  // Its start, journalled before the process was made, did not happen (the
  // program could not be executed, runner stopped it first): nothing ran.
  // RunJournal::read takes such a start back; no reader sees either line.
  bool not_started = false;
  // Its process, named by the process itself between its fork and its exec
  // (kind 'S'): before it can end, and so before the worker could die
  // without having told it. RunJournal::read gives the pid to the start
  // before it; no reader sees the line.
  bool names_process = false;
  std::uint32_t version = kWireVersion;  // of the journal it was read from
  bool start_journalled = false;         // its start is in the journal before it (reading)
};
std::string encode_journal(const JournalEntry& entry, std::uint64_t seq);
// The line a starting process writes of itself, less its pid and newline,
// which only it knows.
std::string encode_process_note(const std::string& job, ClusterId cluster, std::uint32_t attempt);
// Nothing for a line cut short by a crash; WireError for one that is whole
// and wrong.
std::optional<JournalEntry> decode_journal(const Fields& f, std::uint32_t version);

// The lock file: the header, and the worker that holds the lock.
std::string encode_lock(const JournalHeader& h, const ProcessIdentity& worker);
struct LockFile {
  std::optional<JournalHeader> header;  // none: a version-1 lock
  ProcessIdentity worker;
};
std::optional<LockFile> decode_lock(std::string_view text);

// Reads whole lines from a descriptor that may give them in pieces.
class LineReader {
 public:
  explicit LineReader(int fd) : fd_(fd) {}
  // Reads what is there without blocking (the descriptor is non-blocking)
  // and returns the complete lines; `closed` says the other end is gone.
  std::vector<std::string> read_available(bool& closed);

 private:
  int fd_;
  std::string partial_;
};

// Lines gathered and written together: one write for all that one wakeup
// has to say. Returns false once the reader is gone or the write failed.
class Outbox {
 public:
  void add(const std::string& line) {
    text_ += line;
    text_ += '\n';
  }
  bool empty() const { return text_.empty(); }
  bool flush(int fd);

 private:
  std::string text_;
};

// Writes one line, whole, to a blocking descriptor.
bool write_line(int fd, const std::string& line);

}  // namespace runner
