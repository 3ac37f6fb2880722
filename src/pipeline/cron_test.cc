#include "pipeline/cron.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace berth {
namespace {

using Strings = std::vector<std::string>;

// Unix seconds of a UTC time "2026-03-29 01:00" or "2026-03-29 01:00:30" (glibc's timegm, not
// the code under test).
int64_t Utc(const std::string& text) {
  std::tm tm{};
  const char* end = strptime(text.c_str(), "%Y-%m-%d %H:%M", &tm);
  if (end != nullptr && *end == ':') {
    end = strptime(end, ":%S", &tm);
  }
  EXPECT_TRUE(end != nullptr && *end == '\0') << text;
  return timegm(&tm);
}

std::string Show(std::optional<int64_t> t) {
  if (!t) {
    return "never";
  }
  const time_t tt = static_cast<time_t>(*t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[64];
  strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

Strings Shows(const std::vector<int64_t>& ts) {
  Strings out;
  for (int64_t t : ts) {
    out.push_back(Show(t));
  }
  return out;
}

// The expected times, written as Utc() takes them, in Show's form.
Strings Times(const Strings& utc) {
  Strings out;
  for (const std::string& s : utc) {
    out.push_back(Show(Utc(s)));
  }
  return out;
}

CronSchedule Must(std::string_view expr, std::string_view tz = "") {
  Result<CronSchedule> s = ParseCron(expr, tz);
  EXPECT_TRUE(s.ok()) << expr << " in '" << tz << "': " << s.status().ToString();
  return s.ok() ? *s : CronSchedule{};
}

template <size_t N>
std::vector<int> Bits(const std::bitset<N>& bits) {
  std::vector<int> out;
  for (size_t i = 0; i < N; ++i) {
    if (bits[i]) {
      out.push_back(static_cast<int>(i));
    }
  }
  return out;
}

std::vector<int> Range(int lo, int hi) {
  std::vector<int> out;
  for (int i = lo; i <= hi; ++i) {
    out.push_back(i);
  }
  return out;
}

void ExpectNext(const CronSchedule& s, const std::string& after, const std::string& expected) {
  EXPECT_EQ(Show(NextFire(s, Utc(after))), expected == "never" ? "never" : Show(Utc(expected)))
      << CronToString(s) << " in " << s.time_zone << ", after " << after;
}

// ---- Parsing ----

TEST(CronParse, FieldsWithListsRangesAndSteps) {
  CronSchedule s = Must("*/15 9-17 * * 1-5");
  EXPECT_EQ(Bits(s.minutes), (std::vector<int>{0, 15, 30, 45}));
  EXPECT_EQ(Bits(s.hours), Range(9, 17));
  EXPECT_EQ(Bits(s.days_of_month), Range(1, 31));
  EXPECT_TRUE(s.any_day_of_month);
  EXPECT_EQ(Bits(s.months), Range(1, 12));
  EXPECT_EQ(Bits(s.days_of_week), Range(1, 5));
  EXPECT_FALSE(s.any_day_of_week);
  EXPECT_EQ(s.time_zone, "UTC");

  EXPECT_EQ(Bits(Must("1,2,5-7,10-20/5 0 1 1 0").minutes),
            (std::vector<int>{1, 2, 5, 6, 7, 10, 15, 20}));
  EXPECT_EQ(Bits(Must("5-59/20 * * * *").minutes), (std::vector<int>{5, 25, 45}));
  EXPECT_EQ(Bits(Must("5/20 * * * *").minutes), (std::vector<int>{5, 25, 45}));  // 5-59/20
  EXPECT_EQ(Bits(Must("*/25 * * * *").minutes), (std::vector<int>{0, 25, 50}));
  EXPECT_EQ(Bits(Must("0 */6 * * *").hours), (std::vector<int>{0, 6, 12, 18}));
  EXPECT_EQ(Bits(Must("0 0 * */5 *").months), (std::vector<int>{1, 6, 11}));
  EXPECT_EQ(Bits(Must("07 00 * * *").minutes), (std::vector<int>{7}));

  CronSchedule every10 = Must("0 0 */10 * *");
  EXPECT_EQ(Bits(every10.days_of_month), (std::vector<int>{1, 11, 21, 31}));
  EXPECT_FALSE(every10.any_day_of_month);  // a step restricts the field
  EXPECT_TRUE(Must("0 0 */1 * *").any_day_of_month);
  EXPECT_FALSE(Must("0 0 1-31 * *").any_day_of_month);
}

TEST(CronParse, NamesInAnyCase) {
  CronSchedule s = Must("0 0 * JAN-Mar,dec Mon-FRI");
  EXPECT_EQ(Bits(s.months), (std::vector<int>{1, 2, 3, 12}));
  EXPECT_EQ(Bits(s.days_of_week), Range(1, 5));
  EXPECT_EQ(Bits(Must("0 0 * feb-dec/5 sun,WED,sat").months), (std::vector<int>{2, 7, 12}));
  EXPECT_EQ(Bits(Must("0 0 * * sun,WED,sat").days_of_week), (std::vector<int>{0, 3, 6}));
}

TEST(CronParse, SundayIsZeroOrSeven) {
  EXPECT_EQ(Bits(Must("0 0 * * 7").days_of_week), (std::vector<int>{0}));
  EXPECT_EQ(Must("0 0 * * 7"), Must("0 0 * * 0"));
  EXPECT_EQ(Must("0 0 * * SUN"), Must("0 0 * * 0"));
  EXPECT_EQ(Bits(Must("0 0 * * 5-7").days_of_week), (std::vector<int>{0, 5, 6}));
  EXPECT_EQ(Bits(Must("0 0 * * fri-sun").days_of_week), (std::vector<int>{0, 5, 6}));
  EXPECT_EQ(Bits(Must("0 0 * * 1-7/2").days_of_week), (std::vector<int>{0, 1, 3, 5}));
  CronSchedule all = Must("0 0 * * 0-7");
  EXPECT_EQ(Bits(all.days_of_week), Range(0, 6));
  EXPECT_FALSE(all.any_day_of_week);
  EXPECT_EQ(Bits(Must("0 0 * * */2").days_of_week), (std::vector<int>{0, 2, 4, 6}));
  EXPECT_TRUE(Must("0 0 * * *").any_day_of_week);
}

TEST(CronParse, Macros) {
  EXPECT_EQ(CronToString(Must("@yearly")), "0 0 1 1 *");
  EXPECT_EQ(CronToString(Must("@annually")), "0 0 1 1 *");
  EXPECT_EQ(CronToString(Must("@monthly")), "0 0 1 * *");
  EXPECT_EQ(CronToString(Must("@weekly")), "0 0 * * 0");
  EXPECT_EQ(CronToString(Must("@daily")), "0 0 * * *");
  EXPECT_EQ(CronToString(Must("@midnight")), "0 0 * * *");
  EXPECT_EQ(CronToString(Must("@hourly")), "0 * * * *");
  EXPECT_EQ(Must("@DAILY"), Must("0 0 * * *"));
  EXPECT_EQ(Must(" @hourly\n"), Must("0 * * * *"));
  EXPECT_TRUE(Must("@weekly").any_day_of_month);
}

TEST(CronParse, WhitespaceAndTimeZones) {
  EXPECT_EQ(Must("  0\t9  * *\t1-5 \n"), Must("0 9 * * 1-5"));
  EXPECT_EQ(Must("0 9 * * *", "UTC").time_zone, "UTC");
  CronSchedule ams = Must("0 9 * * *", "Europe/Amsterdam");
  EXPECT_EQ(ams.time_zone, "Europe/Amsterdam");
  EXPECT_NE(ams, Must("0 9 * * *"));
  EXPECT_EQ(Must("0 9 * * *", "Etc/UTC").time_zone, "Etc/UTC");
}

struct ParseError {
  std::string expr, tz, message;
};

TEST(CronParse, ErrorsNameTheFieldAndTheBadPart) {
  const std::string kDays = "days of week are 0-7 (or sun-sat; 0 and 7 are Sunday)";
  const std::string kShape = "expected *, a value or a range a-b, each optionally with a step /n";
  const std::vector<ParseError> cases = {
      {"0 25 * * *", "", "cron field 2 (hour) '25': hours are 0-23"},
      {"60 * * * *", "", "cron field 1 (minute) '60': minutes are 0-59"},
      {"1-99 * * * *", "", "cron field 1 (minute) '99': minutes are 0-59"},
      {"99999999999 * * * *", "", "cron field 1 (minute) '99999999999': minutes are 0-59"},
      {"0 0 0 * *", "", "cron field 3 (day-of-month) '0': days of month are 1-31"},
      {"0 0 1,32 * *", "", "cron field 3 (day-of-month) '32': days of month are 1-31"},
      {"0 0 * 13 *", "", "cron field 4 (month) '13': months are 1-12 (or jan-dec)"},
      {"0 0 * * 8", "", "cron field 5 (day-of-week) '8': " + kDays},
      {"0 0 * foo *", "",
       "cron field 4 (month) 'foo': not a number or a month name (jan-dec)"},
      {"0 0 * * funday", "",
       "cron field 5 (day-of-week) 'funday': not a number or a day name (sun-sat)"},
      {"0 0 * * mon-xyz", "",
       "cron field 5 (day-of-week) 'xyz': not a number or a day name (sun-sat)"},
      {"0 mon * * *", "", "cron field 2 (hour) 'mon': not a number"},
      {"0 0 jan * *", "", "cron field 3 (day-of-month) 'jan': not a number"},
      {"x * * * *", "", "cron field 1 (minute) 'x': not a number"},
      {"5-1 * * * *", "", "cron field 1 (minute) '5-1': the range's start is after its end"},
      {"0 0 * dec-jan *", "",
       "cron field 4 (month) 'dec-jan': the range's start is after its end"},
      {"*/0 * * * *", "", "cron field 1 (minute) '*/0': steps are 1-60"},
      {"0 */25 * * *", "", "cron field 2 (hour) '*/25': steps are 1-24"},
      {"0 0 1-31/x * *", "", "cron field 3 (day-of-month) '1-31/x': steps are 1-31"},
      {"0 0 * * 1/8", "", "cron field 5 (day-of-week) '1/8': steps are 1-7"},
      {"*/ * * * *", "", "cron field 1 (minute) '*/': " + kShape},
      {"/5 * * * *", "", "cron field 1 (minute) '/5': " + kShape},
      {"1- * * * *", "", "cron field 1 (minute) '1-': " + kShape},
      {"*-5 * * * *", "", "cron field 1 (minute) '*-5': " + kShape},
      {"0 0 * * 1-2-3", "", "cron field 5 (day-of-week) '1-2-3': " + kShape},
      {"1,,2 * * * *", "", "cron field 1 (minute) '1,,2': empty list item"},
      {"0 1, * * *", "", "cron field 2 (hour) '1,': empty list item"},
      {"0 0 * *", "",
       "cron schedules have five fields (minute hour day-of-month month day-of-week), got 4"},
      {"0 0 0 * * *", "",
       "cron schedules have five fields (minute hour day-of-month month day-of-week), got 6"},
      {"  ", "",
       "cron schedules have five fields (minute hour day-of-month month day-of-week), got 0"},
      {"@fortnightly", "",
       "unknown cron macro '@fortnightly' (@yearly @annually @monthly @weekly @daily "
       "@midnight @hourly)"},
      {"@daily 5", "", "cron macro '@daily' takes no fields, got '5'"},
      {"@reboot", "", "cron macro '@reboot' is not supported: schedules are times"},
      {"CRON_TZ=Europe/Amsterdam 0 9 * * *", "",
       "'CRON_TZ=Europe/Amsterdam': give the time zone as the schedule's time zone, not in the "
       "expression"},
      {"0 9 * * *", "Mars/Base", "unknown time zone 'Mars/Base' (see /usr/share/zoneinfo)"},
      {"0 9 * * *", "europe/amsterdam",
       "unknown time zone 'europe/amsterdam' (see /usr/share/zoneinfo)"},
      {"0 9 * * *", "Europe", "unknown time zone 'Europe' (see /usr/share/zoneinfo)"},
      {"0 9 * * *", "zone.tab", "unknown time zone 'zone.tab' (see /usr/share/zoneinfo)"},
      {"0 9 * * *", "../../../etc/passwd",
       "unknown time zone '../../../etc/passwd' (see /usr/share/zoneinfo)"},
      {"0 9 * * *", "/usr/share/zoneinfo/UTC",
       "unknown time zone '/usr/share/zoneinfo/UTC' (see /usr/share/zoneinfo)"},
      {"0 9 * * *", "Europe//Amsterdam",
       "unknown time zone 'Europe//Amsterdam' (see /usr/share/zoneinfo)"},
      {"0 9 * * *", "right/UTC",
       "time zone 'right/UTC': /usr/share/zoneinfo/right/UTC: leap-second zones ('right/') "
       "are not supported"},
      // The expression is checked before the zone.
      {"0 24 * * *", "Mars/Base", "cron field 2 (hour) '24': hours are 0-23"},
  };
  for (const ParseError& c : cases) {
    Result<CronSchedule> s = ParseCron(c.expr, c.tz);
    ASSERT_FALSE(s.ok()) << "parsed: " << c.expr << " in '" << c.tz << "'";
    EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument) << c.expr;
    EXPECT_EQ(s.status().message(), c.message) << c.expr;
  }
}

TEST(CronToString, NormalisesAndRoundTrips) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"*/15 9-17 * * 1-5", "*/15 9-17 * * 1-5"},
      {"0,15,30,45 * * * *", "*/15 * * * *"},
      {"0-59 0-23 * 1-12 *", "* * * * *"},
      {"*/1 * */1 * */1", "* * * * *"},
      {"0 0 1-31 * *", "0 0 1-31 * *"},  // not `*`: it changes the day rule
      {"0 0 * * 7", "0 0 * * 0"},
      {"0 0 * * 0-7", "0 0 * * 0-6"},
      {"0 0 * * fri-sun", "0 0 * * 0,5,6"},
      {"5-59/20 0-23 * jan-dec *", "5,25,45 * * * *"},
      {"0 0 */2 * *", "0 0 */2 * *"},
      {"0 9 * * mon,wed,fri", "0 9 * * 1,3,5"},
      {"1,2 3,4,5 6 7 *", "1,2 3-5 6 7 *"},
      {"0 0 29 2 *", "0 0 29 2 *"},
      {"30 8-10,12-14 1,15 */3 *", "30 8-10,12-14 1,15 */3 *"},
      {"0,30 * * * *", "*/30 * * * *"},
  };
  for (const auto& [expr, normal] : cases) {
    CronSchedule s = Must(expr);
    EXPECT_EQ(CronToString(s), normal) << expr;
    EXPECT_EQ(Must(CronToString(s)), s) << expr;
  }
}

