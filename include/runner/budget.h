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
  std::uint64_t reserved() const { return reserved_; }
  bool fits(std::uint64_t need) const { return need <= total_ - reserved_; }
  void reserve(std::uint64_t bytes) { reserved_ += bytes; }
  void release(std::uint64_t bytes) { reserved_ -= bytes; }

  // What to reserve for a cluster seen before, from its recorded peak.
  std::uint64_t need_from_history(std::uint64_t peak_bytes) const;
  // What to reserve for a cluster never seen. With overcommit: a high
  // percentile of the peaks finished so far, with margin (before any: an
  // equal share of the budget); without: the cap.
  std::uint64_t unknown_need() const;
  bool overcommit() const { return overcommit_; }
  // A finished cluster's peak, for the learned figure.
  void learn(std::uint64_t peak_bytes);

 private:
  std::uint64_t total_;
  std::uint64_t reserved_ = 0;
  std::uint64_t cap_need_;
  bool overcommit_;
  std::uint32_t parallel_;
  std::vector<std::uint64_t> recent_;  // a ring of the latest peaks
  std::size_t next_ = 0;
};

}  // namespace runner
