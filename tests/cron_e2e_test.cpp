// What people who run runner unattended rely on: machine-readable status,
// end to end on the real binary.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <csignal>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

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
                             {"--exit-for", "2=3", "--print", "1", "--ready-dir", ready.string(),
                              "--hold-file", (t / "go-{i}").string()}),
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
  // The text says when it failed, in local time.
  EXPECT_TRUE(std::regex_search(
      text.out,
      std::regex(fmt::format(R"(cluster 2 \(attempt 1\): {} at \S+[+-]\d\d:\d\d, log {})",
                             f["ending"].get<std::string>(), f["log_path"].get<std::string>()))))
      << text.out;

  // Times: UTC with its offset for programs, the same instants as the log's
  // view; local time with its offset for people.
  const std::regex utc(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)");
  const std::regex local(R"(since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d \()");
  EXPECT_TRUE(std::regex_match(s["created"].get<std::string>(), utc)) << s["created"];
  EXPECT_TRUE(s["last_success"].is_null());
  EXPECT_TRUE(std::regex_match(s["runner"]["since"].get<std::string>(), utc)) << raw.out;
  EXPECT_TRUE(std::regex_search(text.out, local)) << text.out;
  EXPECT_EQ(f["finished"],
            query(t / "runner.db", "select finished from attempts where cluster = 2"));

  for (int c : {3, 4}) std::ofstream((t / ("go-" + std::to_string(c))).string()).put('x');
  EXPECT_EQ(p.wait(), 1);
  auto after = json::parse(run_runner({"status", "--json", "--job", "night"}, t.path()).out)[0];
  EXPECT_EQ(after["done"], 5);
  EXPECT_EQ(after["failed"], 1);
  EXPECT_EQ(after["running"], 0);
  EXPECT_TRUE(after["runner"].is_null());
  EXPECT_TRUE(after["running_by_node"].empty());
  EXPECT_TRUE(after["last_success"].is_null());  // cluster 2 failed: not all done
  // A run that ends all done is the job's last success, after its last end.
  auto whole = run_runner(with_child({"2", "2", "--job", "whole"}, {}), t.path());
  EXPECT_EQ(whole.code, 0) << whole.err;
  auto done = json::parse(run_runner({"status", "--json", "--job", "whole"}, t.path()).out)[0];
  ASSERT_TRUE(done["last_success"].is_string()) << done;
  EXPECT_TRUE(std::regex_match(done["last_success"].get<std::string>(), utc)) << done;
  EXPECT_GE(done["last_success"].get<std::string>(),
            query(t / "runner.db", "select max(finished) from attempts where job = 'whole'"));
  // An unknown job is an error, as in the text.
  auto unknown = run_runner({"status", "--json", "--job", "nope"}, t.path());
  EXPECT_EQ(unknown.code, 2);
  EXPECT_NE(unknown.err.find("--job nope: no such job"), std::string::npos) << unknown.err;
}

// The README from `from` to `to`.
std::string readme_part(const std::string& from, const std::string& to) {
  auto readme = read_file(README_PATH);
  auto start = readme.find(from);
  auto end = readme.find(to, start);
  EXPECT_NE(start, std::string::npos) << from;
  EXPECT_NE(end, std::string::npos) << to;
  return start == std::string::npos ? "" : readme.substr(start, end - start);
}

// Every name in `value` (and in the objects inside it) is in `doc`, quoted
// as code; the keys of `maps` are data (host names), not names.
void expect_documented(const json& value, const std::string& doc,
                       const std::set<std::string>& maps = {}) {
  if (value.is_array() && !value.empty()) expect_documented(value[0], doc, maps);
  if (!value.is_object()) return;
  for (const auto& [name, inner] : value.items()) {
    EXPECT_NE(doc.find("`" + name + "`"), std::string::npos)
        << "the README does not say what `" << name << "` is:\n"
        << doc;
    if (!maps.contains(name)) expect_documented(inner, doc, maps);
  }
}

