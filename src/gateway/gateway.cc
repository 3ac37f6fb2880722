// The proxy path. Per request: authenticate (token services), pick the least busy ready
// instance, take a pooled upstream connection (or open one), write the rewritten head and relay
// the body, read the response head, write it back and relay the body. Allocation per request
// is a head string for each direction; bodies move through the connection buffers.
#include "gateway/gateway.h"

#include "gateway/watchdog.h"

// GCC 12 reports a false -Wmismatched-new-delete for Asio's coroutine frames in large
// coroutines (the frame's operator new and delete do match).
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

#include <fmt/format.h>
#include <sys/socket.h>

#include <cerrno>

#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/beast/core.hpp>
#include <deque>
#include <list>
#include <map>
#include <mutex>
#include <unordered_map>

namespace berth {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr size_t kReadChunk = 64 << 10;

struct UpstreamConn {
  explicit UpstreamConn(const asio::any_io_executor& ex) : stream(ex) {}
  beast::tcp_stream stream;
  beast::flat_buffer buffer;
};

std::string_view BufferView(const beast::flat_buffer& b) {
  auto d = b.data();
  return {static_cast<const char*>(d.data()), d.size()};
}

// Hop-by-hop fields are the proxy's own business (RFC 9110 7.6.1).
bool IsHopByHop(std::string_view name) {
  return EqualsIgnoreCase(name, "connection") || EqualsIgnoreCase(name, "keep-alive") ||
         EqualsIgnoreCase(name, "proxy-connection") || EqualsIgnoreCase(name, "te") ||
         EqualsIgnoreCase(name, "upgrade") || EqualsIgnoreCase(name, "proxy-authorization");
}

// "Expect: 100-continue" is answered by the gateway itself (see Serve), not passed on.
bool IsExpect(std::string_view name) { return EqualsIgnoreCase(name, "expect"); }

std::string ErrorBody(std::string_view code, std::string_view message) {
  std::string out = R"({"error":{"code":")";
  out += code;
  out += R"(","message":")";
  for (char c : message) {
    if (c == '"' || c == '\\') {
      out += '\\';
    }
    out += c;
  }
  out += "\"}}";
  return out;
}

std::string ErrorResponse(int status, std::string_view reason, std::string_view code,
                          std::string_view message, bool keep_alive,
                          std::string_view extra_headers = {}) {
  std::string body = ErrorBody(code, message);
  return fmt::format(
      "HTTP/1.1 {} {}\r\nServer: berth\r\nContent-Type: application/json\r\nContent-Length: "
      "{}\r\n{}{}\r\n{}",
      status, reason, body.size(), keep_alive ? "" : "Connection: close\r\n", extra_headers, body);
}

// The token of a request: "Authorization: Bearer <t>" or the login page's cookie.
std::string_view RequestToken(const MessageHead& head) {
  std::string_view auth = head.Get("authorization");
  if (auth.size() > 7 && EqualsIgnoreCase(auth.substr(0, 7), "bearer ")) {
    return auth.substr(7);
  }
  std::string_view cookies = head.Get("cookie");
  size_t at = cookies.find("berth_token=");
  if (at != std::string_view::npos &&
      (at == 0 || cookies[at - 1] == ' ' || cookies[at - 1] == ';')) {
    std::string_view v = cookies.substr(at + 12);
    return v.substr(0, v.find(';'));
  }
  return {};
}

// The Cookie header without berth's own cookie, which is not the service's business.
std::string CookiesWithoutToken(std::string_view cookies) {
  std::string out;
  while (!cookies.empty()) {
    size_t semi = cookies.find(';');
    std::string_view c = cookies.substr(0, semi);
    while (!c.empty() && c.front() == ' ') {
      c.remove_prefix(1);
    }
    if (!c.empty() && !c.starts_with("berth_token=")) {
      if (!out.empty()) {
        out += "; ";
      }
      out += c;
    }
    if (semi == std::string_view::npos) {
      break;
    }
    cookies.remove_prefix(semi + 1);
  }
  return out;
}

}  // namespace

struct Gateway::Impl {
  Watchdog watchdog;
  // Copies of requests on their way to mirroring shadows.
  std::shared_ptr<std::atomic<int>> mirrors_in_flight = std::make_shared<std::atomic<int>>(0);
  std::unique_ptr<asio::steady_timer> sweep_timer;
  std::once_flag sweep_started;