// ---- NextFire in UTC ----

TEST(CronNextFire, UtcHelperAgreesWithDate) {
  // date -u -d '2026-03-29 01:00' +%s
  EXPECT_EQ(Utc("2026-03-29 01:00"), 1774746000);
  EXPECT_EQ(Utc("2028-02-29 00:00"), 1835395200);
  EXPECT_EQ(Utc("2104-02-29 00:00"), 4233686400);
}

TEST(CronNextFire, StrictlyAfter) {
  CronSchedule daily = Must("0 0 * * *");
  ExpectNext(daily, "2026-07-01 00:00", "2026-07-02 00:00");
  ExpectNext(daily, "2026-06-30 23:59:59", "2026-07-01 00:00");
  EXPECT_EQ(NextFire(daily, 1782864000 - 1), 1782864000);  // 2026-07-01 00:00Z
  CronSchedule quarter = Must("*/15 * * * *");
  ExpectNext(quarter, "2026-07-01 10:07:30", "2026-07-01 10:15");
  ExpectNext(Must("* * * * *"), "2026-07-01 10:07:30", "2026-07-01 10:08");
  ExpectNext(Must("* * * * *"), "2026-07-01 10:08", "2026-07-01 10:09");
}

TEST(CronNextFire, MonthAndYearEnds) {
  CronSchedule s31 = Must("0 0 31 * *");
  ExpectNext(s31, "2026-01-31 00:00", "2026-03-31 00:00");  // February has no 31st
  ExpectNext(s31, "2026-03-31 00:00", "2026-05-31 00:00");  // nor April
  ExpectNext(s31, "2026-07-31 00:00", "2026-08-31 00:00");
  ExpectNext(s31, "2026-12-31 00:00", "2027-01-31 00:00");
  CronSchedule daily = Must("0 0 * * *");
  ExpectNext(daily, "2026-02-28 00:00", "2026-03-01 00:00");
  ExpectNext(daily, "2026-04-30 12:00", "2026-05-01 00:00");
  ExpectNext(Must("59 23 31 12 *"), "2026-12-31 23:59", "2027-12-31 23:59");
  ExpectNext(Must("0 0 1 1 *"), "2026-06-15 00:00", "2027-01-01 00:00");
  ExpectNext(Must("30 23 30 * *"), "2026-02-01 00:00", "2026-03-30 23:30");
}

