// End-to-end: the real runner binary on test_child, a real SQLite file.
#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <fstream>
#include <set>

#include "e2e_util.h"

namespace runner::testing {
namespace {

using Args = std::vector<std::string>;

std::multiset<long> started_clusters(const fs::path& record) {
  std::multiset<long> out;
  for (const auto& line : read_lines(record))
    if (line.rfind("start ", 0) == 0) out.insert(std::stol(line.substr(6)));
  return out;
}

TEST(EndToEnd, RunsEveryClusterOnceAndRecordsEachAttempt) {
  TempDir dir;
  auto record = (dir / "record").string();
  auto r = run_runner(with_child({"20", "3"}, {"--record", record, "--print", "2"}), dir.path());
  ASSERT_EQ(r.code, 0) << r.err;
  auto started = started_clusters(record);
  ASSERT_EQ(started.size(), 20u);
  for (long c = 1; c <= 20; ++c) EXPECT_EQ(started.count(c), 1u) << "cluster " << c;

  auto db = dir / "runner.db";
  EXPECT_EQ(query(db,
                  "SELECT clusters || ' ' || done || ' ' || failed || ' ' || running || ' ' "
                  "|| pending FROM progress"),
            "20 20 0 0 0");
  EXPECT_EQ(query(db,
                  "SELECT count(*) FROM attempts WHERE state = 'done' AND attempt = 1 "
                  "AND exit_code = 0 AND signal IS NULL AND pid > 0 AND host != '' "
                  "AND started IS NOT NULL AND finished >= started AND duration_s >= 0 "
                  "AND user_cpu_s >= 0 AND sys_cpu_s >= 0 AND peak_rss_kib > 0"),
            "20");
  // Each attempt's output went to its own log file, recorded in the view.
  auto log = query(db, "SELECT log_path FROM attempts WHERE cluster = 7");
  EXPECT_NE(read_file(log).find("out line 1 of cluster 7"), std::string::npos);
  EXPECT_NE(read_file(log).find("err line 1 of cluster 7"), std::string::npos);
}

TEST(EndToEnd, AppendsTheTokenToATrailingEqualsArgument) {
  TempDir dir;
  auto r = run_runner(with_child({"4", "2"}, {"--args-to-stdout", "--cluster="}), dir.path());
  ASSERT_EQ(r.code, 0) << r.err;
  auto log = read_file(query(dir / "runner.db", "SELECT log_path FROM attempts WHERE cluster = 3"));
  EXPECT_NE(log.find("arg[2]=--cluster=3/4\n"), std::string::npos) << log;
  EXPECT_EQ(log.find("arg[3]="), std::string::npos) << log;
  EXPECT_NE(log.find("RUNNER_CLUSTER=3\n"), std::string::npos);
  EXPECT_NE(log.find("RUNNER_CLUSTERS=4\n"), std::string::npos);
  EXPECT_NE(log.find("RUNNER_ATTEMPT=1\n"), std::string::npos);
  EXPECT_NE(log.find("RUNNER_JOB=test_child-4-"), std::string::npos);
  EXPECT_NE(log.find("stdin=/dev/null"), std::string::npos);
  EXPECT_NE(log.find("own_process_group=yes"), std::string::npos);
}

TEST(EndToEnd, AddsTheTokenAsALastArgumentOrWherePlaceholdersSay) {
  TempDir dir;
  auto r = run_runner(with_child({"2", "1"}, {"--args-to-stdout"}), dir.path());
  ASSERT_EQ(r.code, 0) << r.err;
  auto log = read_file(query(dir / "runner.db", "SELECT log_path FROM attempts WHERE cluster = 2"));
  EXPECT_NE(log.find("arg[2]=2/2\n"), std::string::npos) << log;

  TempDir dir2;
  r = run_runner(with_child({"3", "1"}, {"--args-to-stdout", "part={i}", "of={n}", "tok={}"}),
                 dir2.path());
  ASSERT_EQ(r.code, 0) << r.err;
  log = read_file(query(dir2 / "runner.db", "SELECT log_path FROM attempts WHERE cluster = 2"));
  EXPECT_NE(log.find("arg[2]=part=2\narg[3]=of=3\narg[4]=tok=2/3\n"), std::string::npos) << log;
  EXPECT_EQ(log.find("arg[5]="), std::string::npos) << log;
}

TEST(EndToEnd, RerunSkipsDoneClustersAndRunsFailedOnesAgain) {
  TempDir dir;
  auto record = (dir / "record").string();
  Args cmd = {"--record", record, "--exit-for", "4=1", "--signal-for", "6=11", "--print", "1"};
  auto r = run_runner(with_child({"8", "2"}, cmd), dir.path());
  EXPECT_EQ(r.code, 1) << r.err;
  auto db = dir / "runner.db";
  EXPECT_EQ(query(db, "SELECT done || ' ' || failed FROM progress"), "6 2");
  EXPECT_EQ(query(db, "SELECT exit_code FROM attempts WHERE cluster = 4"), "1");
  EXPECT_EQ(query(db, "SELECT signal || ' ' || state FROM attempts WHERE cluster = 6"),
            "11 failed");
  EXPECT_NE(r.out.find("cluster 6: killed by SIGSEGV"), std::string::npos) << r.out;

  // --skip-failed leaves them alone; nothing runs.
  r = run_runner(with_child({"8", "2", "--skip-failed"}, cmd), dir.path());
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_EQ(started_clusters(record).size(), 8u);

  // A plain rerun tries exactly the two failed clusters again, as attempt 2.
  r = run_runner(with_child({"8", "2"}, cmd), dir.path());
  EXPECT_EQ(r.code, 1);
  auto started = started_clusters(record);
  EXPECT_EQ(started.size(), 10u);
  EXPECT_EQ(started.count(4), 2u);
  EXPECT_EQ(started.count(6), 2u);
  EXPECT_EQ(query(db, "SELECT group_concat(attempt) FROM attempts WHERE cluster = 4"), "1,2");
  // A retry never overwrites an earlier attempt's log.
  auto logs = query(db, "SELECT count(DISTINCT log_path) FROM attempts WHERE cluster = 4");
  EXPECT_EQ(logs, "2");
  EXPECT_TRUE(
      fs::exists(query(db, "SELECT log_path FROM attempts WHERE cluster = 4 AND attempt = 1")));
}

// Two nights of one job (a new --job each night): the second starts the
// clusters the first found longest. Checked from the order of starts in the
// log against the durations the first night recorded, whatever they came
// to: the test relies on no sleep being long enough.
TEST(EndToEnd, TheSecondNightStartsTheLongestClustersFirst) {
  TempDir dir;
  auto db = dir / "runner.db";
  Args cmd = {"--sleep-ms", "20", "--sleep-for", "5=400", "--sleep-for", "6=250"};
  auto first = run_runner(with_child({"6", "1", "--job", "night-1"}, cmd), dir.path());
  ASSERT_EQ(first.code, 0) << first.err;
  // With P = 1, attempts are written in the order they started.
  auto clusters_of = [&](const std::string& job, const std::string& order_by) {
    return query(db,
                 "SELECT group_concat(cluster, ' ') FROM (SELECT a.cluster FROM attempt a "
                 "JOIN job j ON j.id = a.job_id WHERE j.name = '" +
                     job + "' ORDER BY " + order_by + ")");
  };
  auto order = [&](const std::string& job) { return clusters_of(job, "a.id"); };
  EXPECT_EQ(order("night-1"), "1 2 3 4 5 6");
  // Longest first, then the larger peak, then by index: as night 1 recorded them.
  auto longest_first =
      clusters_of("night-1",
                  "a.finished_at - a.started_at DESC, max(coalesce(a.peak_cgroup_kib, 0), "
                  "coalesce(a.peak_rss_kib, 0)) DESC, a.cluster");
  auto second = run_runner(with_child({"6", "1", "--job", "night-2"}, cmd), dir.path());
  ASSERT_EQ(second.code, 0) << second.err;
  EXPECT_EQ(order("night-2"), longest_first);
  EXPECT_NE(second.err.find("6 cluster(s) start first, longest first"), std::string::npos)
      << second.err;
  // The report puts the night's makespan beside its lower bound.
  auto report = run_runner({"report", "--job", "night-2"}, dir.path());
  EXPECT_EQ(report.code, 0) << report.err;
  EXPECT_NE(report.out.find("makespan "), std::string::npos) << report.out;
  EXPECT_NE(report.out.find("lower bound "), std::string::npos) << report.out;
  // --order index: the numeric order, whatever the history.
  auto third =
      run_runner(with_child({"6", "1", "--job", "night-3", "--order", "index"}, cmd), dir.path());
  ASSERT_EQ(third.code, 0) << third.err;
  EXPECT_EQ(order("night-3"), "1 2 3 4 5 6");
}

TEST(EndToEnd, NeverRunsMoreThanPAtOnceAndFillsEverySlot) {
  TempDir dir;
  auto count = (dir / "live").string();
  // The first three clusters wait until three are alive at once: a runner that
  // ran fewer than P together would leave them to time out (exit 3).
  auto r =
      run_runner(with_child({"30", "3"}, {"--live-count", count, "--barrier", "3"}), dir.path());
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  EXPECT_EQ(read_file(count + ".max"), "3\n");
}

TEST(EndToEnd, OutputWithoutATerminalHasNoControlCharacters) {
  TempDir dir;
  auto r = run_runner(with_child({"5", "2"}, {"--exit-for", "2=3"}), dir.path());
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out.find('\r'), std::string::npos);
  EXPECT_EQ(r.out.find('\033'), std::string::npos);
  EXPECT_NE(r.out.find("4/5 done, 1 failed"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("cluster 2: exit code 3"), std::string::npos) << r.out;
}

TEST(EndToEnd, QuietPrintsNothingWhenAllIsWell) {
  TempDir dir;
  auto r = run_runner(with_child({"3", "2", "-q"}, {}), dir.path());
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "");
}

TEST(EndToEnd, ARefusedJobClashWritesNothing) {
  TempDir dir;
  ASSERT_EQ(run_runner(with_child({"4", "2", "--job", "nightly"}, {}), dir.path()).code, 0);
  auto db = dir / "runner.db";
  auto before = query(db, "SELECT count(*) || ' ' || max(id) FROM attempt");
  auto r = run_runner(with_child({"5", "2", "--job", "nightly"}, {}), dir.path());
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("job 'nightly'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("has 4 clusters"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("asks for 5 clusters"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--job"), std::string::npos) << r.err;
  r = run_runner(with_child({"4", "2", "--job", "nightly"}, {"--exit", "1"}), dir.path());
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--exit 1"), std::string::npos) << r.err;
  EXPECT_EQ(query(db, "SELECT count(*) || ' ' || max(id) FROM attempt"), before);
  EXPECT_EQ(query(db, "SELECT count(*) FROM job"), "1");
}

