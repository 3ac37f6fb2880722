// The proxy path. Per request: authenticate (token services), pick the least busy ready
// instance, take a pooled upstream connection (or open one), write the rewritten head
// (proxy_head.h) and relay the body, read the response head, write it back and relay the body.
// What the gateway writes is decided by pure functions (proxy_head.h, route_metrics.h,
// mirror.h); this file is the I/O between them. Allocation per request is a head string for
// each direction; bodies move through the connection buffers.
//
// Retries, as nginx's proxy_next_upstream: a request that never reached an instance (connect
// refused: it just crashed or is restarting) goes to another ready instance, and so does an
// idempotent request without a body that an instance dropped before answering any byte. The
// other instance is of the same revision, else of the revision the live one replaced while it
// settles (RouteTable::PickFor), from the route table as it is now. Nothing that may have been
// acted on (a body sent, a response begun, a timeout) is ever sent twice.
#include "gateway/gateway.h"

// GCC 12 reports a false -Wmismatched-new-delete for Asio's coroutine frames in large
// coroutines (the frame's operator new and delete do match).
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

#include <fmt/format.h>

#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/beast/core.hpp>
#include <mutex>

#include "gateway/mirror.h"
#include "gateway/proxy_head.h"
#include "gateway/route_metrics.h"
#include "gateway/upstream_pool.h"
#include "gateway/watchdog.h"

namespace berth {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr size_t kReadChunk = 64 << 10;
// Instances one request may be tried on (the first included).
constexpr int kMaxInstancesTried = 3;

std::string_view BufferView(const beast::flat_buffer& b) {
  auto d = b.data();
  return {static_cast<const char*>(d.data()), d.size()};
}

// Methods a request of which may be sent again without changing what it does (RFC 9110 §9.2.2).
bool IsIdempotent(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "PUT" ||
         method == "DELETE" || method == "TRACE";
}

}  // namespace

struct Gateway::Impl {
  explicit Impl(GatewayOptions o) : options(o), pool(o.idle_upstreams_per_instance) {}

  GatewayOptions options;
  TokenProject token_project;
  Watchdog watchdog;
  UpstreamPool pool;
  Mirroring mirroring;
  std::unique_ptr<asio::steady_timer> sweep_timer;
  std::once_flag sweep_started;

  asio::awaitable<void> SweepLoop() {
    while (true) {
      sweep_timer->expires_after(std::chrono::milliseconds(250));
      auto [ec] = co_await sweep_timer->async_wait(kNoThrow);
      if (ec) {
        co_return;
      }
      watchdog.Sweep();
    }
  }
};

Gateway::Gateway(GatewayOptions options, TokenProject token_project)
    : impl_(std::make_unique<Impl>(options)) {
  impl_->token_project = std::move(token_project);
}

Gateway::~Gateway() = default;