TEST(CronNextFire, LeapYears) {
  CronSchedule feb29 = Must("0 0 29 2 *");
  ExpectNext(feb29, "2026-01-01 00:00", "2028-02-29 00:00");
  ExpectNext(feb29, "2028-02-29 00:00", "2032-02-29 00:00");
  ExpectNext(feb29, "2096-03-01 00:00", "2104-02-29 00:00");  // 2100 is not a leap year
  ExpectNext(feb29, "2399-03-01 00:00", "2400-02-29 00:00");  // 2400 is
  CronSchedule daily = Must("0 0 * * *");
  ExpectNext(daily, "2028-02-28 00:00", "2028-02-29 00:00");
  ExpectNext(daily, "2100-02-28 00:00", "2100-03-01 00:00");
}

TEST(CronNextFire, DayOfMonthOrDayOfWeek) {
  const std::string from = "2026-03-01 00:00";  // a Sunday
  const std::string to = "2026-04-14 00:00";
  // Both restricted: the 13th OR a Friday (2026-03-13 is both, 2026-04-13 a Monday).
  EXPECT_EQ(Shows(FiresBetween(Must("0 0 13 * 5"), Utc(from), Utc(to), 100)),
            Times({"2026-03-06 00:00", "2026-03-13 00:00", "2026-03-20 00:00",
                   "2026-03-27 00:00", "2026-04-03 00:00", "2026-04-10 00:00",
                   "2026-04-13 00:00"}));
  // One of them `*`: only the other counts.
  EXPECT_EQ(Shows(FiresBetween(Must("0 0 13 * *"), Utc(from), Utc(to), 100)),
            Times({"2026-03-13 00:00", "2026-04-13 00:00"}));
  EXPECT_EQ(Shows(FiresBetween(Must("0 0 * * fri"), Utc(from), Utc(to), 100)),
            Times({"2026-03-06 00:00", "2026-03-13 00:00", "2026-03-20 00:00",
                   "2026-03-27 00:00", "2026-04-03 00:00", "2026-04-10 00:00"}));
  // 1-31 is not `*`: OR with Mondays is every day.
  EXPECT_EQ(FiresBetween(Must("0 0 1-31 * 1"), Utc(from), Utc(to), 100).size(), 44u);
  EXPECT_EQ(FiresBetween(Must("0 0 * * 1"), Utc(from), Utc(to), 100).size(), 7u);
  // A step restricts: the 1st, 11th, 21st, 31st OR Sundays.
  EXPECT_EQ(Shows(FiresBetween(Must("0 0 */10 * 0"), Utc(from), Utc("2026-03-22 00:00"), 100)),
            Times({"2026-03-08 00:00", "2026-03-11 00:00", "2026-03-15 00:00",
                   "2026-03-21 00:00", "2026-03-22 00:00"}));
  // Never the 30th of February, but its Sundays: 2026-02-01 is one.
  ExpectNext(Must("0 0 30 2 0"), "2026-01-15 00:00", "2026-02-01 00:00");
}

