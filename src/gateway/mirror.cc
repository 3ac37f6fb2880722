#include "gateway/mirror.h"

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include "gateway/proxy_head.h"

namespace berth {
namespace {

namespace asio = boost::asio;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

asio::awaitable<void> SendCopy(Upstream up, std::shared_ptr<const std::string> request,
                               std::chrono::seconds timeout,
                               std::shared_ptr<std::atomic<int>> mirrors) {
  InFlight to_instance(up.in_flight);  // a shadow being drained waits for its copies too
  InFlight copies(std::move(mirrors));
  boost::beast::tcp_stream stream(co_await asio::this_coro::executor);
  stream.expires_after(timeout);
  boost::system::error_code aec;
  auto addr = asio::ip::make_address(up.host, aec);
  if (aec) {
    co_return;
  }
  auto [cec] = co_await stream.async_connect(
      asio::ip::tcp::endpoint(addr, static_cast<unsigned short>(up.port)), kNoThrow);
  if (cec) {
    co_return;
  }
  auto [wec, wn] = co_await asio::async_write(stream, asio::buffer(*request), kNoThrow);
  if (wec) {
    co_return;
  }
  std::array<char, 4096> sink;
  for (;;) {
    auto [rec, rn] = co_await stream.async_read_some(asio::buffer(sink), kNoThrow);
    if (rec) {
      co_return;
    }
  }
}

}  // namespace

bool Mirroring::Wants(const MessageHead& head, const RouteMatch& match) const {
  return !match.route->mirrors.empty() && !match.pinned_revision && !IsUpgrade(head) &&
         !head.chunked && !head.expect_continue && head.content_length.value_or(0) <= kMaxBody &&
         in_flight() < kMaxInFlight;
}

std::string Mirroring::Copy(std::string_view upstream_head, std::string_view body) {
  std::string out(upstream_head.substr(0, upstream_head.size() - 2));
  out.append("Connection: close\r\n\r\n");
  out.append(body);
  return out;
}

void Mirroring::Send(const asio::any_io_executor& executor, const RouteTable& routes,
                     const ServiceRoute& route, std::shared_ptr<const std::string> request,
                     std::chrono::seconds timeout) {
  for (int shadow : route.mirrors) {
    if (std::optional<Upstream> m = routes.Pick(route, shadow)) {
      asio::co_spawn(executor, SendCopy(*m, request, timeout, in_flight_), asio::detached);
    }
  }
}

}  // namespace berth
