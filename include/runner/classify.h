// How an ended attempt is judged: its state, its note in words, and what it
// means for the memory budget. A pure function of what the engine measured
// and what runner knew of the attempt, so that each case is a row of a table.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "runner/engine.h"
#include "runner/store.h"

namespace runner {

// What runner knew of the attempt, beside what the engine measured.
struct AttemptFacts {
  bool stopped_by_runner = false;           // a signal or --halt now stopped it
  std::optional<std::uint64_t> evicted_at;  // bytes in use when evicted for the budget
  std::optional<std::chrono::milliseconds> timeout;
  std::optional<std::uint64_t> budget;  // bytes: all clusters together, where there is one
  std::optional<std::uint64_t> limit;   // bytes: its own cap
};

struct Verdict {
  AttemptState state = AttemptState::kDone;
  std::string note;          // why, where the state alone does not say
  bool budget_kill = false;  // the kernel killed it at the budget, below its own cap
  // The peak the budget may learn from (bytes): none for an attempt that was
  // stopped or killed before it could reach its own.
  std::optional<std::uint64_t> learn;
};

Verdict classify(const Outcome& outcome, const AttemptFacts& facts);

// The log's record of how an attempt ended: the verdict, and what was measured.
AttemptEnd attempt_end(const Outcome& outcome, const Verdict& verdict);

}  // namespace runner
