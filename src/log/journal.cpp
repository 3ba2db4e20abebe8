#include "runner/journal.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <system_error>
#include <thread>

#include "engines/orphans.h"
#include "runner/error.h"
#include "runner/sysinfo.h"
#include "runner/units.h"

namespace runner {
namespace fs = std::filesystem;
namespace {

// A segment holds this many lines; runner's acknowledgements remove the
// older ones as the run goes, so the journal stays small.
constexpr std::size_t kSegmentLines = 4096;
// More than a lock file or a header could ever be.
constexpr std::size_t kMostLockBytes = 4096;

std::system_error failure(const fs::path& file, const char* what) {
  return std::system_error(errno, std::generic_category(),
                           fmt::format("cannot {} {}", what, file.string()));
}

// The journal folder, without following a link to it: what runner removes
// there must be runner's.
Fd open_folder(const fs::path& dir) {
  return Fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
}

[[noreturn]] void not_a_folder(const fs::path& dir) {
  throw Error(fmt::format(
      "{} is not a folder runner made (a link, or a file): runner keeps its workers' journals "
      "there and removes what it collects; remove it, and runner makes the folder again",
      dir.string()));
}

// Reads a small file whole (a lock file): at most kMostLockBytes.
std::string read_small(int fd) {
  std::string text(kMostLockBytes, '\0');
  ssize_t n = ::pread(fd, text.data(), text.size(), 0);
  text.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  return text;
}

// Two lines speak of the start before them and are no entry themselves: one
// that takes it back ('N') removes it, as nothing of it ran; one that names
// its process ('S') gives it its pid. The start is the latest of its attempt
// before the line, as an attempt that did not start may be handed out again
// and start (and end) after it.
void apply_lines_about_starts(std::vector<JournalEntry>& entries) {
  std::map<std::pair<ClusterId, std::uint32_t>, std::size_t> open;  // its start, not yet ended
  std::vector<bool> drop(entries.size(), false);
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const auto& e = entries[i];
    auto key = std::pair(e.cluster, e.attempt);
    if (e.names_process) {
      drop[i] = true;
      if (auto it = open.find(key); it != open.end())
        entries[it->second].started.where.process = e.started.where.process;
    } else if (e.not_started) {
      drop[i] = true;
      if (auto it = open.find(key); it != open.end()) drop[it->second] = true;
      open.erase(key);
    } else if (e.outcome) {
      open.erase(key);
    } else {
      open[key] = i;
    }
  }
  std::size_t i = 0;
  std::erase_if(entries, [&](const JournalEntry&) { return drop[i++]; });
}

// A version-1 lock file: JSON naming the worker.
std::optional<ProcessIdentity> legacy_lock(const std::string& text) {
  auto j = nlohmann::json::parse(text.substr(0, text.find('\n')), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  try {
    return ProcessIdentity{j.value("pid", 0), j.value("host", ""), j.value("boot", ""),
                           j.value("start_ticks", std::uint64_t{0})};
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

// The segment number in "<worker>.<k>.journal", if the name is one.
std::optional<std::uint64_t> segment_number(const std::string& name, const std::string& worker) {
  auto prefix = worker + ".";
  if (!name.starts_with(prefix) || !name.ends_with(".journal")) return std::nullopt;
  auto digits = std::string_view(name).substr(prefix.size(), name.size() - prefix.size() - 8);
  std::uint64_t k = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), k);
  if (digits.empty() || ec != std::errc{} || end != digits.data() + digits.size())
    return std::nullopt;
  return k;
}

// The names in a folder, read through its descriptor.
std::vector<std::string> names_in(int dir_fd) {
  std::vector<std::string> out;
  int copy = ::fcntl(dir_fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) return out;
  DIR* d = ::fdopendir(copy);  // closedir closes the copy
  if (!d) {
    ::close(copy);
    return out;
  }
  ::rewinddir(d);
  while (auto* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") out.push_back(std::move(name));
  }
  ::closedir(d);
  return out;
}

// Which process holds an flock on a file, as /proc/locks says.
std::optional<pid_t> flock_holder(dev_t dev, ino_t ino) {
  std::ifstream in("/proc/locks");
  for (std::string line; std::getline(in, line);) {
    if (line.find("->") != std::string::npos || line.find("FLOCK") == std::string::npos) continue;
    long pid = 0;
    unsigned major = 0, minor = 0;
    unsigned long inode = 0;
    auto at = line.find("FLOCK");
    char mode[16] = {}, kind[16] = {};
    if (std::sscanf(line.c_str() + at, "FLOCK %15s %15s %ld %x:%x:%lu", kind, mode, &pid, &major,
                    &minor, &inode) == 6 &&
        inode == ino && ::makedev(major, minor) == dev)
      return static_cast<pid_t>(pid);
  }
  return std::nullopt;
}

}  // namespace

Fd open_regular(int dir_fd, const std::string& name) {
  Fd fd(::openat(dir_fd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!fd) return fd;
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    errno = EINVAL;
    return Fd();
  }
  return fd;
}

JournalWriter::JournalWriter(const fs::path& dir, const JournalHeader& header, bool sync)
    : path_(dir), header_(header), sync_(sync) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  dir_ = open_folder(dir);
  if (!dir_) {
    if (errno == ELOOP || errno == ENOTDIR) not_a_folder(dir);
    throw failure(dir, "open the folder");
  }
  auto name = header_.worker + ".lock";
  // Close-on-exec: the lock goes with the worker, not with its clusters. Its
  // content is replaced only once the lock is held.
  lock_.reset(::openat(dir_.get(), name.c_str(),
                       O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644));
  struct stat st {};
  if (!lock_ || ::fstat(lock_.get(), &st) != 0 || !S_ISREG(st.st_mode) ||
      ::flock(lock_.get(), LOCK_EX | LOCK_NB) != 0)
    throw failure(path_ / name, "lock");
  auto text = encode_lock(header_, current_process()) + "\n";
  if (::ftruncate(lock_.get(), 0) != 0 ||
      ::pwrite(lock_.get(), text.data(), text.size(), 0) != static_cast<ssize_t>(text.size()))
    throw failure(path_ / name, "write");
  open_segment();
}