TEST(CronNextFire, Steps) {
  EXPECT_EQ(Shows(FiresBetween(Must("5-59/20 * * * *"), Utc("2026-07-01 10:00"),
                               Utc("2026-07-01 11:05"), 100)),
            Times({"2026-07-01 10:05", "2026-07-01 10:25", "2026-07-01 10:45",
                   "2026-07-01 11:05"}));
  EXPECT_EQ(Shows(FiresBetween(Must("0 */8 * * *"), Utc("2026-07-01 00:00"),
                               Utc("2026-07-02 00:00"), 100)),
            Times({"2026-07-01 08:00", "2026-07-01 16:00", "2026-07-02 00:00"}));
  ExpectNext(Must("0 0 1 */5 *"), "2026-06-15 00:00", "2026-11-01 00:00");
}

TEST(CronNextFire, Macros) {
  const std::string after = "2026-07-01 10:07:30";  // a Wednesday
  ExpectNext(Must("@hourly"), after, "2026-07-01 11:00");
  ExpectNext(Must("@daily"), after, "2026-07-02 00:00");
  ExpectNext(Must("@midnight"), after, "2026-07-02 00:00");
  ExpectNext(Must("@weekly"), after, "2026-07-05 00:00");
  ExpectNext(Must("@monthly"), after, "2026-08-01 00:00");
  ExpectNext(Must("@yearly"), after, "2027-01-01 00:00");
  ExpectNext(Must("@annually"), after, "2027-01-01 00:00");
}

