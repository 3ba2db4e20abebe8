// The log's writes grouped into transactions: a commit costs more than the
// start of a small cluster. A group is open from one commit to the next; it
// is committed once it holds `most` writes or is `oldest` old, and the loop
// commits it before sleeping longer than a moment. A completion counts as
// done (and is shown) only once its group is committed; what a crash loses
// is only what was never acknowledged.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>

#include "runner/engine.h"
#include "runner/store.h"

namespace runner {

class CommitGroup {
 public:
  struct Limits {
    std::size_t most = 64;
    Clock::duration oldest = std::chrono::milliseconds(20);
    // With writes waiting, how long to wait for more before committing.
    Clock::duration linger = std::chrono::milliseconds(2);
  };
  explicit CommitGroup(Store& store, Limits limits);

  // Opens a group if none is open (BEGIN IMMEDIATE; the DB is checked to be
  // still the file at its path).
  void open();
  // Counts one row written into the open group.
  void wrote() { ++writes_; }
  std::size_t writes() const { return writes_; }
  // Whether the group is large or old enough to commit now.
  bool due(Clock::time_point now) const;
  // Until when to wait for more writes before committing, when some wait.
  std::optional<Clock::time_point> linger_until(Clock::time_point now) const;
  // Commits the open group, if any; returns whether one was open.
  bool commit();

 private:
  Store& store_;
  Limits limits_;
  std::optional<Store::Batch> batch_;
  Clock::time_point opened_{};
  std::size_t writes_ = 0;
};

}  // namespace runner
