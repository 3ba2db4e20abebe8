// `runner report --html` end to end: the page of a small real job, rendered
// in headless Chromium as a reader's browser would, checked from its DOM.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>

#include "e2e_util.h"

namespace runner::testing {
namespace {

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(ReportHtml, ThePageOfARealJobRendersWithOneBarPerAttemptInItsState) {
  TempDir t;
  // 20 clusters, 4 at a time: 7 goes over its cap, 12 and 15 fail and are
  // retried once (and fail again), the rest are done.
  auto run = run_runner(with_child({"20", "4", "--mem-limit", "64M", "--retries", "1",
                                    "--retry-delay", "0.1s", "--job", "night"},
                                   {"--sleep-ms", "100", "--alloc-for", "7=200", "--exit-for",
                                    "12=3", "--exit-for", "15=1"}),
                        t.path());
  ASSERT_EQ(run.code, 1) << run.err;
  auto page = t / "night.html";
  auto report = run_runner({"report", "--html", page.string()}, t.path());
  ASSERT_EQ(report.code, 0) << report.err;
  EXPECT_EQ(report.out, page.string() + "\n");

  // Rendered in Chromium; the screenshot stays in the build folder for people to see.
  auto shot = fs::path(runner_bin()).parent_path() / "report-page.png";
  auto rendered =
      run_shell(std::string(RENDER_PAGE) + " " + page.string() + " " + shot.string(), t.path());
  if (rendered.code == 77) GTEST_SKIP() << rendered.err;
  ASSERT_EQ(rendered.code, 0) << rendered.err;
  const auto& dom = rendered.out;
  // Its script ran to the end, and no script error happened.
  EXPECT_NE(dom.find("data-ready=\"yes\""), std::string::npos);
  EXPECT_EQ(dom.find("data-script-error"), std::string::npos);
  // One bar per attempt, in the state the log gives it.
  auto db = t / "runner.db";
  std::map<std::string, std::size_t> want;
  std::istringstream rows(
      query(db,
            "select group_concat(state || ' ' || n, ' ') from (select state, count(*) as n from "
            "attempts group by state)"));
  for (std::string state, n; rows >> state >> n;) want[state] = std::stoul(n);
  EXPECT_EQ(want["done"], 17u);
  EXPECT_EQ(want["failed"] + want["oom"], 5u);  // 12 and 15 twice each; 7 (oom where capped)
  EXPECT_EQ(count(dom, "<rect class=\"bar "), 22u);
  for (const auto& [state, n] : want)
    EXPECT_EQ(count(dom, "<rect class=\"bar s-" + state + "\""), n) << state;
  // The charts and the numbers are there.
  for (const char* id : {"id=\"timeline\"", "id=\"memory\"", "id=\"peaks\"", "id=\"makespan\"",
                         "id=\"lower-bound\""})
    EXPECT_NE(dom.find(id), std::string::npos) << id;
  EXPECT_NE(dom.find("Failures (3)"), std::string::npos);
  std::ifstream png(shot, std::ios::binary);
  std::string magic(8, '\0');
  png.read(magic.data(), 8);
  EXPECT_EQ(magic, "\x89PNG\r\n\x1a\n");
}

TEST(ReportHtml, BadInputIsOneLineAndWritesNothing) {
  TempDir t;
  ASSERT_EQ(run_runner(with_child({"3", "3"}, {}), t.path()).code, 0);
  auto both = run_runner({"report", "--html", "x.html", "--csv"}, t.path());
  EXPECT_EQ(both.code, 2);
  EXPECT_NE(both.err.find("--html writes a page of its own"), std::string::npos) << both.err;
  auto nowhere = run_runner({"report", "--html", "/proc/x/y.html"}, t.path());
  EXPECT_EQ(nowhere.code, 2);
  EXPECT_NE(nowhere.err.find("--html /proc/x/y.html: cannot write there"), std::string::npos)
      << nowhere.err;
  auto no_job = run_runner({"report", "--html", "x.html", "--job", "nope"}, t.path());
  EXPECT_EQ(no_job.code, 2);
  EXPECT_NE(no_job.err.find("--job nope: no such job"), std::string::npos) << no_job.err;
  EXPECT_FALSE(fs::exists(t / "x.html"));
}

}  // namespace
}  // namespace runner::testing