TEST(CronNextFire, NeverFires) {
  ExpectNext(Must("0 0 30 2 *"), "2026-01-01 00:00", "never");
  ExpectNext(Must("0 0 31 4,6,9,11 *"), "2026-01-01 00:00", "never");
  ExpectNext(Must("0 0 30 2 *", "Europe/Amsterdam"), "2026-01-01 00:00", "never");
  ExpectNext(Must("0 * 31 feb *", "America/New_York"), "2026-01-01 00:00", "never");
  EXPECT_TRUE(FiresBetween(Must("0 0 30 2 *"), 0, Utc("2100-01-01 00:00"), 10).empty());
}

TEST(CronNextFire, ExtremeTimes) {
  CronSchedule newyear = Must("0 0 1 1 *");
  // From the smallest time there is, a New Year's midnight of the first years (not overflow).
  auto first = NextFire(newyear, std::numeric_limits<int64_t>::min());
  ASSERT_TRUE(first.has_value());
  EXPECT_LE(*first, -62104060800);  // 0002-01-01
  EXPECT_EQ(*first % 86400, 0);
  EXPECT_EQ(NextFire(newyear, std::numeric_limits<int64_t>::max()), std::nullopt);
  EXPECT_EQ(NextFire(Must("0 0 1 1 *", "Europe/Amsterdam"), std::numeric_limits<int64_t>::max()),
            std::nullopt);
  ExpectNext(newyear, "1969-12-31 12:00", "1970-01-01 00:00");
}

TEST(CronFiresBetween, IntervalEndsAndLimit) {
  CronSchedule quarter = Must("*/15 * * * *");
  const int64_t ten = Utc("2026-07-01 10:00");
  // (from, to]: 10:00 is out, 10:30 in.
  EXPECT_EQ(Shows(FiresBetween(quarter, ten, Utc("2026-07-01 10:30"), 100)),
            Times({"2026-07-01 10:15", "2026-07-01 10:30"}));
  EXPECT_EQ(Shows(FiresBetween(quarter, ten, Utc("2026-07-01 12:00"), 3)),
            Times({"2026-07-01 10:15", "2026-07-01 10:30", "2026-07-01 10:45"}));
  EXPECT_TRUE(FiresBetween(quarter, ten, Utc("2026-07-01 12:00"), 0).empty());
  EXPECT_TRUE(FiresBetween(quarter, ten, ten, 100).empty());
  EXPECT_TRUE(FiresBetween(quarter, ten, ten - 3600, 100).empty());
  EXPECT_EQ(FiresBetween(quarter, ten, Utc("2026-07-02 10:00"), 1000).size(), 96u);
  // A week of downtime of an every-minute job, told as the first few.
  EXPECT_EQ(FiresBetween(Must("* * * * *"), ten, ten + 7 * 86400, 5).size(), 5u);
}

// ---- Time zones ----

TEST(CronZones, AmsterdamSpringForward2026) {
  // 29 March 2026: 02:00 CET (01:00Z) becomes 03:00 CEST.
  const std::string tz = "Europe/Amsterdam";
  CronSchedule s = Must("30 2 * * *", tz);
  EXPECT_EQ(Shows(FiresBetween(s, Utc("2026-03-27 12:00"), Utc("2026-03-30 12:00"), 100)),
            Times({"2026-03-28 01:30",     // 02:30 CET
                   "2026-03-29 01:00",     // 02:30 does not exist: 03:00 CEST, the gap's end
                   "2026-03-30 00:30"}));  // 02:30 CEST
  EXPECT_EQ(NextFire(s, 1774699200), 1774746000);  // TZ=Europe/Amsterdam date -d '2026-03-29 03:00'
  // Several skipped times fire once; 03:00 is the same instant.
  EXPECT_EQ(Shows(FiresBetween(Must("0,30 2,3 * * *", tz), Utc("2026-03-28 12:00"),
                               Utc("2026-03-29 12:00"), 100)),
            Times({"2026-03-29 01:00", "2026-03-29 01:30"}));
  // A wall-clock time keeps its local hour: 08:00Z then 07:00Z.
  EXPECT_EQ(Shows(FiresBetween(Must("0 9 * * *", tz), Utc("2026-03-27 12:00"),
                               Utc("2026-03-29 12:00"), 100)),
            Times({"2026-03-28 08:00", "2026-03-29 07:00"}));
  // Every hour: an interval, steady across the gap.
  EXPECT_EQ(Shows(FiresBetween(Must("*/30 * * * *", tz), Utc("2026-03-28 23:59"),
                               Utc("2026-03-29 02:00"), 100)),
            Times({"2026-03-29 00:00", "2026-03-29 00:30", "2026-03-29 01:00",
                   "2026-03-29 01:30", "2026-03-29 02:00"}));
  EXPECT_EQ(Shows(FiresBetween(Must("30 * * * *", tz), Utc("2026-03-28 23:00"),
                               Utc("2026-03-29 02:00"), 100)),
            Times({"2026-03-28 23:30", "2026-03-29 00:30", "2026-03-29 01:30"}));
  EXPECT_EQ(CronUtcOffset(s, Utc("2026-03-29 00:59:59")), 3600);
  EXPECT_EQ(CronUtcOffset(s, Utc("2026-03-29 01:00")), 7200);
}

