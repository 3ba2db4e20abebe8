#include "runner/journal.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <system_error>
#include <thread>

#include "runner/wire.h"

namespace runner {
namespace fs = std::filesystem;
namespace {

// A segment holds this many lines; runner's acknowledgements remove the
// older ones as the run goes, so the journal stays small.
constexpr std::size_t kSegmentLines = 4096;

std::system_error failure(const fs::path& file, const char* what) {
  return std::system_error(errno, std::generic_category(),
                           fmt::format("cannot {} {}", what, file.string()));
}

fs::path lock_path(const fs::path& dir, const std::string& run) {
  return dir / (run + ".lock");
}

fs::path segment_path(const fs::path& dir, const std::string& run, std::uint64_t k) {
  return dir / fmt::format("{}.{}.journal", run, k);
}

}  // namespace

JournalWriter::JournalWriter(const fs::path& dir, const std::string& run, bool sync)
    : dir_(dir), run_(run), sync_(sync) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  auto lock = lock_path(dir_, run_);
  // Close-on-exec: the lock goes with the worker, not with its clusters.
  lock_.reset(::open(lock.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644));
  if (!lock_ || ::flock(lock_.get(), LOCK_EX | LOCK_NB) != 0) throw failure(lock, "lock");
  auto self = current_process();
  auto who = nlohmann::json{{"pid", self.pid},
                            {"host", self.host},
                            {"boot", self.boot_id},
                            {"start_ticks", self.start_ticks}}
                 .dump() +
             "\n";
  if (::write(lock_.get(), who.data(), who.size()) < 0) throw failure(lock, "write");
  open_segment();
}

JournalWriter::~JournalWriter() {
  if (acknowledged_ + 1 < next_seq_) return;  // the next runner collects what is left
  for (const auto& [k, last] : last_seq_of_) ::unlink(segment_path(dir_, run_, k).c_str());
  ::unlink(lock_path(dir_, run_).c_str());
}

void JournalWriter::open_segment() {
  auto path = segment_path(dir_, run_, ++segment_number_);
  segment_.reset(
      ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0644));
  if (!segment_) throw failure(path, "create");
  segment_lines_ = 0;
}

std::uint64_t JournalWriter::ended(const AttemptSpec& spec, const AttemptStarted& started,
                                   const Outcome& outcome) {
  if (segment_lines_ == kSegmentLines) {
    flush();
    open_segment();
  }
  auto seq = next_seq_++;
  JournalEntry entry{spec.job,     spec.cluster, spec.attempt, started,
                     std::nullopt, std::nullopt, outcome};
  if (spec.mem_limit) entry.mem_limit_kib = *spec.mem_limit / 1024;
  if (spec.timeout) entry.timeout_s = static_cast<double>(spec.timeout->count()) / 1e3;
  pending_ += encode_journal(entry, seq);
  pending_ += '\n';
  ++segment_lines_;
  last_seq_of_[segment_number_] = seq;
  return seq;
}

void JournalWriter::flush() {
  if (pending_.empty()) return;
  auto path = segment_path(dir_, run_, segment_number_);
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
  if (sync_ && ::fdatasync(segment_.get()) != 0) throw failure(path, "sync");
}

void JournalWriter::acknowledged(std::uint64_t seq) {
  acknowledged_ = std::max(acknowledged_, seq);
  // Every segment but the one being written whose lines are all committed.
  for (auto it = last_seq_of_.begin(); it != last_seq_of_.end();) {
    if (it->first == segment_number_ || it->second > acknowledged_) {
      ++it;
      continue;
    }
    ::unlink(segment_path(dir_, run_, it->first).c_str());
    it = last_seq_of_.erase(it);
  }
}

std::vector<RunJournal> RunJournal::find(const fs::path& dir) {
  std::vector<RunJournal> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    auto name = entry.path().filename().string();
    if (name.size() > 5 && name.ends_with(".lock"))
      out.push_back(RunJournal(dir, name.substr(0, name.size() - 5)));
  }
  return out;
}

std::optional<ProcessIdentity> RunJournal::worker() const {
  std::ifstream in(lock_path(dir_, run_));
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  auto j = nlohmann::json::parse(line, nullptr, false);
  if (j.is_discarded()) return std::nullopt;
  return ProcessIdentity{j.value("pid", 0), j.value("host", ""), j.value("boot", ""),
                         j.value("start_ticks", std::uint64_t{0})};
}

bool RunJournal::try_lock() {
  if (!lock_) lock_.reset(::open(lock_path(dir_, run_).c_str(), O_RDONLY | O_CLOEXEC));
  return lock_ && ::flock(lock_.get(), LOCK_EX | LOCK_NB) == 0;
}

bool RunJournal::lock_when_free(int wake_fd) {
  if (try_lock()) return true;
  // flock cannot be polled: a thread waits for it and says so through an
  // eventfd. The thread shares both descriptors; if runner stops waiting,
  // it is left to end with the process.
  struct Wait {
    Fd lock, done;
  };
  auto wait = std::make_shared<Wait>();
  wait->lock.reset(::open(lock_path(dir_, run_).c_str(), O_RDONLY | O_CLOEXEC));
  wait->done.reset(::eventfd(0, EFD_CLOEXEC));
  if (!wait->lock || !wait->done) return false;
  std::thread([wait] {
    if (::flock(wait->lock.get(), LOCK_EX) != 0) return;
    std::uint64_t one = 1;
    if (::write(wait->done.get(), &one, sizeof one) < 0) return;
  }).detach();
  pollfd fds[] = {{wait->done.get(), POLLIN, 0}, {wake_fd, POLLIN, 0}};
  while (::poll(fds, 2, -1) < 0 && errno == EINTR) {
  }
  if (!(fds[0].revents & POLLIN)) return false;
  lock_.reset(::dup(wait->lock.get()));
  return true;
}

std::vector<fs::path> RunJournal::segments() const {
  std::map<std::uint64_t, fs::path> found;
  std::error_code ec;
  auto prefix = run_ + ".";
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    auto name = entry.path().filename().string();
    if (!name.starts_with(prefix) || !name.ends_with(".journal")) continue;
    auto number = name.substr(prefix.size(), name.size() - prefix.size() - 8);
    if (number.empty() || number.find_first_not_of("0123456789") != std::string::npos) continue;
    found[std::stoull(number)] = entry.path();
  }
  std::vector<fs::path> out;
  out.reserve(found.size());
  for (auto& [k, path] : found) out.push_back(path);
  return out;
}

std::vector<JournalEntry> RunJournal::read() const {
  std::vector<JournalEntry> out;
  for (const auto& segment : segments()) {
    std::ifstream in(segment);
    for (std::string line; std::getline(in, line);)
      if (auto entry = decode_journal(Fields(line))) out.push_back(std::move(*entry));
  }
  return out;
}

void RunJournal::remove() {
  for (const auto& segment : segments()) ::unlink(segment.c_str());
  ::unlink(lock_path(dir_, run_).c_str());
  lock_.reset();
}

}  // namespace runner
