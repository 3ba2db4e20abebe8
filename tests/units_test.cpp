#include "runner/units.h"

#include <gtest/gtest.h>

#include "runner/json_text.h"

namespace runner {
namespace {

using std::chrono::milliseconds;

TEST(Units, ParsesDurationsAsPeopleWriteThem) {
  EXPECT_EQ(parse_duration("90s"), milliseconds(90'000));
  EXPECT_EQ(parse_duration("5m"), milliseconds(300'000));
  EXPECT_EQ(parse_duration("2h"), milliseconds(7'200'000));
  EXPECT_EQ(parse_duration("1h30m"), milliseconds(5'400'000));
  EXPECT_EQ(parse_duration("250ms"), milliseconds(250));
  EXPECT_EQ(parse_duration("1.5s"), milliseconds(1'500));
  EXPECT_EQ(parse_duration("10"), milliseconds(10'000));
  EXPECT_EQ(parse_duration("1d"), milliseconds(86'400'000));
  EXPECT_EQ(parse_duration("1h30m15s"), milliseconds(5'415'000));
}

TEST(Units, RejectsBadDurations) {
  for (const char* bad :
       {"", "s", "-5s", "5x", "5 s", "1h30", "abc", ".", "5s5", "3s3s", "30m1h", "1m1m"})
    EXPECT_FALSE(parse_duration(bad).has_value()) << bad;
}

TEST(Units, ParsesSizesInBinaryUnits) {
  EXPECT_EQ(parse_size("512M"), 512ULL << 20);
  EXPECT_EQ(parse_size("4G"), 4ULL << 30);
  EXPECT_EQ(parse_size("4GiB"), 4ULL << 30);
  EXPECT_EQ(parse_size("4gb"), 4ULL << 30);
  EXPECT_EQ(parse_size("1.5G"), 3ULL << 29);
  EXPECT_EQ(parse_size("100K"), 102'400ULL);
  EXPECT_EQ(parse_size("4096"), 4096ULL);
  for (const char* bad : {"", "G", "-1G", "4X", "4 G", "1e3"})
    EXPECT_FALSE(parse_size(bad).has_value()) << bad;
}

TEST(Units, CountsAreDigitsOnlyAndInRange) {
  EXPECT_EQ(parse_count("10000", 1, 100000), 10000u);
  EXPECT_FALSE(parse_count("0", 1, 10));
  EXPECT_FALSE(parse_count("11", 1, 10));
  EXPECT_FALSE(parse_count("-1", 1, 10));
  EXPECT_FALSE(parse_count("+1", 1, 10));
  EXPECT_FALSE(parse_count("1e3", 1, 10000));
  EXPECT_FALSE(parse_count(" 1", 1, 10));
  EXPECT_FALSE(parse_count("99999999999999999999", 1, UINT64_MAX));
}

TEST(Units, FormatsForPeople) {
  EXPECT_EQ(format_duration(milliseconds(4'200)), "4.2s");
  EXPECT_EQ(format_duration(milliseconds(185'000)), "3m05s");
  EXPECT_EQ(format_duration(milliseconds(3'720'000)), "1h02m");
  EXPECT_EQ(format_size_kib(512), "512 KiB");
  EXPECT_EQ(format_size_kib(4ULL << 20), "4.0 GiB");
}

TEST(Units, PrintableTextCannotDriveATerminal) {
  EXPECT_EQ(printable("./migrate --cluster="), "./migrate --cluster=");
  EXPECT_EQ(printable("a\nb\tc\rd"), "a\\nb\\tc\\rd");
  EXPECT_EQ(printable("\x1b[2J\x1b]0;owned\x07"), "\\x1b[2J\\x1b]0;owned\\x07");
  EXPECT_EQ(printable("\x7f"), "\\x7f");
  EXPECT_EQ(printable("\xc2\x9b"
                      "31m"),
            "\\u009b31m");
  EXPECT_EQ(printable("caf\xc3\xa9 \xe2\x9c\x93"), "caf\xc3\xa9 \xe2\x9c\x93");  // UTF-8 stays
}

}  // namespace
}  // namespace runner

namespace runner {
namespace {

TEST(Units, BytesThatAreNotUtf8AreEscapedForJsonAndTheRestKept) {
  EXPECT_EQ(valid_utf8("caf\xc3\xa9"), "caf\xc3\xa9");
  EXPECT_EQ(valid_utf8("caf\xe9"), "caf\\xe9");
  EXPECT_EQ(valid_utf8("\xff--\xf0\x9f\x99\x82"), "\\xff--\xf0\x9f\x99\x82");
  // Overlong forms and surrogates are not UTF-8 either.
  EXPECT_EQ(valid_utf8("\xc0\xaf"), "\\xc0\\xaf");
  EXPECT_EQ(valid_utf8("\xed\xa0\x80"), "\\xed\\xa0\\x80");
  auto text = json_text(nlohmann::json{{"command", "./x \xff"}, {"caf\xe9", 1}}, -1);
  EXPECT_EQ(text, "{\"caf\\\\xe9\":1,\"command\":\"./x \\\\xff\"}");
}

}  // namespace
}  // namespace runner
