// Cron schedules for pipeline jobs: five fields and a time zone, as Kubernetes CronJobs with
// `timeZone`. Pure functions: parsing, the next fire time, the fire times in an interval. The
// only I/O is reading the zone's TZif file once, in ParseCron.
//
// Expressions: "minute hour day-of-month month day-of-week", each field a list of `*`, `N`,
// `a-b`, optionally with a step (`*/n`, `a-b/n`, and `a/n` meaning a-max/n); month and weekday
// names (jan-dec, sun-sat) in any case; 0 or 7 for Sunday (and `fri-sun` works: a weekday range
// ending in Sunday ends at 7). Macros: @yearly @annually @monthly @weekly @daily @midnight
// @hourly. Day of month and day of week follow standard cron: when both are restricted, a day
// matches if EITHER matches; when one is `*` (or `*/1`), only the other counts. A field with a
// step, such as `*/2`, is restricted (as in robfig/cron, which Kubernetes uses).
//
// Time zones: the zone's TZif file from /usr/share/zoneinfo is parsed here (transitions, local
// time types, and the POSIX TZ footer for times after the last transition, e.g.
// "CET-1CEST,M3.5.0,M10.5.0/3"). Not localtime_r/mktime under setenv("TZ"): TZ is process-wide,
// the daemon is multi-threaded and other threads call localtime_r, and libstdc++ 12 has no
// std::chrono tzdb. A schedule holds its parsed zone, so later tzdata updates apply to
// schedules parsed after them. Leap-second ("right/") zones are refused.
//
// Daylight saving time follows Vixie cron as Debian's cron(8) documents it: schedules for
// specific hours are wall-clock times that fire once per matching day, while hourly-or-more
// frequent schedules are intervals that follow the clock:
//  - The hour field restricted (not all 24 hours), e.g. "30 2 * * *":
//    * a wall time that does not exist (the spring-forward gap, 02:30 on 29 March 2026 in
//      Europe/Amsterdam) fires at the first instant after the gap (03:00 CEST, 01:00 UTC); several
//      skipped times fire once, together.
//    * a wall time that occurs twice (fall back, 02:30 on 25 October 2026) fires once, at the
//      first occurrence (02:30 CEST, 00:30 UTC).
//  - Every hour ("*/15 * * * *", "0 * * * *"): fires at each instant whose wall-clock time
//    matches, so times in a gap are skipped and times in a repeated hour fire in both
//    occurrences, keeping the interval steady (every 15 minutes of real time throughout).
// (robfig/cron instead drops the 02:30 job on the spring-forward day and runs it twice on the
// fall-back day.)
#pragma once

#include <bitset>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace berth {

struct CronZone;  // a parsed TZif zone (cron.cc)

struct CronSchedule {
  std::bitset<60> minutes;        // bit m: minute m
  std::bitset<24> hours;          // bit h: hour h
  std::bitset<32> days_of_month;  // bit d: day d (1-31; bit 0 unused)
  std::bitset<13> months;         // bit m: month m (1-12; bit 0 unused)
  std::bitset<7> days_of_week;    // bit d: day d (0 = Sunday)
  // Written `*` (or `*/1`): for the day-of-month / day-of-week rule.
  bool any_day_of_month = false;
  bool any_day_of_week = false;
  std::string time_zone;  // IANA name; "UTC" when none was given
  std::shared_ptr<const CronZone> zone;  // null: UTC

  // Same fields and same zone name (the zone data is not compared).
  friend bool operator==(const CronSchedule& a, const CronSchedule& b);
};

// Parses "*/15 9-17 * * 1-5" or "@daily" in `time_zone` (an IANA name such as
// "Europe/Amsterdam"; empty or "UTC": UTC). InvalidArgument naming the field and the bad part:
// "cron field 2 (hour) '25': hours are 0-23", "unknown time zone 'Mars/Base' (see
// /usr/share/zoneinfo)".
Result<CronSchedule> ParseCron(std::string_view expr, std::string_view time_zone = "");

// The first time strictly after `after` (unix seconds) at which the schedule fires; nullopt if
// it never does. Searches 9 years ahead: the longest real gap between fires is 8 years (29
// February across 2100, which is not a leap year).
std::optional<int64_t> NextFire(const CronSchedule& s, int64_t after);

// The fire times in (from, to], ascending, at most `limit` of them (the first ones).
std::vector<int64_t> FiresBetween(const CronSchedule& s, int64_t from, int64_t to, size_t limit);

// The normalised five fields: names as numbers, Sunday as 0, macros expanded, lists as runs
// ("1-5", "0,15,30,45" as "*/15"). ParseCron of it gives the same schedule. The zone is not part
// of it (see `time_zone`).
std::string CronToString(const CronSchedule& s);

// The zone's offset from UTC at `t` in seconds (+7200 in CEST): to show fire times as the
// schedule's wall-clock time.
int32_t CronUtcOffset(const CronSchedule& s, int64_t t);

}  // namespace berth
