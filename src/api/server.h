// HttpServer is the daemon's listener: HTTP/1.1 with keep-alive on Boost.Beast, one C++20
// coroutine per connection, a pool of `threads` running one io_context. It parses requests
// into HttpRequest values, hands them to an HttpHandler and writes the HttpResponse back.
// Oversized headers (431) and bodies (413) are refused before the handler sees them.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "api/http_types.h"
#include "common/status.h"
#include "gateway/gateway.h"

namespace berth {

struct ServerOptions {
  std::string listen = "127.0.0.1:8080";  // "HOST:PORT"; port 0 picks a free one
  int threads = 1;
  size_t max_body_bytes = 1 << 20;
  size_t max_header_bytes = 16 << 10;
  std::chrono::seconds idle_timeout{60};  // keep-alive idle
  std::chrono::seconds header_timeout{10};  // a request head must arrive within this (slowloris)
};

class HttpServer {
 public:
  // Binds and starts serving on a background thread pool. `handler` (and `gateway`, which
  // takes every path its route table knows) must outlive the server. InvalidArgument for a
  // malformed address; Unavailable when it cannot be bound.
  static Result<std::unique_ptr<HttpServer>> Start(const ServerOptions& options,
                                                   HttpHandler& handler,
                                                   Gateway* gateway = nullptr);
  virtual ~HttpServer() = default;

  // The bound address, "127.0.0.1:45123" (the real port when 0 was asked for).
  virtual std::string LocalAddress() const = 0;
  // Blocks until SIGINT or SIGTERM arrives, then returns (the server keeps running until
  // Stop or destruction). Call BlockShutdownSignals first, before any thread starts.
  virtual void WaitForShutdownSignal() = 0;
  // Stops accepting, lets requests in flight finish (up to a short deadline), joins threads.
  // Idempotent.
  virtual void Stop() = 0;
};

// Blocks SIGINT and SIGTERM in the calling thread (and so in threads it starts later), so
// that WaitForShutdownSignal receives them whenever they arrive.
void BlockShutdownSignals();

}  // namespace berth
