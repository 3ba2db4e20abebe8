// runner --on ssh over the test hosts (tests/ssh/hosts.sh): network
// namespaces of this machine, each with its own address, sshd and /tmp, so
// that no host sees the head's folders. The test's DB, logs and working
// folder are in the head's /tmp; what the children record is in a folder of
// the build tree, which every host sees, as a test's own eyes.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include "e2e_util.h"

namespace runner::testing {
namespace {

using Args = std::vector<std::string>;

std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

// Where the fixture keeps the hosts, and the ssh wrapper it wrote there.
std::string hosts_dir() {
  return env("RUNNER_TEST_HOSTS_DIR");
}

std::string ssh_wrapper() {
  return hosts_dir().empty() ? "" : hosts_dir() + "/ssh";
}

std::string hosts_sh() {
  return SSH_HOSTS_SH;
}

// hosts.sh ACTION DIR ARGS...; its exit code.
int hosts(const std::string& action, const std::string& args) {
  return std::system((hosts_sh() + " " + action + " " + hosts_dir() + " " + args).c_str()) == 0 ? 0
                                                                                                : 1;
}

// A folder every host and the head see (in the build tree), removed at the end.
class SharedDir {
 public:
  SharedDir() {
    auto pattern = (fs::path(hosts_dir()).parent_path() / "ssh-shared-XXXXXX").string();
    if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~SharedDir() { fs::remove_all(path_); }
  SharedDir(const SharedDir&) = delete;
  SharedDir& operator=(const SharedDir&) = delete;
  fs::path operator/(const std::string& name) const { return path_ / name; }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// The head's working folder, made on each host too (as a deployment has it).
void make_on_hosts(const TempDir& t) {
  for (const char* h : {"h1", "h2", "h3"})
    ASSERT_EQ(hosts("run", std::string(h) + " mkdir -p " + t.path().string()), 0) << h;
}

Args over_ssh(Args runner_args, const std::string& hosts_list) {
  runner_args.insert(runner_args.end(),
                     {"--on", "ssh", "--hosts", hosts_list, "--ssh", ssh_wrapper()});
  return runner_args;
}

Args joined(Args a, const Args& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

std::vector<std::string> read_lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.push_back(line);
  return lines;
}

class Ssh : public ::testing::Test {
 protected:
  void SetUp() override {
    if (ssh_wrapper().empty()) GTEST_FAIL() << "the test hosts' fixture did not run";
  }
};

TEST_F(Ssh, EveryClusterRunsOnceOverTheHostsAndItsLogIsReadFromTheHead) {
  TempDir t;
  SharedDir shared;
  make_on_hosts(t);
  auto p = run_runner(with_child(over_ssh({"9", "3", "--job", "j"}, "h1,h2,h3"),
                                 {"--record", (shared / "record").string(), "--args-to-stdout"}),
                      t.path());
  ASSERT_EQ(p.code, 0) << p.err;
  EXPECT_EQ(query(t / "runner.db", "SELECT done FROM progress"), "9");
  auto starts = counted(shared / "record", "start");
  for (long c = 1; c <= 9; ++c) EXPECT_EQ(starts[c], 1) << "cluster " << c;
  // Spread over the hosts, each named as --hosts has it.
  EXPECT_EQ(query(t / "runner.db",
                  "SELECT group_concat(DISTINCT host) FROM "
                  "(SELECT host FROM attempt ORDER BY host)"),
            "h1,h2,h3");
  // The logs stayed on the hosts: none is in the head's folder.
  auto log5 = query(t / "runner.db", "SELECT log_path FROM attempt WHERE cluster = 5");
  EXPECT_FALSE(fs::exists(log5)) << log5;
  auto shown = run_runner({"log", "--ssh", ssh_wrapper(), "--job", "j", "5"}, t.path());
  EXPECT_EQ(shown.code, 0) << shown.err;
  EXPECT_NE(shown.out.find("5/9"), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("RUNNER_CLUSTER=5"), std::string::npos) << shown.out;
  // The cluster knows the host it runs on, by the name --hosts gives it.
  auto host5 = query(t / "runner.db", "SELECT host FROM attempt WHERE cluster = 5");
  EXPECT_NE(shown.out.find("RUNNER_SITE=" + host5 + "\n"), std::string::npos) << shown.out;
  // And the page draws each host's attempts under its name.
  auto report = run_runner({"report", "--job", "j", "--html", "page.html"}, t.path());
  EXPECT_EQ(report.code, 0) << report.err;
  auto page = read_file(t / "page.html");
  for (const char* h : {"h1", "h2", "h3"})
    EXPECT_NE(page.find(std::string("\">") + h + "</text>"), std::string::npos) << h;
}

// With a budget per host, each cluster goes where its need fits: the large
// ones, of unknown need on the first job and known from it on the second,
// to the large host, never to the small one whose budget they would
// overrun, though it is listed first.
TEST_F(Ssh, LargeClustersGoOnlyWhereTheyFitWhicheverHostIsListedFirst) {
  TempDir t;
  make_on_hosts(t);
  auto child =
      Args{"--alloc-mib", "8", "--alloc-for", "1=120", "--alloc-for", "2=120", "--hold-ms", "100"};
  // A cap above the small host's budget is no reason to refuse: the
  // clusters that need it run on the large one.
  for (const char* job : {"first", "second"}) {
    auto p = run_runner(
        with_child(over_ssh({"6", "4", "--job", job, "--mem-limit", "300M"}, "2/h2 100M,2/h1 400M"),
                   child),
        t.path());
    ASSERT_EQ(p.code, 0) << job << ": " << p.err;
    EXPECT_NE(p.err.find("memory budget per host: h2 100.0 MiB, h1 400.0 MiB"), std::string::npos)
        << p.err;
  }
  auto db = t / "runner.db";
  EXPECT_EQ(query(db, "SELECT count(*) FROM attempt WHERE state <> 'done'"), "0");
  // Neither job ran a large one on h2.
  EXPECT_EQ(query(db, "SELECT group_concat(DISTINCT host) FROM attempt WHERE cluster IN (1, 2)"),
            "h1");
}

TEST_F(Ssh, AHostThatCannotBeReachedAtStartIsNamedAndLeftOut) {
  TempDir t;
  make_on_hosts(t);
  ASSERT_EQ(hosts("cut", "h3"), 0);
  auto p = run_runner(with_child(over_ssh({"6", "3", "--job", "j"}, "h1,h2,h3"), {}), t.path());
  ASSERT_EQ(hosts("mend", "h3"), 0);
  EXPECT_EQ(p.code, 0) << p.err;
  EXPECT_NE(p.err.find("host h3 cannot be reached"), std::string::npos) << p.err;
  EXPECT_EQ(query(t / "runner.db", "SELECT done FROM progress"), "6");
  EXPECT_EQ(query(t / "runner.db", "SELECT count(*) FROM attempt WHERE host = 'h3'"), "0");
}

TEST_F(Ssh, WhatAHostLacksRefusesTheRunAndWritesNothing) {
  TempDir t;
  make_on_hosts(t);
  // A program only the head has: its /tmp is its own.
  {
    std::ofstream script((t / "only-here.sh").string());
    script << "#!/bin/sh\nexit 0\n";
  }
  fs::permissions(t / "only-here.sh", fs::perms::owner_all);
  auto p = run_runner(joined(over_ssh({"4", "2", "--job", "j"}, "h1,h2"), {"--", "./only-here.sh"}),
                      t.path());
  EXPECT_EQ(p.code, 2) << p.err;
  EXPECT_NE(p.err.find("--on ssh: on host h1: cannot execute ./only-here.sh"), std::string::npos)
      << p.err;
  EXPECT_FALSE(fs::exists(t / "runner.db"));
  // A working folder a host does not have, the same.
  TempDir elsewhere;
  auto q = run_runner(joined(over_ssh({"4", "2"}, "h1"), {"--", "true"}), elsewhere.path());
  EXPECT_EQ(q.code, 2) << q.err;
  EXPECT_NE(q.err.find("the working folder " + elsewhere.path().string() + " does not exist"),
            std::string::npos)
      << q.err;
  EXPECT_FALSE(fs::exists(elsewhere / "runner.db"));
}

// A head killed with kill -9: the hosts' workers let their clusters end and
// journal them on their own disks. The next start collects those journals
// over ssh and runs nothing that finished.
TEST_F(Ssh, AfterAKilledHeadTheNextStartRecordsWhatTheHostsJournalled) {
  TempDir t;
  SharedDir shared;
  make_on_hosts(t);
  fs::create_directories(shared / "ready");
  auto child =
      Args{"--record",    (shared / "record").string(), "--ready-dir", (shared / "ready").string(),
           "--hold-file", (shared / "go").string()};
  {
    RunnerProcess head(with_child(over_ssh({"2", "2", "--job", "j"}, "h1,h2"), child), t.path());
    ASSERT_TRUE(wait_until(shared / "ready", [&] {
      return fs::exists(shared / "ready" / "1.ready") && fs::exists(shared / "ready" / "2.ready");
    }));
    ASSERT_TRUE(wait_for_running(t.path(), 2));
    head.signal(SIGKILL);
    head.wait();
  }
  // The clusters end on their hosts with no runner to watch them.
  std::ofstream((shared / "go").string()).put('x');
  ASSERT_TRUE(
      wait_until(shared.path(), [&] { return counted(shared / "record", "end").size() == 2; }));
  auto again = run_runner(with_child(over_ssh({"2", "2", "--job", "j"}, "h1,h2"), child), t.path());
  EXPECT_EQ(again.code, 0) << again.err;
  EXPECT_NE(again.err.find("2 attempt(s) ended while no runner recorded them (2 done)"),
            std::string::npos)
      << again.err;
  EXPECT_EQ(query(t / "runner.db", "SELECT done FROM progress"), "2");
  for (long c = 1; c <= 2; ++c) EXPECT_EQ(counted(shared / "record", "start")[c], 1) << c;
  EXPECT_EQ(query(t / "runner.db", "SELECT count(*) FROM attempt"), "2");
  // And the journals are gone from the hosts once recorded.
  for (const char* h : {"h1", "h2"})
    EXPECT_EQ(hosts("run", std::string(h) + " sh -c 'test -z \"$(ls -A " +
                               (t / "runner.logs" / "j" / ".journal").string() + ")\"'"),
              0)
        << h;
}

// A host that drops off the network mid-run: its clusters may still run
// there, so none of them runs again until what its worker left is known
// killed, once the host answers again; never two copies at once.
TEST_F(Ssh, AHostLostMidRunHasItsClustersWaitUntilTheirFirstCopiesAreKilled) {
  TempDir t;
  SharedDir shared;
  make_on_hosts(t);
  for (const char* d : {"ready", "locks"}) fs::create_directories(shared / d);
  auto child =
      Args{"--record",    (shared / "record").string(), "--ready-dir", (shared / "ready").string(),
           "--hold-file", (shared / "go").string(),     "--exclusive", (shared / "locks").string()};
  // P = 4 over two hosts of 4 slots: 2 each, until h2 is lost; then h1
  // takes its share too and runs h2's clusters again beside its own, which
  // hold until the end.
  RunnerProcess head(with_child(over_ssh({"4", "4", "--job", "j"}, "4/h1,4/h2"), child), t.path());
  ASSERT_TRUE(wait_until(shared / "ready", [&] {
    return std::distance(fs::directory_iterator(shared / "ready"), fs::directory_iterator()) == 4;
  }));
  ASSERT_TRUE(wait_for_running(t.path(), 4));
  std::vector<long> on_h2;
  for (const auto& c : read_lines_of(
           query(t / "runner.db",
                 "SELECT group_concat(cluster, char(10)) FROM attempt WHERE host = 'h2'")))
    on_h2.push_back(std::stol(c));
  ASSERT_FALSE(on_h2.empty());
  ASSERT_EQ(hosts("cut", "h2"), 0);
  ASSERT_TRUE(wait_until(t.path(), [&] {
    return head.err().find("what the worker on h2 left cannot be killed") != std::string::npos;
  })) << head.err();
  // Held, not run elsewhere: each cluster started once.
  for (const auto& [cluster, n] : counted(shared / "record", "start")) EXPECT_EQ(n, 1) << cluster;
  ASSERT_EQ(hosts("mend", "h2"), 0);
  // Once the kill gets through, they run again on h1.
  ASSERT_TRUE(wait_until(shared.path(), [&] {
    auto starts = counted(shared / "record", "start");
    return std::all_of(on_h2.begin(), on_h2.end(), [&](long c) { return starts[c] == 2; });
  })) << head.err();
  EXPECT_NE(
      head.err().find("a host was lost: the hosts left run up to 4 cluster(s) at once (h1 4)"),
      std::string::npos)
      << head.err();
  std::ofstream((shared / "go").string()).put('x');
  EXPECT_EQ(head.wait(), 0) << head.err();
  EXPECT_FALSE(fs::exists(shared / "locks" / "overlaps")) << "two copies of a cluster ran at once";
  EXPECT_EQ(query(t / "runner.db", "SELECT done FROM progress"), "4");
  EXPECT_EQ(query(t / "runner.db",
                  "SELECT count(*) FROM attempt WHERE state = 'interrupted' AND host = 'h2'"),
            std::to_string(on_h2.size()));
  for (long c = 1; c <= 4; ++c) EXPECT_EQ(counted(shared / "record", "end")[c], 1) << c;
}

TEST(SshHosts, BadHostsAreRefusedWithTheValueAndNothingWritten) {
  TempDir t;
  for (const auto& [hosts_value, says] : std::vector<std::pair<std::string, std::string>>{
           {"0/h1", "'0/h1' is not a host (slots are a whole number from 1)"},
           {"h1:99999", "'h1:99999' is not a host (a port is a number from 1 to 65535)"},
           {"-oProxyCommand=x", "'-oProxyCommand=x' is not a host"},
           {"h1 12Q", "its budget '12Q' is not a size"},
           {"h1,h1", "host h1 is named twice"},
           {",", "'' is not a host"}}) {
    auto p = run_runner({"2", "1", "--on", "ssh", "--hosts", hosts_value, "--", "true"}, t.path());
    EXPECT_EQ(p.code, 2) << hosts_value;
    EXPECT_NE(p.err.find(says), std::string::npos) << hosts_value << ": " << p.err;
    EXPECT_EQ(std::count(p.err.begin(), p.err.end(), '\n'), 1) << p.err;
  }
  auto p = run_runner({"2", "1", "--hosts", "h1", "--", "true"}, t.path());
  EXPECT_EQ(p.code, 2);
  EXPECT_NE(p.err.find("--hosts is for --on ssh"), std::string::npos) << p.err;
  auto q = run_runner({"2", "1", "--on", "ssh", "--", "true"}, t.path());
  EXPECT_EQ(q.code, 2);
  EXPECT_NE(q.err.find("--on ssh needs --hosts"), std::string::npos) << q.err;
  EXPECT_FALSE(fs::exists(t / "runner.db"));
}

}  // namespace
}  // namespace runner::testing
