#include "runner/cli.h"

#include <gtest/gtest.h>

#include "runner/error.h"

namespace runner {
namespace {

using V = std::vector<std::string>;

RunArgs parse_run(const V& args) {
  auto inv = parse_command_line(args);
  EXPECT_TRUE(std::holds_alternative<RunArgs>(inv));
  return std::get<RunArgs>(inv);
}

std::string error_of(const V& args) {
  try {
    parse_command_line(args);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kUsage);
    return e.what();
  }
  return "(no error)";
}

TEST(CommandLine, ParsesTheBasicForm) {
  auto r = parse_run({"10000", "3", "--", "./migrate", "--cluster="});
  EXPECT_EQ(r.clusters, 10000u);
  EXPECT_EQ(r.parallel, 3u);
  EXPECT_EQ(r.command, (V{"./migrate", "--cluster="}));
  EXPECT_EQ(r.db, "runner.db");
  EXPECT_FALSE(r.job);
  EXPECT_EQ(r.grace, std::chrono::seconds(10));
}

TEST(CommandLine, ParsesOptionsAnywhereBeforeTheCommand) {
  auto r = parse_run({"--db", "/tmp/x.db", "5", "--job", "nightly", "2", "--grace", "30s", "-q",
                      "--skip-failed", "--logs", "/tmp/logs", "--", "python3", "-v", "--db", "--"});
  EXPECT_EQ(r.db, "/tmp/x.db");
  EXPECT_EQ(r.job, "nightly");
  EXPECT_EQ(r.grace, std::chrono::seconds(30));
  EXPECT_TRUE(r.quiet);
  EXPECT_TRUE(r.skip_failed);
  EXPECT_EQ(r.logs, "/tmp/logs");
  // Everything after the first "--" belongs to the command, even "--" itself.
  EXPECT_EQ(r.command, (V{"python3", "-v", "--db", "--"}));
}

TEST(CommandLine, AcceptsPLargerThanN) {
  auto r = parse_run({"2", "64", "--", "true"});
  EXPECT_EQ(r.parallel, 64u);
}

TEST(CommandLine, AcceptsTheLargestN) {
  auto r = parse_run({"9223372036854775807", "1", "--", "true"});
  EXPECT_EQ(r.clusters, 9223372036854775807ULL);
  EXPECT_NE(error_of({"9223372036854775808", "1", "--", "true"}).find("from 1 to"),
            std::string::npos);
}

TEST(CommandLine, RejectsBadValuesNamingThem) {
  EXPECT_NE(error_of({"0", "3", "--", "x"}).find("N '0' is not valid"), std::string::npos);
  EXPECT_NE(error_of({"1.5", "3", "--", "x"}).find("N '1.5'"), std::string::npos);
  EXPECT_NE(error_of({"10", "0", "--", "x"}).find("P '0' is not valid"), std::string::npos);
  EXPECT_NE(error_of({"10", "100001", "--", "x"}).find("P '100001'"), std::string::npos);
  EXPECT_NE(error_of({"10", "3", "--"}).find("no command"), std::string::npos);
  EXPECT_NE(error_of({"10", "3", "--", ""}).find("no command"), std::string::npos);
  EXPECT_NE(error_of({"10", "3", "--bogus", "--", "x"}).find("--bogus"), std::string::npos);
  EXPECT_NE(error_of({"10", "3", "--grace", "-1s", "--", "x"}).find("--grace '-1s'"),
            std::string::npos);
  EXPECT_NE(error_of({"10", "3", "--job", "../x", "--", "x"}).find("--job '../x'"),
            std::string::npos);
  EXPECT_NE(error_of({"10", "3", "-q", "-v", "--", "x"}).find("-q and -v"), std::string::npos);
  EXPECT_NE(error_of({}).find("expected N and P"), std::string::npos);
}

TEST(CommandLine, StatusSubcommand) {
  auto inv = parse_command_line({"status", "--db", "a.db", "--job", "j"});
  ASSERT_TRUE(std::holds_alternative<StatusArgs>(inv));
  EXPECT_EQ(std::get<StatusArgs>(inv).db, "a.db");
  EXPECT_EQ(std::get<StatusArgs>(inv).job, "j");
  EXPECT_NE(error_of({"status", "--", "x"}).find("takes no command"), std::string::npos);
}

TEST(CommandLine, HelpAndVersionAreTextToPrint) {
  auto help = parse_command_line({"--help"});
  ASSERT_TRUE(std::holds_alternative<PrintAndExit>(help));
  EXPECT_NE(std::get<PrintAndExit>(help).text.find("Examples:"), std::string::npos);
  auto version = parse_command_line({"--version"});
  ASSERT_TRUE(std::holds_alternative<PrintAndExit>(version));
  EXPECT_NE(std::get<PrintAndExit>(version).text.find(RUNNER_VERSION), std::string::npos);
}

}  // namespace
}  // namespace runner
