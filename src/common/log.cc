#include "common/log.h"

#include <atomic>
#include <cstdio>

#include "common/time.h"

namespace berth {
namespace {

std::atomic<LogLevel> g_min_level{LogLevel::kInfo};

std::string_view LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
  }
  return "info";
}

// Values are quoted when they hold anything a logfmt parser would split on.
void AppendValue(std::string& out, std::string_view v) {
  bool quote = v.empty();
  for (char c : v) {
    if (c == ' ' || c == '"' || c == '=' || c == '\\' || static_cast<unsigned char>(c) < 0x20) {
      quote = true;
      break;
    }
  }
  if (!quote) {
    out += v;
    return;
  }
  out += '"';
  for (char c : v) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        out += c;
    }
  }
  out += '"';
}

}  // namespace

void SetLogLevel(LogLevel level) { g_min_level.store(level); }

std::string FormatLogLine(std::string_view ts, LogLevel level, std::string_view msg,
                          std::initializer_list<LogField> fields) {
  std::string line = "ts=";
  line += ts;
  line += " level=";
  line += LevelName(level);
  line += " msg=";
  AppendValue(line, msg);
  for (const auto& [key, value] : fields) {
    line += ' ';
    line += key;
    line += '=';
    AppendValue(line, value);
  }
  return line;
}

void Log(LogLevel level, std::string_view msg, std::initializer_list<LogField> fields) {
  if (level < g_min_level.load(std::memory_order_relaxed)) {
    return;
  }
  std::string line = FormatLogLine(FormatRfc3339Millis(NowUnixMillis()), level, msg, fields);
  line += '\n';
  // One fwrite per line: stdio locks the stream, so lines never interleave.
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

}  // namespace berth
