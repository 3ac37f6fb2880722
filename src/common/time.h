// Wall-clock helpers. Timestamps in the API are RFC 3339 UTC strings.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace berth {

// Milliseconds since the Unix epoch, from the system clock.
int64_t NowUnixMillis();

// "2026-11-22T07:40:00.123Z"
std::string FormatRfc3339Millis(int64_t unix_millis);

// "2026-11-22T07:40:00Z"
std::string FormatRfc3339(int64_t unix_millis);

// Reads "2026-11-22T07:40:00Z", with optional fractions of a second and a "+01:00" offset
// instead of Z; unix millis, or nullopt for anything else.
std::optional<int64_t> ParseRfc3339(std::string_view text);

}  // namespace berth
