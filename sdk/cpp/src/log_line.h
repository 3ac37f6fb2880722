// The log line format, shared by berth::log_* and the tests.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace berth::sdk {

// Appends "2026-12-01T17:29:02.123Z" (UTC, milliseconds).
void AppendTimestamp(std::string& out, std::chrono::system_clock::time_point now);

// Appends "<timestamp> <level> <logger>: <message>\n". A message of several lines keeps its
// first in that shape and indents the rest by two spaces, so that each record still starts a
// line (as the Python SDK's formatter does); trailing newlines are dropped.
void AppendLogLine(std::string& out, std::chrono::system_clock::time_point now,
                   std::string_view level, std::string_view logger, std::string_view message);

}  // namespace berth::sdk
