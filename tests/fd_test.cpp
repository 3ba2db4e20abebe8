// write_whole: a reader sees the whole file or none of it, and a link planted
// where runner writes (it often runs as root) is never written through.
#include "runner/fd.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

namespace runner {
namespace {

namespace fs = std::filesystem;

class WriteWhole : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/runner-fd-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string read(const fs::path& p) {
    std::ifstream in(p);
    return std::string((std::istreambuf_iterator<char>(in)), {});
  }
  fs::path dir_;
};

TEST_F(WriteWhole, ALinkAtThePathIsReplacedNotFollowed) {
  std::ofstream(dir_ / "victim") << "keep";
  fs::create_symlink(dir_ / "victim", dir_ / "metrics.prom");
  write_whole(dir_ / "metrics.prom", "figures\n");
  EXPECT_EQ(read(dir_ / "victim"), "keep");
  EXPECT_FALSE(fs::is_symlink(dir_ / "metrics.prom"));
  EXPECT_EQ(read(dir_ / "metrics.prom"), "figures\n");
}

TEST_F(WriteWhole, ALinkPlantedUnderTheOldTemporaryNameIsNotWrittenThrough) {
  std::ofstream(dir_ / "victim") << "keep";
  auto old_name = dir_ / ("finish.txt." + std::to_string(::getpid()) + ".tmp");
  fs::create_symlink(dir_ / "victim", old_name);
  write_whole(dir_ / "finish.txt", "how the night went\n");
  EXPECT_EQ(read(dir_ / "victim"), "keep");
  EXPECT_EQ(read(dir_ / "finish.txt"), "how the night went\n");
  // Nothing of its own is left beside it: the planted link and the files.
  std::size_t n = 0;
  for (const auto& e : fs::directory_iterator(dir_)) n += e.path() != old_name;
  EXPECT_EQ(n, 2u);
}

TEST_F(WriteWhole, AFolderThatCannotBeWrittenThrowsAndLeavesNothing) {
  EXPECT_THROW(write_whole(dir_ / "no-such-folder" / "x", "y"), std::system_error);
}

}  // namespace
}  // namespace runner
