// `runner report --html` end to end: the page of a small real job, rendered
// in headless Chromium as a reader's browser would, checked from its DOM.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
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

// Measures the page as Chromium lays it out, and leaves what it found in
// the body's data-probe: how many labels of the peaks chart overlap a bar,
// how many OOM dots are under something else at their centre, how many
// cells of the failures table (but notes) wrap, and the lowest lane.
constexpr const char* kLayoutProbe = R"JS(<script>
(function () {
  function meets(a, b) {
    return a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
  }
  var found = {labelsOnBars: 0, hiddenDots: 0, dots: 0, wrappedCells: 0, lowestLane: 1e9};
  document.querySelectorAll('#peaks .mark-text').forEach(function (label) {
    document.querySelectorAll('#peaks .hist').forEach(function (bar) {
      if (meets(label.getBoundingClientRect(), bar.getBoundingClientRect())) found.labelsOnBars++;
    });
  });
  document.querySelectorAll('#memory circle.peak.s-oom').forEach(function (dot) {
    found.dots++;
    dot.scrollIntoView({block: 'center'});
    var r = dot.getBoundingClientRect();
    if (document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2) !== dot) found.hiddenDots++;
  });
  document.querySelectorAll('.failures td:not(.note)').forEach(function (cell) {
    var range = document.createRange();
    range.selectNodeContents(cell);
    var lines = {};
    Array.prototype.forEach.call(range.getClientRects(), function (r) { lines[Math.round(r.top)] = 1; });
    if (Object.keys(lines).length > 1) found.wrappedCells++;
  });
  document.querySelectorAll('#timeline .bar').forEach(function (bar) {
    found.lowestLane = Math.min(found.lowestLane, bar.getBoundingClientRect().height);
  });
  document.body.dataset.probe = JSON.stringify(found);
})();
</script></body>)JS";

// The page as a reader's browser lays it out, at the narrowest width the
// page is made for: names off the bars, dots over the cap line, the
// failures' values each on one line, lanes tall enough to hover.
TEST(ReportHtml, ChromiumLaysThePageOutWithNothingHiddenOrWrapped) {
  TempDir t;
  // 12 clusters, 6 at a time: 7 goes over its cap, 12 fails with a long log path.
  auto run =
      run_runner(with_child({"12", "6", "--mem-limit", "64M", "--job",
                             "a-night-with-a-rather-long-name-for-its-logs"},
                            {"--sleep-ms", "100", "--alloc-for", "7=200", "--exit-for", "12=3"}),
                 t.path());
  ASSERT_EQ(run.code, 1) << run.err;
  auto page = t / "night.html";
  ASSERT_EQ(run_runner({"report", "--html", page.string()}, t.path()).code, 0);
  auto text = read_file(page);
  auto end = text.rfind("</body>");
  ASSERT_NE(end, std::string::npos);
  auto probed = t / "probed.html";
  std::ofstream(probed) << text.substr(0, end) << kLayoutProbe << text.substr(end + 7);
  auto shot = t / "probed.png";
  auto rendered = run_shell(
      std::string(RENDER_PAGE) + " " + probed.string() + " " + shot.string() + " 1800 1200",
      t.path());
  if (rendered.code == 77) GTEST_SKIP() << rendered.err;
  ASSERT_EQ(rendered.code, 0) << rendered.err;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(rendered.out, m, std::regex("data-probe=\"([^\"]*)\"")))
      << rendered.out.substr(0, 500);
  auto probe = nlohmann::json::parse(std::regex_replace(m[1].str(), std::regex("&quot;"), "\""));
  EXPECT_EQ(probe["labelsOnBars"], 0) << probe;
  EXPECT_EQ(probe["hiddenDots"], 0) << probe;
  EXPECT_EQ(probe["wrappedCells"], 0) << probe;
  EXPECT_GE(probe["lowestLane"].get<double>(), 20) << probe;
  // Where cluster 7 ended oom (a cgroup cap), its dot was measured.
  if (query(t / "runner.db", "select state from attempts where cluster = 7") == "oom") {
    EXPECT_EQ(probe["dots"], 1) << probe;
  }
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
