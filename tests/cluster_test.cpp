#include "runner/cluster.h"

#include <gtest/gtest.h>

#include <cstdio>

namespace runner {
namespace {

using V = std::vector<std::string>;

TEST(CommandTemplate, AppendsToALastArgumentEndingWithEquals) {
  CommandTemplate t({"./migrate", "--cluster="});
  EXPECT_EQ(t.render(3, 10000), (V{"./migrate", "--cluster=3/10000"}));
}

TEST(CommandTemplate, AddsASeparateLastArgumentOtherwise) {
  EXPECT_EQ(CommandTemplate({"./migrate", "-v"}).render(3, 10), (V{"./migrate", "-v", "3/10"}));
  // The program name itself never takes the token, even if it ends with '='.
  EXPECT_EQ(CommandTemplate({"odd="}).render(1, 2), (V{"odd=", "1/2"}));
}

TEST(CommandTemplate, PlaceholdersOverrideAppending) {
  CommandTemplate t({"etl", "--part={i}", "--of={n}", "{}", "--x="});
  EXPECT_EQ(t.render(7, 9), (V{"etl", "--part=7", "--of=9", "7/9", "--x="}));
  EXPECT_EQ(CommandTemplate({"a", "{i}{i}-{n}"}).render(2, 5), (V{"a", "22-5"}));
  EXPECT_EQ(CommandTemplate({"a", "{x}", "{"}).render(2, 5), (V{"a", "{x}", "{", "2/5"}));
}

TEST(ShellQuote, QuotesOnlyWhatNeedsIt) {
  EXPECT_EQ(shell_quote("--cluster="), "--cluster=");
  EXPECT_EQ(shell_quote(""), "''");
  EXPECT_EQ(shell_quote("a b"), "'a b'");
  EXPECT_EQ(shell_quote("it's"), "'it'\\''s'");
  EXPECT_EQ(shell_quote("$HOME"), "'$HOME'");
}

TEST(ShellQuote, ShReadsItBackUnchanged) {
  for (std::string arg : {"plain", "a b", "it's", "$HOME `x` \"q\"", "tab\there", "*?[]"}) {
    auto cmd = "printf %s " + shell_quote(arg);
    FILE* p = ::popen(cmd.c_str(), "r");
    ASSERT_NE(p, nullptr);
    std::string out;
    char buf[256];
    while (auto n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
    ::pclose(p);
    EXPECT_EQ(out, arg);
  }
}

TEST(JobName, IsStableAndTellsCommandsAndSizesApart) {
  CommandTemplate a({"./migrate", "--cluster="});
  auto name = derive_job_name(a, 10000);
  EXPECT_EQ(name, derive_job_name(CommandTemplate({"./migrate", "--cluster="}), 10000));
  EXPECT_EQ(name.rfind("migrate-10000-", 0), 0u) << name;
  EXPECT_NE(name, derive_job_name(a, 10001));
  EXPECT_NE(name, derive_job_name(CommandTemplate({"./migrate", "--cluster=", "-v"}), 10000));
  // Arguments that join to the same text are still different commands.
  EXPECT_NE(derive_job_name(CommandTemplate({"x", "a b"}), 1),
            derive_job_name(CommandTemplate({"x", "a", "b"}), 1));
  EXPECT_TRUE(is_valid_job_name(name));
  EXPECT_TRUE(is_valid_job_name(derive_job_name(CommandTemplate({"/opt/my tool!"}), 3)));
  EXPECT_TRUE(is_valid_job_name(derive_job_name(CommandTemplate({"./.hidden"}), 3)));
  EXPECT_TRUE(is_valid_job_name(derive_job_name(CommandTemplate({"-x"}), 3)));
}

TEST(JobName, ValidNamesAreSafeFolderNames) {
  EXPECT_TRUE(is_valid_job_name("nightly-2026.11_a"));
  for (const char* bad : {"", ".", "..", "a/b", "a b", "ä", "...", ".hidden", "-x", "--job"})
    EXPECT_FALSE(is_valid_job_name(bad)) << bad;
  EXPECT_FALSE(is_valid_job_name(std::string(129, 'a')));
}

}  // namespace
}  // namespace runner
