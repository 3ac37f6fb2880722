// Gateway is berth's reverse proxy on the daemon's own listener: a request for
// "/<project>-<service>/..." goes to a ready instance of the service's live revision (or of
// the revision pinned with "@<revision>"), over pooled keep-alive upstream connections. Only
// the request head is parsed (http_head.h); bodies are relayed as bytes, chunked or not, and
// an HTTP upgrade (websockets) becomes a two-way byte tunnel. Thread-safe.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "gateway/http_head.h"
#include "gateway/route_table.h"
#include "gateway/watchdog.h"

namespace berth {

class Watchdog;

struct GatewayOptions {
  std::chrono::seconds connect_timeout{5};
  std::chrono::seconds upstream_timeout{60};       // for the response head (504 after)
  std::chrono::seconds body_idle_timeout{300};     // between reads of a relayed body
  std::chrono::seconds tunnel_idle_timeout{3600};  // websockets
  size_t max_header_bytes = 16 << 10;
  size_t idle_upstreams_per_instance = 64;
};

// Who a token belongs to: its project, "" for an admin token; nullopt when not valid.
using TokenProject = std::function<std::optional<std::string>(std::string_view token)>;

class Gateway {
 public:
  Gateway(GatewayOptions options, TokenProject token_project);
  ~Gateway();

  RouteTable& routes() { return routes_; }

  // Serves the request whose complete head starts `client_buffer` (already parsed into
  // `head`), including its body, and writes the response. Returns true when the client
  // connection can carry another request. `client_watch` (the listener's watch of this
  // connection, suspended on entry) bounds writes to the client without a timer per write.
  boost::asio::awaitable<bool> Serve(boost::beast::tcp_stream& client,
                                     boost::beast::flat_buffer& client_buffer,
                                     const MessageHead& head, const RouteMatch& match,
                                     std::string_view peer_ip, WatchGuard* client_watch);

  // Per-route counters and latency histograms in Prometheus text format.
  std::string MetricsText() const;

  // The timeout sweep the listener also uses for its client connections; EnsureSweeping
  // starts it (once) on `executor`.
  Watchdog& watchdog();
  void EnsureSweeping(const boost::asio::any_io_executor& executor);

  // Closes pooled upstream connections and stops the timeout sweep. Call after the listener
  // stopped and before its io_context goes away: pooled sockets belong to it.
  void Shutdown();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  RouteTable routes_;
};

}  // namespace berth