TEST(CronZones, AmsterdamFallBack2026) {
  // 25 October 2026: 03:00 CEST (01:00Z) becomes 02:00 CET; 02:00-02:59 happens twice.
  const std::string tz = "Europe/Amsterdam";
  CronSchedule s = Must("30 2 * * *", tz);
  EXPECT_EQ(Shows(FiresBetween(s, Utc("2026-10-24 12:00"), Utc("2026-10-26 12:00"), 100)),
            Times({"2026-10-25 00:30",     // 02:30 CEST, the first occurrence only
                   "2026-10-26 01:30"}));  // 02:30 CET
  EXPECT_EQ(NextFire(s, 1792843200), 1792888200);
  // From inside the repeated hour, in either pass, the next is the next day's.
  ExpectNext(s, "2026-10-25 00:45", "2026-10-26 01:30");  // 02:45 CEST
  ExpectNext(s, "2026-10-25 01:10", "2026-10-26 01:30");  // 02:10 CET
  ExpectNext(s, "2026-10-25 00:29:59", "2026-10-25 00:30");
  // Restricted hours: the repeated quarter hours fire once.
  EXPECT_EQ(Shows(FiresBetween(Must("*/15 1-3 * * *", tz), Utc("2026-10-24 22:59"),
                               Utc("2026-10-25 02:59"), 100)),
            Times({"2026-10-24 23:00", "2026-10-24 23:15", "2026-10-24 23:30",
                   "2026-10-24 23:45",                                           // 01:xx CEST
                   "2026-10-25 00:00", "2026-10-25 00:15", "2026-10-25 00:30",
                   "2026-10-25 00:45",                                           // 02:xx CEST
                   "2026-10-25 02:00", "2026-10-25 02:15", "2026-10-25 02:30",
                   "2026-10-25 02:45"}));                                        // 03:xx CET
  // Every hour: both 02:00s, one real hour apart.
  EXPECT_EQ(Shows(FiresBetween(Must("0 * * * *", tz), Utc("2026-10-24 23:30"),
                               Utc("2026-10-25 02:30"), 100)),
            Times({"2026-10-25 00:00", "2026-10-25 01:00", "2026-10-25 02:00"}));
  EXPECT_EQ(Shows(FiresBetween(Must("*/20 * * * *", tz), Utc("2026-10-25 00:30"),
                               Utc("2026-10-25 01:30"), 100)),
            Times({"2026-10-25 00:40", "2026-10-25 01:00", "2026-10-25 01:20"}));
  // 09:00 is 07:00Z in summer, 08:00Z after.
  EXPECT_EQ(Shows(FiresBetween(Must("0 9 * * *", tz), Utc("2026-10-24 00:00"),
                               Utc("2026-10-25 23:00"), 100)),
            Times({"2026-10-24 07:00", "2026-10-25 08:00"}));
  EXPECT_EQ(CronUtcOffset(s, Utc("2026-10-25 00:59:59")), 7200);
  EXPECT_EQ(CronUtcOffset(s, Utc("2026-10-25 01:00")), 3600);
}

TEST(CronZones, AmsterdamAfter2037FollowsTheTzRule) {
  // The zone file lists transitions until 2037; later years come from "CET-1CEST,M3.5.0,M10.5.0/3".
  CronSchedule s = Must("30 2 * * *", "Europe/Amsterdam");
  // 25 March 2040: the gap; TZ=Europe/Amsterdam date -d '2040-03-25 03:00' +%s
  EXPECT_EQ(NextFire(s, Utc("2040-03-24 12:00")), 2216250000);
  // 28 October 2040: the first 02:30 (CEST), not the second (2235000600).
  EXPECT_EQ(NextFire(s, Utc("2040-10-27 12:00")), 2234997000);
  ExpectNext(s, "2040-10-28 00:30", "2040-10-29 01:30");
  EXPECT_EQ(CronUtcOffset(s, Utc("2040-07-01 00:00")), 7200);
  EXPECT_EQ(CronUtcOffset(s, Utc("2040-12-01 00:00")), 3600);
  EXPECT_EQ(CronUtcOffset(s, Utc("2999-07-01 00:00")), 7200);
}

