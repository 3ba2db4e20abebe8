#include "runner/cli.h"

#include <gtest/gtest.h>

#include "runner/error.h"
#include "runner/on_finish.h"

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

TEST(CommandLine, MemoryAndReliabilityOptions) {
  auto r = parse_run({"10",
                      "2",
                      "--mem-limit",
                      "512M",
                      "--mem-budget",
                      "4G",
                      "--mem-overcommit",
                      "--cap",
                      "rlimit",
                      "--timeout",
                      "90s",
                      "--retries",
                      "3",
                      "--retry-delay",
                      "2s",
                      "--retry-on",
                      "exit:75,timeout",
                      "--halt",
                      "now,fail=10%",
                      "--sync",
                      "full",
                      "--orphans",
                      "wait",
                      "--",
                      "x"});
  EXPECT_EQ(r.mem_limit, 512ULL << 20);
  EXPECT_EQ(r.mem_budget, 4ULL << 30);
  EXPECT_TRUE(r.mem_overcommit);
  EXPECT_EQ(r.cap, CapChoice::kRlimit);
  EXPECT_EQ(r.timeout, std::chrono::seconds(90));
  EXPECT_EQ(r.retry.retries, 3u);
  EXPECT_EQ(r.retry.delay, std::chrono::seconds(2));
  auto retry = *RetryPolicy::parse_on("exit:75,timeout");
  retry.retries = 3;
  retry.delay = std::chrono::seconds(2);
  EXPECT_EQ(r.retry, retry);
  EXPECT_EQ(r.halt, *HaltPolicy::parse("now,fail=10%"));
  EXPECT_TRUE(r.sync_full);
  EXPECT_TRUE(r.orphans_wait);
  auto defaults = parse_run({"10", "2", "--", "x"});
  EXPECT_FALSE(defaults.timeout);
  EXPECT_EQ(defaults.retry.retries, 0u);
  EXPECT_EQ(defaults.retry, *RetryPolicy::parse_on("exit,signal,timeout"));
  EXPECT_EQ(defaults.halt, *HaltPolicy::parse("never"));
  EXPECT_FALSE(defaults.sync_full);
  EXPECT_TRUE(defaults.orphans_wait);  // the default waits, and records how they ended
  EXPECT_TRUE(defaults.worker);
  EXPECT_FALSE(
      parse_run({"10", "2", "--orphans", "kill", "--worker", "off", "--", "x"}).orphans_wait);
  EXPECT_FALSE(parse_run({"10", "2", "--worker", "off", "--", "x"}).worker);
  EXPECT_TRUE(parse_run({"10", "2", "--mem-budget", "auto", "--", "x"}).mem_budget_auto);
}

TEST(CommandLine, RejectsBadMemoryAndReliabilityValues) {
  auto err = [](std::vector<std::string> opts) {
    opts.insert(opts.begin(), {"10", "2"});
    opts.insert(opts.end(), {"--", "x"});
    return error_of(opts);
  };
  EXPECT_NE(err({"--mem-limit", "lots"}).find("--mem-limit 'lots' is not valid"),
            std::string::npos);
  EXPECT_NE(err({"--mem-limit", "10K"}).find("at least 1M"), std::string::npos);
  EXPECT_NE(err({"--mem-budget", "x"}).find("--mem-budget 'x'"), std::string::npos);
  EXPECT_NE(err({"--mem-overcommit"}).find("needs --mem-budget"), std::string::npos);
  EXPECT_NE(err({"--cap", "docker"}).find("--cap 'docker'"), std::string::npos);
  EXPECT_NE(err({"--cap", "none", "--mem-limit", "1G"}).find("--cap none"), std::string::npos);
  EXPECT_NE(err({"--timeout", "0s"}).find("--timeout '0s'"), std::string::npos);
  EXPECT_NE(err({"--retries", "-1"}).find("--retries '-1'"), std::string::npos);
  EXPECT_NE(err({"--retry-delay", "soon"}).find("--retry-delay 'soon'"), std::string::npos);
  EXPECT_NE(err({"--retry-on", "crash"}).find("--retry-on 'crash'"), std::string::npos);
  EXPECT_NE(err({"--halt", "fail=3"}).find("--halt 'fail=3'"), std::string::npos);
  EXPECT_NE(err({"--sync", "extra"}).find("--sync 'extra'"), std::string::npos);
  EXPECT_NE(err({"--orphans", "adopt"}).find("--orphans 'adopt'"), std::string::npos);
  // No time at all for the --on-finish command would kill it as it starts.
  EXPECT_EQ(err({"--on-finish", "true", "--on-finish-timeout", "0"}),
            "--on-finish-timeout '0' is not valid: expected a duration above zero like 30s, 5m "
            "or 1h");
}

