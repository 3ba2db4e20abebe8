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
constexpr std::size_t kRecent = 4096;

std::uint64_t scaled(std::uint64_t bytes, double factor) {
  return static_cast<std::uint64_t>(std::ceil(static_cast<double>(bytes) * factor));
}

}  // namespace

MemoryBudget::MemoryBudget(std::uint64_t total, std::uint64_t unknown_need, bool overcommit,
                           std::uint32_t parallel)
    : total_(total),
      cap_need_(std::min(unknown_need, total)),
      overcommit_(overcommit),
      parallel_(std::max<std::uint32_t>(parallel, 1)) {}

std::uint64_t MemoryBudget::need_from_history(std::uint64_t peak_bytes) const {
  return std::max<std::uint64_t>(scaled(peak_bytes, kHistoryMargin), 1);
}

std::uint64_t MemoryBudget::unknown_need() const {
  if (!overcommit_) return cap_need_;
  if (recent_.empty()) return std::max<std::uint64_t>(total_ / parallel_, 1);
  auto sorted = recent_;
  auto k = static_cast<std::size_t>(kLearnedPercentile * static_cast<double>(sorted.size() - 1));
  std::nth_element(sorted.begin(), sorted.begin() + static_cast<std::ptrdiff_t>(k), sorted.end());
  return std::clamp<std::uint64_t>(scaled(sorted[k], kLearnedMargin), 1, cap_need_);
}

void MemoryBudget::learn(std::uint64_t peak_bytes) {
  if (recent_.size() < kRecent) {
    recent_.push_back(peak_bytes);
  } else {
    recent_[next_] = peak_bytes;
    next_ = (next_ + 1) % kRecent;
  }
}

}  // namespace runner
