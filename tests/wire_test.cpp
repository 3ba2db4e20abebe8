// The wire and the journal's lines: what is written reads back the same, and
// what no runner wrote is refused with a WireError rather than believed or
// crashed on. And the judgement of a journal line against the log.
#include "runner/wire.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <fstream>
#include <limits>

#include "runner/collect.h"
#include "runner/journal.h"
#include "runner/spawn.h"
#include "store_fixture.h"

namespace runner {
namespace {

JournalEntry an_end() {
  JournalEntry e;
  e.job = "nightly";
  e.cluster = 3;
  e.attempt = 2;
  e.started = AttemptStarted{0, {"n1", 4242}, "/logs/caf\xe9/3.2.log", 1700000000.25, "cgroup-v2"};
  e.mem_limit_kib = 65536;
  Outcome o;
  o.exit_code = 0;
  o.finished_at = 1700000001.5;
  o.rss_peak_kib = 1234;
  o.memory_note = "tab\there, newline\nhere, backslash \\ here";
  e.outcome = o;
  return e;
}

TEST(Wire, AJournalLineReadsBackAsItWasWrittenBytesAndAll) {
  auto line = encode_journal(an_end(), 7);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  auto back = decode_journal(Fields(line), kWireVersion);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->cluster, 3u);
  EXPECT_EQ(back->attempt, 2u);
  EXPECT_EQ(back->started.log_path, "/logs/caf\xe9/3.2.log");
  EXPECT_EQ(back->outcome->memory_note, an_end().outcome->memory_note);
  EXPECT_EQ(back->outcome->rss_peak_kib, 1234u);
}

TEST(Wire, AStartLineHasNoOutcomeAndALineCutShortIsNoEntry) {
  auto start = an_end();
  start.outcome.reset();
  auto back = decode_journal(Fields(encode_journal(start, 1)), kWireVersion);
  ASSERT_TRUE(back);
  EXPECT_FALSE(back->outcome);
  auto line = encode_journal(an_end(), 7);
  EXPECT_FALSE(decode_journal(Fields(line.substr(0, line.size() / 2)), kWireVersion));
}

TEST(Wire, AStartThatDidNotHappenReadsBackAsSuchAndNotAsAStartOrAnEnd) {
  auto e = an_end();
  e.outcome.reset();
  e.not_started = true;
  auto line = encode_journal(e, 9);
  EXPECT_EQ(line.front(), 'N');
  auto back = decode_journal(Fields(line), kWireVersion);
  ASSERT_TRUE(back);
  EXPECT_TRUE(back->not_started);
  EXPECT_FALSE(back->outcome);
  EXPECT_EQ(back->job, "nightly");
  EXPECT_EQ(back->cluster, 3u);
  EXPECT_EQ(back->attempt, 2u);
  // A version-3 journal has no such line: it is not runner's there.
  EXPECT_THROW(decode_journal(Fields(line), 3), WireError);
}

TEST(Wire, NumbersNoAttemptCanHaveAreRefused) {
  // A version-2 line: its outcome has no wrote_nothing.
  auto with = [](const std::string& cluster, const std::string& attempt) {
    return "J\t1\tj\t" + cluster + "\t" + attempt + "\t-\t-\th\t1\t/x\t1.5\tnone" +
           "\t0\t-\t2.5\t0\t0\t1\t-\tnone\t\t0\t\t";
  };
  EXPECT_TRUE(decode_journal(Fields(with("3", "1")), 2));
  EXPECT_THROW(decode_journal(Fields(with("3", "0")), 2), WireError);
  EXPECT_THROW(decode_journal(Fields(with("3", "4294967296")), 2), WireError);
  EXPECT_THROW(decode_journal(Fields(with("18446744073709551616", "1")), 2), WireError);
  EXPECT_THROW(decode_journal(Fields(with("-3", "1")), 2), WireError);
  EXPECT_THROW(decode_journal(Fields(with("3x", "1")), 2), WireError);
  EXPECT_THROW(decode_journal(Fields("this is not a journal line"), kWireVersion), WireError);
}

TEST(Wire, EveryEventReadsBackAndGarbageIsAWireErrorNotACrash) {
  std::optional<std::uint64_t> seq;
  auto started = decode_event(
      Fields(encode_event(AttemptStarted{5, {"h", 77}, "/l", 1.5, "none"}, std::nullopt)), seq);
  EXPECT_EQ(std::get<AttemptStarted>(started).where.process, 77);
  EXPECT_FALSE(seq);
  AttemptEnded ended{6, {}};
  ended.outcome.killed_by = 9;
  auto back = decode_event(Fields(encode_event(ended, 12)), seq);
  EXPECT_EQ(std::get<AttemptEnded>(back).outcome.killed_by, 9);
  EXPECT_EQ(seq, 12u);
  for (const char* garbage :
       {"e\tnot a number", "s\t1", "e", "x\t1\t2", "n\t1\tno-such-why\ta\tb\tc\t-"})
    EXPECT_THROW(decode_event(Fields(garbage), seq), WireError) << garbage;
}

TEST(Wire, TheConfigCarriesItsVersionAndBytesThatAreNotUtf8) {
  WorkerConfig c;
  c.run = "12-34";
  c.journal_dir = "/srv/caf\xe9/.journal";
  c.db_id = "abc";
  c.job = "j";
  c.job_key = "k";
  c.blocked = {2, 15};
  c.run_limit = 1ULL << 40;
  auto back = decode_config(Fields(encode_config(c)));
  EXPECT_EQ(back.journal_dir, c.journal_dir);
  EXPECT_EQ(back.blocked, c.blocked);
  EXPECT_EQ(back.run_limit, c.run_limit);
  EXPECT_EQ(back.log_format, LogFormat::kFiles);
  auto other = encode_config(c);
  other.replace(2, 1, "9");  // "W\t3..." becomes version 9
  EXPECT_THROW(decode_config(Fields(other)), WireError);
}

// The log format is the config's last fixed field: a runner and a worker of
// versions either side of it refuse each other by the version, clearly.
TEST(Wire, TheConfigCarriesTheLogFormatAndAVersionTwoConfigIsRefusedByItsVersion) {
  WorkerConfig c;
  c.log_format = LogFormat::kStream;
  c.allocation = "812";
  c.db_path = "/data/runner.db";
  c.blocked = {2};
  auto line = encode_config(c);
  EXPECT_EQ(decode_config(Fields(line)).log_format, LogFormat::kStream);
  EXPECT_EQ(decode_config(Fields(line)).allocation, "812");
  EXPECT_EQ(decode_config(Fields(line)).db_path, "/data/runner.db");
  EXPECT_EQ(decode_config(Fields(line)).blocked, c.blocked);
  auto older = line;
  older.replace(2, 1, "2");
  try {
    decode_config(Fields(older));
    FAIL() << "a version-2 config was read";
  } catch (const WireError& e) {
    EXPECT_EQ(std::string(e.what()), "runner speaks version 2 of the worker's wire, this worker " +
                                         std::to_string(kWireVersion));
  }
  auto bad = line;
  bad.replace(bad.find("\tstream"), 7, "\tstrea");
  EXPECT_THROW(decode_config(Fields(bad)), WireError);
}

TEST(Wire, AnOutcomeSaysWhetherTheAttemptWroteNothingAndAVersionTwoOneDidNotSay) {
  auto e = an_end();
  e.outcome->wrote_nothing = true;
  auto back = decode_journal(Fields(encode_journal(e, 1)), kWireVersion);
  ASSERT_TRUE(back && back->outcome);
  EXPECT_TRUE(back->outcome->wrote_nothing);
  std::optional<std::uint64_t> seq;
  auto event = decode_event(Fields(encode_event(AttemptEnded{5, *e.outcome}, 9)), seq);
  EXPECT_TRUE(std::get<AttemptEnded>(event).outcome.wrote_nothing);
  EXPECT_EQ(seq, 9u);
  // A version-2 journal's end: one field fewer, read as having written.
  auto line = encode_journal(an_end(), 1);
  line.erase(line.rfind('\t'));
  back = decode_journal(Fields(line), 2);
  ASSERT_TRUE(back && back->outcome);
  EXPECT_FALSE(back->outcome->wrote_nothing);
  EXPECT_FALSE(decode_journal(Fields(line), kWireVersion)) << "cut short in version 3 and later";
}

TEST(Wire, ALockFileNamesItsJournalAndItsWorker) {
  JournalHeader h{kWireVersion, "db", "job", "key", "1-2@n1"};
  ProcessIdentity w{42, "host", "boot", 99};
  auto back = decode_lock(encode_lock(h, w) + "\n");
  ASSERT_TRUE(back);
  EXPECT_EQ(back->header->worker, "1-2@n1");
  EXPECT_EQ(back->worker.start_ticks, 99u);
  EXPECT_FALSE(decode_lock("{\"pid\": 1}"));
  EXPECT_FALSE(decode_lock(""));
}

// A worker's journal in a folder of the test's own, written and read back
// as the worker writes one and runner reads it.
class Collect : public StoreFixture {
 protected:
  void write_journal(const std::vector<JournalEntry>& lines) {
    JournalWriter writer(dir_ / "journal",
                         JournalHeader{kWireVersion, "db", "nightly", "key", "run1"}, false);
    for (const auto& e : lines) writer.add(e);
    writer.flush();
  }
  std::vector<JournalEntry> read_journal(std::size_t& garbled) {
    JournalOwner owner{"db", "nightly", "key", [](const std::string& run) { return run == "run1"; },
                       std::nullopt};
    std::vector<std::string> ignored;
    auto journals = RunJournal::find(dir_ / "journal", owner, ignored);
    EXPECT_EQ(journals.size(), 1u);
    return journals.empty() ? std::vector<JournalEntry>{} : journals.front().read(garbled);
  }
  std::vector<JournalEntry> through_journal(const std::vector<JournalEntry>& lines) {
    write_journal(lines);
    std::size_t garbled = 0;
    return read_journal(garbled);
  }
};

// A start its worker journalled and then said did not happen leaves no
// attempt; a start whose end no journal told is recorded as started.
TEST_F(Collect, AJournalledStartItsWorkerSaidDidNotHappenIsNotRecorded) {
  auto job = store_->open_job("nightly", 10, "cmd");
  auto start = [](ClusterId c) {
    auto e = an_end();
    e.cluster = c;
    e.attempt = 1;
    e.outcome.reset();
    return e;
  };
  auto never = start(3);
  never.not_started = true;
  auto collected =
      record_journal_entries(*store_, job, through_journal({start(2), start(3), never}), 0);
  EXPECT_EQ(collected.started, 1u);
  EXPECT_EQ(collected.refused, 0u);
  EXPECT_TRUE(store_->find_attempt(job, 2, 1));
  EXPECT_FALSE(store_->find_attempt(job, 3, 1));
}

// An attempt that did not start is handed out again with the same number
// (a cancelled start goes back to the queue): its second start and its end
// are recorded, the first start and the line that took it back are not.
TEST_F(Collect, AnAttemptThatStartsAfterItsNumberWasTakenBackIsRecorded) {
  auto job = store_->open_job("nightly", 10, "cmd");
  auto start = an_end();
  start.cluster = 4;
  start.attempt = 1;
  start.outcome.reset();
  auto never = start;
  never.not_started = true;
  auto end = an_end();
  end.cluster = 4;
  end.attempt = 1;
  auto collected =
      record_journal_entries(*store_, job, through_journal({start, never, start, end}), 0);
  EXPECT_EQ(collected.attempts, 1u);
  EXPECT_EQ(collected.done, 1u);
  auto row = store_->find_attempt(job, 4, 1);
  ASSERT_TRUE(row);
  EXPECT_EQ(row->state, AttemptState::kDone);
}

// A journal's last line without its newline was cut short by a crash: it is
// no entry, even where what is left reads as one ('N' for attempt 12 of
// cluster 3 cut to attempt 1 would take back attempt 1's start).
TEST_F(Collect, ALastLineCutShortIsNoEntryEvenWhereWhatIsLeftReadsAsOne) {
  auto start = an_end();
  start.outcome.reset();
  write_journal({start, an_end()});
  std::ofstream(dir_ / "journal" / "run1.1.journal", std::ios::app) << "N\t3\tnightly\t3\t2";
  std::size_t garbled = 0;
  auto entries = read_journal(garbled);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_FALSE(entries[0].not_started || entries[1].not_started);
  EXPECT_TRUE(entries[1].outcome);
  EXPECT_EQ(garbled, 0u);
}

// A starting process writes the line that names it into the journal before
// it execs: the start before it reads back with its pid, so a runner whose
// worker died before telling the start still knows which process is whose.
// A cut line naming a process is no entry.
TEST_F(Collect, AStartingProcessNamesItselfAndItsStartReadsBackWithItsPid) {
  JournalHeader header{kWireVersion, "db", "nightly", "key", "run1"};
  pid_t pid = -1;
  {
    JournalWriter writer(dir_ / "journal", header, false);
    auto start = an_end();
    start.cluster = 7;
    start.attempt = 2;
    start.outcome.reset();
    start.started.where.process = 0;
    writer.add(start);
    writer.flush();
    auto note = writer.process_note("nightly", 7, 2);
    std::vector<std::string> argv{"true"};
    SpawnRequest request{"/bin/true", &argv, nullptr, 2, 0, nullptr};
    request.note = &note;
    auto spawned = spawn_child(request);
    ASSERT_EQ(spawned.error, 0);
    pid = spawned.pid;
    ::waitpid(pid, nullptr, 0);
  }
  std::ofstream(dir_ / "journal" / "run1.1.journal", std::ios::app) << "S\t0\tnightly\t7\t2\t12";
  std::size_t garbled = 0;
  auto entries = read_journal(garbled);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].cluster, 7u);
  EXPECT_EQ(entries[0].started.where.process, pid);
  EXPECT_FALSE(entries[0].outcome);
  EXPECT_EQ(garbled, 0u);
}

