#include "runner/budget.h"

#include <algorithm>
#include <cmath>

namespace runner {
namespace {

// Peaks vary a little from run to run; history gets a small margin, a guess
// learned from other clusters a larger one.
constexpr double kHistoryMargin = 1.05;
constexpr double kLearnedMargin = 1.25;
constexpr double kLearnedPercentile = 0.95;
// The same confidence for a pool of guessed clusters: the one-sided 95%
// point of a normal sum of their peaks.
constexpr double kPooledDeviations = 1.645;
// The learned figures follow the latest peaks, 2 × P of them (between 16
// and 4096): neighbouring clusters are alike more often than not (a table's
// partitions, a month's days), and a job whose large clusters come first
// should not hold its small ones back for the rest of the run.
constexpr std::size_t kFewestRecent = 16;
constexpr std::size_t kMostRecent = 4096;
constexpr double kMiB = 1024.0 * 1024.0;

std::uint64_t scaled(std::uint64_t bytes, double factor) {
  return static_cast<std::uint64_t>(std::ceil(static_cast<double>(bytes) * factor));
}

}  // namespace

MemoryBudget::MemoryBudget(std::uint64_t total, std::uint64_t unknown_need, bool overcommit,
                           std::uint32_t parallel)
    : total_(total),
      cap_need_(std::min(unknown_need, total)),
      overcommit_(overcommit),
      parallel_(std::max<std::uint32_t>(parallel, 1)),
      window_(std::clamp<std::size_t>(2 * std::size_t{parallel_}, kFewestRecent, kMostRecent)) {}

bool MemoryBudget::fits(std::uint64_t need, bool guessed) const {
  auto after = guessed ? known_ + pooled(guessed_ + 1) : known_ + need + pooled(guessed_);
  return after <= total_;
}

void MemoryBudget::reserve(std::uint64_t need, bool guessed) {
  if (guessed)
    ++guessed_;
  else
    known_ += need;
}

void MemoryBudget::release(std::uint64_t need, bool guessed) {
  if (guessed)
    --guessed_;
  else
    known_ -= need;
}

// Two equal shares: the first wave is half of P, so that it still fits if
// the clusters need up to twice their share; once one has finished, the
// learned figures decide.
std::uint64_t MemoryBudget::first_guess() const {
  return std::max<std::uint64_t>(2 * total_ / parallel_, 1);
}

std::uint64_t MemoryBudget::need_from_history(std::uint64_t peak_bytes) const {
  return std::max<std::uint64_t>(scaled(peak_bytes, kHistoryMargin), 1);
}

std::uint64_t MemoryBudget::unknown_need() const {
  if (!overcommit_) return cap_need_;
  if (recent_.empty()) return std::min(first_guess(), cap_need_);
  auto sorted = recent_;
  auto k = static_cast<std::size_t>(kLearnedPercentile * static_cast<double>(sorted.size() - 1));
  std::nth_element(sorted.begin(), sorted.begin() + static_cast<std::ptrdiff_t>(k), sorted.end());
  return std::clamp<std::uint64_t>(scaled(sorted[k], kLearnedMargin), 1, cap_need_);
}

std::uint64_t MemoryBudget::pooled(std::size_t k) const {
  if (k == 0) return 0;
  auto most = static_cast<std::uint64_t>(k) * cap_need_;
  if (recent_.empty()) return std::min(most, k * first_guess());
  auto n = static_cast<double>(recent_.size());
  auto mean = sum_ / n;
  auto deviation = std::sqrt(std::max(0.0, sum_squares_ / n - mean * mean));
  auto count = static_cast<double>(k);
  auto mib = kLearnedMargin * (count * mean + kPooledDeviations * deviation * std::sqrt(count));
  return std::clamp<std::uint64_t>(static_cast<std::uint64_t>(std::ceil(mib * kMiB)), 1, most);
}

void MemoryBudget::learn(std::uint64_t peak_bytes) {
  auto mib = static_cast<double>(peak_bytes) / kMiB;
  if (recent_.size() < window_) {
    recent_.push_back(peak_bytes);
  } else {
    auto old = static_cast<double>(recent_[next_]) / kMiB;
    sum_ -= old;
    sum_squares_ -= old * old;
    recent_[next_] = peak_bytes;
    next_ = (next_ + 1) % window_;
  }
  sum_ += mib;
  sum_squares_ += mib * mib;
}

}  // namespace runner
