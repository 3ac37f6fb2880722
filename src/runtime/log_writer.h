// LogWriter appends timestamped lines of an instance's stdout and stderr to
//   <dir>/current.log, rotated by size to current.log.1 ... current.log.<keep>.
// Each line is "<RFC 3339 time with microseconds> <stream> <text>\n". Output is buffered and
// written in large chunks so that a chatty instance costs little; Flush() after each batch.
// Not thread-safe: one writer per instance, owned by its shim.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace berth {

struct LogRotation {
  uint64_t max_bytes = 10 << 20;  // per file
  int keep = 5;  // rotated files kept besides current.log
};

class LogWriter {
 public:
  LogWriter(std::string dir, LogRotation rotation);
  ~LogWriter();
  LogWriter(const LogWriter&) = delete;
  LogWriter& operator=(const LogWriter&) = delete;

  Status Open();
  // Feeds raw bytes read from `stream` ("stdout" or "stderr"); complete lines are written,
  // a partial line waits for its end (or is cut at 64 KiB).
  void Feed(std::string_view stream, std::string_view data);
  // Writes a whole line as the platform ("berth" stream), e.g. why an exec failed.
  void Note(std::string_view text);
  // Ends partial lines of both streams and flushes.
  void FinishPartial();
  Status Flush();

 private:
  void AppendLine(std::string_view stream, std::string_view text);
  Status Rotate();

  std::string dir_;
  LogRotation rotation_;
  int fd_ = -1;
  uint64_t size_ = 0;
  std::string buffer_;
  std::string partial_out_;
  std::string partial_err_;
  int64_t cached_second_ = -1;
  std::string cached_prefix_;  // "2026-11-22T07:40:00" for cached_second_
};

// Reads the last `tail` lines (0 = all) of an instance's log directory, oldest first, from
// the rotated files and current.log. Lines are returned without the trailing newline.
std::vector<std::string> ReadLogTail(const std::string& dir, size_t tail, int keep = 5);

}  // namespace berth