TEST(CronZones, NewYork2026) {
  const std::string tz = "America/New_York";
  // 8 March 2026: 02:00 EST (07:00Z) becomes 03:00 EDT.
  EXPECT_EQ(FiresBetween(Must("30 2 * * *", tz), 1772800000, 1773100000, 100),
            (std::vector<int64_t>{
                1772868600,    // 2026-03-07 02:30 EST
                1772953200,    // 2026-03-08 03:00 EDT: 02:30 does not exist
                1773037800}));  // 2026-03-09 02:30 EDT
  // 1 November 2026: 02:00 EDT (06:00Z) becomes 01:00 EST; 01:00-01:59 happens twice.
  EXPECT_EQ(FiresBetween(Must("30 1 * * *", tz), 1793450000, 1793650000, 100),
            (std::vector<int64_t>{
                1793511000,    // 2026-11-01 01:30 EDT (not 1793514600, 01:30 EST)
                1793601000}));  // 2026-11-02 01:30 EST
  EXPECT_EQ(NextFire(Must("30 1 * * *", tz), 1793511000 + 1800), 1793601000);
  // Weekdays at 09:00: 14:00Z in winter, 13:00Z in summer.
  CronSchedule nine = Must("0 9 * * 1-5", tz);
  EXPECT_EQ(NextFire(nine, 1772805600), 1773061200);  // Fri 6 March 09:00 EST -> Mon 9 March EDT
  EXPECT_EQ(NextFire(nine, 1793365200), 1793628000);  // Fri 30 Oct 09:00 EDT -> Mon 2 Nov EST
  // Every hour: 01:00 EDT, 01:00 EST, 02:00 EST.
  EXPECT_EQ(Shows(FiresBetween(Must("0 * * * *", tz), Utc("2026-11-01 04:30"),
                               Utc("2026-11-01 07:30"), 100)),
            Times({"2026-11-01 05:00", "2026-11-01 06:00", "2026-11-01 07:00"}));
  EXPECT_EQ(CronUtcOffset(nine, 1772953200 - 1), -5 * 3600);
  EXPECT_EQ(CronUtcOffset(nine, 1772953200), -4 * 3600);
}

TEST(CronZones, HalfHourShiftsAndSouthernSummer) {
  // Lord Howe Island moves by 30 minutes: on 5 April 2026 02:00 (+11) becomes 01:30 (+10:30),
  // on 4 October 2026 02:00 (+10:30) becomes 02:30 (+11).
  const std::string tz = "Australia/Lord_Howe";
  CronSchedule s = Must("15 2 * * *", tz);
  ExpectNext(s, "2026-10-03 00:00", "2026-10-03 15:30");  // 4 Oct 02:30, the gap's end
  ExpectNext(s, "2026-10-03 15:30", "2026-10-04 15:15");  // 5 Oct 02:15 (+11)
  CronSchedule s145 = Must("45 1 * * *", tz);
  ExpectNext(s145, "2026-04-04 00:00", "2026-04-04 14:45");  // 5 Apr 01:45 (+11), first of two
  ExpectNext(s145, "2026-04-04 14:45", "2026-04-05 15:15");  // 6 Apr 01:45 (+10:30)
  // Sydney: summer time from October to April.
  CronSchedule syd = Must("0 9 * * *", "Australia/Sydney");
  ExpectNext(syd, "2026-01-15 00:00", "2026-01-15 22:00");  // AEDT, +11
  ExpectNext(syd, "2026-07-15 00:00", "2026-07-15 23:00");  // AEST, +10
  // India: +05:30, no DST.
  ExpectNext(Must("0 9 * * *", "Asia/Kolkata"), "2026-07-15 00:00", "2026-07-15 03:30");
}

// The zone's UTC offset per glibc's localtime_r (the test is single-threaded).
class GlibcZone {
 public:
  explicit GlibcZone(const std::string& name) {
    setenv("TZ", (":" + name).c_str(), 1);
    tzset();
  }
  ~GlibcZone() {
    unsetenv("TZ");
    tzset();
  }
  static long Offset(int64_t t) {
    const time_t tt = static_cast<time_t>(t);
    std::tm tm{};
    localtime_r(&tt, &tm);
    return tm.tm_gmtoff;
  }
};

const Strings kZones = {"Europe/Amsterdam", "America/New_York",   "Australia/Lord_Howe",
                        "Australia/Sydney", "America/Nuuk",       "Asia/Jerusalem",
                        "Antarctica/Troll", "Africa/Casablanca",  "Pacific/Apia",
                        "Asia/Tehran",      "America/St_Johns",   "Pacific/Chatham",
                        "Europe/London",    "America/Sao_Paulo",  "Asia/Kolkata",
                        "Etc/GMT+5",        "UTC"};

TEST(CronZones, OffsetsAgreeWithGlibc) {
  for (const std::string& name : kZones) {
    CronSchedule s = Must("0 0 * * *", name);
    GlibcZone zone(name);
    int mismatches = 0;
    auto check = [&](int64_t t) {
      if (CronUtcOffset(s, t) != GlibcZone::Offset(t) && ++mismatches <= 3) {
        ADD_FAILURE() << name << " at " << Show(t) << ": " << CronUtcOffset(s, t)
                      << ", glibc " << GlibcZone::Offset(t);
      }
    };
    for (int64_t t = Utc("1900-01-01 00:00"); t < Utc("2100-01-01 00:00"); t += 90000 + 4513) {
      check(t);
    }
    // Every 20 minutes, around today's and the footer's years.
    for (int64_t t = Utc("2025-01-01 00:00"); t < Utc("2027-01-01 00:00"); t += 1200) {
      check(t);
    }
    for (int64_t t = Utc("2039-01-01 00:00"); t < Utc("2041-01-01 00:00"); t += 1200) {
      check(t);
    }
  }
}