namespace {

// Relays a body of `framing` from (src, src_buf) to dst. Returns false on any error, and sets
// `*bad_framing` when the error was src's chunked framing (not I/O). `counted` accumulates the
// bytes relayed.
asio::awaitable<bool> RelayBody(beast::tcp_stream& src, beast::flat_buffer& src_buf,
                                beast::tcp_stream& dst, std::optional<uint64_t> length,
                                bool chunked, bool until_eof, std::chrono::seconds idle,
                                uint64_t& counted, bool* bad_framing = nullptr) {
  ChunkedTracker tracker;
  uint64_t remaining = length.value_or(0);
  while (true) {
    if (length && remaining == 0) {
      co_return true;
    }
    if (chunked && tracker.done()) {
      co_return true;
    }
    if (src_buf.size() == 0) {
      src.expires_after(idle);
      auto [ec, n] = co_await src.async_read_some(src_buf.prepare(kReadChunk), kNoThrow);
      if (ec) {
        co_return until_eof && (ec == asio::error::eof);
      }
      src_buf.commit(n);
    }
    std::string_view data = BufferView(src_buf);
    size_t take = data.size();
    if (length) {
      take = static_cast<size_t>(std::min<uint64_t>(remaining, take));
      remaining -= take;
    } else if (chunked) {
      take = tracker.Feed(data);
      if (tracker.invalid()) {
        if (bad_framing != nullptr) {
          *bad_framing = true;
        }
        co_return false;
      }
    }
    dst.expires_after(idle);
    auto [wec, wn] = co_await asio::async_write(dst, asio::buffer(data.data(), take), kNoThrow);
    if (wec) {
      co_return false;
    }
    counted += take;
    src_buf.consume(take);
  }
}

// Copies bytes one way until either side closes (the websocket tunnel).
asio::awaitable<void> Pump(beast::tcp_stream& from, beast::flat_buffer& from_buf,
                           beast::tcp_stream& to, std::chrono::seconds idle) {
  while (true) {
    if (from_buf.size() > 0) {
      to.expires_after(idle);
      auto [wec, wn] = co_await asio::async_write(to, from_buf.data(), kNoThrow);
      if (wec) {
        co_return;
      }
      from_buf.consume(from_buf.size());
    }
    from.expires_after(idle);
    auto [ec, n] = co_await from.async_read_some(from_buf.prepare(kReadChunk), kNoThrow);
    if (ec) {
      boost::system::error_code ignored;
      to.socket().shutdown(tcp::socket::shutdown_send, ignored);
      co_return;
    }
    from_buf.commit(n);
  }
}

// A response the gateway gives itself; `message` is built before the co_await that sends it
// (GCC 12 destroys temporaries that live across a co_await twice).
struct GatewayError {
  int status = 502;
  std::string_view reason = "Bad Gateway";
  std::string_view code = "bad_gateway";
  std::string message;
  std::string extra_headers;  // whole lines
};

// Writes a gateway error. Returns whether the client connection can go on (then the request's
// head, still in the buffer, is consumed).
template <typename Finish>
asio::awaitable<bool> SendError(beast::tcp_stream& client, beast::flat_buffer& client_buf,
                                size_t head_bytes, bool client_keep, Finish& finish,
                                const GatewayError& e) {
  std::string resp =
      ErrorResponse(e.status, e.reason, e.code, e.message, client_keep, e.extra_headers);
  client.expires_after(std::chrono::seconds(10));
  auto [ec, n] = co_await asio::async_write(client, asio::buffer(resp), kNoThrow);
  finish(e.status);
  if (client_keep) {
    client_buf.consume(head_bytes);
  }
  co_return !ec && client_keep;
}

// Why a token service refuses a request, or nullopt to let it through.
std::optional<GatewayError> Refusal(const ServiceRoute& route, const MessageHead& head,
                                    const TokenProject& token_project) {
  if (route.public_access) {
    return std::nullopt;
  }
  std::string_view token = RequestToken(head);
  std::optional<std::string> project = token.empty() ? std::nullopt : token_project(token);
  if (!project) {
    // A browser goes to the login page, which sends it back here with a cookie.
    if (std::string login = LoginRedirect(head); !login.empty()) {
      return GatewayError{302, "Found", "unauthenticated",
                          fmt::format("{} needs a token of project '{}': log in at {}",
                                      route.prefix, route.project, login),
                          "Location: " + login + "\r\n"};
    }
    return GatewayError{401, "Unauthorized", "unauthenticated",
                        fmt::format("{} needs a token of project '{}': send 'Authorization: "
                                    "Bearer <token>', or log in with a browser at "
                                    "/_berth/login?next={}/",
                                    route.prefix, route.project, route.prefix),
                        "WWW-Authenticate: Bearer realm=\"berth\"\r\n"};
  }
  if (!project->empty() && *project != route.project) {
    return GatewayError{
        403, "Forbidden", "permission_denied",
        fmt::format("this token belongs to project '{}', not '{}'", *project, route.project), {}};
  }
  return std::nullopt;
}

// A strip route's bare prefix names its root directory: a page there resolves its relative
// links ("./static/x") against "/<project>-<service>/" only with the slash, so a browser is
// sent there first (nginx does the same for a location ending in '/').
std::optional<GatewayError> SlashRedirect(const ServiceRoute& route, const MessageHead& head,
                                          const RouteMatch& match) {
  std::string_view rest = head.target.substr(match.prefix_len);
  if (!route.strip || (head.method != "GET" && head.method != "HEAD") ||
      (!rest.empty() && rest[0] != '?')) {
    return std::nullopt;
  }
  std::string location = fmt::format("{}/{}", head.target.substr(0, match.prefix_len), rest);
  return GatewayError{301, "Moved Permanently", "moved",
                      fmt::format("{} is served at {}", route.prefix, location),
                      "Location: " + location + "\r\n"};
}

GatewayError NoInstance(const ServiceRoute& route, const RouteMatch& match) {
  return GatewayError{503, "Service Unavailable", "unavailable",
                      match.pinned_revision
                          ? fmt::format("{}@{} (revision {}) has no ready instance", route.prefix,
                                        match.pinned_label, *match.pinned_revision)
                          : fmt::format("{} has no ready instance right now", route.prefix),
                      "Retry-After: 1\r\n"};
}

// How reading an instance's response head ended.
enum class HeadRead { kComplete, kClosedBeforeAnswering, kFailed, kClientGone };

// Reads the response head of `conn` into `resp`, passing 1xx interim responses (but 101) on
// to the client. On kFailed, `error` says why (502 or 504).
asio::awaitable<HeadRead> ReadResponseHead(UpstreamConn& conn, beast::tcp_stream& client,
                                           const GatewayOptions& options, const std::string& key,
                                           MessageHead& resp, GatewayError& error) {
  bool interim_sent = false;
  while (true) {
    ParseResult pr = ParseResponseHead(BufferView(conn.buffer), resp);
    if (pr == ParseResult::kInvalid || pr == ParseResult::kTooManyFields) {
      error.message = fmt::format("instance {} sent an invalid response head{}{}", key,
                                  resp.error.empty() ? "" : ": ", resp.error);
      co_return HeadRead::kFailed;
    }
    if (pr == ParseResult::kComplete) {
      if (resp.status >= 200 || resp.status == 101) {
        co_return HeadRead::kComplete;
      }
      client.expires_after(options.body_idle_timeout);
      auto [iec, in] = co_await asio::async_write(
          client, asio::buffer(conn.buffer.data().data(), resp.head_bytes), kNoThrow);
      conn.buffer.consume(resp.head_bytes);
      if (iec) {
        co_return HeadRead::kClientGone;
      }
      interim_sent = true;
      resp = MessageHead{};
      continue;
    }
    if (conn.buffer.size() > options.max_header_bytes * 4) {
      error.message = fmt::format("instance {} sent an oversized head", key);
      co_return HeadRead::kFailed;
    }
    bool answered = interim_sent || conn.buffer.size() > 0;
    auto [rec, rn] =
        co_await conn.stream.socket().async_read_some(conn.buffer.prepare(kReadChunk), kNoThrow);
    if (rec == asio::error::operation_aborted) {  // cancelled by the watchdog
      error = GatewayError{504, "Gateway Timeout", "gateway_timeout",
                           fmt::format("instance {} did not answer within {} s", key,
                                       options.upstream_timeout.count()),
                           {}};
      co_return HeadRead::kFailed;
    }
    if (rec) {
      error.message = fmt::format("instance {} closed the connection: {}", key, rec.message());
      co_return answered ? HeadRead::kFailed : HeadRead::kClosedBeforeAnswering;
    }
    conn.buffer.commit(rn);
  }
}

}  // namespace