TEST(EndToEnd, ADerivedJobNameResumesTheSameJobAndSeparatesOthers) {
  TempDir dir;
  ASSERT_EQ(run_runner(with_child({"3", "1"}, {}), dir.path()).code, 0);
  ASSERT_EQ(run_runner(with_child({"3", "1"}, {}), dir.path()).code, 0);
  ASSERT_EQ(run_runner(with_child({"4", "1"}, {}), dir.path()).code, 0);
  auto db = dir / "runner.db";
  EXPECT_EQ(query(db, "SELECT count(*) FROM job"), "2");
  EXPECT_EQ(query(db, "SELECT count(*) FROM attempts"), "7");
}

TEST(EndToEnd, ASecondRunnerOnTheSameJobRefusesAtOnce) {
  TempDir dir;
  auto hold = dir / "go";
  auto ready = dir / "ready";
  fs::create_directory(ready);
  auto args = with_child({"2", "2", "--job", "j"},
                         {"--ready-dir", ready.string(), "--hold-file", hold.string()});
  RunnerProcess first(args, dir.path());
  ASSERT_TRUE(wait_until(ready, [&] { return fs::exists(ready / "1.ready"); }));
  auto second = run_runner(args, dir.path());
  EXPECT_EQ(second.code, 2);
  EXPECT_NE(second.err.find("pid " + std::to_string(first.pid())), std::string::npos) << second.err;
  EXPECT_NE(second.err.find(" since "), std::string::npos) << second.err;
  EXPECT_EQ(std::count(second.err.begin(), second.err.end(), '\n'), 1);
  std::ofstream(hold.string()).put('x');
  EXPECT_EQ(first.wait(), 0);
  EXPECT_EQ(query(dir / "runner.db", "SELECT count(*) FROM attempts"), "2");
}

