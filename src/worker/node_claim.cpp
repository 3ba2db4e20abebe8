#include "runner/node_claim.h"

#include <fmt/format.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <sstream>
#include <system_error>

#include "runner/error.h"

namespace fs = std::filesystem;

namespace runner {
namespace {

const fs::path kFolder = "/tmp";

// Allocation and node names are Slurm's (letters, digits, dots, dashes);
// anything else in them is made harmless in a file name.
std::string safe(const std::string& name) {
  std::string out;
  for (char c : name)
    out += std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' ? c : '_';
  return out;
}

// Every claim of this user's starts so; one node's, with the rest.
std::string user_prefix() {
  return fmt::format("runner-claim-{}-", ::getuid());
}

std::string prefix(const std::string& allocation, const std::string& node) {
  return fmt::format("{}{}-{}-", user_prefix(), safe(allocation), safe(node));
}

std::string encode(const Claimant& c) {
  return fmt::format("{}\n{}\n{}\n{}\n", c.pid, c.made_ns, c.db, c.job);
}

std::optional<Claimant> decode(const std::string& text) {
  std::istringstream in(text);
  Claimant c;
  std::string pid, made;
  if (!std::getline(in, pid) || !std::getline(in, made) || !std::getline(in, c.db) ||
      !std::getline(in, c.job))
    return std::nullopt;
  try {
    c.pid = static_cast<pid_t>(std::stol(pid));
    c.made_ns = std::stoull(made);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  return c;
}

bool same_job(const Claimant& a, const Claimant& b) {
  return a.db == b.db && a.job == b.job;
}

// Whether `a` was made before `b` (the pid breaks a tie).
bool older(const Claimant& a, const Claimant& b) {
  return std::pair(a.made_ns, a.pid) < std::pair(b.made_ns, b.pid);
}

// The claim in `path`: none when its worker is gone (then the file goes
// too) or it cannot be read.
std::optional<Claimant> live_claim(const fs::path& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) return std::nullopt;
  if (::flock(fd.get(), LOCK_SH | LOCK_NB) == 0) {
    ::unlink(path.c_str());
    return std::nullopt;
  }
  std::string text(4096, '\0');
  auto n = ::read(fd.get(), text.data(), text.size());
  if (n <= 0) return std::nullopt;
  text.resize(static_cast<std::size_t>(n));
  return decode(text);
}

}  // namespace

std::optional<Claimant> other_claim(const std::string& allocation, const std::string& node,
                                    const Claimant& me) {
  auto start = prefix(allocation, node);
  auto mine = user_prefix();
  std::optional<Claimant> oldest;
  std::error_code ec;
  // The dead workers' claims of any allocation go on the way (a worker
  // killed with SIGKILL cannot remove its own).
  for (const auto& entry : fs::directory_iterator(kFolder, ec)) {
    auto name = entry.path().filename().string();
    if (name.rfind(mine, 0) != 0 || name == start + std::to_string(me.pid)) continue;
    auto other = live_claim(entry.path());
    if (!other || name.rfind(start, 0) != 0) continue;
    if (!same_job(*other, me) && (!oldest || older(*other, *oldest))) oldest = other;
  }
  return oldest;
}

std::string claimed_by(const std::string& allocation, const std::string& node,
                       const Claimant& other) {
  return fmt::format(
      "Slurm job {} already runs job {} of {} on node {} (its worker, pid {}): two runners in "
      "one allocation would each take the node's CPUs; run this job in an allocation of its own "
      "(salloc, sbatch), or once that one has ended",
      allocation, other.job, other.db, node, other.pid);
}

NodeClaim::NodeClaim(const std::string& allocation, const std::string& node, const Claimant& me)
    : path_(kFolder / (prefix(allocation, node) + std::to_string(me.pid))) {
  ::unlink(path_.c_str());
  fd_.reset(::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd_) throw std::system_error(errno, std::generic_category(), path_.string());
  auto text = encode(me);
  if (::flock(fd_.get(), LOCK_EX) != 0 ||
      ::write(fd_.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    std::error_code ec(errno, std::generic_category());
    ::unlink(path_.c_str());
    throw std::system_error(ec, path_.string());
  }
  // Written before looking: of two made at once, each sees the other.
  if (auto other = other_claim(allocation, node, me); other && older(*other, me)) {
    ::unlink(path_.c_str());
    throw Error(claimed_by(allocation, node, *other));
  }
}

NodeClaim::~NodeClaim() {
  ::unlink(path_.c_str());
}

}  // namespace runner
