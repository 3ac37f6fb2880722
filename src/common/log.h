// One-line structured logs in logfmt:
//   ts=2026-11-22T07:40:00.123Z level=info msg="listening" addr=127.0.0.1:8080
// Safe to call from any thread; each call writes one whole line to stderr.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace berth {

enum class LogLevel { kDebug, kInfo, kWarn, kError };

using LogField = std::pair<std::string_view, std::string>;

void Log(LogLevel level, std::string_view msg, std::initializer_list<LogField> fields = {});

inline void LogInfo(std::string_view msg, std::initializer_list<LogField> fields = {}) {
  Log(LogLevel::kInfo, msg, fields);
}
inline void LogWarn(std::string_view msg, std::initializer_list<LogField> fields = {}) {
  Log(LogLevel::kWarn, msg, fields);
}
inline void LogError(std::string_view msg, std::initializer_list<LogField> fields = {}) {
  Log(LogLevel::kError, msg, fields);
}

// Messages below `level` are dropped. Default: kInfo.
void SetLogLevel(LogLevel level);

// Formats one logfmt line (without the trailing newline); exposed for tests.
std::string FormatLogLine(std::string_view ts, LogLevel level, std::string_view msg,
                          std::initializer_list<LogField> fields);

}  // namespace berth
