// The service's HTTP listener: HTTP/1.1 with keep-alive on Boost.Beast, one C++20 coroutine
// per connection (as in Beast's example/http/server/awaitable), one io_context run by a pool
// of threads. It reads a request, hands it to the Router and writes the Reply back, reusing
// the connection's buffers from one request to the next. This is the only file that
// instantiates Beast and Asio's server templates.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>

#include "router.h"
#include "status.h"

namespace berth::sdk {

struct ServerOptions {
  std::string host = "127.0.0.1";  // an IP address or a name to resolve
  std::string port = "8080";       // "0" picks a free port
  int threads = 2;
  std::string context_root;  // only for the log line
};

// The link between Service (stop(), port()) and a running server. Thread-safe.
class ServerControl {
 public:
  // Makes the running server stop as on SIGTERM; remembered if none is running yet.
  void RequestStop();
  std::uint16_t port() const { return port_.load(); }

  // For the server: publishes how to stop it and its port. Returns false when a stop was
  // requested before it started.
  bool Attach(std::function<void()> stop, std::uint16_t port);
  void Detach();

 private:
  std::mutex mu_;
  std::function<void()> stop_;   // GUARDED_BY(mu_)
  bool stop_requested_ = false;  // GUARDED_BY(mu_)
  std::atomic<std::uint16_t> port_{0};
};

// Binds options.host:options.port and serves `router` until SIGTERM, SIGINT or
// control.RequestStop(); then lets requests in flight finish (up to 5 s) and returns OK.
// Unavailable, saying why, when the address cannot be resolved or bound.
Status Serve(const Router& router, const ServerOptions& options, ServerControl& control);

}  // namespace berth::sdk
