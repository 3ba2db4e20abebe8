// The journal decides what never runs twice, so it trusts nothing it did not
// write: end to end on the real binary, with what a careless or hostile user
// can leave in a folder, and with a worker that stops answering or says what
// no worker says.
#include <SQLiteCpp/Database.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "e2e_util.h"
#include "runner/cluster.h"
#include "runner/memory.h"
#include "runner/sysinfo.h"
#include "runner/wire.h"

namespace runner::testing {
namespace {

using Args = std::vector<std::string>;

Args held_child(const TempDir& t) {
  return {"--record",    (t / "record").string(), "--ready-dir", (t / "ready").string(),
          "--hold-file", (t / "go").string(),     "--exclusive", (t / "locks").string()};
}

void make_dirs(const TempDir& t) {
  for (const char* d : {"ready", "locks"}) fs::create_directories(t / d);
}

bool ready(const TempDir& t, int n) {
  for (int c = 1; c <= n; ++c)
    if (!fs::exists(t / "ready" / (std::to_string(c) + ".ready"))) return false;
  return true;
}

// Kills runner with SIGKILL once its first `n` clusters run (and its log,
// `db`, says so); its worker lives.
void kill_when_running(const TempDir& t, const Args& args, int n,
                       const std::string& db = "runner.db") {
  RunnerProcess first(args, t.path());
  ASSERT_TRUE(wait_until(t / "ready", [&] { return ready(t, n); }));
  ASSERT_TRUE(wait_until(t.path(), [&] {
    return fs::exists(t / db) &&
           query(t / db, "SELECT count(*) FROM attempts WHERE state = 'running'") ==
               std::to_string(n);
  }));
  first.signal(SIGKILL);
  first.wait();
}

fs::path journal_folder(const fs::path& logs, const std::string& job) {
  return logs / job / ".journal";
}

// The lock and segment names of the one journal in a folder.
std::pair<fs::path, fs::path> only_journal(const fs::path& dir) {
  fs::path lock, segment;
  for (const auto& e : fs::directory_iterator(dir)) {
    auto name = e.path().filename().string();
    if (name.ends_with(".lock")) lock = e.path();
    if (name.ends_with(".1.journal")) segment = e.path();
  }
  return {lock, segment};
}

void release(const TempDir& t) {
  std::ofstream((t / "go").string()).put('x');
}

TEST(JournalTrust, TwoDbsSharingALogFolderAndAJobNameKeepToTheirOwnJournals) {
  TempDir t;
  make_dirs(t);
  auto shared = (t / "shared").string();
  // A: six clusters, three at once; killed while they run. Its worker lives.
  auto a =
      with_child({"6", "3", "--db", "a.db", "--logs", shared, "--job", "nightly"}, held_child(t));
  kill_when_running(t, a, 3, "a.db");
  // B: another DB, the same folder and job name, another command. It must
  // not record A's clusters, wait for A's worker, or kill it.
  for (const char* orphans : {"wait", "kill"}) {
    auto b = run_runner({"4", "2", "--db", "b.db", "--logs", shared, "--job", "nightly",
                         "--orphans", orphans, "--", "true"},
                        t.path());
    EXPECT_EQ(b.code, 0) << b.err;
    EXPECT_NE(b.err.find("another DB's or another job's journal"), std::string::npos) << b.err;
  }
  EXPECT_EQ(query(t / "b.db", "SELECT count(*) FROM attempts WHERE note LIKE '%journal%'"), "0");
  EXPECT_EQ(query(t / "b.db", "SELECT done FROM progress"), "4");
  // A's clusters were left alone: all three still run, and finish.
  for (int c = 1; c <= 3; ++c)
    EXPECT_EQ(counted(t / "record", "end")[c], 0) << "cluster " << c << " was stopped";
  release(t);
  auto a2 = run_runner(a, t.path());
  EXPECT_EQ(a2.code, 0) << a2.err;
  EXPECT_NE(a2.err.find("3 attempt(s) ended while no runner recorded them (3 done)"),
            std::string::npos)
      << a2.err;
  for (int c = 1; c <= 6; ++c) EXPECT_EQ(counted(t / "record", "start")[c], 1) << c;
}

TEST(JournalTrust, LinesThatNameNoAttemptOfTheLogAreReportedNotApplied) {
  TempDir t;
  make_dirs(t);
  auto args = with_child({"10", "2", "--job", "j"}, held_child(t));
  kill_when_running(t, args, 2);
  auto [lock, segment] = only_journal(journal_folder(t / "runner.logs", "j"));
  ASSERT_FALSE(segment.empty());
  // Whole lines in the journal's own format, naming what never ran here:
  // clusters outside 1..10, attempts 0 and 2^32, an end with no start, and
  // one that is not a journal line at all.
  auto forged = [&](const std::string& cluster, const std::string& attempt, char kind) {
    std::string line = std::string(1, kind) + "\t99\tj\t" + cluster + "\t" + attempt +
                       "\t-\t-\thost\t1\t/x.log\t1.5\tnone";
    if (kind == 'J') line += "\t0\t-\t2.5\t0\t0\t1\t-\tnone\t\t0\t\t\t0";
    return line + "\n";
  };
  {
    std::ofstream out(segment, std::ios::app);
    out << forged("999", "1", 'J') << forged("11", "1", 'J') << forged("0", "1", 'J')
        << forged("18446744073709551615", "1", 'J') << forged("18446744073709551616", "1", 'J')
        << forged("5", "0", 'J') << forged("5", "4294967296", 'J') << forged("9", "1", 'J')
        << "this is not a journal line\n";
  }
  release(t);
  auto r = run_runner(args, t.path());
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("journal line(s) not applied"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("cluster 999 is not one of the job's 1 to 10"), std::string::npos) << r.err;
  auto db = t / "runner.db";
  EXPECT_EQ(query(db, "SELECT done || ' ' || pending FROM progress"), "10 0");
  // Cluster 9 ran here, once, as attempt 1: the forged end was not its.
  EXPECT_EQ(counted(t / "record", "start")[9], 1);
  EXPECT_EQ(query(db, "SELECT count(*) FROM attempts WHERE cluster = 9"), "1");
  EXPECT_EQ(query(db, "SELECT count(*) FROM attempts WHERE cluster > 10 OR cluster < 1"), "0");
  auto status = run_runner({"status", "--json"}, t.path());
  EXPECT_EQ(status.code, 0) << status.err;
  EXPECT_NE(status.out.find("\"pending\": 0"), std::string::npos) << status.out;
}

TEST(JournalTrust, UnlockAfterACrashNeverLetsTwoCopiesRunAndEveryExecutionGetsItsRow) {
  TempDir t;
  make_dirs(t);
  // Clusters 1 and 2 wait for go1, 3 and 4 for go. runner hands 3 and 4 to
  // its worker ahead; the worker starts them itself when 1 and 2 end.
  auto child = child_bin() + " --print 1 --record " + (t / "record").string() + " --ready-dir " +
               (t / "ready").string() + " --exclusive " + (t / "locks").string() + " --hold-file ";
  Args args = {"4",
               "2",
               "--job",
               "j",
               "--",
               "sh",
               "-c",
               "if [ $RUNNER_CLUSTER -le 2 ]; then exec " + child + (t / "go1").string() +
                   "; else exec " + child + (t / "go").string() + "; fi"};
  {
    RunnerProcess first(args, t.path());
    ASSERT_TRUE(wait_until(t / "ready", [&] { return ready(t, 2); }));
    ASSERT_TRUE(wait_for_running(t.path(), 2));
    // A writer holds the DB: runner records neither 1 and 2 ending nor 3
    // and 4 starting, which its worker does meanwhile.
    SQLite::Database hold((t / "runner.db").string(), SQLite::OPEN_READWRITE, 60'000);
    hold.exec("BEGIN IMMEDIATE");
    std::ofstream((t / "go1").string()).put('x');
    ASSERT_TRUE(wait_until(t / "ready", [&] { return ready(t, 4); }));
    auto worker = worker_of(first.pid());
    ASSERT_GT(worker, 0);
    first.signal(SIGKILL);
    ::kill(worker, SIGKILL);
    first.wait();
    hold.exec("ROLLBACK");
  }
  auto unlock = run_runner({"unlock", "--job", "j"}, t.path());
  EXPECT_EQ(unlock.code, 0) << unlock.err;
  // The first copies of 3 and 4 still run; the next start waits for them.
  RunnerProcess second(args, t.path());
  ASSERT_TRUE(wait_until(t.path(), [&] {
    return second.err().find("waiting for 2 process(es)") != std::string::npos || second.exited();
  }));
  EXPECT_FALSE(second.exited()) << second.err();
  release(t);
  EXPECT_EQ(second.wait(), 0) << second.err();
  EXPECT_FALSE(fs::exists(t / "locks" / "overlaps")) << read_file(t / "locks" / "overlaps");
  auto db = t / "runner.db";
  EXPECT_EQ(query(db,
                  "SELECT group_concat(cluster || ':' || attempt || ':' || state, ' ') FROM "
                  "(SELECT * FROM attempts ORDER BY cluster, attempt)"),
            "1:1:done 2:1:done 3:1:interrupted 3:2:done 4:1:interrupted 4:2:done");
  EXPECT_EQ(
      query(db, "SELECT count(*) FROM attempts WHERE attempt = 2 AND log_path LIKE '%.2.log'"),
      "2");
  EXPECT_EQ(counted(t / "record", "start")[3], 2);
}

// An immutable folder, for as long as it lives (root may write anywhere else).
class Immutable {
 public:
  Immutable(fs::path dir, fs::path scratch) : dir_(std::move(dir)), scratch_(std::move(scratch)) {
    ok_ = run_shell("chattr +i " + dir_.string(), scratch_).code == 0;
  }
  ~Immutable() {
    if (ok_) run_shell("chattr -i " + dir_.string(), scratch_);
  }
  bool ok() const { return ok_; }

 private:
  fs::path dir_, scratch_;
  bool ok_ = false;
};

TEST(JournalTrust, AJournalThatCannotBeWrittenRefusesTheStartAndSaysWhatToDo) {
  TempDir t;
  auto dir = journal_folder(t / "runner.logs", "j");
  fs::create_directories(dir);
  fs::create_directories(t / "scratch");
  Immutable frozen(dir, t / "scratch");
  if (!frozen.ok()) GTEST_SKIP() << "chattr +i does not work on " << dir;
  auto r = run_runner({"3", "2", "--job", "j", "--", "true"}, t.path());
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find(dir.string()), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("or run with --worker off"), std::string::npos) << r.err;
  EXPECT_EQ(query(t / "runner.db", "SELECT count(*) FROM attempts"), "0");
  // Without a worker nothing is promised of a killed runner: it runs.
  auto off = run_runner({"3", "2", "--job", "j", "--worker", "off", "--", "true"}, t.path());
  EXPECT_EQ(off.code, 0) << off.err;
}

TEST(JournalTrust, AJournalFolderThatIsAFileIsRefusedWithWhatToDo) {
  TempDir t;
  fs::create_directories(t / "runner.logs" / "j");
  std::ofstream((t / "runner.logs" / "j" / ".journal").string()) << "not a folder\n";
  auto r = run_runner({"3", "2", "--job", "j", "--", "true"}, t.path());
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("is not a folder runner made (a link, or a file)"), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("remove it"), std::string::npos) << r.err;
  EXPECT_EQ(read_file(t / "runner.logs" / "j" / ".journal"), "not a folder\n");
}

TEST(JournalTrust, AJournalFolderThatIsALinkIsRefusedAndWhatItPointsAtIsLeftAlone) {
  TempDir t;
  fs::create_directories(t / "elsewhere");
  for (const char* f : {"daemon.lock", "daemon.1.journal"})
    std::ofstream((t / "elsewhere" / f).string()) << "keep me\n";
  fs::create_directories(t / "runner.logs" / "j");
  fs::create_directory_symlink(t / "elsewhere", t / "runner.logs" / "j" / ".journal");
  auto r = run_runner({"2", "2", "--job", "j", "--", "true"}, t.path());
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("is not a folder runner made (a link"), std::string::npos) << r.err;
  for (const char* f : {"daemon.lock", "daemon.1.journal"})
    EXPECT_EQ(read_file(t / "elsewhere" / f), "keep me\n") << f;
}

