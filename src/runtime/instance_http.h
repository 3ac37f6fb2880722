// Blocking HTTP/1.1 exchanges with an instance on its loopback address, with one deadline for
// the whole exchange: health probes and the platform's calls into services (runtime
// parameters). Never called from an event loop.
#pragma once

#include <chrono>
#include <string>

#include "common/status.h"

namespace berth {

// A connected socket, closed on destruction.
class InstanceSocket {
 public:
  InstanceSocket() = default;
  explicit InstanceSocket(int fd) : fd_(fd) {}
  InstanceSocket(InstanceSocket&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  InstanceSocket& operator=(InstanceSocket&&) = delete;
  ~InstanceSocket();
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
};

// Connects to host:port (an IPv4 address) before `deadline`. Unavailable naming why not.
Result<InstanceSocket> ConnectInstance(const std::string& host, int port,
                                       std::chrono::steady_clock::time_point deadline);
// Sends all of `data`. Unavailable on an error or the deadline.
Status SendAll(const InstanceSocket& s, std::string_view data,
               std::chrono::steady_clock::time_point deadline);
// Reads into `out` until `done(out)` says enough, the peer closes, or the deadline passes
// (Unavailable). At most `limit` bytes.
Status ReceiveUntil(const InstanceSocket& s, std::string& out,
                    std::chrono::steady_clock::time_point deadline, size_t limit,
                    bool (*done)(const std::string&));

struct InstanceReply {
  int status = 0;
  std::string body;
};

// One request with a JSON body (may be empty), "Connection: close". Unavailable when the
// instance cannot be reached or does not answer within `timeout`.
Result<InstanceReply> CallInstance(const std::string& host, int port, std::string_view method,
                                   const std::string& path, const std::string& json_body,
                                   std::chrono::milliseconds timeout);

}  // namespace berth
