#include "runner/progress.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <pty.h>
#include <sys/ioctl.h>
#include <unistd.h>

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
  // A narrow terminal: within its width less one, so it stays one line.
  EXPECT_LE(status_line(s, t0, 40).size(), 39u);
  // Nothing to show yet.
  Snapshot empty;
  empty.started = t0;
  EXPECT_EQ(status_line(empty, t0, 200).substr(0, 32), "[" + std::string(30, ' ') + "]");
}

// At 80 columns the whole line fits with a shorter bar; at 40, the short
// form with its ETA (as GNU parallel's); below that, whatever fits.
TEST(Progress, ANarrowTerminalKeepsTheEtaAndShrinksTheBarFirst) {
  auto t0 = Clock::now();
  Snapshot s;
  s.total = 10000;
  s.done = s.done_this_run = 1234;
  s.failed = 3;
  s.running = 3;
  s.started = t0;
  auto now = t0 + std::chrono::seconds(60);
  auto wide = status_line(s, now, 80);
  EXPECT_LE(wide.size(), 79u);
  EXPECT_EQ(wide.substr(wide.find(']') + 2), describe(s, now)) << wide;
  EXPECT_NE(wide.find(", ETA 7m"), std::string::npos) << wide;
  EXPECT_EQ(wide.front(), '[');
  // 40 columns: the short form, with a bar where it leaves room for one.
  EXPECT_EQ(status_line(s, now, 40), "1234/10000 3! 3> 20.6/s ETA 7m06s");
  auto few = at(84, t0);  // 84/100 done, 3 running
  auto short_line = status_line(few, t0 + std::chrono::seconds(40), 40);
  EXPECT_EQ(short_line.front(), '[') << short_line;
  EXPECT_EQ(short_line.substr(short_line.find(']')), "] 84/100 0! 3> 2.1/s ETA 7.6s");
  EXPECT_LE(short_line.size(), 39u);
  auto tiny = status_line(s, now, 24);
  EXPECT_LE(tiny.size(), 23u);
  EXPECT_EQ(tiny.rfind("1234/10000 3! 3>", 0), 0u) << tiny;
}

// A terminal made narrower wraps the line already drawn over several rows:
// the next draw goes up to its first row and erases from there, and fits
// the new width.
TEST(Progress, AfterAResizeTheNextDrawFitsAndLeavesNoWrappedRows) {
  int master = -1, slave = -1;
  winsize wide{24, 120, 0, 0};
  ASSERT_EQ(::openpty(&master, &slave, nullptr, nullptr, &wide), 0);
  std::FILE* out = ::fdopen(slave, "w");
  auto read_all = [&] {
    std::string text;
    char buf[4096];
    pollfd p{master, POLLIN, 0};
    while (::poll(&p, 1, 0) == 1) {
      auto n = ::read(master, buf, sizeof buf);
      if (n <= 0) break;
      text.append(buf, static_cast<std::size_t>(n));
    }
    return text;
  };
  Progress progress(out, Progress::Mode::kTerminal);  // asks the terminal its width
  auto t0 = Clock::now();
  progress.update(at(40, t0), t0 + std::chrono::seconds(1));
  auto first = read_all();
  auto drawn = first.substr(first.rfind("\033[K") + 3);
  EXPECT_GT(drawn.size(), 40u) << first;
  winsize narrow{24, 40, 0, 0};
  ASSERT_EQ(::ioctl(master, TIOCSWINSZ, &narrow), 0);
  progress.update(at(41, t0), t0 + std::chrono::seconds(2));
  auto second = read_all();
  auto up = fmt::format("\r\033[{}A\033[J", (drawn.size() - 1) / 40);
  ASSERT_EQ(second.rfind(up, 0), 0u) << second;
  EXPECT_LE(second.size() - up.size(), 39u) << second;
  EXPECT_NE(second.find("ETA"), std::string::npos) << second;
  // Wider again: one row to erase.
  ASSERT_EQ(::ioctl(master, TIOCSWINSZ, &wide), 0);
  progress.update(at(42, t0), t0 + std::chrono::seconds(3));
  EXPECT_EQ(read_all().rfind("\r\033[K[", 0), 0u);
  std::fclose(out);
  ::close(master);
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