// What a program reads from status --json and report --json, the README
// says field by field.
TEST(Readme, EveryFieldOfTheJsonOutputsIsDocumented) {
  TempDir t;
  auto ready = t / "ready";
  fs::create_directory(ready);
  RunnerProcess p(
      with_child({"3", "2", "--job", "j"}, {"--exit-for", "1=3", "--alloc-mib", "8", "--ready-dir",
                                            ready.string(), "--hold-file", (t / "go").string()}),
      t.path());
  ASSERT_TRUE(wait_until(ready, [&] { return fs::exists(ready / "2.ready"); }));
  ASSERT_TRUE(wait_for_running(t.path(), 2));
  // Read while the run holds its clusters, then let them end.
  auto status = json::parse(run_runner({"status", "--json"}, t.path()).out);
  std::ofstream((t / "go").string()).put('x');
  EXPECT_EQ(p.wait(), 1);
  auto after = json::parse(run_runner({"status", "--json"}, t.path()).out);
  auto report = json::parse(run_runner({"report", "--json", "--mem-budget", "1G"}, t.path()).out);
  ASSERT_TRUE(status[0]["runner"].is_object()) << status;
  ASSERT_FALSE(after[0]["failed_clusters"].empty()) << after;
  ASSERT_FALSE(report[0]["per_cluster"].empty()) << report;
  auto status_doc = readme_part("`runner status --json` says the same", "\n## ");
  expect_documented(status, status_doc, {"running_by_node"});
  expect_documented(after, status_doc, {"running_by_node"});
  expect_documented(report, readme_part("### `runner report`", "\n### "));
}

TEST(ProgressBar, OnATerminalItIsOneLineRedrawnInPlaceAndCronOutputStaysPlain) {
  TempDir t;
  // A pseudo-terminal (script(1)) as runner's stdout and stderr.
  auto run = "script -qefc '" + runner_bin() + " 20 2 -- " + child_bin() +
             " --sleep-ms 60' /dev/null > tty.txt";
  ASSERT_EQ(run_shell(run, t.path()).code, 0);
  auto tty = read_file(t / "tty.txt");
  auto first = tty.find("\r\033[K[");
  ASSERT_NE(first, std::string::npos) << tty;
  auto last = tty.rfind("\r\033[K");
  // From the first bar to its erasure at the end: redrawn in place, never a new line.
  EXPECT_EQ(tty.substr(first, last - first).find('\n'), std::string::npos) << tty;
  EXPECT_NE(tty.find("/20 done, 0 failed, "), std::string::npos) << tty;
  EXPECT_NE(tty.find("job ", last), std::string::npos) << tty;  // then the summary
  // Not a terminal (cron): plain lines, no control characters, no bar.
  auto plain =
      run_runner(with_child({"20", "2", "--job", "plain"}, {"--sleep-ms", "60"}), t.path());
  EXPECT_EQ(plain.code, 0);
  EXPECT_EQ(plain.out.find('\033'), std::string::npos) << plain.out;
  EXPECT_EQ(plain.out.find("[#"), std::string::npos) << plain.out;
  EXPECT_NE(plain.out.find("/20 done, 0 failed"), std::string::npos) << plain.out;
}

// The value of one sample of a Prometheus text file ("name{labels}").
std::optional<double> sample(const std::string& text, const std::string& name_and_labels) {
  auto at = text.find("\n" + name_and_labels + " ");
  if (at == std::string::npos) return std::nullopt;
  return std::stod(text.substr(at + name_and_labels.size() + 2));
}