JournalWriter::~JournalWriter() {
  if (acknowledged_ + 1 < next_seq_) return;  // the next runner collects what is left
  for (const auto& [k, last] : last_seq_of_) ::unlinkat(dir_.get(), segment_name(k).c_str(), 0);
  ::unlinkat(dir_.get(), (header_.worker + ".lock").c_str(), 0);
}

std::string JournalWriter::segment_name(std::uint64_t k) const {
  return fmt::format("{}.{}.journal", header_.worker, k);
}

// A new segment starts with the header: a reader knows whose it is before
// it reads a line of it. A name already taken is not runner's: the next.
void JournalWriter::open_segment() {
  for (int tries = 0; tries < 100; ++tries) {
    auto name = segment_name(++segment_number_);
    segment_.reset(::openat(dir_.get(), name.c_str(),
                            O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0644));
    if (!segment_ && errno == EEXIST) continue;
    if (!segment_) throw failure(path_ / name, "create");
    last_seq_of_[segment_number_] = 0;
    segment_lines_ = 0;
    auto text = encode_header(header_) + "\n";
    if (::write(segment_.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()))
      throw failure(path_ / name, "write");
    return;
  }
  throw std::system_error(EEXIST, std::generic_category(),
                          fmt::format("cannot create a journal segment in {}", path_.string()));
}

std::uint64_t JournalWriter::add(const JournalEntry& entry) {
  if (segment_lines_ == kSegmentLines) {
    flush();
    open_segment();
  }
  auto seq = next_seq_++;
  pending_ += encode_journal(entry, seq);
  pending_ += '\n';
  ++segment_lines_;
  last_seq_of_[segment_number_] = seq;
  if (entry.outcome) sync_due_ = true;
  return seq;
}

