// Before a run: what the workers of earlier runs journalled and their runner
// never recorded is recorded now, as it ended (a cluster that finished while
// runner was killed is `done`, and is not run again). A worker that still
// runs is waited for, without polling (or, with --orphans kill, killed: its
// clusters then run again).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>

#include "runner/engine.h"
#include "runner/signals.h"
#include "runner/store.h"

namespace runner {

struct Collected {
  std::uint64_t attempts = 0;  // outcomes recorded from journals
  std::uint64_t done = 0;      // of which done
};

// Returns nothing when one of runner's signals came first.
std::optional<Collected> collect_earlier_runs(Store& store, const Job& job,
                                              const std::filesystem::path& journal_dir,
                                              LeftoverPolicy policy, SignalSource& signals);

}  // namespace runner
