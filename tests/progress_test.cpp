#include "runner/progress.h"

#include <gtest/gtest.h>

#include <cstdio>

namespace runner {
namespace {

std::string contents(std::FILE* f) {
  std::fflush(f);
  std::rewind(f);
  std::string out;
  char buf[4096];
  while (auto n = std::fread(buf, 1, sizeof buf, f)) out.append(buf, n);
  return out;
}

Snapshot at(ClusterId done, Clock::time_point started) {
  Snapshot s;
  s.total = 100;
  s.done = done;
  s.done_this_run = done;
  s.running = 3;
  s.started = started;
  return s;
}

TEST(Progress, DescribesCountsRateAndEta) {
  auto t0 = Clock::now();
  auto line = describe(at(50, t0), t0 + std::chrono::seconds(10));
  EXPECT_EQ(line, "50/100 done, 0 failed, 3 running, 5.0/s, ETA 10.0s");
}

TEST(Progress, TheBarShowsDoneFailedAndRunningAndNeverWraps) {
  auto t0 = Clock::now();
  Snapshot s = at(50, t0);  // 50 done, 3 running of 100
  s.failed = 10;
  auto line = status_line(s, t0 + std::chrono::seconds(10), 200);
  // 30 cells: 15 done, 3 failed, 1 running, 11 pending.
  EXPECT_EQ(line.substr(0, 32), "[###############!!!>           ]");
  EXPECT_EQ(line.substr(33), describe(s, t0 + std::chrono::seconds(10)));
  // A narrow terminal: cut to its width less one, so it stays one line.
  EXPECT_EQ(status_line(s, t0, 40).size(), 39u);
  // Nothing to show yet.
  Snapshot empty;
  empty.started = t0;
  EXPECT_EQ(status_line(empty, t0, 200).substr(0, 32), "[" + std::string(30, ' ') + "]");
}

TEST(Progress, OnATerminalRedrawsOneLineInPlace) {
  std::FILE* f = std::tmpfile();
  Progress p(f, Progress::Mode::kTerminal, 120);
  auto t0 = Clock::now();
  p.update(at(1, t0), t0 + std::chrono::seconds(1));
  p.update(at(2, t0), t0 + std::chrono::seconds(2));
  p.finish();
  auto out = contents(f);
  EXPECT_EQ(out.find('\n'), std::string::npos) << out;
  EXPECT_NE(out.find("\r\033[K[#> "), std::string::npos) << out;
  EXPECT_NE(out.find("] 1/100 done"), std::string::npos) << out;
  EXPECT_NE(out.find("] 2/100 done"), std::string::npos) << out;
  EXPECT_EQ(out.substr(out.size() - 4), "\r\033[K");  // the live line is erased at the end
  std::fclose(f);
}

TEST(Progress, PlainOutputIsThrottledAndFreeOfControlCharacters) {
  std::FILE* f = std::tmpfile();
  Progress p(f, Progress::Mode::kPlain);
  auto t0 = Clock::now();
  p.update(at(1, t0), t0);
  for (int i = 2; i < 50; ++i) p.update(at(i, t0), t0 + std::chrono::milliseconds(i));  // too soon
  p.update(at(60, t0), t0 + std::chrono::seconds(6));
  p.update(at(60, t0), t0 + std::chrono::seconds(12));  // nothing changed: nothing printed
  auto out = contents(f);
  EXPECT_EQ(out,
            "1/100 done, 0 failed, 3 running\n"
            "60/100 done, 0 failed, 3 running, 10.0/s, ETA 4.0s\n")
      << out;
  std::fclose(f);
}

TEST(Progress, TicksOnlyWhenThereIsSomethingToShow) {
  std::FILE* f = std::tmpfile();
  Progress silent(f, Progress::Mode::kSilent);
  EXPECT_FALSE(silent.next_tick());
  Progress p(f, Progress::Mode::kTerminal);
  EXPECT_FALSE(p.next_tick());
  auto t0 = Clock::now();
  p.update(at(1, t0), t0);
  ASSERT_TRUE(p.next_tick());
  EXPECT_EQ(*p.next_tick(), t0 + std::chrono::seconds(1));
  std::fclose(f);
}

}  // namespace
}  // namespace runner