// A lock file in this DB's and job's own format, for the run `worker` names.
std::string lock_line(const TempDir& t, const std::string& worker, std::uint32_t version,
                      const ProcessIdentity& who) {
  SQLite::Database db((t / "runner.db").string(), SQLite::OPEN_READONLY);
  auto db_id = db.execAndGet("SELECT value FROM meta WHERE key = 'db_id'").getString();
  auto command = db.execAndGet("SELECT command FROM job").getString();
  auto clusters = static_cast<ClusterId>(db.execAndGet("SELECT clusters FROM job").getInt64());
  auto job = db.execAndGet("SELECT name FROM job").getString();
  return encode_lock({version, db_id, job, job_key(command, clusters), worker}, who) + "\n";
}

std::string run_of(const fs::path& lock) {
  auto name = lock.filename().string();
  return name.substr(0, name.size() - 5);
}

TEST(JournalTrust, AFifoADecoyLockAndAStraySegmentAreLeftAloneAndNothingBlocks) {
  TempDir t;
  make_dirs(t);
  auto args = with_child({"4", "2", "--job", "j"}, held_child(t));
  kill_when_running(t, args, 2);
  auto dir = journal_folder(t / "runner.logs", "j");
  auto run = run_of(only_journal(dir).first);
  // A FIFO named like a lock: opening it must not block.
  ASSERT_EQ(::mkfifo((dir / "x.lock").c_str(), 0644), 0);
  // A segment number no integer holds, beside the real journal.
  std::ofstream((dir / (run + ".99999999999999999999999.journal")).string()) << "junk\n";
  // A decoy: a lock in this DB's and job's own format, for a node of the
  // run, naming a live process that is no worker and holds the lock.
  int ready_pipe[2];
  ASSERT_EQ(::pipe(ready_pipe), 0);
  auto decoy_lock = dir / (run + "@n9.lock");
  pid_t decoy = ::fork();
  if (decoy == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlives the test
    int fd = ::open(decoy_lock.c_str(), O_WRONLY | O_CREAT, 0644);
    ::flock(fd, LOCK_EX);
    if (::write(ready_pipe[1], "x", 1) != 1) ::_exit(1);
    ::pause();
    ::_exit(0);
  }
  char c = 0;
  ASSERT_EQ(::read(ready_pipe[0], &c, 1), 1);
  ::close(ready_pipe[0]);
  ::close(ready_pipe[1]);
  std::ofstream(decoy_lock.string()) << lock_line(
      t, run + "@n9", kWireVersion, {decoy, host_name(), boot_id(), *process_start_ticks(decoy)});
  release(t);
  auto kill_args = args;
  kill_args.insert(kill_args.begin(), {"--orphans", "kill"});
  auto r = run_runner(kill_args, t.path());
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("x.lock: not a regular file"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("which is not the worker it names"), std::string::npos) << r.err;
  EXPECT_TRUE(process_exists(decoy)) << "the decoy was killed";
  EXPECT_EQ(query(t / "runner.db", "SELECT done FROM progress"), "4");
  ::kill(decoy, SIGKILL);
  ::waitpid(decoy, nullptr, 0);
}

