#include "runner/ssh_planner.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "runner/error.h"

namespace runner {
namespace {

TEST(SshHosts, AFileHasOneHostALineWithCommentsAndBlankLinesSkipped) {
  std::string dir = (std::filesystem::temp_directory_path() / "runner-hosts-XXXXXX").string();
  ASSERT_TRUE(::mkdtemp(dir.data()));
  auto path = std::filesystem::path(dir) / "hosts.txt";
  std::ofstream(path) << "# the fleet\n8/db1 16G\n\n  deploy@db3:2222 4G  # small\ndb2\n";
  auto hosts = read_hosts(path.string());
  std::filesystem::remove_all(dir);
  ASSERT_EQ(hosts.size(), 3u);
  EXPECT_EQ(hosts[0].name, "db1");
  EXPECT_EQ(hosts[0].slots, 8u);
  EXPECT_EQ(hosts[0].budget, 16ULL << 30);
  EXPECT_EQ(hosts[1].name, "deploy@db3:2222");
  EXPECT_EQ(hosts[1].destination, "deploy@db3");
  EXPECT_EQ(hosts[1].port, 2222);
  EXPECT_EQ(hosts[1].budget, 4ULL << 30);
  EXPECT_FALSE(hosts[2].slots);
  EXPECT_FALSE(hosts[2].budget);
}

TEST(SshHosts, TheUsersSshWordsComeFirstSoTheirOptionsWin) {
  auto host = parse_host("deploy@db3:2222", "--hosts");
  auto argv = ssh_argv(ssh_words("ssh -F cfg  -o ConnectTimeout=3"), host, "true");
  std::vector<std::string> expected = {"ssh",
                                       "-F",
                                       "cfg",
                                       "-o",
                                       "ConnectTimeout=3",
                                       "-o",
                                       "BatchMode=yes",
                                       "-o",
                                       "ConnectTimeout=10",
                                       "-p",
                                       "2222",
                                       "--",
                                       "deploy@db3",
                                       "true"};
  EXPECT_EQ(argv, expected);
  EXPECT_EQ(shell_quote("it's"), "'it'\\''s'");
}

}  // namespace
}  // namespace runner
