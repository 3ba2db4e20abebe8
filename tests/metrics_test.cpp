// The --metrics file's text, and what its writer keeps between writes.
#include "runner/metrics.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

namespace runner {
namespace {

namespace fs = std::filesystem;

TEST(MetricsText, EverySampleHasTheLabelRunnerJobEscaped) {
  MetricsFacts f;
  f.job = "night\"ly\\";
  f.clusters = 4;
  auto text = metrics_text(f);
  EXPECT_NE(text.find("runner_job_clusters{runner_job=\"night\\\"ly\\\\\"} 4\n"), std::string::npos)
      << text;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (!line.starts_with("#")) {
      EXPECT_NE(line.find("{runner_job="), std::string::npos) << line;
    }
  }
  EXPECT_EQ(text.find("{job="), std::string::npos) << text;
}

// A run's writes while it runs tell of the job's last success before it;
// the last write, of its own where it ended all done.
TEST(MetricsText, TheWriterTellsTheLastSuccessFromItsFirstWrite) {
  char folder[] = "/tmp/runner-metrics-XXXXXX";
  ASSERT_TRUE(::mkdtemp(folder));
  auto path = fs::path(folder) / "runner.prom";
  auto read = [&] {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  MetricsFacts running;
  running.job = "j";
  MetricsWriter before(path, std::nullopt);
  ASSERT_TRUE(before.write(running));
  EXPECT_EQ(read().find("runner_last_success_timestamp_seconds"), std::string::npos);
  MetricsWriter writer(path, 1796000000.5);
  ASSERT_TRUE(writer.write(running));
  EXPECT_NE(read().find("runner_last_success_timestamp_seconds{runner_job=\"j\"} 1796000000.5\n"),
            std::string::npos)
      << read();
  auto ended = running;
  ended.last_success_at = 1796086400.25;
  ASSERT_TRUE(writer.write(ended));
  EXPECT_NE(read().find("runner_last_success_timestamp_seconds{runner_job=\"j\"} 1796086400.25\n"),
            std::string::npos)
      << read();
  fs::remove_all(folder);
}

}  // namespace
}  // namespace runner
