#include "common/time.h"

#include <gtest/gtest.h>

namespace berth {
namespace {

TEST(TimeTest, Rfc3339RoundTripsAndOffsetsAreApplied) {
  // date -u -d 2026-12-24T06:00:00Z +%s: 1798092000
  EXPECT_EQ(ParseRfc3339("2026-12-24T06:00:00Z"), 1798092000000);
  EXPECT_EQ(ParseRfc3339("2026-12-24T07:00:00+01:00"), 1798092000000);
  EXPECT_EQ(ParseRfc3339("2026-12-24T06:00:00.25Z"), 1798092000250);
  EXPECT_EQ(ParseRfc3339(FormatRfc3339Millis(1798092000123)), 1798092000123);
  EXPECT_EQ(ParseRfc3339("1970-01-01T00:00:00Z"), 0);
}

TEST(TimeTest, AnythingElseIsRefused) {
  for (const char* bad : {"", "2026-12-24", "2026-12-24T06:00:00", "2026-13-01T00:00:00Z",
                          "2026-12-32T00:00:00Z", "2026-12-24T25:00:00Z", "2026-12-24T06:00:00Zx",
                          "2026-12-24T06:00:00+0100", "tomorrow"}) {
    EXPECT_FALSE(ParseRfc3339(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace berth