TEST(JournalTrust, AWorkerThatStopsAnsweringIsKilledAndItsTimeoutsKept) {
  TempDir t;
  make_dirs(t);
  // Clusters that would run 30 s, a timeout of 1 s: the worker is stopped
  // (SIGSTOP) once they run, so only runner can keep the timeout.
  RunnerProcess runner(with_child({"2", "2", "--timeout", "1s", "--grace", "1s"},
                                  {"--record", (t / "record").string(), "--ready-dir",
                                   (t / "ready").string(), "--sleep-ms", "30000"}),
                       t.path());
  ASSERT_TRUE(wait_until(t / "ready", [&] { return ready(t, 2); }));
  auto worker = worker_of(runner.pid());
  ASSERT_GT(worker, 0);
  ::kill(worker, SIGSTOP);
  EXPECT_EQ(runner.wait(), 1) << runner.err();
  EXPECT_NE(runner.err().find("let an attempt run past its timeout"), std::string::npos)
      << runner.err();
  EXPECT_EQ(query(t / "runner.db", "SELECT count(*) FROM attempts WHERE state = 'timeout'"), "2");
  EXPECT_TRUE(counted(t / "record", "end").empty()) << "a cluster ran to its end";
  EXPECT_FALSE(process_exists(worker));
}

TEST(JournalTrust, AStopThatAStoppedWorkerCannotCarryOutIsCarriedOutByRunner) {
  TempDir t;
  make_dirs(t);
  RunnerProcess runner(
      with_child({"2", "2", "--grace", "1s"}, {"--record", (t / "record").string(), "--ready-dir",
                                               (t / "ready").string(), "--sleep-ms", "30000"}),
      t.path());
  ASSERT_TRUE(wait_until(t / "ready", [&] { return ready(t, 2); }));
  auto worker = worker_of(runner.pid());
  ASSERT_GT(worker, 0);
  ::kill(worker, SIGSTOP);
  runner.signal(SIGTERM);
  EXPECT_EQ(runner.wait(), 128 + SIGTERM) << runner.err();
  EXPECT_EQ(query(t / "runner.db", "SELECT count(*) FROM attempts WHERE state = 'interrupted'"),
            "2");
  EXPECT_TRUE(counted(t / "record", "end").empty()) << "a cluster ran to its end";
  EXPECT_FALSE(process_exists(worker));
}

