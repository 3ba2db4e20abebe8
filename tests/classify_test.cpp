// How an ended attempt is judged, case by case: one row of the table each.
#include "runner/classify.h"

#include <gtest/gtest.h>

#include <csignal>

namespace runner {
namespace {

constexpr std::uint64_t MiB = 1ULL << 20;

struct Case {
  const char* what;
  Outcome outcome;
  AttemptFacts facts;
  AttemptState state;
  std::string note;
  bool budget_kill = false;
  std::optional<std::uint64_t> learn;
};

Outcome exited(int code, std::uint64_t cgroup_peak_mib = 0) {
  Outcome o;
  o.exit_code = code;
  o.rss_peak_kib = 2048;
  if (cgroup_peak_mib) o.cgroup_peak_kib = cgroup_peak_mib * 1024;
  return o;
}

Outcome killed(int sig) {
  Outcome o;
  o.killed_by = sig;
  o.rss_peak_kib = 2048;
  return o;
}

Outcome with(Outcome o, MemoryKill kill, std::string note, std::uint64_t cgroup_peak_mib) {
  o.memory_kill = kill;
  o.memory_note = std::move(note);
  o.cgroup_peak_kib = cgroup_peak_mib * 1024;
  return o;
}

Outcome timed_out(Outcome o, std::string unstoppable = "") {
  o.timed_out = true;
  o.unstoppable = std::move(unstoppable);
  return o;
}

AttemptFacts under_budget(std::uint64_t budget_mib, std::uint64_t limit_mib) {
  AttemptFacts f;
  f.budget = budget_mib * MiB;
  f.limit = limit_mib * MiB;
  return f;
}

AttemptFacts stopped() {
  AttemptFacts f;
  f.stopped_by_runner = true;
  return f;
}

AttemptFacts evicted(std::uint64_t at_mib) {
  auto f = under_budget(1000, 400);
  f.evicted_at = at_mib * MiB;
  return f;
}

AttemptFacts with_timeout(std::chrono::milliseconds t) {
  AttemptFacts f;
  f.timeout = t;
  return f;
}

const Case kCases[] = {
    {"exit 0", exited(0), {}, AttemptState::kDone, ""},
    {"exit 3", exited(3), {}, AttemptState::kFailed, ""},
    {"a segfault", killed(SIGSEGV), {}, AttemptState::kFailed, ""},
    {"stopped by runner", killed(SIGTERM), stopped(), AttemptState::kInterrupted, ""},
    {"exit 0 while runner stopped it", exited(0), stopped(), AttemptState::kDone, ""},
    {"timed out", timed_out(killed(SIGTERM)), with_timeout(std::chrono::seconds(90)),
     AttemptState::kTimeout, "timed out after 1m30s"},
    {"timed out, could not be stopped, exit 0",
     timed_out(exited(0), "SIGTERM refused: Operation not permitted"),
     with_timeout(std::chrono::seconds(2)), AttemptState::kTimeout,
     "timed out after 2.0s; it could not be stopped and ran on until it ended"},
    {"at its own cap",
     with(killed(SIGKILL), MemoryKill::kOwnCap, "the kernel killed 1 process(es)", 400),
     under_budget(1000, 400), AttemptState::kOom, "the kernel killed 1 process(es)", false,
     400 * MiB},
    {"a helper killed for memory though the main process exited 0",
     with(exited(0), MemoryKill::kOwnCap, "the kernel killed 1 process(es)", 10),
     {},
     AttemptState::kOom,
     "the kernel killed 1 process(es)"},
    {"at the budget, below its cap", with(killed(SIGKILL), MemoryKill::kPool, "x", 100),
     under_budget(1000, 400), AttemptState::kOom,
     "the kernel killed it when all clusters together reached the 1000.0 MiB budget, at 100.0 "
     "MiB of its 400.0 MiB cap",
     true},
    {"evicted", with(killed(SIGKILL), MemoryKill::kNone, "", 300), evicted(300),
     AttemptState::kInterrupted, "evicted at 300.0 MiB to keep the pool within the memory budget"},
    {"done under a budget, learned from", exited(0, 250), under_budget(1000, 400),
     AttemptState::kDone, "", false, 250 * MiB},
    {"failed under a budget, learned from by its RSS", exited(1), under_budget(1000, 400),
     AttemptState::kFailed, "", false, 2 * MiB},
};

class Classify : public ::testing::TestWithParam<Case> {};

TEST_P(Classify, JudgesTheStateNoteAndWhatTheBudgetLearns) {
  const auto& c = GetParam();
  auto v = classify(c.outcome, c.facts);
  EXPECT_EQ(v.state, c.state) << c.what;
  EXPECT_EQ(v.note, c.note) << c.what;
  EXPECT_EQ(v.budget_kill, c.budget_kill) << c.what;
  EXPECT_EQ(v.learn, c.learn) << c.what;
}

INSTANTIATE_TEST_SUITE_P(Table, Classify, ::testing::ValuesIn(kCases));

TEST(OutcomePeak, IsTheCgroupsWhereThereIsOneElseTheRss) {
  Outcome o;
  EXPECT_EQ(o.peak_source(), Source::kNone);
  o.rss_peak_kib = 500;
  EXPECT_EQ(o.peak_kib(), 500u);
  EXPECT_EQ(o.peak_source(), Source::kRusage);
  o.cgroup_peak_kib = 300;
  EXPECT_EQ(o.peak_kib(), 300u);
  EXPECT_EQ(o.peak_source(), Source::kCgroup);
}

}  // namespace
}  // namespace runner