TEST(JudgeLine, OnlyAttemptsTheLogStartedOrThatContinueItsClusterAreApplied) {
  Job job{1, "j", 10, "cmd"};
  auto line = [](ClusterId c, std::uint32_t a, bool end, bool start_before = true) {
    JournalEntry e;
    e.job = "j";
    e.cluster = c;
    e.attempt = a;
    e.started = AttemptStarted{0, {"h", 500}, "/l", 100.0, "none"};
    if (end) e.outcome = Outcome{};
    e.start_journalled = start_before;
    return e;
  };
  Store::AttemptRow running{1, AttemptState::kRunning, std::nullopt, std::nullopt, 500, 100.5};
  Store::AttemptRow done = running;
  done.state = AttemptState::kDone;
  auto is = [](const LineVerdict& v) {
    return std::holds_alternative<Apply>(v)     ? std::string("apply")
           : std::holds_alternative<Already>(v) ? std::string("already")
                                                : "refuse: " + std::get<Refuse>(v).why;
  };
  EXPECT_EQ(is(judge_line(job, line(3, 1, true), running, 0)), "apply");
  EXPECT_EQ(is(judge_line(job, line(3, 1, true), done, 0)), "already");
  EXPECT_EQ(is(judge_line(job, line(3, 2, false), std::nullopt, 2)), "apply");
  EXPECT_EQ(is(judge_line(job, line(3, 2, true), std::nullopt, 2)), "apply");
  EXPECT_EQ(is(judge_line(job, line(11, 1, true), std::nullopt, 1)),
            "refuse: cluster 11 is not one of the job's 1 to 10");
  EXPECT_EQ(is(judge_line(job, line(0, 1, true), std::nullopt, 1)),
            "refuse: cluster 0 is not one of the job's 1 to 10");
  EXPECT_EQ(is(judge_line(job, line(3, 5, true), std::nullopt, 2)),
            "refuse: attempt 5 of cluster 3 does not follow the log's attempts (the next is 2)");
  EXPECT_EQ(is(judge_line(job, line(9, 1, true, false), std::nullopt, 1)),
            "refuse: cluster 9 attempt 1 ends with no start before it");
  auto other = running;
  other.pid = 501;
  EXPECT_EQ(is(judge_line(job, line(3, 1, true), other, 0)),
            "refuse: cluster 3 attempt 1 was not started as the log says (pid 500)");
  auto elsewhere = line(3, 1, true);
  elsewhere.job = "k";
  EXPECT_EQ(is(judge_line(job, elsewhere, running, 0)), "refuse: it names job 'k'");
}

}  // namespace
}  // namespace runner