  GatewayOptions options;
  TokenProject token_project;

  std::mutex pool_mu;
  std::unordered_map<std::string, std::vector<std::unique_ptr<UpstreamConn>>> pool;

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

  // A pooled connection to `key`, or null. With `verify`, connections the instance closed
  // meanwhile (a restarted instance keeps its address) are skipped: one peek each. Requests
  // with a body need this, since their body cannot be sent again on a fresh connection;
  // others retry instead, which costs nothing when the pool is sound.
  std::unique_ptr<UpstreamConn> TakeIdle(const std::string& key, bool verify) {
    std::lock_guard lock(pool_mu);
    auto it = pool.find(key);
    while (it != pool.end() && !it->second.empty()) {
      auto conn = std::move(it->second.back());
      it->second.pop_back();
      if (!verify) {
        return conn;
      }
      char c;
      ssize_t n = ::recv(conn->stream.socket().native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return conn;  // open, and nothing unexpected waiting
      }
    }
    return nullptr;
  }

  void GiveBack(const std::string& key, std::unique_ptr<UpstreamConn> conn) {
    std::lock_guard lock(pool_mu);
    auto& idle = pool[key];
    if (idle.size() < options.idle_upstreams_per_instance) {
      idle.push_back(std::move(conn));
    }
  }
};

