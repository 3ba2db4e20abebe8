// End-to-end: --log-format stream and files, and runner log reading each.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include "e2e_util.h"
#include "runner/stream_log.h"

namespace runner::testing {
namespace {

using Args = std::vector<std::string>;

// What a child of the interleaving test writes: lines to stdout and stderr
// by turns, each line a write of its own.
std::string expected_output(int cluster, int lines) {
  std::string out;
  for (int i = 0; i < lines; ++i)
    out += fmt::format("out {} {}\nerr {} {}\n", cluster, i, cluster, i);
  return out;
}

// The clusters of the index's records, in the order they were appended.
std::vector<std::uint64_t> clusters_in_index(const fs::path& index) {
  auto bytes = read_file(index);
  std::vector<std::uint64_t> clusters;
  for (std::size_t at = 16; at + 24 <= bytes.size(); at += 24) {
    std::uint64_t c = 0;
    for (int i = 7; i >= 0; --i) c = (c << 8) | static_cast<unsigned char>(bytes[at + i]);
    clusters.push_back(c);
  }
  return clusters;
}

std::vector<fs::path> files_in(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.is_regular_file()) files.push_back(entry.path());
  return files;
}

TEST(LogFormat, TheStreamKeepsEachClustersOutputApartWhileTheyWriteAtOnce) {
  TempDir t;
  fs::create_directory(t / "ready");
  constexpr int kLines = 400;
  // All four wait for each other, then write by turns, line by line.
  auto script = fmt::format(
      "d=$1; : > \"$d/r.$RUNNER_CLUSTER\"; n=0; "
      "while :; do set -- \"$d\"/r.*; [ $# -ge 4 ] && break; n=$((n+1)); "
      "[ $n -gt 5000000 ] && break; done; "
      "i=0; while [ $i -lt {} ]; do echo \"out $RUNNER_CLUSTER $i\"; "
      "echo \"err $RUNNER_CLUSTER $i\" >&2; i=$((i+1)); done; "
      "[ $RUNNER_CLUSTER = 3 ] && exit 3; exit 0",
      kLines);
  auto r = run_runner({"4", "4", "--job", "s", "--log-format", "stream", "--", "sh", "-c", script,
                       "sh", (t / "ready").string()},
                      t.path());
  ASSERT_EQ(r.code, 1) << r.err;
  auto job = t / "runner.logs" / "s";
  // One stream and its index for the run, no file per attempt.
  auto files = files_in(job);
  ASSERT_EQ(files.size(), 2u);
  std::set<std::string> names;
  for (const auto& f : files) names.insert(f.extension().string());
  EXPECT_EQ(names, (std::set<std::string>{".stream", ".idx"}));
  auto db = t / "runner.db";
  auto stream = query(db, "SELECT log_path FROM attempts WHERE cluster = 1");
  EXPECT_EQ(stream.substr(stream.rfind('#')), "#1.1");
  auto clusters = clusters_in_index(stream.substr(0, stream.rfind('#')) + ".idx");
  std::size_t switches = 0;
  for (std::size_t i = 1; i < clusters.size(); ++i) switches += clusters[i] != clusters[i - 1];
  EXPECT_GT(switches, 3u) << "the children did not write at once";
  for (int c = 1; c <= 4; ++c) {
    auto log = run_runner({"log", std::to_string(c)}, t.path());
    EXPECT_EQ(log.code, 0) << log.err;
    EXPECT_TRUE(log.out == expected_output(c, kLines)) << "cluster " << c;
  }
  // Status and the report name the failed attempt's place in the stream.
  r = run_runner({"status"}, t.path());
  EXPECT_NE(r.out.find(".stream#3.1"), std::string::npos) << r.out;
  r = run_runner({"report"}, t.path());
  EXPECT_EQ(r.code, 0) << r.err;
}

TEST(LogFormat, AStreamChildWritingMoreThanAPipeHoldsGoesOnAndIsReadBackWhole) {
  TempDir t;
  for (const char* worker : {"on", "off"}) {
    auto job = std::string("big-") + worker;
    auto r = run_runner(
        with_child({"2", "2", "--job", job, "--worker", worker, "--log-format", "stream"},
                   {"--print-mib", "3"}),
        t.path());
    ASSERT_EQ(r.code, 0) << r.err;
    for (const char* c : {"1", "2"}) {
      auto log = run_runner({"log", "--job", job, c}, t.path());
      EXPECT_EQ(log.code, 0) << log.err;
      EXPECT_EQ(log.out.size(), 3u << 20) << "--worker " << worker << ", cluster " << c;
      EXPECT_EQ(log.out.find_first_not_of("x\n"), std::string::npos);
    }
  }
}

TEST(LogFormat, AnAttemptThatWritesNothingCostsNothingInEitherForm) {
  TempDir t;
  for (const char* format : {"files", "stream"}) {
    auto job = std::string("quiet-") + format;
    // Cluster 2 alone writes.
    auto r = run_runner({"3", "2", "--job", job, "--log-format", format, "--", "sh", "-c",
                         "[ $RUNNER_CLUSTER = 2 ] && echo two; exit 0"},
                        t.path());
    ASSERT_EQ(r.code, 0) << r.err;
    auto db = t / "runner.db";
    EXPECT_EQ(query(db, "SELECT group_concat(cluster) FROM attempts WHERE job = '" + job +
                            "' AND log_path IS NULL ORDER BY cluster"),
              "1,3")
        << format;
    auto folder = t / "runner.logs" / job;
    if (std::string(format) == "files") {
      EXPECT_EQ(files_in(folder), std::vector<fs::path>{folder / "2.1.log"});
    } else {
      // The stream holds one frame: cluster 2's.
      auto stream =
          query(db, "SELECT log_path FROM attempts WHERE job = '" + job + "' AND cluster = 2");
      auto path = stream.substr(0, stream.rfind('#'));
      EXPECT_EQ(fs::file_size(path), 16u + 24u + 4u);
      EXPECT_EQ(clusters_in_index(path + ".idx"), std::vector<std::uint64_t>{2});
    }
    auto log = run_runner({"log", "--job", job, "1"}, t.path());
    EXPECT_EQ(log.code, 0) << log.err;
    EXPECT_EQ(log.out, "");
    EXPECT_EQ(log.err, "runner: attempt 1 of cluster 1 wrote nothing\n");
    log = run_runner({"log", "--job", job, "2"}, t.path());
    EXPECT_EQ(log.out, "two\n") << log.err;
  }
}

TEST(LogFormat, AFailedAttemptThatWroteNothingIsShownWithNoOutput) {
  TempDir t;
  for (const char* format : {"files", "stream"}) {
    auto job = std::string("silent-") + format;
    auto r = run_runner(
        {"1", "1", "--job", job, "--log-format", format, "--", "sh", "-c", "exit 3"}, t.path());
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.err.find("cluster 1/1 failed: exit code 3 (it wrote no output)"), std::string::npos)
        << r.err;
    r = run_runner({"status", "--job", job}, t.path());
    EXPECT_NE(r.out.find("exit code 3 at "), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(", no output\n"), std::string::npos) << r.out;
    r = run_runner({"status", "--job", job, "--json"}, t.path());
    EXPECT_NE(r.out.find("\"log_path\": null"), std::string::npos) << r.out;
  }
}

