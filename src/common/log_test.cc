#include "common/log.h"

#include <gtest/gtest.h>

namespace berth {
namespace {

TEST(LogTest, FormatsLogfmtWithQuotingOnlyWhereNeeded) {
  std::string line = FormatLogLine("2026-11-22T07:40:00.123Z", LogLevel::kInfo, "listening",
                                   {{"addr", "127.0.0.1:8080"}, {"note", "two words"}});
  EXPECT_EQ(line,
            "ts=2026-11-22T07:40:00.123Z level=info msg=listening addr=127.0.0.1:8080 "
            "note=\"two words\"");
}

TEST(LogTest, EscapesQuotesAndNewlinesSoOneCallIsOneLine) {
  std::string line =
      FormatLogLine("t", LogLevel::kError, "bad \"input\"\nsecond", {{"empty", ""}});
  EXPECT_EQ(line, "ts=t level=error msg=\"bad \\\"input\\\"\\nsecond\" empty=\"\"");
  EXPECT_EQ(line.find('\n'), std::string::npos);
}

}  // namespace
}  // namespace berth
