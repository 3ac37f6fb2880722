#include "runtime/log_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <deque>

namespace berth {
namespace {
constexpr size_t kMaxPartial = 64 << 10;
// The shim flushes after each read anyway; this bounds the buffer of a read full of short
// lines, whose pages would otherwise stay resident in the shim.
constexpr size_t kFlushAt = 64 << 10;

// Calls `on_line` with each line of the file at `path`, without its newline (a last line
// without one too). Read in chunks so that memory does not grow with the file; no iostreams,
// since this file is also part of berth-shim.
template <typename F>
void ForEachLine(const std::string& path, F&& on_line) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return;
  }
  std::string line;
  char buf[16 << 10];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      break;
    }
    std::string_view data(buf, static_cast<size_t>(n));
    for (size_t nl; (nl = data.find('\n')) != std::string_view::npos;) {
      line.append(data.substr(0, nl));
      on_line(std::move(line));
      line.clear();
      data.remove_prefix(nl + 1);
    }
    line.append(data);
  }
  if (!line.empty()) {
    on_line(std::move(line));
  }
  ::close(fd);
}
}  // namespace

LogWriter::LogWriter(std::string dir, LogRotation rotation)
    : dir_(std::move(dir)), rotation_(rotation) {}

LogWriter::~LogWriter() {
  FinishPartial();
  (void)Flush();
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

Status LogWriter::Open() {
  std::string path = dir_ + "/current.log";
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd_ < 0) {
    return ErrnoStatus("opening log " + path, errno);
  }
  off_t end = ::lseek(fd_, 0, SEEK_END);
  size_ = end > 0 ? static_cast<uint64_t>(end) : 0;
  return Status::Ok();
}

void LogWriter::AppendLine(std::string_view stream, std::string_view text) {
  using namespace std::chrono;
  auto now = system_clock::now().time_since_epoch();
  int64_t micros = duration_cast<microseconds>(now).count();
  int64_t second = micros / 1000000;
  if (second != cached_second_) {
    std::time_t t = static_cast<std::time_t>(second);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    cached_prefix_ = buf;
    cached_second_ = second;
  }
  // ".123456Z " without snprintf: this runs once per log line.
  char frac[9] = {'.', '0', '0', '0', '0', '0', '0', 'Z', ' '};
  int64_t us = micros % 1000000;
  for (int i = 6; i >= 1; --i) {
    frac[i] = static_cast<char>('0' + us % 10);
    us /= 10;
  }
  buffer_ += cached_prefix_;
  buffer_.append(frac, sizeof(frac));
  buffer_ += stream;
  buffer_ += ' ';
  buffer_ += text;
  buffer_ += '\n';
  if (buffer_.size() >= kFlushAt) {
    (void)Flush();
  }
}

void LogWriter::Feed(std::string_view stream, std::string_view data) {
  std::string& partial = stream == "stderr" ? partial_err_ : partial_out_;
  while (!data.empty()) {
    size_t nl = data.find('\n');
    if (nl == std::string_view::npos) {
      partial.append(data);
      if (partial.size() >= kMaxPartial) {
        AppendLine(stream, partial);
        partial.clear();
      }
      return;
    }
    if (partial.empty()) {
      AppendLine(stream, data.substr(0, nl));
    } else {
      partial.append(data.substr(0, nl));
      AppendLine(stream, partial);
      partial.clear();
    }
    data.remove_prefix(nl + 1);
  }
}

void LogWriter::Note(std::string_view text) { AppendLine("berth", text); }

void LogWriter::FinishPartial() {
  if (!partial_out_.empty()) {
    AppendLine("stdout", partial_out_);
    partial_out_.clear();
  }
  if (!partial_err_.empty()) {
    AppendLine("stderr", partial_err_);
    partial_err_.clear();
  }
}

Status LogWriter::Flush() {
  if (fd_ < 0 || buffer_.empty()) {
    return Status::Ok();
  }
  size_t off = 0;
  while (off < buffer_.size()) {
    ssize_t n = ::write(fd_, buffer_.data() + off, buffer_.size() - off);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      buffer_.clear();  // a full disk must not grow the shim's memory without bound
      return ErrnoStatus("writing log in " + dir_, errno);
    }
    off += static_cast<size_t>(n);
  }
  size_ += buffer_.size();
  buffer_.clear();
  if (size_ >= rotation_.max_bytes) {
    return Rotate();
  }
  return Status::Ok();
}

Status LogWriter::Rotate() {
  ::close(fd_);
  fd_ = -1;
  std::string base = dir_ + "/current.log";
  std::string oldest = base + "." + std::to_string(rotation_.keep);
  ::unlink(oldest.c_str());
  for (int i = rotation_.keep - 1; i >= 1; --i) {
    std::string from = base + "." + std::to_string(i);
    std::string to = base + "." + std::to_string(i + 1);
    ::rename(from.c_str(), to.c_str());
  }
  if (rotation_.keep > 0) {
    ::rename(base.c_str(), (base + ".1").c_str());
  } else {
    ::unlink(base.c_str());
  }
  size_ = 0;
  return Open();
}

std::vector<std::string> ReadLogTail(const std::string& dir, size_t tail, int keep) {
  std::deque<std::string> lines;
  std::string base = dir + "/current.log";
  for (int i = keep; i >= 0; --i) {
    std::string path = i == 0 ? base : base + "." + std::to_string(i);
    ForEachLine(path, [&](std::string line) {
      lines.push_back(std::move(line));
      if (tail > 0 && lines.size() > tail) {
        lines.pop_front();
      }
    });
  }
  return {lines.begin(), lines.end()};
}

}  // namespace berth
