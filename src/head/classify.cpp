#include "runner/classify.h"

#include <fmt/format.h>

#include "runner/units.h"

namespace runner {
namespace {

std::string size_text(std::uint64_t bytes) {
  return format_size_kib(bytes / 1024);
}

}  // namespace

Verdict classify(const Outcome& outcome, const AttemptFacts& facts) {
  Verdict v;
  bool memory = outcome.memory_kill != MemoryKill::kNone;
  auto peak = outcome.peak_kib() * 1024;
  if (!outcome.interrupted.empty()) {
    // Its worker died or was told to stop: it runs again, interrupted.
    v.state = AttemptState::kInterrupted;
    v.note = outcome.interrupted;
  } else if (outcome.timed_out) {
    // Past its limit, however it ended: even a child that could not be
    // stopped and went on to exit 0.
    v.state = AttemptState::kTimeout;
    v.note = fmt::format("timed out after {}",
                         format_duration(facts.timeout.value_or(std::chrono::milliseconds(0))));
    if (!outcome.unstoppable.empty())
      v.note += "; it could not be stopped and ran on until it ended";
  } else if (outcome.exit_code == 0 && !memory) {
    v.state = AttemptState::kDone;
  } else if (facts.evicted_at) {
    v.state = AttemptState::kInterrupted;
    v.note = fmt::format("evicted at {} to keep the pool within the memory budget",
                         size_text(*facts.evicted_at));
  } else if (facts.stopped_by_runner) {
    v.state = AttemptState::kInterrupted;
  } else if (memory) {
    v.state = AttemptState::kOom;
    v.note = outcome.memory_note;
    v.budget_kill = outcome.memory_kill == MemoryKill::kPool && facts.budget && facts.limit;
    if (v.budget_kill)
      v.note = fmt::format(
          "the kernel killed it when all clusters together reached the {} budget, at {} of its "
          "{} cap",
          size_text(*facts.budget), size_text(peak), size_text(*facts.limit));
  } else {
    v.state = AttemptState::kFailed;
  }
  // Stopped early, or killed at the budget, it never reached its peak.
  if (facts.budget && v.state != AttemptState::kInterrupted && !v.budget_kill) v.learn = peak;
  return v;
}

AttemptEnd attempt_end(const Outcome& outcome, const Verdict& verdict) {
  AttemptEnd end;
  end.state = verdict.state;
  end.note = verdict.note;
  end.finished_at = outcome.finished_at;
  end.exit_code = outcome.exit_code;
  end.signal = outcome.killed_by;
  end.user_cpu_s = outcome.user_cpu_s.value_or(0);
  end.sys_cpu_s = outcome.sys_cpu_s.value_or(0);
  end.peak_rss_kib = outcome.rss_peak_kib.value_or(0);
  end.peak_cgroup_kib = outcome.cgroup_peak_kib;
  end.wrote_nothing = outcome.wrote_nothing;
  return end;
}

}  // namespace runner
