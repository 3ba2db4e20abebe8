// A set of clusters kept as disjoint closed ranges [lo, hi]. Done clusters of a
// job are almost always a few long runs, so the set stays tiny however large N
// is: this is what makes resume cost independent of the job's history.
#pragma once

#include <cstdint>
#include <map>
#include <optional>

namespace runner {

class IntervalSet {
 public:
  // Adds [lo, hi], merging with neighbours. Returns false if all of it was present.
  bool insert(std::uint64_t lo, std::uint64_t hi);
  bool insert(std::uint64_t value) { return insert(value, value); }
  bool contains(std::uint64_t value) const;
  // The smallest value >= from that is not in the set (the set never holds UINT64_MAX).
  std::uint64_t next_absent(std::uint64_t from) const;
  std::uint64_t count() const { return count_; }
  std::size_t ranges() const { return ranges_.size(); }
  const std::map<std::uint64_t, std::uint64_t>& raw() const { return ranges_; }

 private:
  std::map<std::uint64_t, std::uint64_t> ranges_;  // lo -> hi
  std::uint64_t count_ = 0;
};

}  // namespace runner
