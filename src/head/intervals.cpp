#include "runner/intervals.h"

#include <algorithm>
#include <cassert>

namespace runner {

bool IntervalSet::insert(std::uint64_t lo, std::uint64_t hi) {
  assert(lo <= hi);
  std::uint64_t before = count_;
  // Start from the range that begins at or before lo, if it touches [lo, hi].
  auto it = ranges_.upper_bound(lo);
  if (it != ranges_.begin()) {
    auto prev = std::prev(it);
    if (prev->second >= lo - (lo > 0 ? 1 : 0)) it = prev;
  }
  // Swallow every range that overlaps or touches [lo, hi].
  while (it != ranges_.end() && (hi == UINT64_MAX || it->first <= hi + 1)) {
    lo = std::min(lo, it->first);
    hi = std::max(hi, it->second);
    count_ -= it->second - it->first + 1;
    it = ranges_.erase(it);
  }
  ranges_.emplace(lo, hi);
  count_ += hi - lo + 1;
  return count_ != before;
}

bool IntervalSet::contains(std::uint64_t value) const {
  auto it = ranges_.upper_bound(value);
  if (it == ranges_.begin()) return false;
  return std::prev(it)->second >= value;
}

std::uint64_t IntervalSet::next_absent(std::uint64_t from) const {
  auto it = ranges_.upper_bound(from);
  if (it == ranges_.begin()) return from;
  auto prev = std::prev(it);
  // Ranges never touch each other, so the value after a range is absent.
  return prev->second >= from ? prev->second + 1 : from;
}

}  // namespace runner