TEST(JournalTrust, AGarbageLineFromTheWorkerReplacesTheWorkerAndTheRunGoesOn) {
  TempDir t;
  make_dirs(t);
  RunnerProcess runner(with_child({"3", "3", "--job", "j"}, held_child(t)), t.path());
  ASSERT_TRUE(wait_until(t / "ready", [&] { return ready(t, 3); }));
  ASSERT_TRUE(wait_for_running(t.path(), 3));
  auto worker = worker_of(runner.pid());
  ASSERT_GT(worker, 0);
  {
    // The worker's own pipe to runner, opened through /proc.
    std::ofstream pipe("/proc/" + std::to_string(worker) + "/fd/1");
    pipe << "e\tnot a number\n" << std::flush;
  }
  ASSERT_TRUE(wait_until(t.path(), [&] {
    return runner.err().find("said what runner cannot read") != std::string::npos;
  }));
  release(t);
  EXPECT_EQ(runner.wait(), 0) << runner.err();
  EXPECT_EQ(query(t / "runner.db", "SELECT done FROM progress"), "3");
  EXPECT_FALSE(fs::exists(t / "locks" / "overlaps"));
  EXPECT_FALSE(process_exists(worker));
}

TEST(JournalTrust, ClustersThatEndAfterTheirWorkerDiedAreRecordedAsTheyEnded) {
  TempDir t;
  make_dirs(t);
  RunnerProcess runner(with_child({"3", "3", "--job", "j"}, held_child(t)), t.path());
  ASSERT_TRUE(wait_until(t / "ready", [&] { return ready(t, 3); }));
  ASSERT_TRUE(wait_for_running(t.path(), 3));
  auto worker = worker_of(runner.pid());
  ASSERT_GT(worker, 0);
  // runner is stopped while its worker dies and the clusters end: they are
  // runner's children then, and wait for it as zombies beside the worker's.
  runner.signal(SIGSTOP);
  ::kill(worker, SIGKILL);
  release(t);
  auto zombies_of_runner = [&] {
    std::ifstream children("/proc/" + std::to_string(runner.pid()) + "/task/" +
                           std::to_string(runner.pid()) + "/children");
    int n = 0;
    for (pid_t pid; children >> pid;)
      if (pid != worker &&
          read_file("/proc/" + std::to_string(pid) + "/stat").find(") Z ") != std::string::npos)
        ++n;
    return n;
  };
  ASSERT_TRUE(wait_until(t.path(), [&] { return zombies_of_runner() == 3; }));
  runner.signal(SIGCONT);
  EXPECT_EQ(runner.wait(), 0) << runner.err();
  EXPECT_EQ(query(t / "runner.db",
                  "SELECT count(*) FROM attempts WHERE attempt = 1 AND "
                  "state = 'done' AND exit_code = 0"),
            "3");
  EXPECT_EQ(query(t / "runner.db", "SELECT count(*) FROM attempts"), "3");
}

