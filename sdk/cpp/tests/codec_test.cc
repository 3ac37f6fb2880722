// JSON text output and the log line's timestamp.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <string>

#include "berth/detail/json_codec.h"
#include "log_line.h"

namespace berth {
namespace {

std::string Write(const auto& x) {
  std::string out;
  detail::WriteJson(out, x);
  return out;
}

TEST(JsonWriteTest, StringsAreEscaped) {
  EXPECT_EQ(Write(std::string("a\"b\\c\nd\te\x01")), R"("a\"b\\c\nd\te\u0001")");
  EXPECT_EQ(Write(std::string("héllo ✓")), "\"héllo ✓\"");
  EXPECT_EQ(Write(std::string_view("")), R"("")");
}

TEST(JsonWriteTest, DoublesAreShortAndStayFloats) {
  EXPECT_EQ(Write(0.5), "0.5");
  EXPECT_EQ(Write(3.0), "3.0");
  EXPECT_EQ(Write(-0.1), "-0.1");
  EXPECT_EQ(Write(1e21), "1e+21");
  EXPECT_EQ(Write(std::numeric_limits<double>::quiet_NaN()), "null");
  EXPECT_EQ(Write(INFINITY), "null");
}

TEST(JsonWriteTest, IntegersAndContainers) {
  EXPECT_EQ(Write(std::int64_t{-9223372036854775807 - 1}), "-9223372036854775808");
  EXPECT_EQ(Write(std::uint64_t{18446744073709551615u}), "18446744073709551615");
  EXPECT_EQ(Write(std::vector<std::optional<int>>{1, std::nullopt}), "[1,null]");
  EXPECT_EQ(Write(std::map<std::string, bool>{{"b", false}, {"a", true}}),
            R"({"a":true,"b":false})");
}

TEST(LogLineTest, TimestampIsUtcWithMilliseconds) {
  using namespace std::chrono;
  sys_time<milliseconds> t =
      sys_days{year{2026} / 12 / 1} + hours{17} + minutes{29} + seconds{2} + milliseconds{123};
  std::string out;
  sdk::AppendTimestamp(out, t);
  EXPECT_EQ(out, "2026-12-01T17:29:02.123Z");
  out.clear();
  sdk::AppendTimestamp(out, sys_days{year{2027} / 1 / 9} + milliseconds{7});
  EXPECT_EQ(out, "2027-01-09T00:00:00.007Z");
}

TEST(LogLineTest, LinesHaveTheFormatAndContinuationsAreIndented) {
  using namespace std::chrono;
  sys_time<milliseconds> t = sys_days{year{2026} / 12 / 1} + hours{17} + milliseconds{5};
  std::string out;
  sdk::AppendLogLine(out, t, "INFO", "hello", "Greeting someone with the name: Ada");
  EXPECT_EQ(out, "2026-12-01T17:00:00.005Z INFO hello: Greeting someone with the name: Ada\n");
  out.clear();
  sdk::AppendLogLine(out, t, "ERROR", "hello", "failed:\nfirst\nsecond\n");
  EXPECT_EQ(out, "2026-12-01T17:00:00.005Z ERROR hello: failed:\n  first\n  second\n");
}

}  // namespace
}  // namespace berth