TEST(Metrics, TheFileIsAlwaysWholeWhileAJobRunsAndMatchesTheLogAtTheEnd) {
  TempDir t;
  auto ready = t / "ready";
  fs::create_directory(ready);
  auto prom = t / "runner.prom";
  for (int c : {1, 2, 5, 6}) std::ofstream((t / ("go-" + std::to_string(c))).string()).put('x');
  RunnerProcess p(with_child({"6", "2", "--job", "m", "--metrics", prom.string()},
                             {"--exit-for", "2=3", "--ready-dir", ready.string(), "--hold-file",
                              (t / "go-{i}").string()}),
                  t.path());
  ASSERT_TRUE(wait_until(ready, [&] { return fs::exists(ready / "4.ready"); }));
  ASSERT_TRUE(wait_for_running(t.path(), 2));
  // Written by rename: whenever it is there, it is whole (its last sample is there).
  ASSERT_TRUE(wait_until(t.path(), [&] { return fs::exists(prom); }));
  auto live = read_file(prom);
  EXPECT_TRUE(sample(live, "runner_run_start_timestamp_seconds{runner_job=\"m\"}")) << live;
  EXPECT_EQ(sample(live, "runner_job_clusters{runner_job=\"m\"}"), 6);
  EXPECT_EQ(live.back(), '\n');
  for (int c : {3, 4}) std::ofstream((t / ("go-" + std::to_string(c))).string()).put('x');
  EXPECT_EQ(p.wait(), 1);
  auto end = read_file(prom);
  auto db = t / "runner.db";
  EXPECT_EQ(sample(end, "runner_clusters{runner_job=\"m\",state=\"done\"}"),
            std::stod(query(db, "select done from progress")));
  EXPECT_EQ(sample(end, "runner_clusters{runner_job=\"m\",state=\"failed\"}"),
            std::stod(query(db, "select failed from progress")));
  EXPECT_EQ(sample(end, "runner_clusters{runner_job=\"m\",state=\"running\"}"), 0);
  EXPECT_EQ(sample(end, "runner_run_attempts_total{runner_job=\"m\"}"),
            std::stod(query(db, "select count(*) from attempts")));
  EXPECT_EQ(sample(end, "runner_run_failed_total{runner_job=\"m\"}"), 1);
  EXPECT_EQ(sample(end, "runner_last_exit_code{runner_job=\"m\"}"), 1);
  EXPECT_TRUE(sample(end, "runner_run_end_timestamp_seconds{runner_job=\"m\"}"));
  // Not all done: no success to tell of; running is runner_clusters' alone.
  EXPECT_EQ(end.find("runner_last_success_timestamp_seconds"), std::string::npos) << end;
  EXPECT_EQ(end.find("runner_running"), std::string::npos) << end;
  // A run that ends all done tells when.
  auto whole = t / "whole.prom";
  ASSERT_EQ(
      run_runner(with_child({"2", "1", "--job", "w", "--metrics", whole.string()}, {}), t.path())
          .code,
      0);
  auto success =
      sample(read_file(whole), "runner_last_success_timestamp_seconds{runner_job=\"w\"}");
  ASSERT_TRUE(success) << read_file(whole);
  EXPECT_GE(*success,
            *sample(read_file(whole), "runner_run_start_timestamp_seconds{runner_job=\"w\"}"));

  // Counters end in _total, and every sample has its TYPE line.
  EXPECT_NE(end.find("# TYPE runner_run_attempts_total counter"), std::string::npos);
  // No temporary file is left beside it.
  for (const auto& entry : fs::directory_iterator(t.path()))
    EXPECT_EQ(entry.path().filename().string().find(".tmp"), std::string::npos) << entry.path();
  // A folder that does not exist: refused, nothing written.
  TempDir u;
  auto bad =
      run_runner({"2", "1", "--metrics", (u / "no/such/x.prom").string(), "--", "true"}, u.path());
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("--metrics " + (u / "no/such/x.prom").string() + ": folder"),
            std::string::npos)
      << bad.err;
  EXPECT_FALSE(fs::exists(u / "runner.db"));
}

// What the --on-finish command was told, each time it ran: NAME -> value.
std::vector<std::map<std::string, std::string>> hook_runs(const fs::path& file) {
  std::vector<std::map<std::string, std::string>> runs(1);
  for (const auto& line : read_lines(file)) {
    if (line == "---") {
      runs.emplace_back();
      continue;
    }
    auto eq = line.find('=');
    if (eq != std::string::npos) runs.back()[line.substr(0, eq)] = line.substr(eq + 1);
  }
  runs.pop_back();  // after the last ---
  return runs;
}