TEST(EndToEnd, AHoldLeftByADeadRunnerIsTakenOverAndItsAttemptsRunAgain) {
  TempDir dir;
  auto ready = dir / "ready";
  fs::create_directory(ready);
  auto record = (dir / "record").string();
  Args cmd = {"--record",         record,        "--ready-dir",
              ready.string(),     "--hold-file", (dir / "go").string(),
              "--die-with-parent"};
  // Without a worker, runner is the children's parent: they die with it
  // (--die-with-parent), and nothing can tell how they ended.
  {
    RunnerProcess first(with_child({"3", "3", "--job", "j", "--worker", "off"}, cmd), dir.path());
    ASSERT_TRUE(wait_until(ready, [&] { return fs::exists(ready / "3.ready"); }));
    ASSERT_TRUE(wait_for_running(dir.path(), 3));
    first.signal(SIGKILL);
    EXPECT_EQ(first.wait(), 128 + SIGKILL);
  }
  auto db = dir / "runner.db";
  EXPECT_EQ(query(db, "SELECT running FROM progress"), "3");
  std::ofstream((dir / "go").string()).put('x');
  auto r = run_runner(with_child({"3", "3", "--job", "j", "--worker", "off"}, cmd), dir.path());
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(query(db, "SELECT count(*) FROM attempts WHERE state = 'interrupted' AND attempt = 1"),
            "3");
  EXPECT_EQ(query(db, "SELECT count(*) FROM attempts WHERE state = 'done' AND attempt = 2"), "3");
}