void JournalWriter::flush() {
  if (pending_.empty()) return;
  auto path = path_ / segment_name(segment_number_);
  // Whole lines, to a file opened O_APPEND: a reader may find the last one
  // cut short by a crash, never two mixed.
  std::string_view left = pending_;
  while (!left.empty()) {
    ssize_t n = ::write(segment_.get(), left.data(), left.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw failure(path, "write");
    left.remove_prefix(static_cast<std::size_t>(n));
  }
  pending_.clear();
  // A start lost with the machine is a start of a process lost with it too:
  // only ends are worth an fsync.
  if (sync_ && sync_due_ && ::fdatasync(segment_.get()) != 0) throw failure(path, "sync");
  sync_due_ = false;
}

ProcessNote JournalWriter::process_note(const std::string& job, ClusterId cluster,
                                        std::uint32_t attempt) const {
  return ProcessNote{segment_.get(), encode_process_note(job, cluster, attempt)};
}

void JournalWriter::acknowledged(std::uint64_t seq) {
  acknowledged_ = std::max(acknowledged_, seq);
  // Every segment but the one being written whose lines are all committed.
  for (auto it = last_seq_of_.begin(); it != last_seq_of_.end();) {
    if (it->first == segment_number_ || it->second > acknowledged_) {
      ++it;
      continue;
    }
    ::unlinkat(dir_.get(), segment_name(it->first).c_str(), 0);
    it = last_seq_of_.erase(it);
  }
}

std::vector<RunJournal> RunJournal::find(const fs::path& dir, const JournalOwner& owner,
                                         std::vector<std::string>& ignored) {
  std::vector<RunJournal> out;
  auto folder = std::make_shared<Fd>(open_folder(dir));
  if (!*folder) {
    if (errno == ENOENT) return out;
    if (errno == ELOOP || errno == ENOTDIR) not_a_folder(dir);
    throw Error(fmt::format("cannot read {}: {}", dir.string(), std::strerror(errno)));
  }
  for (const auto& file : names_in(folder->get())) {
    if (file.size() <= 5 || !file.ends_with(".lock")) continue;
    auto name = file.substr(0, file.size() - 5);
    auto shown = (dir / file).string();
    auto fd = open_regular(folder->get(), file);
    if (!fd) {
      ignored.push_back(fmt::format("{}: not a regular file", shown));
      continue;
    }
    auto text = read_small(fd.get());
    auto run = name.substr(0, name.find('@'));
    if (auto lock = decode_lock(text)) {
      const auto& h = *lock->header;
      if (h.db_id != owner.db_id || h.job != owner.job || h.job_key != owner.job_key) {
        ignored.push_back(fmt::format("{}: another DB's or another job's journal", shown));
        continue;
      }
      if (h.version > kWireVersion)
        throw Error(
            fmt::format("{} was written by a newer runner (journal version {}, this runner "
                        "reads up to {}); finish the job with that runner",
                        shown, h.version, kWireVersion));
      if (h.worker != name || !owner.is_run(run)) {
        ignored.push_back(fmt::format("{}: not a run this DB recorded for the job", shown));
        continue;
      }
      out.push_back(RunJournal(folder, dir, name, h, lock->worker));
    } else if (auto legacy = legacy_lock(text); legacy && owner.legacy_run == run) {
      out.push_back(RunJournal(folder, dir, name, std::nullopt, *legacy));
    } else {
      ignored.push_back(fmt::format("{}: not a lock runner wrote for this job", shown));
    }
  }
  return out;
}

std::optional<std::pair<dev_t, ino_t>> RunJournal::lock_file_id() const {
  auto fd = open_regular(dir_->get(), name_ + ".lock");
  struct stat st {};
  if (!fd || ::fstat(fd.get(), &st) != 0) return std::nullopt;
  return std::pair{st.st_dev, st.st_ino};
}

std::optional<pid_t> RunJournal::holder() const {
  auto id = lock_file_id();
  if (!id) return std::nullopt;
  return flock_holder(id->first, id->second);
}

bool RunJournal::held_by_its_worker() const {
  if (worker_.host != host_name()) return false;
  auto holder = this->holder();
  if (!holder || *holder != worker_.pid || check_alive(worker_) != Liveness::kAlive) return false;
  std::ifstream comm(fmt::format("/proc/{}/comm", worker_.pid));
  std::string name;
  return std::getline(comm, name) && name == "runner-worker";
}

RunJournal::Lock RunJournal::try_lock() {
  if (!lock_) lock_ = open_regular(dir_->get(), name_ + ".lock");
  if (!lock_) return Lock::kGone;
  return ::flock(lock_.get(), LOCK_EX | LOCK_NB) == 0 ? Lock::kTaken : Lock::kHeld;
}

bool RunJournal::lock_when_free(int wake_fd) {
  if (try_lock() != Lock::kHeld) return true;
  // flock cannot be polled: a thread waits for it and says so through an
  // eventfd. The thread shares both descriptors; if runner stops waiting,
  // it is left to end with the process.
  struct Wait {
    Fd lock, done;
  };
  auto wait = std::make_shared<Wait>();
  wait->lock = open_regular(dir_->get(), name_ + ".lock");
  if (!wait->lock) return true;  // gone meanwhile: nothing to wait for
  wait->done.reset(::eventfd(0, EFD_CLOEXEC));
  if (!wait->done) throw std::system_error(errno, std::generic_category(), "eventfd");
  std::thread([wait] {
    if (::flock(wait->lock.get(), LOCK_EX) != 0) return;
    std::uint64_t one = 1;
    if (::write(wait->done.get(), &one, sizeof one) < 0) return;
  }).detach();
  pollfd fds[] = {{wait->done.get(), POLLIN, 0}, {wake_fd, POLLIN, 0}};
  while (::poll(fds, 2, -1) < 0 && errno == EINTR) {
  }
  if (!(fds[0].revents & POLLIN)) return false;
  // Close-on-exec, as every descriptor of runner's: a worker started later
  // must not hold this lock for its whole life.
  lock_.reset(::fcntl(wait->lock.get(), F_DUPFD_CLOEXEC, 0));
  return true;
}

std::vector<std::string> RunJournal::segments() const {
  std::map<std::uint64_t, std::string> found;
  for (auto& name : names_in(dir_->get()))
    if (auto k = segment_number(name, name_)) found[*k] = std::move(name);
  std::vector<std::string> out;
  out.reserve(found.size());
  for (auto& [k, name] : found) out.push_back(std::move(name));
  return out;
}

std::vector<JournalEntry> RunJournal::read(std::size_t& garbled) const {
  std::vector<JournalEntry> out;
  std::uint32_t version = header_ ? header_->version : 1;
  for (const auto& segment : segments()) {
    auto fd = open_regular(dir_->get(), segment);
    if (!fd) {
      ++garbled;
      continue;
    }
    std::string text;
    char buf[65536];
    for (ssize_t n; (n = ::read(fd.get(), buf, sizeof buf)) > 0;)
      text.append(buf, static_cast<std::size_t>(n));
    std::size_t at = 0;
    bool first = true;
    while (at < text.size()) {
      auto eol = text.find('\n', at);
      bool whole = eol != std::string::npos;
      auto line = std::string_view(text).substr(at, (whole ? eol : text.size()) - at);
      at = whole ? eol + 1 : text.size();
      Fields f(line);
      if (first && header_) {
        // A segment is this journal's only if it starts with its header.
        auto h = decode_header(f);
        first = false;
        if (!h || h->db_id != header_->db_id || h->job != header_->job ||
            h->job_key != header_->job_key || h->worker != header_->worker) {
          ++garbled;
          break;
        }
        continue;
      }
      first = false;
      // A line without its newline is the last, cut short by a crash (a
      // worker killed in the middle of a write). A start cut in its last
      // fields still names its execution, which then gets its row; a line
      // that takes a start back, or names its process, is trusted only
      // whole, as its last field may have been cut to another number.
      if (!whole && (f.kind() == 'N' || f.kind() == 'S')) break;
      try {
        if (auto entry = decode_journal(f, version))
          out.push_back(std::move(*entry));
        else if (whole)
          ++garbled;
      } catch (const WireError&) {
        if (whole) ++garbled;  // a whole line that does not decode is not runner's
      }
    }
  }
  apply_lines_about_starts(out);
  return out;
}

void RunJournal::remove() {
  for (const auto& segment : segments()) ::unlinkat(dir_->get(), segment.c_str(), 0);
  ::unlinkat(dir_->get(), (name_ + ".lock").c_str(), 0);
  lock_.reset();
}

Error not_a_real_log_folder(const fs::path& dir, bool link) {
  return Error(fmt::format(
      "log folder {} is {}: runner writes logs only into a real folder below the logs root; "
      "remove it, or pass another --logs or --job",
      dir.string(), link ? "a symbolic link" : "not a folder"));
}

void make_job_log_dir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir.parent_path(), ec);
  if (ec || (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST))
    throw Error(fmt::format("cannot create log folder {}: {}", dir.string(),
                            ec ? ec.message() : std::strerror(errno)));
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) throw not_a_real_log_folder(dir, errno == ELOOP);
}

