#include "runtime/instance_http.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace berth {
namespace {

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

InstanceSocket::~InstanceSocket() {
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

Result<InstanceSocket> ConnectInstance(const std::string& host, int port,
                                       std::chrono::steady_clock::time_point deadline) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    return Status::InvalidArgument("bad address " + host);
  }
  InstanceSocket s(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (s.fd() < 0) {
    return Status::Unavailable(fmt::format("socket: {}", std::strerror(errno)));
  }
  if (::connect(s.fd(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    if (errno != EINPROGRESS) {
      return Status::Unavailable(std::strerror(errno));
    }
    if (!WaitFor(s.fd(), POLLOUT, deadline)) {
      return Status::Unavailable("connect timed out");
    }
    int err = 0;
    socklen_t len = sizeof(err);
    ::getsockopt(s.fd(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      return Status::Unavailable(std::strerror(err));
    }
  }
  return s;
}

Status SendAll(const InstanceSocket& s, std::string_view data,
               std::chrono::steady_clock::time_point deadline) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(s.fd(), data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN && WaitFor(s.fd(), POLLOUT, deadline)) {
        continue;
      }
      return Status::Unavailable(fmt::format("sending request: {}", std::strerror(errno)));
    }
    off += static_cast<size_t>(n);
  }
  return Status::Ok();
}

Status ReceiveUntil(const InstanceSocket& s, std::string& out,
                    std::chrono::steady_clock::time_point deadline, size_t limit,
                    bool (*done)(const std::string&)) {
  char buf[4096];
  while (!done(out) && out.size() < limit) {
    if (!WaitFor(s.fd(), POLLIN, deadline)) {
      return Status::Unavailable("no response within the timeout");
    }
    ssize_t n = ::recv(s.fd(), buf, sizeof(buf), 0);
    if (n < 0 && errno == EAGAIN) {
      continue;
    }
    if (n <= 0) {
      return Status::Ok();  // closed: what arrived is all there is
    }
    out.append(buf, static_cast<size_t>(n));
  }
  return Status::Ok();
}

Result<InstanceReply> CallInstance(const std::string& host, int port, std::string_view method,
                                   const std::string& path, const std::string& json_body,
                                   std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto s = ConnectInstance(host, port, deadline);
  if (!s.ok()) {
    return s.status();
  }
  std::string req = fmt::format(
      "{} {} HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: berth\r\nConnection: close\r\n"
      "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
      method, path, host, port, json_body.size(), json_body);
  if (auto st = SendAll(*s, req, deadline); !st.ok()) {
    return st;
  }
  std::string resp;
  // Reads to the end: the request asked the instance to close.
  auto never = [](const std::string&) { return false; };
  if (auto st = ReceiveUntil(*s, resp, deadline, size_t{1} << 20, never); !st.ok()) {
    return st;
  }
  size_t sp = resp.find(' ');
  size_t end = resp.find("\r\n\r\n");
  if (sp == std::string::npos || end == std::string::npos || resp.size() < sp + 4) {
    return Status::Unavailable("the instance did not send an HTTP response");
  }
  InstanceReply r;
  r.status = std::atoi(resp.substr(sp + 1, 3).c_str());
  std::string_view head(resp.data(), end);
  r.body = resp.substr(end + 4);
  // A chunked answer (http.server does not send one, Beast may): join the chunks.
  std::string lower_head(head);
  for (char& c : lower_head) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (lower_head.find("transfer-encoding: chunked") != std::string::npos) {
    std::string joined;
    size_t pos = 0;
    while (pos < r.body.size()) {
      size_t eol = r.body.find("\r\n", pos);
      if (eol == std::string::npos) {
        break;
      }
      size_t n = std::strtoul(r.body.substr(pos, eol - pos).c_str(), nullptr, 16);
      if (n == 0) {
        break;
      }
      joined += r.body.substr(eol + 2, n);
      pos = eol + 2 + n + 2;
    }
    r.body = std::move(joined);
  }
  return r;
}

}  // namespace berth