// Starts a runner whose clusters wait for a file, and waits until all are up.
struct Stoppable {
  TempDir dir;
  fs::path ready = dir / "ready";
  std::unique_ptr<RunnerProcess> runner;
  Stoppable(const std::string& parallel, Args extra_child, Args extra_runner = {},
            const std::string& clusters = "10") {
    fs::create_directory(ready);
    Args a = {clusters, parallel};
    a.insert(a.end(), extra_runner.begin(), extra_runner.end());
    Args c = {"--ready-dir", ready.string(), "--hold-file", (dir / "never").string()};
    c.insert(c.end(), extra_child.begin(), extra_child.end());
    runner = std::make_unique<RunnerProcess>(with_child(a, c), dir.path());
    auto n = std::stoul(parallel);
    EXPECT_TRUE(wait_until(ready, [&] {
      return static_cast<std::size_t>(
                 std::distance(fs::directory_iterator(ready), fs::directory_iterator())) == n;
    }));
    EXPECT_TRUE(wait_for_running(dir.path(), static_cast<int>(n)));
  }
  std::string db_query(const std::string& sql) { return query(dir / "runner.db", sql); }
};

TEST(EndToEnd, SigintStopsChildrenRecordsThemInterruptedAndExits130) {
  Stoppable s("3", {});
  s.runner->signal(SIGINT);
  EXPECT_EQ(s.runner->wait(), 130);
  EXPECT_EQ(s.db_query("SELECT count(*) FROM attempts WHERE state = 'interrupted'"), "3");
  EXPECT_EQ(s.db_query("SELECT count(*) FROM attempts"), "3");
  EXPECT_EQ(s.db_query("SELECT group_concat(signal) FROM attempt"), "15,15,15");
  EXPECT_NE(s.runner->out().find("stopped by SIGINT"), std::string::npos);
  // The hold was released: the next run goes ahead and finishes the job.
  std::ofstream((s.dir / "never").string()).put('x');
  auto r = run_runner({"10", "3", "--", child_bin(), "--ready-dir", s.ready.string(), "--hold-file",
                       (s.dir / "never").string()},
                      s.dir.path());
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(s.db_query("SELECT done FROM progress"), "10");
}

