#include "runner/words.h"

#include <gtest/gtest.h>
#include <signal.h>

namespace runner {
namespace {

// A run stopped by a time limit: every cluster not done is counted, those
// that never started included, so the figures add up to what is left.
TEST(Words, TheSummaryOfAStopCountsEveryClusterLeft) {
  RunSummary s;
  s.clusters = 100;
  s.done = 76;
  s.interrupted = 4;
  s.waiting_again = 8;
  s.stop_signal = SIGTERM;
  auto text = summary_text(s, Job{1, "nightly", 100, "./migrate"}, {}, "runner.db");
  EXPECT_NE(text.find("76/100 done; of the 24 left, 4 interrupted, 8 waiting to run again, 12 not "
                      "started or failed"),
            std::string::npos)
      << text;
}

TEST(Words, AStopWithNothingElseLeftSaysOnlyWhatWasStopped) {
  RunSummary s;
  s.clusters = 4;
  s.done = 2;
  s.interrupted = 2;
  s.stop_signal = SIGINT;
  auto text = summary_text(s, Job{1, "nightly", 4, "./migrate"}, {}, "runner.db");
  EXPECT_NE(text.find("2/4 done; of the 2 left, 2 interrupted; run the same command again"),
            std::string::npos)
      << text;
}

}  // namespace
}  // namespace runner
