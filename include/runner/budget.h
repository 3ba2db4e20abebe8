// The memory budget of a pool (--mem-budget): what is reserved for the
// clusters running now, and what to reserve for one whose need is unknown.
// The scheduler asks before each start; reservations are released at the end.
#pragma once

#include <cstdint>
#include <vector>

namespace runner {

class MemoryBudget {
 public:
  // unknown_need: what a cluster with no history reserves without overcommit
  // (its cap: safe by construction).
  MemoryBudget(std::uint64_t total, std::uint64_t unknown_need, bool overcommit,
               std::uint32_t parallel);

  std::uint64_t total() const { return total_; }
  // Known needs plus what the guessed clusters reserve together.
  std::uint64_t reserved() const { return known_ + pooled(guessed_); }
  // A cluster of known need, or (guessed) one more cluster admitted on the
  // learned figures: does it fit beside what runs now?
  bool fits(std::uint64_t need, bool guessed = false) const;
  void reserve(std::uint64_t need, bool guessed = false);
  void release(std::uint64_t need, bool guessed = false);

  // What to reserve for a cluster seen before, from its recorded peak.
  std::uint64_t need_from_history(std::uint64_t peak_bytes) const;
  // What one cluster never seen is expected to need at most. With
  // overcommit: a high percentile of the latest peaks (2 × P), with margin
  // (before any: two equal shares of the budget); without: the cap.
  std::uint64_t unknown_need() const;
  bool overcommit() const { return overcommit_; }
  // A finished cluster's peak, for the learned figures.
  void learn(std::uint64_t peak_bytes);
  // What k guessed clusters running at once reserve together: k times the
  // mean learned peak plus a safety term that grows as sqrt(k), since k
  // clusters rarely all peak high together (with margin; never more than k
  // caps, and before any peak is known, k times two equal shares).
  std::uint64_t pooled(std::size_t k) const;

 private:
  // What each cluster reserves on a guess before any peak is known: two
  // equal shares of the budget (budget ÷ P), so that half of P start first.
  std::uint64_t first_guess() const;

  std::uint64_t total_;
  std::uint64_t known_ = 0;  // reserved by clusters of known need
  std::size_t guessed_ = 0;  // clusters running on the learned figures
  std::uint64_t cap_need_;
  bool overcommit_;
  std::uint32_t parallel_;
  std::size_t window_;                 // how many of the latest peaks are learned from
  std::vector<std::uint64_t> recent_;  // a ring of the latest peaks
  std::size_t next_ = 0;
  double sum_ = 0, sum_squares_ = 0;  // of recent_, in MiB
};

}  // namespace runner