TEST(JournalTrust, ARunThatStartsNothingLeavesNoJournal) {
  TempDir t;
  auto args = Args{"2", "2", "--job", "j", "--", "true"};
  EXPECT_EQ(run_runner(args, t.path()).code, 0);
  EXPECT_EQ(run_runner(args, t.path()).code, 0);
  EXPECT_TRUE(fs::is_empty(journal_folder(t / "runner.logs", "j")));
}

// A start the worker journalled that did not happen (the program could not
// be executed: its interpreter is missing, so the run stops at once) is
// said in the journal too: the run leaves no journal behind, and the next
// run records no attempt of it as one that ran and was interrupted.
TEST(JournalTrust, AStartThatDidNotHappenLeavesNoJournalAndNoAttemptThatNeverRan) {
  TempDir t;
  auto script = t / "no-interpreter.sh";
  std::ofstream(script.string()) << "#!/nonexistent/interpreter\n";
  fs::permissions(script, fs::perms::owner_all);
  auto args = Args{"2", "1", "--job", "j", "--", script.string()};
  for (int run = 1; run <= 2; ++run) {
    auto r = run_runner(args, t.path());
    EXPECT_EQ(r.code, 2) << r.err;
    EXPECT_NE(r.err.find("cannot execute"), std::string::npos) << r.err;
    EXPECT_TRUE(fs::is_empty(journal_folder(t / "runner.logs", "j"))) << "run " << run;
  }
  EXPECT_EQ(query(t / "runner.db",
                  "SELECT group_concat(cluster || '.' || attempt || ' ' || state, ', ') FROM "
                  "(SELECT * FROM attempts ORDER BY cluster, attempt)"),
            "1.1 failed, 1.2 failed");
}

