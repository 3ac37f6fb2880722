#include "common/time.h"

#include <chrono>
#include <cstdio>
#include <ctime>

namespace berth {

int64_t NowUnixMillis() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

namespace {
std::string Format(int64_t unix_millis, bool with_millis) {
  std::time_t secs = static_cast<std::time_t>(unix_millis / 1000);
  int millis = static_cast<int>(unix_millis % 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];
  if (with_millis) {
    std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
  } else {
    std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  }
  return buf;
}
}  // namespace

std::string FormatRfc3339Millis(int64_t unix_millis) { return Format(unix_millis, true); }
std::string FormatRfc3339(int64_t unix_millis) { return Format(unix_millis, false); }

}  // namespace berth