// Appends what it was told (one line per variable) and a --- line.
std::string recording_hook(const fs::path& file) {
  return "for v in JOB DB EXIT_CODE OUTCOME CLUSTERS DONE FAILED DONE_THIS_RUN FAILED_THIS_RUN "
         "SUMMARY_FILE; do eval echo \"RUNNER_$v=\\$RUNNER_$v\"; done >> " +
         file.string() + "; echo --- >> " + file.string() + "; exit 4";
}

TEST(OnFinish, RunsOnceWithTheOutcomeHoweverTheRunEnds) {
  TempDir t;
  auto hooks = t / "hooks";
  auto hook = recording_hook(hooks);
  // All done; then a failure; then a halt: each run tells it once, and the
  // command's exit code 4 changes none of runner's.
  EXPECT_EQ(
      run_runner(with_child({"4", "2", "--job", "a", "--on-finish", hook}, {}), t.path()).code, 0);
  EXPECT_EQ(run_runner(with_child({"4", "2", "--job", "b", "--on-finish", hook},
                                  {"--exit-for", "3=5", "--print", "1"}),
                       t.path())
                .code,
            1);
  EXPECT_EQ(
      run_runner(with_child({"6", "1", "--job", "c", "--halt", "now,fail=1", "--on-finish", hook},
                            {"--exit-for", "2=5"}),
                 t.path())
          .code,
      1);
  // A setup error once the log is open: the program (named by its cluster)
  // cannot be executed.
  EXPECT_EQ(
      run_runner({"3", "1", "--job", "d", "--on-finish", hook, "--", "./missing-{i}"}, t.path())
          .code,
      2);
  auto runs = hook_runs(hooks);
  ASSERT_EQ(runs.size(), 4u);
  EXPECT_EQ(runs[0]["RUNNER_JOB"], "a");
  EXPECT_EQ(runs[0]["RUNNER_OUTCOME"], "done");
  EXPECT_EQ(runs[0]["RUNNER_EXIT_CODE"], "0");
  EXPECT_EQ(runs[0]["RUNNER_DONE"], "4");
  EXPECT_EQ(runs[0]["RUNNER_CLUSTERS"], "4");
  EXPECT_EQ(runs[0]["RUNNER_DB"], (t / "runner.db").string());
  EXPECT_EQ(runs[1]["RUNNER_OUTCOME"], "failed");
  EXPECT_EQ(runs[1]["RUNNER_EXIT_CODE"], "1");
  EXPECT_EQ(runs[1]["RUNNER_DONE"], "3");
  EXPECT_EQ(runs[1]["RUNNER_FAILED"], "1");
  EXPECT_EQ(runs[1]["RUNNER_DONE_THIS_RUN"], "3");
  EXPECT_EQ(runs[1]["RUNNER_FAILED_THIS_RUN"], "1");
  // The file holds the summary and the failed cluster with its log.
  auto file = read_file(runs[1]["RUNNER_SUMMARY_FILE"]);
  EXPECT_NE(file.find("job b: 3/4 done, 1 failed in this run"), std::string::npos) << file;
  EXPECT_NE(file.find("3\t1\texit code 5\t" + (t / "runner.logs/b/3.1.log").string()),
            std::string::npos)
      << file;
  EXPECT_EQ(runs[2]["RUNNER_OUTCOME"], "halted");
  EXPECT_EQ(runs[3]["RUNNER_OUTCOME"], "setup-error");
  EXPECT_EQ(runs[3]["RUNNER_EXIT_CODE"], "2");
}