TEST(CronZones, EveryZoneFileLoads) {
  namespace fs = std::filesystem;
  int loaded = 0;
  for (const fs::directory_entry& e : fs::recursive_directory_iterator("/usr/share/zoneinfo")) {
    const std::string name = fs::relative(e.path(), "/usr/share/zoneinfo").string();
    if (!e.is_regular_file() || name.starts_with("right/")) {
      continue;
    }
    std::FILE* f = std::fopen(e.path().c_str(), "rb");
    char magic[4] = {};
    const bool tzif = f != nullptr && std::fread(magic, 1, 4, f) == 4 &&
                      std::string_view(magic, 4) == "TZif";
    if (f != nullptr) {
      std::fclose(f);
    }
    if (!tzif) {
      continue;
    }
    Result<CronSchedule> s = ParseCron("0 9 * * *", name);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    EXPECT_NE(NextFire(*s, Utc("2026-01-01 00:00")), std::nullopt) << name;
    ++loaded;
  }
  EXPECT_GT(loaded, 300);
}

// ---- Against a scan of the wall clock ----

// Whether the fields match a wall-clock time (given as a struct tm).
bool FieldsMatch(const CronSchedule& s, const std::tm& tm) {
  const bool dom = s.days_of_month[static_cast<size_t>(tm.tm_mday)];
  const bool dow = s.days_of_week[static_cast<size_t>(tm.tm_wday)];
  const bool day = s.any_day_of_month || s.any_day_of_week ? dom && dow : dom || dow;
  return day && s.minutes[static_cast<size_t>(tm.tm_min)] &&
         s.hours[static_cast<size_t>(tm.tm_hour)] && s.months[static_cast<size_t>(tm.tm_mon + 1)];
}

bool LocalMatches(const CronSchedule& s, int64_t local) {
  const time_t tt = static_cast<time_t>(local);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  return FieldsMatch(s, tm);
}

// The header's rule, minute by minute of UTC with glibc's offsets: every hour, an instant fires
// when its wall clock matches; otherwise when its wall clock reaches, for the first time, a
// matching time it had not reached before (the first occurrence; the end of a gap).
std::vector<int64_t> ScanFires(const CronSchedule& s, int64_t from, int64_t to) {
  std::vector<int64_t> out;
  int64_t reached = from + GlibcZone::Offset(from);
  for (int64_t t = from / 60 * 60 + 60; t <= to; t += 60) {
    const int64_t local = t + GlibcZone::Offset(t);
    if (s.hours.all()) {
      if (LocalMatches(s, local)) {
        out.push_back(t);
      }
    } else if (local > reached) {
      for (int64_t l = reached / 60 * 60 + 60; l <= local; l += 60) {
        if (LocalMatches(s, l)) {
          out.push_back(t);
          break;
        }
      }
    }
    reached = std::max(reached, local);
  }
  return out;
}

TEST(CronZones, AgreesWithAWallClockScan) {
  const Strings exprs = {"30 2 * * *",   "0,30 1-3 * * *", "45 2 * * 0",    "*/20 * * * *",
                         "7,37 * * * *", "0 * * * 0",      "15 1,2 * * *",  "*/5 2 25-31 * *",
                         "0 0 * * *",    "59 1 * * *",     "0 12 1,15 * 5", "*/10 1-2 * 3,10 *"};
  const Strings zones = {"UTC", "Europe/Amsterdam", "America/New_York", "Australia/Lord_Howe",
                         "America/Nuuk", "Asia/Jerusalem"};
  for (const std::string& zone : zones) {
    GlibcZone glibc(zone);
    for (const std::string& expr : exprs) {
      CronSchedule s = Must(expr, zone);
      for (const auto& [from, to] : std::vector<std::pair<std::string, std::string>>{
               {"2026-03-01 00:00", "2026-04-15 00:00"},
               {"2026-09-25 00:00", "2026-11-10 00:00"}}) {
        EXPECT_EQ(Shows(FiresBetween(s, Utc(from), Utc(to), 100000)),
                  Shows(ScanFires(s, Utc(from), Utc(to))))
            << expr << " in " << zone << " from " << from;
      }
    }
  }
}

// Random schedules in UTC, against the same scan.
TEST(CronNextFire, RandomSchedulesAgreeWithAScan) {
  std::mt19937 rng(20260329);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  auto field = [&](int lo, int hi) -> std::string {
    switch (pick(0, 5)) {
      case 0:
        return "*";
      case 1:
        return fmt::format("*/{}", pick(2, (hi - lo + 1) / 2));
      case 2:
        return fmt::format("{}", pick(lo, hi));
      case 3: {
        const int a = pick(lo, hi);
        return fmt::format("{}-{}", a, pick(a, hi));
      }
      case 4: {
        const int a = pick(lo, hi);
        return fmt::format("{}-{}/{}", a, pick(a, hi), pick(1, 4));
      }
      default:
        return fmt::format("{},{}", pick(lo, hi), pick(lo, hi));
    }
  };
  GlibcZone utc("UTC");
  for (int i = 0; i < 60; ++i) {
    const std::string expr = fmt::format("{} {} {} {} {}", field(0, 59), field(0, 23),
                                         field(1, 31), pick(0, 2) == 0 ? field(1, 12) : "*",
                                         field(0, 7));
    CronSchedule s = Must(expr);
    const int64_t from = Utc("2026-01-01 00:00") + pick(0, 3 * 365) * 86400 + pick(0, 86399);
    const int64_t to = from + 62 * 86400;
    EXPECT_EQ(Shows(FiresBetween(s, from, to, 1000000)), Shows(ScanFires(s, from, to))) << expr;
  }
}

}  // namespace
}  // namespace berth