TEST(EndToEnd, SigtermExits143) {
  Stoppable s("2", {});
  s.runner->signal(SIGTERM);
  EXPECT_EQ(s.runner->wait(), 143);
  EXPECT_EQ(s.db_query("SELECT count(*) FROM attempts WHERE state = 'interrupted'"), "2");
}

TEST(EndToEnd, AChildIgnoringSigtermIsKilledAfterTheGrace) {
  Stoppable s("2", {"--ignore-term"}, {"--grace", "300ms"});
  s.runner->signal(SIGHUP);
  EXPECT_EQ(s.runner->wait(), 129);
  EXPECT_EQ(s.db_query("SELECT group_concat(signal) FROM attempt"), "9,9");
  EXPECT_EQ(s.db_query("SELECT count(*) FROM attempts WHERE state = 'interrupted'"), "2");
}

TEST(EndToEnd, ASecondCtrlCSkipsTheGrace) {
  Stoppable s("2", {"--ignore-term"}, {"--grace", "1h"});
  s.runner->signal(SIGINT);
  // Wait until runner has acted on the first signal before sending the second.
  ASSERT_TRUE(wait_until(
      s.dir.path(), [&] { return s.runner->err().find("SIGINT: stopping") != std::string::npos; }));
  s.runner->signal(SIGINT);
  EXPECT_EQ(s.runner->wait(), 130);
  EXPECT_EQ(s.db_query("SELECT group_concat(signal) FROM attempt"), "9,9");
}

TEST(EndToEnd, AMissingCommandIsAnErrorBeforeAnythingIsWritten) {
  TempDir dir;
  auto r = run_runner({"10", "2", "--", "./migrat", "--cluster="}, dir.path());
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "runner: cannot execute ./migrat: No such file or directory\n");
  EXPECT_FALSE(fs::exists(dir / "runner.db"));
  r = run_runner({"10", "2", "--", "no-such-program-here"}, dir.path());
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "runner: cannot execute no-such-program-here: not found in PATH\n");
}

TEST(EndToEnd, ACommandThatCannotExecuteStopsTheRunWithExitCode127Recorded) {
  TempDir dir;
  // Executable, with a #! line, but its interpreter is missing: execve fails
  // with ENOENT at the start. (A file with no #! line at all is refused
  // before anything is written: see Faults.AScriptWithoutAShebang...)
  auto script = dir / "badinterpreter";
  std::ofstream(script.string()) << "#!/nonexistent/interpreter\necho hi\n";
  fs::permissions(script, fs::perms::owner_all);
  auto r = run_runner({"100", "4", "--", script.string()}, dir.path());
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("cannot execute " + script.string() + ": No such file or directory"),
            std::string::npos)
      << r.err;
  auto db = dir / "runner.db";
  EXPECT_EQ(query(db, "SELECT count(*) FROM attempts"), "1");
  EXPECT_EQ(query(db, "SELECT state || ' ' || exit_code FROM attempts"), "failed 127");
}

TEST(EndToEnd, AReaderHoldingATransactionDoesNotStallTheRunner) {
  TempDir dir;
  auto db = dir / "runner.db";
  ASSERT_EQ(run_runner({"1", "1", "--", child_bin()}, dir.path()).code, 0);
  SQLite::Database reader(db.string(), SQLite::OPEN_READONLY);
  reader.exec("BEGIN");
  SQLite::Statement q(reader, "SELECT done FROM progress");
  ASSERT_TRUE(q.executeStep());
  EXPECT_EQ(q.getColumn(0).getInt(), 1);
  auto r = run_runner({"300", "4", "--", child_bin()}, dir.path());
  EXPECT_EQ(r.code, 0) << r.err;
  // The reader's snapshot is unchanged; a new one sees the finished job.
  q.reset();
  ASSERT_TRUE(q.executeStep());
  EXPECT_EQ(q.getColumn(0).getInt(), 1);
  reader.exec("COMMIT");
  EXPECT_EQ(query(db, "SELECT sum(done) FROM progress"), "301");
}