TEST(OnFinish, RunsWhenASignalStopsTheRun) {
  TempDir t;
  auto ready = t / "ready";
  fs::create_directory(ready);
  auto hooks = t / "hooks";
  RunnerProcess p(
      with_child({"4", "2", "--on-finish", recording_hook(hooks)},
                 {"--ready-dir", ready.string(), "--hold-file", (t / "never").string()}),
      t.path());
  ASSERT_TRUE(wait_until(ready, [&] { return fs::exists(ready / "2.ready"); }));
  ASSERT_TRUE(wait_for_running(t.path(), 2));
  p.signal(SIGTERM);
  EXPECT_EQ(p.wait(), 143);
  auto runs = hook_runs(hooks);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0]["RUNNER_OUTCOME"], "stopped");
  EXPECT_EQ(runs[0]["RUNNER_EXIT_CODE"], "143");
}

TEST(OnFinish, ASlowCommandIsCutAtItsLimitWithAllItStarted) {
  TempDir t;
  auto pid_file = t / "hook.pid";
  // It starts a child of its own, then waits far longer than its limit.
  auto hook = "sleep 600 & echo $! > " + pid_file.string() + "; wait";
  auto r = run_runner(
      with_child({"2", "2", "--on-finish", hook, "--on-finish-timeout", "500ms"}, {}), t.path());
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("--on-finish: it did not end within"), std::string::npos) << r.err;
  auto lines = read_lines(pid_file);
  ASSERT_EQ(lines.size(), 1u);
  // Its child was killed with it: it ends (at once, not after 600 s).
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, std::stoi(lines[0]), 0));
  if (pidfd >= 0) {
    pollfd fd{pidfd, POLLIN, 0};
    EXPECT_EQ(::poll(&fd, 1, 30'000), 1) << "the command's own child outlived its limit";
    ::close(pidfd);
  }
}

// A night that never started: another run holds the job, the DB's folder
// is missing, a value is bad. The command hears of each, as `refused`, with
// the reason; nothing is written, and its summary file is gone afterwards.
TEST(OnFinish, ARefusedStartRunsItWithOutcomeRefusedAndLeavesNothing) {
  TempDir t;
  auto hooks = t / "hooks";
  // What it was told, and its summary file's text and whether it was there.
  auto hook =
      "{ for v in JOB EXIT_CODE OUTCOME CLUSTERS DONE SUMMARY_FILE; do eval echo "
      "\"RUNNER_$v=\\$RUNNER_$v\"; done; echo \"FILE=$(cat \"$RUNNER_SUMMARY_FILE\")\"; "
      "echo ---; } >> " +
      hooks.string();
  auto ready = t / "ready";
  fs::create_directory(ready);
  RunnerProcess holder(
      with_child({"2", "1", "--job", "held"},
                 {"--ready-dir", ready.string(), "--hold-file", (t / "go").string()}),
      t.path());
  ASSERT_TRUE(wait_until(ready, [&] { return fs::exists(ready / "1.ready"); }));
  auto held =
      run_runner(with_child({"2", "1", "--job", "held", "--on-finish", hook}, {}), t.path());
  EXPECT_EQ(held.code, 2);
  EXPECT_NE(held.err.find("already being run by pid " + std::to_string(holder.pid())),
            std::string::npos)
      << held.err;
  std::ofstream((t / "go").string()).put('x');
  EXPECT_EQ(holder.wait(), 0);
  auto attempts = query(t / "runner.db", "select count(*) from attempts");

  auto missing = run_runner(
      {"3", "1", "--db", (t / "no/such/r.db").string(), "--on-finish", hook, "--", "true"},
      t.path());
  EXPECT_EQ(missing.code, 2);
  auto bad = run_runner(
      {"3", "1", "--job", "j", "--timeout", "", "--on-finish", hook, "--", "true"}, t.path());
  EXPECT_EQ(bad.code, 2);
  // Nothing was written by any of them.
  EXPECT_EQ(query(t / "runner.db", "select count(*) from attempts"), attempts);
  EXPECT_FALSE(fs::exists(t / "no"));
  EXPECT_FALSE(fs::exists(t / "runner.logs/j"));

  auto runs = hook_runs(hooks);
  ASSERT_EQ(runs.size(), 3u);
  for (auto& run : runs) {
    EXPECT_EQ(run["RUNNER_OUTCOME"], "refused");
    EXPECT_EQ(run["RUNNER_EXIT_CODE"], "2");
    EXPECT_EQ(run["RUNNER_DONE"], "");  // not known: nothing was looked at
    EXPECT_FALSE(run["RUNNER_SUMMARY_FILE"].empty());
    EXPECT_FALSE(fs::exists(run["RUNNER_SUMMARY_FILE"])) << run["RUNNER_SUMMARY_FILE"];
  }
  EXPECT_EQ(runs[0]["RUNNER_JOB"], "held");
  EXPECT_EQ(runs[0]["RUNNER_CLUSTERS"], "2");
  EXPECT_NE(runs[0]["FILE"].find("already being run by pid"), std::string::npos) << runs[0]["FILE"];
  EXPECT_NE(runs[1]["FILE"].find("folder " + (t / "no/such").string() + " does not exist"),
            std::string::npos)
      << runs[1]["FILE"];
  EXPECT_EQ(runs[2]["RUNNER_JOB"], "j");
  EXPECT_EQ(runs[2]["FILE"].rfind("--timeout '' is not valid", 0), 0u) << runs[2]["FILE"];
}

// What the command writes past 16 KiB is not logged, and runner says so.
TEST(OnFinish, OutputPast16KiBIsCutAndSaidSo) {
  TempDir t;
  auto r = run_runner(
      with_child({"1", "1", "--on-finish", "head -c 20000 /dev/zero | tr '\\0' x; echo"}, {}),
      t.path());
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("--on-finish: its output was cut at 16 KiB: 3617 more byte(s) not shown"),
            std::string::npos)
      << r.err.substr(r.err.size() > 400 ? r.err.size() - 400 : 0);
  EXPECT_NE(r.err.find("--on-finish: ended with exit code 0"), std::string::npos);
}