Gateway::Gateway(GatewayOptions options, TokenProject token_project)
    : impl_(std::make_unique<Impl>()) {
  impl_->options = options;
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

// Holds an in-flight count for the life of a relayed request.
class InFlight {
 public:
  explicit InFlight(std::shared_ptr<std::atomic<int>> c) : c_(std::move(c)) { c_->fetch_add(1); }
  ~InFlight() { c_->fetch_sub(1); }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;

 private:
  std::shared_ptr<std::atomic<int>> c_;
};

// Writes a gateway error. Returns whether the client connection can go on (then the request's
// head, still in the buffer, is consumed).
// `message` is a reference to a named string of the caller: GCC 12 destroys temporaries that
// live across a co_await twice.
template <typename Finish>
asio::awaitable<bool> SendError(beast::tcp_stream& client, beast::flat_buffer& client_buf,
                                size_t head_bytes, bool client_keep, Finish& finish, int code,
                                std::string_view reason, std::string_view err,
                                const std::string& message, std::string_view extra = {}) {
  std::string resp = ErrorResponse(code, reason, err, message, client_keep, extra);
  client.expires_after(std::chrono::seconds(10));
  auto [ec, n] = co_await asio::async_write(client, asio::buffer(resp), kNoThrow);
  finish(code);
  if (client_keep) {
    client_buf.consume(head_bytes);
  }
  co_return !ec && client_keep;
}

// Sends a copy of a request to a shadow instance and reads its answer to the end, discarding
// it: the shadow sees MAIN's traffic, the client never waits for it. Best effort.
asio::awaitable<void> MirrorRequest(Upstream up, std::shared_ptr<const std::string> request,
                                    std::chrono::seconds timeout,
                                    std::shared_ptr<std::atomic<int>> mirrors) {
  InFlight in_flight(up.in_flight);
  InFlight counted(std::move(mirrors));
  beast::tcp_stream stream(co_await asio::this_coro::executor);
  stream.expires_after(timeout);
  boost::system::error_code aec;
  auto addr = asio::ip::make_address(up.host, aec);
  if (aec) {
    co_return;
  }
  auto [cec] = co_await stream.async_connect(
      tcp::endpoint(addr, static_cast<unsigned short>(up.port)), kNoThrow);
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

// Requests with larger bodies (or streamed ones) are not mirrored, nor any while this many
// copies are still out (a shadow that does not answer must not exhaust the daemon's sockets).
constexpr uint64_t kMirrorMaxBody = 1 << 20;
constexpr int kMaxMirrorsInFlight = 256;

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
  // A request refused before its body was read leaves that body on the connection: close it.
  // Once the body is relayed whole, the connection can go on.
  bool request_keep = head.keep_alive();
  bool client_keep = request_keep && !has_body;
  bool expect_continue = head.expect_continue;
  int status = 0;
  auto finish = [&](int code) {
    status = code;
    metrics.requests[std::min(code / 100, 5)].fetch_add(1, std::memory_order_relaxed);
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                  std::chrono::steady_clock::now() - started)
                  .count();
    metrics.latency_us_sum.fetch_add(static_cast<uint64_t>(us), std::memory_order_relaxed);
    size_t b = 0;
    while (b < RouteStats::kBucketCount &&
           static_cast<double>(us) / 1e6 > RouteStats::kBuckets[b]) {
      ++b;
    }
    metrics.bucket[b].fetch_add(1, std::memory_order_relaxed);
  };
  if (!route.public_access) {
    std::string_view token = RequestToken(head);
    std::optional<std::string> project = token.empty() ? std::nullopt : im.token_project(token);
    if (!project) {
      {
        std::string error_message = fmt::format(
            "{} needs a token of project '{}': send 'Authorization: Bearer <token>', "
            "or log in with a browser at /_berth/login?next={}",
            route.prefix, route.project, route.prefix + "/");
        co_return co_await SendError(client, client_buf, head.head_bytes, client_keep, finish, 401,
                                     "Unauthorized", "unauthenticated", error_message,
                                     "WWW-Authenticate: Bearer realm=\"berth\"\r\n");
      }
    }
    if (!project->empty() && *project != route.project) {
      {
        std::string error_message =
            fmt::format("this token belongs to project '{}', not '{}'", *project, route.project);
        co_return co_await SendError(client, client_buf, head.head_bytes, client_keep, finish, 403,
                                     "Forbidden", "permission_denied", error_message);
      }
    }
  }
  int revision = match.pinned_revision.value_or(route.active_revision);
  std::optional<Upstream> up = routes_.Pick(route, revision);
  if (!up) {
    {
      std::string error_message =
          match.pinned_revision
              ? fmt::format("{}@{} (revision {}) has no ready instance", route.prefix,
                            match.pinned_label, revision)
              : fmt::format("{} has no ready instance right now", route.prefix);
      co_return co_await SendError(client, client_buf, head.head_bytes, client_keep, finish, 503,
                                   "Service Unavailable", "unavailable", error_message,
                                   "Retry-After: 1\r\n");
    }
  }
  InFlight in_flight(up->in_flight);

  // The upstream request head.
  std::string_view target = head.target;
  std::string rewritten;
  std::string_view rest = target.substr(match.prefix_len);
  if (route.strip) {
    rewritten = rest.empty() || rest[0] == '?' ? "/" + std::string(rest) : std::string(rest);
  } else if (match.pinned_revision) {
    rewritten = route.prefix + std::string(rest);
  }
  if (!rewritten.empty() || match.pinned_revision) {
    target = rewritten;
  }
  std::string out;
  out.reserve(head.head_bytes + 256);
  out.append(head.method).append(" ").append(target).append(" HTTP/1.1\r\n");
  bool upgrade = head.connection_upgrade && !head.Get("upgrade").empty();
  std::string_view host = head.Get("host");
  for (size_t i = 0; i < head.field_count; ++i) {
    const HeaderField& f = head.fields[i];
    if (IsHopByHop(f.name) || IsExpect(f.name) ||
        (f.name.size() > 12 && EqualsIgnoreCase(f.name.substr(0, 12), "x-forwarded-"))) {
      continue;
    }
    if (!route.public_access && EqualsIgnoreCase(f.name, "authorization")) {
      continue;  // berth's token is not the service's business
    }
    if (EqualsIgnoreCase(f.name, "cookie") &&
        f.value.find("berth_token=") != std::string_view::npos) {
      std::string rest_cookies = CookiesWithoutToken(f.value);
      if (!rest_cookies.empty()) {
        out.append("Cookie: ").append(rest_cookies).append("\r\n");
      }
      continue;
    }
    out.append(f.name).append(": ").append(f.value).append("\r\n");
  }
  out.append("X-Forwarded-For: ").append(peer_ip).append("\r\n");
  out.append("X-Forwarded-Proto: http\r\n");
  if (!host.empty()) {
    out.append("X-Forwarded-Host: ").append(host).append("\r\n");
  }
  out.append("X-Forwarded-Prefix: ").append(route.prefix).append("\r\n");
  if (upgrade) {
    out.append("Connection: Upgrade\r\nUpgrade: ").append(head.Get("upgrade")).append("\r\n");
  }
  out.append("\r\n");
  // A copy for shadow versions that mirror the live traffic: unpinned requests whose whole
  // body has arrived with the head.
  std::shared_ptr<std::string> mirror;
  uint64_t body_len = head.content_length.value_or(0);
  bool mirrored = !route.mirrors.empty() && !match.pinned_revision && !upgrade &&
                  !head.chunked && !expect_continue && body_len <= kMirrorMaxBody &&
                  im.mirrors_in_flight->load(std::memory_order_relaxed) < kMaxMirrorsInFlight;
  // A mirrored request's small body is read whole first (clients often send it after the
  // head), so that the shadow gets it too. `head`'s views are not used past this point.
  while (mirrored && client_buf.size() - head.head_bytes < body_len) {
    client.expires_after(im.options.body_idle_timeout);
    auto [rec, rn] = co_await client.async_read_some(client_buf.prepare(kReadChunk), kNoThrow);
    if (rec) {
      finish(0);
      co_return false;
    }
    client_buf.commit(rn);
  }
  if (mirrored) {
    mirror = std::make_shared<std::string>(std::string_view(out).substr(0, out.size() - 2));
    mirror->append("Connection: close\r\n\r\n");
    mirror->append(BufferView(client_buf).substr(head.head_bytes, body_len));
  }
  client_buf.consume(head.head_bytes);

  // A pooled connection may have been closed by the instance meanwhile; then one fresh try.
  const std::string& key = up->key;
  std::unique_ptr<UpstreamConn> conn = im.TakeIdle(key, has_body);
  bool reused = conn != nullptr;
  for (int attempt = 0;; ++attempt) {
    if (!conn) {
      conn = std::make_unique<UpstreamConn>(client.get_executor());
      conn->stream.expires_after(im.options.connect_timeout);
      boost::system::error_code aec;
      auto addr = asio::ip::make_address(up->host, aec);
      auto [cec] = co_await conn->stream.async_connect(
          tcp::endpoint(addr, static_cast<unsigned short>(up->port)), kNoThrow);
      if (cec) {
        client_keep = false;
        {
          std::string error_message = fmt::format("cannot connect to instance {}:{} of {}: {}",
                                                  up->host, up->port, route.prefix, cec.message());
          co_return co_await SendError(client, client_buf, head.head_bytes, client_keep, finish,
                                       502, "Bad Gateway", "bad_gateway", error_message);
        }
      }
      boost::system::error_code ignored;
      conn->stream.socket().set_option(tcp::no_delay(true), ignored);
    }
    // One deadline for sending the request and receiving the response head (see Watchdog).
    WatchGuard watch(im.watchdog, conn->stream.socket(), im.options.upstream_timeout);
    // Head plus the body bytes already read, in one write where the body is small.
    size_t early = 0;
    if (head.content_length) {
      early = static_cast<size_t>(std::min<uint64_t>(*head.content_length, client_buf.size()));
    }
    std::array<asio::const_buffer, 2> bufs{asio::buffer(out),
                                           asio::buffer(client_buf.data().data(), early)};
    auto [wec, wn] = co_await asio::async_write(conn->stream.socket(), bufs, kNoThrow);
    if (wec && reused && attempt == 0) {
      conn.reset();
      reused = false;
      continue;
    }
    if (wec) {
      client_keep = false;
      {
        std::string error_message = fmt::format("sending to instance {}: {}", key, wec.message());
        co_return co_await SendError(client, client_buf, head.head_bytes, client_keep, finish, 502,
                                     "Bad Gateway", "bad_gateway", error_message);
      }
    }
    client_buf.consume(early);
    metrics.bytes_in.fetch_add(early, std::memory_order_relaxed);
    // A client that sent "Expect: 100-continue" waits for an interim answer before it sends
    // the body. The gateway gives it (as nginx does) once the request is routed and its head is
    // on the way, and does not pass "Expect" on: an instance need not answer it, and a proxy
    // that waited for one could wait forever.
    bool body_pending = (head.content_length && *head.content_length > early) || head.chunked;
    if (expect_continue && body_pending) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      client.expires_after(im.options.body_idle_timeout);
      auto [iec, in] = co_await asio::async_write(client, asio::buffer(kContinue), kNoThrow);
      if (iec) {
        finish(0);
        co_return false;
      }
    }
    if (head.content_length && *head.content_length > early) {
      uint64_t counted = 0;
      bool ok = co_await RelayBody(client, client_buf, conn->stream, *head.content_length - early,
                                   false, false, im.options.body_idle_timeout, counted);
      metrics.bytes_in.fetch_add(counted, std::memory_order_relaxed);
      if (!ok) {
        finish(0);
        co_return false;
      }
    } else if (head.chunked) {
      uint64_t counted = 0;
      bool bad_framing = false;
      bool ok = co_await RelayBody(client, client_buf, conn->stream, std::nullopt, true, false,
                                   im.options.body_idle_timeout, counted, &bad_framing);
      metrics.bytes_in.fetch_add(counted, std::memory_order_relaxed);
      if (bad_framing) {
        // The upstream connection has part of a body: it is closed, never pooled.
        std::string error_message =
            "malformed request: invalid chunked framing in the body (RFC 9112 §7.1)";
        co_return co_await SendError(client, client_buf, head.head_bytes, false, finish, 400,
                                     "Bad Request", "bad_request", error_message);
      }
      if (!ok) {
        finish(0);
        co_return false;
      }
    }
    client_keep = request_keep;  // the body is relayed whole (failures returned above)
    // The response head (skipping 1xx interim responses, which are passed on).
    MessageHead resp;
    bool got_head = false;
    while (!got_head) {
      ParseResult pr = ParseResponseHead(BufferView(conn->buffer), resp);
      if (pr == ParseResult::kInvalid || pr == ParseResult::kTooManyFields) {
        client_keep = false;
        {
          std::string error_message = fmt::format(
              "instance {} sent an invalid response head{}{}", key,
              resp.error.empty() ? "" : ": ", resp.error);
          co_return co_await SendError(client, client_buf, head.head_bytes, client_keep, finish,
                                       502, "Bad Gateway", "bad_gateway", error_message);
        }
      }
      if (pr == ParseResult::kComplete) {
        if (resp.status >= 100 && resp.status < 200 && resp.status != 101) {
          client.expires_after(im.options.body_idle_timeout);
          auto [iec, in] = co_await asio::async_write(
              client, asio::buffer(conn->buffer.data().data(), resp.head_bytes), kNoThrow);
          conn->buffer.consume(resp.head_bytes);
          if (iec) {
            co_return false;
          }
          continue;
        }
        got_head = true;
        break;
      }
      if (conn->buffer.size() > im.options.max_header_bytes * 4) {
        client_keep = false;
        {
          std::string error_message = fmt::format("instance {} sent an oversized head", key);
          co_return co_await SendError(client, client_buf, head.head_bytes, client_keep, finish,
                                       502, "Bad Gateway", "bad_gateway", error_message);
        }
      }
      auto [rec, rn] = co_await conn->stream.socket().async_read_some(
          conn->buffer.prepare(kReadChunk), kNoThrow);
      if (rec) {
        bool timed_out = rec == asio::error::operation_aborted;  // cancelled by the watchdog
        if (reused && attempt == 0 && conn->buffer.size() == 0 && !has_body && !timed_out) {
          break;  // a stale pooled connection: retry once on a fresh one
        }
        client_keep = false;
        if (timed_out) {
          {
            std::string error_message = fmt::format("instance {} did not answer within {} s", key,
                                                    im.options.upstream_timeout.count());
            co_return co_await SendError(client, client_buf, head.head_bytes, client_keep, finish,
                                         504, "Gateway Timeout", "gateway_timeout", error_message);
          }
        }
        {
          std::string error_message =
              fmt::format("instance {} closed the connection: {}", key, rec.message());
          co_return co_await SendError(client, client_buf, head.head_bytes, client_keep, finish,
                                       502, "Bad Gateway", "bad_gateway", error_message);
        }
      }
      conn->buffer.commit(rn);
    }
    if (!got_head) {
      conn.reset();
      reused = false;
      continue;
    }
    // Forward the head with berth's own hop-by-hop fields.
    bool head_only = head_method || resp.status == 204 || resp.status == 304;
    bool until_eof = !head_only && !resp.content_length && !resp.chunked && resp.status != 101;
    bool keep = client_keep && !until_eof && resp.status != 101;
    bool upstream_keep = resp.keep_alive() && !until_eof && resp.status != 101;
    std::string rh;
    std::string_view raw = BufferView(conn->buffer).substr(0, resp.head_bytes);
    size_t first_eol = raw.find("\r\n");
    rh.reserve(resp.head_bytes + 64);
    rh.append(raw.substr(0, first_eol + 2));
    for (size_t i = 0; i < resp.field_count; ++i) {
      const HeaderField& f = resp.fields[i];
      if (IsHopByHop(f.name) && resp.status != 101) {
        continue;
      }
      rh.append(f.name).append(": ").append(f.value).append("\r\n");
    }
    if (!keep && resp.status != 101) {
      rh.append("Connection: close\r\n");
    }
    rh.append("\r\n");
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
    if (!head_only) {
      uint64_t counted = 0;
      if (resp.content_length && *resp.content_length > early_out) {
        ok =
            co_await RelayBody(conn->stream, conn->buffer, client, *resp.content_length - early_out,
                               false, false, im.options.body_idle_timeout, counted);
      } else if (resp.chunked) {
        ok = co_await RelayBody(conn->stream, conn->buffer, client, std::nullopt, true, false,
                                im.options.body_idle_timeout, counted);
      } else if (until_eof) {
        ok = co_await RelayBody(conn->stream, conn->buffer, client, std::nullopt, false, true,
                                im.options.body_idle_timeout, counted);
      }
      metrics.bytes_out.fetch_add(counted, std::memory_order_relaxed);
    }
    finish(resp.status);
    if (mirror) {
      for (int shadow : route.mirrors) {
        if (std::optional<Upstream> m = routes_.Pick(route, shadow)) {
          asio::co_spawn(client.get_executor(),
                         MirrorRequest(*m, mirror, im.options.upstream_timeout,
                                       im.mirrors_in_flight),
                         asio::detached);
        }
      }
    }
    if (ok && upstream_keep && conn->buffer.size() == 0) {
      im.GiveBack(key, std::move(conn));
    }
    co_return ok&& keep;
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
  {
    std::lock_guard lock(impl_->pool_mu);
    impl_->pool.clear();
  }
  impl_->sweep_timer.reset();
}

