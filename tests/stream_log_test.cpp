// The stream form's files: frames and their index, written and read back.
#include "runner/stream_log.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "runner/error.h"

namespace runner {
namespace {

namespace fs = std::filesystem;

class StreamLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/runner-stream-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    dir_fd_.reset(::open(tmpl, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string read(const std::string& path, ClusterId cluster, std::uint32_t attempt) {
    std::ostringstream out;
    copy_stream_attempt({path, cluster, attempt}, out);
    return out.str();
  }

  fs::path dir_;
  Fd dir_fd_;
};

TEST_F(StreamLogTest, EachAttemptReadsBackAsItsFramesInOrder) {
  StreamWriter w(dir_fd_.get(), dir_.string(), "run");
  EXPECT_EQ(w.path(), (dir_ / "run.stream").string());
  EXPECT_EQ(w.append(1, 1, "one a\n"), 0);
  EXPECT_EQ(w.append(2, 1, "two a\n"), 0);
  EXPECT_EQ(w.append(1, 1, "one b\n"), 0);
  EXPECT_EQ(w.append(1, 2, std::string("\0bytes\xff", 7)), 0);
  EXPECT_EQ(read(w.path(), 1, 1), "one a\none b\n");
  EXPECT_EQ(read(w.path(), 2, 1), "two a\n");
  EXPECT_EQ(read(w.path(), 1, 2), std::string("\0bytes\xff", 7));
  EXPECT_EQ(read(w.path(), 3, 1), "");
}

TEST_F(StreamLogTest, ATakenNameGetsAFreshOneAndNothingIsOverwritten) {
  std::ofstream((dir_ / "run.stream").string()) << "someone else's\n";
  fs::create_symlink(dir_ / "elsewhere", dir_ / "run-2.stream.idx");
  StreamWriter w(dir_fd_.get(), dir_.string(), "run");
  EXPECT_EQ(w.path(), (dir_ / "run-3.stream").string());
  EXPECT_FALSE(fs::exists(dir_ / "run-2.stream"));
  EXPECT_FALSE(fs::exists(dir_ / "elsewhere"));
  std::ifstream in((dir_ / "run.stream").string());
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), "someone else's\n");
}

// A crash may cut the index anywhere: every whole record still reads, the
// cut one is no record.
TEST_F(StreamLogTest, AnIndexCutAtAnyByteReadsItsWholeRecords) {
  StreamWriter w(dir_fd_.get(), dir_.string(), "run");
  w.append(1, 1, "a");
  w.append(1, 1, "b");
  auto index = w.path() + ".idx";
  auto size = fs::file_size(index);
  for (auto cut = size; cut >= 16; --cut) {
    fs::resize_file(index, cut);
    auto records = (cut - 16) / 24;
    EXPECT_EQ(read(w.path(), 1, 1), std::string("ab").substr(0, records)) << cut;
  }
}

TEST_F(StreamLogTest, AnIndexThatDoesNotMatchItsStreamIsRefused) {
  StreamWriter w(dir_fd_.get(), dir_.string(), "run");
  w.append(1, 1, "abc");
  // The stream cut short: the frame the index names is not all there.
  fs::resize_file(w.path(), fs::file_size(w.path()) - 1);
  EXPECT_THROW(read(w.path(), 1, 1), Error);
  // Not a stream at all.
  std::ofstream((dir_ / "x.stream").string()) << "hello";
  std::ofstream((dir_ / "x.stream.idx").string()) << "hello";
  EXPECT_THROW(read((dir_ / "x.stream").string(), 1, 1), Error);
}

TEST_F(StreamLogTest, AStreamOfANewerVersionIsRefusedNamingIt) {
  StreamWriter w(dir_fd_.get(), dir_.string(), "run");
  {
    std::fstream f(w.path(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(8);
    f.put('\x07');
  }
  try {
    read(w.path(), 1, 1);
    FAIL() << "read a version-7 stream";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("stream version 7"), std::string::npos) << e.what();
  }
}

TEST(StreamRef, NamesAStreamsAttemptAndNothingElse) {
  auto ref = parse_stream_ref(stream_ref("/l/j#x/1-2@n1.stream", 12, 3));
  ASSERT_TRUE(ref);
  EXPECT_EQ(ref->path, "/l/j#x/1-2@n1.stream");
  EXPECT_EQ(ref->cluster, 12u);
  EXPECT_EQ(ref->attempt, 3u);
  for (const char* not_one :
       {"/l/j/3.1.log", "/l/j/a.stream", "/l/j/a.stream#3", "/l/j/a.stream#3.", "/l/j/a.stream#0.1",
        "/l/j/a.stream#3.0", "/l/j/a.stream#3.1x", "/l/j/a.log#3.1", "/l/j/a.stream#-3.1"})
    EXPECT_FALSE(parse_stream_ref(not_one)) << not_one;
}

TEST(LogFormatWords, AreStreamAndFiles) {
  EXPECT_EQ(parse_log_format("stream"), LogFormat::kStream);
  EXPECT_EQ(parse_log_format("files"), LogFormat::kFiles);
  EXPECT_FALSE(parse_log_format("Stream"));
  EXPECT_FALSE(parse_log_format(""));
  EXPECT_STREQ(to_string(LogFormat::kStream), "stream");
}

}  // namespace
}  // namespace runner
