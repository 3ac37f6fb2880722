// Wall-clock helpers. Timestamps in the API are RFC 3339 UTC strings.
#pragma once

#include <cstdint>
#include <string>

namespace berth {

// Milliseconds since the Unix epoch, from the system clock.
int64_t NowUnixMillis();

// "2026-11-22T07:40:00.123Z"
std::string FormatRfc3339Millis(int64_t unix_millis);

// "2026-11-22T07:40:00Z"
std::string FormatRfc3339(int64_t unix_millis);

}  // namespace berth