// The files runner writes whole (--metrics, report --html, the --on-finish
// summary) through links planted where they go: at the path itself, and at
// the temporary name runner used to take (the path, its pid, ".tmp"; the
// shell plants it, then becomes runner with that pid). Neither link's
// target is written; each path ends up a file of runner's own.
TEST(JournalTrust, LinksPlantedWhereRunnerWritesWholeFilesAreNotWrittenThrough) {
  TempDir t;
  auto logs = t / "logs";
  fs::create_directories(logs / "j");
  std::vector<fs::path> paths{t / "metrics.prom", t / "page.html", logs / "j" / "finish.txt"};
  auto victim = [&](const fs::path& p, const char* why) {
    return t / (p.filename().string() + "." + why + ".victim");
  };
  std::string plant;
  for (const auto& p : paths) {
    std::ofstream(victim(p, "path").string()) << "victim";
    std::ofstream(victim(p, "tmp").string()) << "victim";
    fs::create_symlink(victim(p, "path"), p);
    plant += "ln -s '" + victim(p, "tmp").string() + "' '" + p.string() + ".'$$'.tmp'; ";
  }
  auto r = run_shell(plant + "exec " + runner_bin() +
                         " 2 2 --job j --logs logs --metrics metrics.prom --on-finish true -- true",
                     t.path());
  EXPECT_EQ(r.code, 0) << r.err;
  r = run_shell(plant + "exec " + runner_bin() + " report --job j --html page.html", t.path());
  EXPECT_EQ(r.code, 0) << r.err;
  for (const auto& p : paths) {
    EXPECT_EQ(read_file(victim(p, "path")), "victim") << p;
    EXPECT_EQ(read_file(victim(p, "tmp")), "victim") << p;
    EXPECT_TRUE(fs::is_regular_file(fs::symlink_status(p))) << p;
    EXPECT_GT(fs::file_size(p), 0u) << p;
  }
}

TEST(JournalTrust, AJournalOfANewerRunnerIsNotLostToAnOlderOne) {
  TempDir t;
  auto args = Args{"2", "2", "--job", "j", "--", "true"};
  ASSERT_EQ(run_runner(args, t.path()).code, 0);
  SQLite::Database db((t / "runner.db").string(), SQLite::OPEN_READONLY);
  auto run = db.execAndGet("SELECT name FROM run").getString();
  auto dir = journal_folder(t / "runner.logs", "j");
  auto lock = dir / (run + "@n1.lock");
  std::ofstream(lock.string()) << lock_line(t, run + "@n1", kWireVersion + 1,
                                            {1, "elsewhere", "boot", 1});
  auto r = run_runner(Args{"3", "2", "--job", "k", "--", "true"}, t.path());
  EXPECT_EQ(r.code, 0) << "another job's folder is not this one's";
  r = run_runner(args, t.path());
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("was written by a newer runner (journal version " +
                       std::to_string(kWireVersion + 1)),
            std::string::npos)
      << r.err;
  EXPECT_TRUE(fs::exists(lock));
}

TEST(JournalTrust, PathsAndArgumentsThatAreNotUtf8AreCarriedAsBytes) {
  TempDir t;
  auto folder = t / "caf\xe9";
  fs::create_directory(folder);
  auto r = run_runner({"2", "2", "--", "sh", "-c", "exit 0", "arg-\xff"}, folder);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(query(folder / "runner.db", "SELECT done FROM progress"), "2");
  auto status = run_runner({"status", "--json"}, folder);
  EXPECT_EQ(status.code, 0) << status.err;
  auto parsed = nlohmann::json::parse(status.out, nullptr, false);
  ASSERT_FALSE(parsed.is_discarded()) << status.out;
  EXPECT_NE(parsed.at(0).at("command").get<std::string>().find("arg-\\xff"), std::string::npos)
      << status.out;
  auto report = run_runner({"report", "--json"}, folder);
  EXPECT_EQ(report.code, 0) << report.err;
  EXPECT_FALSE(nlohmann::json::parse(report.out, nullptr, false).is_discarded()) << report.out;
}

}  // namespace
}  // namespace runner::testing