asio::awaitable<bool> Gateway::Serve(beast::tcp_stream& client, beast::flat_buffer& client_buf,
                                     const MessageHead& head, const RouteMatch& match,
                                     std::string_view peer_ip, WatchGuard* client_watch) {
  Impl& im = *impl_;
  EnsureSweeping(client.get_executor());
  const ServiceRoute& route = *match.route;
  auto started = std::chrono::steady_clock::now();
  RouteStats& metrics = *route.stats;
  bool has_body = head.chunked || head.content_length.value_or(0) > 0;
  // `head` points into client_buf, which moves once the body is read: keep what is needed.
  bool head_method = head.method == "HEAD";
  bool may_resend = IsIdempotent(head.method) && !has_body;
  // A request refused before its body was read leaves that body on the connection: close it.
  // Once the body is relayed whole, the connection can go on.
  bool request_keep = head.keep_alive();
  bool client_keep = request_keep && !has_body;
  bool expect_continue = head.expect_continue;
  std::optional<int> pinned = match.pinned_revision;
  auto finish = [&](int code) {
    RecordRequest(metrics, code,
                  std::chrono::duration_cast<std::chrono::microseconds>(
                      std::chrono::steady_clock::now() - started));
  };
  if (std::optional<GatewayError> refused = Refusal(route, head, im.token_project)) {
    co_return co_await SendError(client, client_buf, head.head_bytes, client_keep, finish,
                                 *refused);
  }
  if (std::optional<GatewayError> moved = SlashRedirect(route, head, match)) {
    co_return co_await SendError(client, client_buf, head.head_bytes, client_keep, finish,
                                 *moved);
  }
  std::optional<Upstream> up = routes_.PickFor(route, pinned);
  if (!up) {
    GatewayError error = NoInstance(route, match);
    co_return co_await SendError(client, client_buf, head.head_bytes, client_keep, finish, error);
  }
  std::string out = UpstreamRequestHead(head, match, peer_ip);

  // A copy for shadow revisions that mirror the live traffic. Its small body is read whole
  // first (clients often send it after the head), so that the shadow gets it too.
  std::shared_ptr<std::string> mirror;
  if (im.mirroring.Wants(head, match)) {
    uint64_t body_len = head.content_length.value_or(0);
    while (client_buf.size() - head.head_bytes < body_len) {
      client.expires_after(im.options.body_idle_timeout);
      auto [rec, rn] = co_await client.async_read_some(client_buf.prepare(kReadChunk), kNoThrow);
      if (rec) {
        finish(0);
        co_return false;
      }
      client_buf.commit(rn);
    }
    mirror = std::make_shared<std::string>(
        Mirroring::Copy(out, BufferView(client_buf).substr(head.head_bytes, body_len)));
  }
  // `head`'s views are not used past this point: the buffer may move.
  size_t head_bytes = head.head_bytes;
  std::optional<uint64_t> content_length = head.content_length;
  bool chunked = head.chunked;
  client_buf.consume(head_bytes);

  std::vector<std::string> tried;  // instances that failed this request
  std::optional<InFlight> in_flight;
  std::unique_ptr<UpstreamConn> conn;
  bool reused = false;
  GatewayError failure;  // why the last try failed
  // Moves to the next instance after `up` failed, from the route as it is now; false when
  // there is none (or enough were tried), with `failure` to tell the client.
  auto next_instance = [&]() {
    tried.push_back(up->key);
    conn.reset();
    in_flight.reset();
    std::shared_ptr<const ServiceRoute> now = routes_.Find(route.prefix);
    up = now && tried.size() < kMaxInstancesTried ? routes_.PickFor(*now, pinned, tried)
                                                  : std::nullopt;
    return up.has_value();
  };
  while (true) {
    if (!in_flight) {
      in_flight.emplace(up->in_flight);
      conn = im.pool.TakeIdle(up->key, has_body);
      reused = conn != nullptr;
    }
    if (!conn) {
      conn = std::make_unique<UpstreamConn>(client.get_executor());
      conn->stream.expires_after(im.options.connect_timeout);
      boost::system::error_code aec;
      auto addr = asio::ip::make_address(up->host, aec);
      auto [cec] = co_await conn->stream.async_connect(
          tcp::endpoint(addr, static_cast<unsigned short>(up->port)), kNoThrow);
      if (cec) {
        // Nothing was sent: any request may go elsewhere.
        failure = GatewayError{502, "Bad Gateway", "bad_gateway",
                               fmt::format("cannot connect to instance {} of {}: {}", up->key,
                                           route.prefix, cec.message()),
                               {}};
        if (next_instance()) {
          continue;
        }
        co_return co_await SendError(client, client_buf, head_bytes, false, finish, failure);
      }
      boost::system::error_code ignored;
      conn->stream.socket().set_option(tcp::no_delay(true), ignored);
    }
    const std::string& key = up->key;
    // One deadline for sending the request and receiving the response head (see Watchdog).
    WatchGuard watch(im.watchdog, conn->stream.socket(), im.options.upstream_timeout);
    // Head plus the body bytes already read, in one write where the body is small.
    size_t early = 0;
    if (content_length) {
      early = static_cast<size_t>(std::min<uint64_t>(*content_length, client_buf.size()));
    }
    std::array<asio::const_buffer, 2> bufs{asio::buffer(out),
                                           asio::buffer(client_buf.data().data(), early)};
    auto [wec, wn] = co_await asio::async_write(conn->stream.socket(), bufs, kNoThrow);
    if (wec && reused) {
      conn.reset();  // a pooled connection the instance closed meanwhile: one fresh try
      reused = false;
      continue;
    }
    if (wec) {
      failure = GatewayError{
          502, "Bad Gateway", "bad_gateway",
          fmt::format("sending to instance {}: {}", key, wec.message()), {}};
      if (may_resend && next_instance()) {
        continue;
      }
      co_return co_await SendError(client, client_buf, head_bytes, false, finish, failure);
    }
    client_buf.consume(early);
    metrics.bytes_in.fetch_add(early, std::memory_order_relaxed);
    // A client that sent "Expect: 100-continue" waits for an interim answer before it sends
    // the body. The gateway gives it (as nginx does) once the request is routed and its head is
    // on the way, and does not pass "Expect" on: an instance need not answer it, and a proxy
    // that waited for one could wait forever.
    bool body_pending = (content_length && *content_length > early) || chunked;
    if (expect_continue && body_pending) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      client.expires_after(im.options.body_idle_timeout);
      auto [iec, in] = co_await asio::async_write(client, asio::buffer(kContinue), kNoThrow);
      if (iec) {
        finish(0);
        co_return false;
      }
    }
    if (body_pending) {
      uint64_t counted = 0;
      bool bad_framing = false;
      std::optional<uint64_t> rest;
      if (content_length) {
        rest = *content_length - early;
      }
      bool ok = co_await RelayBody(client, client_buf, conn->stream, rest, chunked, false,
                                   im.options.body_idle_timeout, counted, &bad_framing);
      metrics.bytes_in.fetch_add(counted, std::memory_order_relaxed);
      if (bad_framing) {
        // The upstream connection has part of a body: it is closed, never pooled.
        GatewayError error{400, "Bad Request", "bad_request",
                           "malformed request: invalid chunked framing in the body (RFC 9112 "
                           "§7.1)",
                           {}};
        co_return co_await SendError(client, client_buf, head_bytes, false, finish, error);
      }
      if (!ok) {
        finish(0);
        co_return false;
      }
    }
    client_keep = request_keep;  // the body is relayed whole (failures returned above)
    MessageHead resp;
    HeadRead read = co_await ReadResponseHead(*conn, client, im.options, key, resp, failure);
    if (read == HeadRead::kClientGone) {
      finish(0);
      co_return false;
    }
    if (read == HeadRead::kClosedBeforeAnswering && reused && !has_body) {
      conn.reset();  // a stale pooled connection: one fresh try on the same instance
      reused = false;
      continue;
    }
    if (read == HeadRead::kClosedBeforeAnswering && may_resend && next_instance()) {
      continue;
    }
    if (read != HeadRead::kComplete) {
      co_return co_await SendError(client, client_buf, head_bytes, false, finish, failure);
    }
    // Forward the head with berth's own hop-by-hop fields.
    bool head_only = head_method || resp.status == 204 || resp.status == 304;
    bool until_eof = !head_only && !resp.content_length && !resp.chunked && resp.status != 101;
    bool keep = client_keep && !until_eof && resp.status != 101;
    bool upstream_keep = resp.keep_alive() && !until_eof && resp.status != 101;
    std::string rh = ClientResponseHead(resp, BufferView(conn->buffer), keep);
    conn->buffer.consume(resp.head_bytes);
    size_t early_out = 0;
    if (resp.content_length && !head_only) {
      early_out =
          static_cast<size_t>(std::min<uint64_t>(*resp.content_length, conn->buffer.size()));
    }
    std::array<asio::const_buffer, 2> obufs{asio::buffer(rh),
                                            asio::buffer(conn->buffer.data().data(), early_out)};
    // Bounded by the idle timeout, so that a client that stops reading (pipelining without
    // reading its answers) cannot hold the exchange: through the listener's watch of the
    // connection where there is one (no timer per write on the proxy path).
    boost::system::error_code cwec;
    if (client_watch != nullptr) {
      client_watch->Extend(im.options.body_idle_timeout);
      std::tie(cwec, std::ignore) = co_await asio::async_write(client.socket(), obufs, kNoThrow);
      client_watch->Suspend();
    } else {
      client.expires_after(im.options.body_idle_timeout);
      std::tie(cwec, std::ignore) = co_await asio::async_write(client, obufs, kNoThrow);
    }
    conn->buffer.consume(early_out);
    metrics.bytes_out.fetch_add(early_out, std::memory_order_relaxed);
    if (cwec) {
      finish(resp.status);
      co_return false;
    }
    if (resp.status == 101) {
      // A websocket (or other upgrade): bytes both ways until one side closes.
      finish(101);
      co_await (Pump(client, client_buf, conn->stream, im.options.tunnel_idle_timeout) &&
                Pump(conn->stream, conn->buffer, client, im.options.tunnel_idle_timeout));
      co_return false;
    }
    bool ok = true;
    if (!head_only && (resp.chunked || until_eof ||
                       (resp.content_length && *resp.content_length > early_out))) {
      uint64_t counted = 0;
      std::optional<uint64_t> rest;
      if (resp.content_length) {
        rest = *resp.content_length - early_out;
      }
      ok = co_await RelayBody(conn->stream, conn->buffer, client, rest, resp.chunked, until_eof,
                              im.options.body_idle_timeout, counted);
      metrics.bytes_out.fetch_add(counted, std::memory_order_relaxed);
    }
    finish(resp.status);
    if (mirror) {
      im.mirroring.Send(client.get_executor(), routes_, route, mirror,
                        im.options.upstream_timeout);
    }
    if (ok && upstream_keep && conn->buffer.size() == 0) {
      im.pool.GiveBack(key, std::move(conn));
    }
    co_return ok && keep;
  }
}

Watchdog& Gateway::watchdog() { return impl_->watchdog; }

void Gateway::EnsureSweeping(const asio::any_io_executor& executor) {
  std::call_once(impl_->sweep_started, [&] {
    impl_->sweep_timer = std::make_unique<asio::steady_timer>(executor);
    asio::co_spawn(executor, impl_->SweepLoop(), asio::detached);
  });
}

void Gateway::Shutdown() {
  impl_->pool.Clear();
  impl_->sweep_timer.reset();
}

std::string Gateway::MetricsText() const { return FormatRouteMetrics(routes_.Stats()); }

}  // namespace berth
