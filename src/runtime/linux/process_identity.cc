#include "runtime/linux/process_identity.h"

#include <fcntl.h>
#include <unistd.h>

#include <charconv>
#include <string>
#include <string_view>

namespace berth {

std::optional<uint64_t> ProcessStartTicks(int pid) {
  if (pid <= 0) {
    return std::nullopt;
  }
  std::string path = "/proc/" + std::to_string(pid) + "/stat";
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return std::nullopt;
  }
  char buf[1024];
  ssize_t n = ::read(fd, buf, sizeof(buf));
  ::close(fd);
  if (n <= 0) {
    return std::nullopt;
  }
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so fields are counted
  // from the last ')'; state is field 3, starttime field 22.
  std::string_view s(buf, static_cast<size_t>(n));
  size_t at = s.rfind(')');
  if (at == std::string_view::npos) {
    return std::nullopt;
  }
  s.remove_prefix(at + 1);
  for (int field = 3; field <= 22; ++field) {
    size_t start = s.find_first_not_of(' ');
    if (start == std::string_view::npos) {
      return std::nullopt;
    }
    s.remove_prefix(start);
    size_t end = s.find(' ');
    std::string_view value = s.substr(0, end);
    if (field == 22) {
      uint64_t ticks = 0;
      auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), ticks);
      if (ec != std::errc() || p != value.data() + value.size()) {
        return std::nullopt;
      }
      return ticks;
    }
    if (end == std::string_view::npos) {
      return std::nullopt;
    }
    s.remove_prefix(end);
  }
  return std::nullopt;
}

}  // namespace berth