namespace {

// Kills a worker of an earlier run, once proven to be one, and every
// process of that run.
void kill_run(const RunJournal& journal) {
  if (journal.held_by_its_worker()) ::kill(journal.worker().pid, SIGKILL);
  Leftovers left{{}, {journal.name()}};
  settle_leftovers(find_leftovers(left).pids, LeftoverPolicy::kKill, -1);
}

}  // namespace

bool wait_for_journal_workers(std::vector<RunJournal>& journals, LeftoverPolicy policy,
                              int wake_fd) {
  for (auto it = journals.begin(); it != journals.end();) {
    auto& journal = *it;
    if (auto lock = journal.try_lock(); lock != RunJournal::Lock::kHeld) {
      if (lock == RunJournal::Lock::kGone)
        it = journals.erase(it);
      else
        ++it;
      continue;
    }
    // A decoy: a process of this host that is not the worker the lock file
    // names holds the lock. It is neither waited for nor killed.
    bool proven = journal.held_by_its_worker();
    auto holder = journal.holder();
    if (!proven && holder) {
      spdlog::warn(
          "leaving journal {} alone: its lock is held by pid {}, which is not the worker it "
          "names (pid {})",
          printable(journal.name()), *holder, journal.worker().pid);
      it = journals.erase(it);
      continue;
    }
    bool here = journal.worker().host == host_name();
    if (policy == LeftoverPolicy::kKill && proven) {
      spdlog::warn(
          "killing the worker (pid {}) of an earlier run ({}) and its clusters "
          "(--orphans kill)",
          journal.worker().pid, printable(journal.run()));
      kill_run(journal);
    } else {
      spdlog::warn("waiting for the worker (pid {}{}) of an earlier run to finish its clusters",
                   journal.worker().pid, here ? "" : " on " + printable(journal.worker().host));
    }
    if (!journal.lock_when_free(wake_fd)) return false;
    ++it;
  }
  return true;
}

}  // namespace runner
