#include "runtime/health_check.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

namespace berth {
namespace {

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

bool WaitFor(int fd, short events, std::chrono::steady_clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                  deadline - std::chrono::steady_clock::now())
                  .count();
  if (left <= 0) {
    return false;
  }
  pollfd p{fd, events, 0};
  return ::poll(&p, 1, static_cast<int>(left)) > 0;
}

}  // namespace

ProbeResult ProbeInstance(const std::string& host, int port, const HealthCheck& check,
                          const StatusCodeSet& codes, const std::string& path) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(check.timeout_s);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    return {false, "bad address " + host};
  }
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) {
    return {false, fmt::format("socket: {}", std::strerror(errno))};
  }
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    if (errno != EINPROGRESS) {
      return {false, std::strerror(errno)};
    }
    if (!WaitFor(fd.get(), POLLOUT, deadline)) {
      return {false, "connect timed out"};
    }
    int err = 0;
    socklen_t len = sizeof(err);
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      return {false, std::strerror(err)};
    }
  }
  if (check.type == "tcp") {
    return {true, "accepting connections"};
  }
  std::string req = fmt::format(
      "GET {} HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: berth-health-check\r\nConnection: close"
      "\r\n\r\n",
      path, host, port);
  size_t off = 0;
  while (off < req.size()) {
    ssize_t n = ::send(fd.get(), req.data() + off, req.size() - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN && WaitFor(fd.get(), POLLOUT, deadline)) {
        continue;
      }
      return {false, fmt::format("sending request: {}", std::strerror(errno))};
    }
    off += static_cast<size_t>(n);
  }
  std::string resp;
  char buf[512];
  while (resp.find("\r\n") == std::string::npos) {
    if (!WaitFor(fd.get(), POLLIN, deadline)) {
      return {false, "no response within the timeout"};
    }
    ssize_t n = ::recv(fd.get(), buf, sizeof(buf), 0);
    if (n <= 0) {
      if (n < 0 && errno == EAGAIN) {
        continue;
      }
      return {false, "connection closed before a status line"};
    }
    resp.append(buf, static_cast<size_t>(n));
    if (resp.size() > 8192) {
      break;
    }
  }
  // "HTTP/1.1 200 OK"
  size_t sp = resp.find(' ');
  int code = 0;
  if (sp != std::string::npos && resp.size() >= sp + 4) {
    code = std::atoi(resp.substr(sp + 1, 3).c_str());
  }
  if (code == 0) {
    return {false, "not an HTTP response"};
  }
  if (!codes.Contains(code)) {
    return {false, fmt::format("HTTP {} is not in {}", code, codes.text())};
  }
  return {true, fmt::format("HTTP {}", code)};
}

}  // namespace berth