TEST(EndToEnd, StatusShowsCountsAndFailedClusters) {
  TempDir dir;
  auto r = run_runner(with_child({"6", "2"}, {"--exit-for", "5=9", "--print", "1"}), dir.path());
  ASSERT_EQ(r.code, 1);
  r = run_runner({"status"}, dir.path());
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("done 5, failed 1, running 0, pending 0"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("cluster 5 (attempt 1): exit code 9 at "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("5.1.log"), std::string::npos) << r.out;
  r = run_runner({"status", "--db", (dir / "missing.db").string()}, dir.path());
  EXPECT_EQ(r.code, 2);
  EXPECT_FALSE(fs::exists(dir / "missing.db"));
}

TEST(EndToEnd, StatusShowsRateWhileAJobRuns) {
  Stoppable s("2", {});
  auto r = run_runner({"status"}, s.dir.path());
  EXPECT_NE(r.out.find("running 2, pending 8"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("running: pid " + std::to_string(s.runner->pid())), std::string::npos)
      << r.out;
}

TEST(EndToEnd, TheSqlite3ShellSeesProgressWhileTheJobRuns) {
  Stoppable s("3", {});
  // Exactly what the README tells people to type.
  FILE* p = ::popen(
      ("cd " + s.dir.path().string() + " && sqlite3 runner.db 'select * from progress' 2>&1")
          .c_str(),
      "r");
  ASSERT_NE(p, nullptr);
  char buf[512] = {};
  auto n = std::fread(buf, 1, sizeof buf - 1, p);
  EXPECT_EQ(::pclose(p), 0) << buf;
  EXPECT_NE(std::string(buf, n).find("|10|0|0|3|7\n"), std::string::npos) << buf;
}

TEST(EndToEnd, ABillionClustersAreNeverWrittenOutAhead) {
  Stoppable s("2", {}, {}, "1000000000");
  s.runner->signal(SIGTERM);
  EXPECT_EQ(s.runner->wait(), 143);
  EXPECT_EQ(s.db_query("SELECT count(*) FROM attempt"), "2");
  EXPECT_EQ(s.db_query("SELECT pending FROM progress"), "1000000000");
}

TEST(EndToEnd, HelpAndVersion) {
  TempDir dir;
  auto r = run_runner({"--help"}, dir.path());
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("runner 10000 3 -- ./migrate --cluster="), std::string::npos) << r.out;
  r = run_runner({"status", "--help"}, dir.path());
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("runner status --db"), std::string::npos) << r.out;
  r = run_runner({"--version"}, dir.path());
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out.rfind("runner ", 0), 0u) << r.out;
  // A child's own --help after "--" is the child's.
  r = run_runner({"1", "1", "--", child_bin(), "--help"}, dir.path());
  EXPECT_EQ(r.code, 0) << r.err;
}

struct BadInput {
  Args args;
  std::string names;  // the message must contain this
};

void PrintTo(const BadInput& b, std::ostream* os) {
  for (const auto& a : b.args) *os << a << ' ';
}

class EndToEndBadInput : public ::testing::TestWithParam<BadInput> {};

