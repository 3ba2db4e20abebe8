#include "runner/commit_group.h"

namespace runner {

CommitGroup::CommitGroup(Store& store, Limits limits) : store_(store), limits_(limits) {}

void CommitGroup::open() {
  if (batch_) return;
  batch_.emplace(store_);
  opened_ = Clock::now();
}

bool CommitGroup::due(Clock::time_point now) const {
  return batch_ && (writes_ >= limits_.most || now - opened_ >= limits_.oldest);
}

std::optional<Clock::time_point> CommitGroup::linger_until(Clock::time_point now) const {
  if (!batch_ || writes_ == 0) return std::nullopt;
  return now + limits_.linger;
}

bool CommitGroup::commit() {
  if (!batch_) return false;
  batch_->commit();
  batch_.reset();
  writes_ = 0;
  return true;
}

}  // namespace runner
