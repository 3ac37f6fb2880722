// Log lines are formatted into a thread-local buffer and written with one write(2) each, so
// that concurrent lines stay whole without a lock and nothing waits in a stdio buffer when
// the platform kills the process.
#include "berth/log.h"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <string>

#include "log_line.h"

namespace berth {
namespace {

// Never destroyed: threads still running at exit (the notifier's) keep logging.
const std::string& LoggerName() {
  static const std::string* name = [] {
    const char* service = std::getenv("BERTH_SERVICE");
    return new std::string(service != nullptr && *service != '\0' ? service : "service");
  }();
  return *name;
}

void WriteAll(const std::string& line) {
  size_t done = 0;
  while (done < line.size()) {
    ssize_t n = ::write(STDOUT_FILENO, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return;  // stdout is gone; there is nowhere left to say so
    }
    done += static_cast<size_t>(n);
  }
}

void Write(std::string_view level, std::string_view message) {
  thread_local std::string line;
  line.clear();
  sdk::AppendLogLine(line, std::chrono::system_clock::now(), level, LoggerName(), message);
  WriteAll(line);
}

}  // namespace

namespace sdk {

void AppendTimestamp(std::string& out, std::chrono::system_clock::time_point now) {
  using namespace std::chrono;
  auto ms = floor<milliseconds>(now);
  auto day = floor<days>(ms);
  year_month_day ymd{day};
  hh_mm_ss<milliseconds> tod{ms - day};
  char buf[32];
  auto two = [](char* p, unsigned v) {
    p[0] = static_cast<char>('0' + v / 10);
    p[1] = static_cast<char>('0' + v % 10);
  };
  int y = static_cast<int>(ymd.year());
  buf[0] = static_cast<char>('0' + y / 1000 % 10);
  buf[1] = static_cast<char>('0' + y / 100 % 10);
  buf[2] = static_cast<char>('0' + y / 10 % 10);
  buf[3] = static_cast<char>('0' + y % 10);
  buf[4] = '-';
  two(buf + 5, static_cast<unsigned>(ymd.month()));
  buf[7] = '-';
  two(buf + 8, static_cast<unsigned>(ymd.day()));
  buf[10] = 'T';
  two(buf + 11, static_cast<unsigned>(tod.hours().count()));
  buf[13] = ':';
  two(buf + 14, static_cast<unsigned>(tod.minutes().count()));
  buf[16] = ':';
  two(buf + 17, static_cast<unsigned>(tod.seconds().count()));
  buf[19] = '.';
  auto millis = static_cast<unsigned>(tod.subseconds().count());
  buf[20] = static_cast<char>('0' + millis / 100);
  two(buf + 21, millis % 100);
  buf[23] = 'Z';
  out.append(buf, 24);
}

void AppendLogLine(std::string& out, std::chrono::system_clock::time_point now,
                   std::string_view level, std::string_view logger, std::string_view message) {
  AppendTimestamp(out, now);
  out += ' ';
  out += level;
  out += ' ';
  out += logger;
  out += ": ";
  while (!message.empty() && (message.back() == '\n' || message.back() == '\r')) {
    message.remove_suffix(1);
  }
  for (size_t at = 0;;) {
    size_t eol = message.find('\n', at);
    out += message.substr(at, eol == std::string_view::npos ? eol : eol - at);
    if (eol == std::string_view::npos) {
      break;
    }
    out += "\n  ";
    at = eol + 1;
  }
  out += '\n';
}

}  // namespace sdk

void log_info(std::string_view message) { Write("INFO", message); }
void log_warning(std::string_view message) { Write("WARNING", message); }
void log_error(std::string_view message) { Write("ERROR", message); }

}  // namespace berth