TEST_P(EndToEndBadInput, OneLineExit2AndNothingWritten) {
  TempDir dir;
  std::ofstream((dir / "notes.txt").string()) << "not a database\n";
  auto r = run_runner(GetParam().args, dir.path());
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(r.err.rfind("runner: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(GetParam().names), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir / "runner.db"));
  EXPECT_FALSE(fs::exists(dir / "runner.logs"));
  EXPECT_EQ(read_file(dir / "notes.txt"), "not a database\n");
}

INSTANTIATE_TEST_SUITE_P(
    Cases, EndToEndBadInput,
    ::testing::Values(
        BadInput{{"0", "3", "--", "true"}, "N '0'"}, BadInput{{"-5", "3", "--", "true"}, "-5"},
        BadInput{{"ten", "3", "--", "true"}, "N 'ten'"},
        BadInput{{"99999999999999999999", "3", "--", "true"}, "N '99999999999999999999'"},
        BadInput{{"10", "0", "--", "true"}, "P '0'"}, BadInput{{"10", "x", "--", "true"}, "P 'x'"},
        BadInput{{"10", "3", "--"}, "no command after '--'"},
        BadInput{{"10", "3"}, "no command after '--'"}, BadInput{{"10"}, "expected N and P"},
        BadInput{{"10", "3", "--db", "/nonexistent/x/runner.db", "--", "true"},
                 "folder /nonexistent/x does not exist"},
        BadInput{{"10", "3", "--db", "/proc/runner.db", "--", "true"},
                 "--db /proc/runner.db: cannot create a file in folder /proc"},
        BadInput{{"10", "3", "--db", "notes.txt", "--", "true"},
                 "notes.txt: not a SQLite database"},
        BadInput{{"10", "3", "--frobnicate", "--", "true"}, "--frobnicate"},
        BadInput{{"10", "3", "--grace", "soon", "--", "true"}, "--grace 'soon'"},
        BadInput{{"10", "3", "--job", "a/b", "--", "true"}, "--job 'a/b'"},
        // An unset variable in a cron line: an empty value, never "not given".
        BadInput{{"10", "3", "--mem-limit", "", "--", "true"}, "--mem-limit ''"},
        BadInput{{"10", "3", "--timeout", "", "--", "true"}, "--timeout ''"},
        BadInput{{"10", "3", "--mem-budget", "", "--", "true"}, "--mem-budget ''"},
        BadInput{{"10", "3", "--cap", "", "--", "true"}, "--cap ''"},
        BadInput{{"10", "3", "--grace", "", "--", "true"}, "--grace ''"},
        BadInput{{"10", "3", "--retry-delay", "", "--", "true"}, "--retry-delay ''"},
        BadInput{{"10", "3", "--job", "", "--", "true"}, "--job ''"},
        BadInput{{"10", "3", "--logs", "", "--", "true"}, "--logs ''"},
        BadInput{{"10", "3", "--job", "-x", "--", "true"}, "--job '-x'"},
        BadInput{{"10", "3", "--grace", "3s3s", "--", "true"}, "--grace '3s3s'"},
        BadInput{{"10", "3", "--logs", "/proc/x", "--", "true"}, "--logs /proc/x"},
        BadInput{{"10", "3", "--order", "longest", "--", "true"},
                 "--order 'longest' is not valid: expected history or index"}));

TEST(EndToEnd, ADbOnAReadOnlyFilesystemIsRefused) {
  TempDir dir;
  auto ro = dir / "ro";
  fs::create_directory(ro);
  if (::mount("none", ro.c_str(), "tmpfs", MS_RDONLY, "size=64k") != 0)
    GTEST_SKIP() << "cannot mount a read-only tmpfs here: " << std::strerror(errno);
  auto r =
      run_runner({"3", "1", "--db", (ro / "runner.db").string(), "--", child_bin()}, dir.path());
  ::umount(ro.c_str());
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("folder " + ro.string() + " is not writable: Read-only file system"),
            std::string::npos)
      << r.err;
}

TEST(EndToEnd, ADatabaseFromANewerRunnerIsRefused) {
  TempDir dir;
  {
    SQLite::Database db((dir / "runner.db").string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    db.exec("CREATE TABLE future (x); PRAGMA user_version = 99");
  }
  auto r = run_runner({"3", "1", "--", child_bin()}, dir.path());
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("newer runner (schema 99"), std::string::npos) << r.err;
  EXPECT_EQ(query(dir / "runner.db", "SELECT count(*) FROM sqlite_master"), "1");
}

}  // namespace
}  // namespace runner::testing