// A run refused for its command line still owes its --on-finish command the
// news: what the line says of the run travels with the error.
TEST(CommandLine, ARefusedRunCarriesItsOnFinishCommand) {
  try {
    parse_command_line({"10", "3", "--job", "nightly", "--db", "x/r.db", "--on-finish", "echo hi",
                        "--on-finish-timeout", "5s", "--timeout", "", "--", "true"});
    FAIL() << "an empty --timeout was taken";
  } catch (const RefusedStart& e) {
    EXPECT_EQ(std::string(e.what()).rfind("--timeout '' is not valid", 0), 0u) << e.what();
    EXPECT_EQ(e.hook().command, "echo hi");
    EXPECT_EQ(e.hook().limit, std::chrono::seconds(5));
    EXPECT_EQ(e.hook().db, "x/r.db");
    EXPECT_EQ(e.hook().job, "nightly");
    EXPECT_EQ(e.hook().clusters, 10u);
  }
  // Without --job, the name the run would have had; an unknown option too.
  try {
    parse_command_line({"10", "3", "--on-finish", "echo hi", "--tmeout", "5s", "--", "true"});
    FAIL() << "an unknown option was taken";
  } catch (const RefusedStart& e) {
    EXPECT_EQ(e.hook().job, derive_job_name(CommandTemplate({"true"}), 10));
    EXPECT_EQ(e.hook().db, "runner.db");
  }
  // Without --on-finish it is a plain error.
  try {
    parse_command_line({"10", "3", "--timeout", "", "--", "true"});
  } catch (const RefusedStart&) {
    FAIL() << "no --on-finish, yet a hook to run";
  } catch (const Error&) {
  }
}

// An unset variable in a cron line gives an empty value: it must never mean
// "not given" (no cap, no timeout).
TEST(CommandLine, AnEmptyValueIsRefusedNotTakenAsAbsent) {
  for (const char* option :
       {"--mem-limit", "--timeout", "--mem-budget", "--cap", "--grace", "--retry-delay", "--job",
        "--logs", "--halt", "--db", "--retries", "--retry-on", "--sync", "--orphans"}) {
    auto message = error_of({"10", "3", option, "", "--", "true"});
    EXPECT_EQ(message.rfind(std::string(option) + " '' is not valid: expected", 0), 0u)
        << option << ": " << message;
  }
  for (const char* sub : {"status", "report"})
    for (const char* option : {"--db", "--job"})
      EXPECT_NE(error_of({sub, option, ""}).find(std::string(option) + " '' is not valid"),
                std::string::npos)
          << sub << " " << option;
  EXPECT_NE(error_of({"report", "--mem-budget", ""}).find("--mem-budget '' is not valid"),
            std::string::npos);
}

TEST(CommandLine, RefusesJobNamesThatLookHiddenOrLikeOptionsAndUnitsGivenTwice) {
  EXPECT_NE(error_of({"10", "3", "--job", "...", "--", "true"}).find("--job '...'"),
            std::string::npos);
  EXPECT_NE(error_of({"10", "3", "--job", "-x", "--", "true"}).find("--job '-x'"),
            std::string::npos);
  EXPECT_NE(error_of({"10", "3", "--grace", "3s3s", "--", "true"}).find("--grace '3s3s'"),
            std::string::npos);
}

TEST(CommandLine, ReportAndDoctor) {
  auto report = parse_command_line({"report", "--csv", "--mem-budget", "16G", "--job", "n"});
  ASSERT_TRUE(std::holds_alternative<ReportArgs>(report));
  EXPECT_EQ(std::get<ReportArgs>(report).format, ReportArgs::Format::kCsv);
  EXPECT_EQ(std::get<ReportArgs>(report).mem_budget, 16ULL << 30);
  EXPECT_NE(error_of({"report", "--csv", "--json"}).find("--csv and --json"), std::string::npos);
  EXPECT_TRUE(std::holds_alternative<DoctorArgs>(parse_command_line({"doctor"})));
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
  // Every exit code runner has, 3 (the log lost) among them.
  EXPECT_NE(std::get<PrintAndExit>(help).text.find(", 3 the log could not be written"),
            std::string::npos)
      << std::get<PrintAndExit>(help).text;
  auto version = parse_command_line({"--version"});
  ASSERT_TRUE(std::holds_alternative<PrintAndExit>(version));
  EXPECT_NE(std::get<PrintAndExit>(version).text.find(RUNNER_VERSION), std::string::npos);
}

}  // namespace
}  // namespace runner