// Where pidfd_open is refused (kernels before 5.3, a seccomp filter), runner
// still sees the command end, and still kills one that runs too long.
TEST(OnFinish, WithoutPidfdOpenItStillSeesTheCommandEnd) {
  TempDir t;
  auto run = [&](const std::string& hook, const std::string& limit) {
    auto args = with_child({"2", "2", "--on-finish", hook, "--on-finish-timeout", limit}, {});
    args.insert(args.begin(), {"--exec-without-pidfd", runner_bin()});
    RunnerProcess p(args, t.path(), Streams(), child_bin());
    Result r;
    r.code = p.wait();
    r.err = p.err();
    return r;
  };
  auto quick = run("echo told; exit 3", "60s");
  EXPECT_EQ(quick.code, 0) << quick.err;
  EXPECT_NE(quick.err.find("--on-finish: told"), std::string::npos) << quick.err;
  EXPECT_NE(quick.err.find("--on-finish: ended with exit code 3"), std::string::npos) << quick.err;
  EXPECT_EQ(quick.err.find("did not end"), std::string::npos) << quick.err;
  auto slow = run("exec sleep 600", "300ms");
  EXPECT_EQ(slow.code, 0) << slow.err;
  EXPECT_NE(slow.err.find("--on-finish: it did not end within 0.3s; killed it"), std::string::npos)
      << slow.err;
}

TEST(OnFinish, BadValuesAreRefusedAndNothingWritten) {
  TempDir t;
  auto empty = run_runner({"2", "1", "--on-finish", "", "--", "true"}, t.path());
  EXPECT_EQ(empty.code, 2);
  EXPECT_NE(empty.err.find("--on-finish '' is not valid"), std::string::npos) << empty.err;
  auto alone = run_runner({"2", "1", "--on-finish-timeout", "5s", "--", "true"}, t.path());
  EXPECT_EQ(alone.code, 2);
  EXPECT_NE(alone.err.find("--on-finish-timeout needs --on-finish"), std::string::npos);
  EXPECT_FALSE(fs::exists(t / "runner.db"));
}

}  // namespace
}  // namespace runner::testing