std::string Gateway::MetricsText() const {
  std::string out =
      "# HELP berth_gateway_requests_total Requests proxied, by route and status class.\n"
      "# TYPE berth_gateway_requests_total counter\n";
  std::string lat =
      "# HELP berth_gateway_request_duration_seconds Time from request head to response end.\n"
      "# TYPE berth_gateway_request_duration_seconds histogram\n";
  std::string bytes =
      "# HELP berth_gateway_bytes_total Body bytes relayed, by route and direction.\n"
      "# TYPE berth_gateway_bytes_total counter\n";
  for (const auto& [prefix, m] : routes_.Stats()) {
    static constexpr const char* kClass[] = {"error", "1xx", "2xx", "3xx", "4xx", "5xx"};
    uint64_t total = 0;
    for (int c = 0; c < 6; ++c) {
      uint64_t n = m->requests[c].load();
      total += n;
      out += fmt::format("berth_gateway_requests_total{{route=\"{}\",code=\"{}\"}} {}\n", prefix,
                         kClass[c], n);
    }
    uint64_t cumulative = 0;
    for (size_t b = 0; b <= RouteStats::kBucketCount; ++b) {
      cumulative += m->bucket[b].load();
      lat += fmt::format(
          "berth_gateway_request_duration_seconds_bucket{{route=\"{}\",le=\"{}\"}} "
          "{}\n",
          prefix,
          b < RouteStats::kBucketCount ? fmt::format("{}", RouteStats::kBuckets[b]) : "+Inf",
          cumulative);
    }
    lat += fmt::format("berth_gateway_request_duration_seconds_sum{{route=\"{}\"}} {}\n", prefix,
                       static_cast<double>(m->latency_us_sum.load()) / 1e6);
    lat += fmt::format("berth_gateway_request_duration_seconds_count{{route=\"{}\"}} {}\n", prefix,
                       total);
    bytes += fmt::format("berth_gateway_bytes_total{{route=\"{}\",direction=\"in\"}} {}\n", prefix,
                         m->bytes_in.load());
    bytes += fmt::format("berth_gateway_bytes_total{{route=\"{}\",direction=\"out\"}} {}\n", prefix,
                         m->bytes_out.load());
  }
  return out + lat + bytes;
}

}  // namespace berth
