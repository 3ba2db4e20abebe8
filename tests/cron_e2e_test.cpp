// What people who run runner unattended rely on: machine-readable status,
// end to end on the real binary.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "e2e_util.h"

namespace runner::testing {
namespace {

using nlohmann::json;

TEST(StatusJson, SaysWhatTheTextSaysWhileAJobRunsAndAfter) {
  TempDir t;
  auto ready = t / "ready";
  fs::create_directory(ready);
  // Cluster 2 fails; 3 and 4 hold until their file exists (the others' exist).
  for (int c : {1, 2, 5, 6}) std::ofstream((t / ("go-" + std::to_string(c))).string()).put('x');
  RunnerProcess p(with_child({"6", "2", "--job", "night"},
                             {"--exit-for", "2=3", "--ready-dir", ready.string(), "--hold-file",
                              (t / "go-{i}").string()}),
                  t.path());
  ASSERT_TRUE(wait_until(ready, [&] { return fs::exists(ready / "4.ready"); }));
  ASSERT_TRUE(wait_for_running(t.path(), 2));
  auto text = run_runner({"status"}, t.path());
  auto raw = run_runner({"status", "--json"}, t.path());
  ASSERT_EQ(raw.code, 0) << raw.err;
  auto all = json::parse(raw.out);
  ASSERT_EQ(all.size(), 1u);
  auto s = all[0];
  EXPECT_EQ(s["job"], "night");
  EXPECT_EQ(s["clusters"], 6);
  EXPECT_NE(text.out.find(fmt::format("done {}, failed {}, running {}, pending {}",
                                      s["done"].get<int>(), s["failed"].get<int>(),
                                      s["running"].get<int>(), s["pending"].get<int>())),
            std::string::npos)
      << text.out << raw.out;
  EXPECT_EQ(s["running"], 2);
  ASSERT_TRUE(s["runner"].is_object()) << raw.out;
  EXPECT_EQ(s["runner"]["pid"], p.pid());
  EXPECT_NE(text.out.find(fmt::format("running: pid {} on {}", p.pid(),
                                      s["runner"]["host"].get<std::string>())),
            std::string::npos)
      << text.out;
  ASSERT_EQ(s["failed_clusters"].size(), 1u);
  auto f = s["failed_clusters"][0];
  EXPECT_EQ(f["cluster"], 2);
  EXPECT_EQ(f["exit_code"], 3);
  EXPECT_EQ(f["state"], "failed");
  EXPECT_NE(
      text.out.find(fmt::format("cluster 2 (attempt 1): {}, log {}", f["ending"].get<std::string>(),
                                f["log_path"].get<std::string>())),
      std::string::npos)
      << text.out;

  for (int c : {3, 4}) std::ofstream((t / ("go-" + std::to_string(c))).string()).put('x');
  EXPECT_EQ(p.wait(), 1);
  auto after = json::parse(run_runner({"status", "--json", "--job", "night"}, t.path()).out)[0];
  EXPECT_EQ(after["done"], 5);
  EXPECT_EQ(after["failed"], 1);
  EXPECT_EQ(after["running"], 0);
  EXPECT_TRUE(after["runner"].is_null());
  EXPECT_TRUE(after["running_by_node"].empty());
  // An unknown job is an error, as in the text.
  auto unknown = run_runner({"status", "--json", "--job", "nope"}, t.path());
  EXPECT_EQ(unknown.code, 2);
  EXPECT_NE(unknown.err.find("--job nope: no such job"), std::string::npos) << unknown.err;
}

}  // namespace
}  // namespace runner::testing
