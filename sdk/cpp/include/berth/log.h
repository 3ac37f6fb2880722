// Log lines as the platform collects them: one line per call on stdout,
//
//   2026-12-01T17:29:02.123Z INFO hello: Greeting someone with the name: Ada
//
// with the UTC time to the millisecond, the level, and the logger name, which is
// $BERTH_SERVICE (read once, at the first line) or "service". Each line goes out in one
// write(2), unbuffered, so lines from concurrent threads never interleave and none is lost when
// the process is killed. Safe to call from any thread; never throws.
#pragma once

#include <string_view>

namespace berth {

void log_info(std::string_view message);
void log_warning(std::string_view message);
void log_error(std::string_view message);

}  // namespace berth