TEST(LogFormat, ABadLogFormatIsRefusedWithNothingWritten) {
  TempDir t;
  auto r = run_runner({"3", "1", "--log-format", "xml", "--", "true"}, t.path());
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "runner: --log-format 'xml' is not valid: expected stream or files\n");
  // Only the test's own record of runner's stdout and stderr is there.
  for (const auto& entry : fs::directory_iterator(t.path()))
    EXPECT_EQ(entry.path().filename().string().rfind("runner-", 0), 0u) << entry.path();
  EXPECT_FALSE(fs::exists(t / "runner.db"));
}

TEST(LogFormat, AStreamAttemptWhoseCommandCannotExecuteSaysWhyInItsLog) {
  TempDir t;
  // Its interpreter is missing: execve fails at the cluster's start.
  auto script = t / "badinterpreter";
  std::ofstream(script.string()) << "#!/nonexistent/interpreter\n";
  fs::permissions(script, fs::perms::owner_all);
  auto r = run_runner({"3", "1", "--log-format", "stream", "--", script.string()}, t.path());
  EXPECT_EQ(r.code, 2) << r.err;
  auto log = run_runner({"log", "1"}, t.path());
  EXPECT_EQ(log.code, 0) << log.err;
  EXPECT_EQ(log.out, "runner: cannot execute " + script.string() + ": No such file or directory\n");
}

}  // namespace
}  // namespace runner::testing
