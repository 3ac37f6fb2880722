// Traffic mirroring: a shadow revision with mirror-traffic gets a copy of each request to the
// live revision and its answer is read and dropped; the client never waits for a shadow.
// Best effort and bounded: only unpinned, non-upgrade requests whose whole body is small are
// copied, and none while too many copies are still out (a shadow that does not answer must not
// exhaust the daemon's sockets). Thread-safe.
#pragma once

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "gateway/http_head.h"
#include "gateway/route_table.h"

namespace berth {

class Mirroring {
 public:
  static constexpr uint64_t kMaxBody = 1 << 20;
  static constexpr int kMaxInFlight = 256;

  // Whether a request with this head, routed by `match`, is copied to the route's mirrors.
  bool Wants(const MessageHead& head, const RouteMatch& match) const;

  // The copy sent to each shadow: the upstream head (which ends in a blank line) closing the
  // connection after one exchange, and the whole body.
  static std::string Copy(std::string_view upstream_head, std::string_view body);

  // Sends `request` to one ready instance of each of `route`'s mirror revisions.
  void Send(const boost::asio::any_io_executor& executor, const RouteTable& routes,
            const ServiceRoute& route, std::shared_ptr<const std::string> request,
            std::chrono::seconds timeout);

  int in_flight() const { return in_flight_->load(std::memory_order_relaxed); }

 private:
  std::shared_ptr<std::atomic<int>> in_flight_ = std::make_shared<std::atomic<int>>(0);
};

}  // namespace berth
