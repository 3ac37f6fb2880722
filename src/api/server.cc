// The only file of the API that instantiates Beast and Asio templates; keeping them here keeps
// the rest of the build fast.
#include "api/server.h"

#include <fmt/format.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <csignal>
#include <thread>
#include <vector>

#include "common/log.h"
#include "common/thread.h"
#include "gateway/watchdog.h"

namespace berth {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

// Threads of their own for a kind of request, named for what they do and, for bulk work,
// at a lower priority: a PUT that writes the store and starts processes takes its turn after
// the status reads and the gateway's requests on the I/O threads.
class WorkerPool {
 public:
  WorkerPool(const char* name, int threads, int nice_delta) : guard_(ioc_.get_executor()) {
    for (int i = 0; i < threads; ++i) {
      threads_.emplace_back([this, name, nice_delta] {
        NameThisThread(name);
        LowerThisThreadPriority(nice_delta);
        ioc_.run();
      });
    }
  }
  ~WorkerPool() { Stop(); }
  asio::io_context& context() { return ioc_; }
  // Requests under way finish; nothing queued after them runs.
  void Stop() {
    guard_.reset();
    ioc_.stop();
    for (auto& t : threads_) {
      if (t.joinable()) {
        t.join();
      }
    }
  }

 private:
  asio::io_context ioc_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_;
  std::vector<std::thread> threads_;
};

Result<tcp::endpoint> ParseListen(const std::string& listen) {
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos) {
    return Status::InvalidArgument(
        fmt::format("listen address '{}' has no port; write HOST:PORT, e.g. 127.0.0.1:8080",
                    listen));
  }
  std::string host = listen.substr(0, colon);
  std::string port_text = listen.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty()) {
    host = "0.0.0.0";
  }
  unsigned port = 0;
  auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || ptr != port_text.data() + port_text.size() || port > 65535) {
    return Status::InvalidArgument(
        fmt::format("listen address '{}': port '{}' is not a number 0-65535", listen, port_text));
  }
  boost::system::error_code addr_ec;
  auto addr = asio::ip::make_address(host, addr_ec);
  if (addr_ec) {
    if (host == "localhost") {
      addr = asio::ip::make_address("127.0.0.1");
    } else {
      return Status::InvalidArgument(fmt::format(
          "listen address '{}': '{}' is not an IP address ({})", listen, host, addr_ec.message()));
    }
  }
  return tcp::endpoint(addr, static_cast<unsigned short>(port));
}

HttpRequest ToHttpRequest(const http::request_header<>& head, const std::string& peer) {
  HttpRequest out;
  out.method = std::string(head.method_string());
  out.target = std::string(head.target());
  out.headers.reserve(8);
  for (const auto& f : head) {
    std::string name(f.name_string());
    for (char& c : name) {
      if (c >= 'A' && c <= 'Z') {
        c = static_cast<char>(c + 32);
      }
    }
    out.headers.emplace_back(std::move(name), std::string(f.value()));
  }
  out.peer = peer;
  return out;
}

http::response<http::string_body> ToBeastResponse(HttpResponse&& r, unsigned version,
                                                  bool keep_alive, bool head) {
  http::response<http::string_body> res{static_cast<http::status>(r.status), version};
  res.set(http::field::server, "berth");
  res.set(http::field::content_type, r.content_type);
  for (auto& [k, v] : r.headers) {
    res.set(k, v);
  }
  res.keep_alive(keep_alive);
  if (head) {
    res.content_length(r.body.size());
  } else {
    res.body() = std::move(r.body);
    res.prepare_payload();
  }
  return res;
}

// The target of the request line at the start of `buffer`, or "" when it is not there.
std::string RawTarget(const beast::flat_buffer& buffer) {
  auto data = buffer.data();
  std::string_view text(static_cast<const char*>(data.data()), data.size());
  size_t eol = text.find('\n');
  std::string_view line = text.substr(0, eol);
  size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos) {
    return {};
  }
  size_t sp2 = line.find(' ', sp1 + 1);
  return std::string(line.substr(sp1 + 1, sp2 == std::string_view::npos ? sp2 : sp2 - sp1 - 1));
}

std::string_view BufferView(const beast::flat_buffer& b) {
  auto d = b.data();
  return {static_cast<const char*>(d.data()), d.size()};
}

class BeastServer final : public HttpServer {
 public:
  BeastServer(const ServerOptions& options, HttpHandler& handler, Gateway* gateway)
      : options_(options),
        handler_(handler),
        gateway_(gateway),
        ioc_(options.threads),
        acceptor_(ioc_) {}

  ~BeastServer() override { Stop(); }

  Status Listen() {
    auto ep = ParseListen(options_.listen);
    if (!ep.ok()) {
      return ep.status();
    }
    boost::system::error_code ec;
    acceptor_.open(ep->protocol(), ec);
    if (!ec) {
      acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    }
    if (!ec) {
      acceptor_.bind(*ep, ec);
    }
    if (!ec) {
      acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    }
    if (ec) {
      return Status::Unavailable(
          fmt::format("cannot listen on {}: {}", options_.listen, ec.message()));
    }
    local_ = acceptor_.local_endpoint(ec);
    asio::co_spawn(ioc_, Accept(), asio::detached);
    int n = options_.threads < 1 ? 1 : options_.threads;
    for (int i = 0; i < n; ++i) {
      threads_.emplace_back([this] {
        NameThisThread("berth-io");
        ioc_.run();
      });
    }
    return Status::Ok();
  }

  std::string LocalAddress() const override {
    if (local_.address().is_v6()) {
      return fmt::format("[{}]:{}", local_.address().to_string(), local_.port());
    }
    return fmt::format("{}:{}", local_.address().to_string(), local_.port());
  }

  void WaitForShutdownSignal() override {
    // The daemon blocks these in every thread before starting any (BlockShutdownSignals), so
    // a signal arriving at any moment waits here instead of killing the process.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    int sig = 0;
    while (sigwait(&set, &sig) != 0) {
    }
    LogInfo("shutting down", {{"signal", sig == SIGINT ? "SIGINT" : "SIGTERM"}});
  }

  void Stop() override {
    if (stopped_.exchange(true)) {
      return;
    }
    asio::post(acceptor_.get_executor(), [this] {
      boost::system::error_code ignored;
      acceptor_.close(ignored);
    });
    // Requests being handled get a moment to finish; idle keep-alive connections do not hold
    // shutdown up.
    for (int i = 0; i < 200 && busy_.load() > 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ioc_.stop();
    for (auto& t : threads_) {
      if (t.joinable()) {
        t.join();
      }
    }
    changes_.Stop();
    uploads_.Stop();
  }

 private:
  asio::awaitable<void> Accept() {
    for (;;) {
      // With one thread the io_context itself runs every handler in turn: a strand per
      // connection would only add a lock and a dispatch to each of its operations.
      asio::any_io_executor executor = options_.threads <= 1
                                           ? asio::any_io_executor(ioc_.get_executor())
                                           : asio::any_io_executor(asio::make_strand(ioc_));
      auto [ec, socket] = co_await acceptor_.async_accept(executor, kNoThrow);
      if (ec) {
        if (ec == asio::error::operation_aborted || !acceptor_.is_open()) {
          co_return;
        }
        // Running out of descriptors must not end the accept loop; back off briefly.
        LogWarn("accept failed", {{"error", ec.message()}});
        asio::steady_timer t(ioc_, std::chrono::milliseconds(50));
        co_await t.async_wait(kNoThrow);
        continue;
      }
      auto exec = socket.get_executor();
      asio::co_spawn(exec, Session(std::move(socket)), [](std::exception_ptr e) {
        if (e) {
          try {
            std::rethrow_exception(e);
          } catch (const std::exception& ex) {
            LogWarn("connection ended by an exception", {{"error", ex.what()}});
          }
        }
      });
    }
  }

  // Takes the response by reference to a caller's named variable: GCC 12 destroys temporaries
  // that live across a co_await twice.
  asio::awaitable<void> Reply(beast::tcp_stream& stream, HttpResponse& r, unsigned version,
                              bool keep_alive, bool head) {
    auto res = ToBeastResponse(std::move(r), version, keep_alive, head);
    if (head) {
      http::response_serializer<http::string_body> sr{res};
      sr.split(true);
      co_await http::async_write_header(stream, sr, kNoThrow);
    } else {
      co_await http::async_write(stream, res, kNoThrow);
    }
  }

  asio::awaitable<void> Session(tcp::socket socket) {
    boost::system::error_code ec;
    auto remote = socket.remote_endpoint(ec);
    std::string peer = ec ? std::string("unknown")
                          : fmt::format("{}:{}", remote.address().to_string(), remote.port());
    socket.set_option(tcp::no_delay(true), ec);
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    std::string peer_ip = ec ? std::string() : remote.address().to_string();
    MessageHead mh;
    // With a gateway, head reads use its watchdog instead of a timer per read (see watchdog.h).
    std::optional<WatchGuard> watch;
    if (gateway_ != nullptr) {
      gateway_->EnsureSweeping(stream.get_executor());
      watch.emplace(gateway_->watchdog(), stream.socket(), options_.idle_timeout);
    }
    for (;;) {
      // Read a whole request head first: the proxy path parses it in place, and the API path
      // hands the buffered bytes to Beast's parser below without another read.
      ParseResult pr = ParseResult::kIncomplete;
      bool timed_out = false;
      bool closed = false;
      // The header timeout counts from a head's first byte, not from when the connection went
      // idle: a keep-alive connection (or a browser's preconnect) may wait long before it.
      std::optional<std::chrono::steady_clock::time_point> head_deadline;
      if (buffer.size() > 0) {
        head_deadline = std::chrono::steady_clock::now() + options_.header_timeout;
      }
      while ((pr = ParseRequestHead(BufferView(buffer), mh)) == ParseResult::kIncomplete &&
             buffer.size() <= options_.max_header_bytes) {
        // Idle keep-alive connections wait up to idle_timeout for a first byte; once a request
        // has begun, its head must be complete within header_timeout.
        boost::system::error_code rec;
        size_t rn = 0;
        if (watch) {
          // Idle keep-alive: idle_timeout from now. Once a head has begun: a fixed deadline,
          // so that a byte now and then (slowloris) does not keep the connection.
          if (buffer.size() == 0) {
            watch->Extend(options_.idle_timeout);
          } else {
            watch->Until(*head_deadline);
          }
          std::tie(rec, rn) =
              co_await stream.socket().async_read_some(buffer.prepare(8192), kNoThrow);
          if (rec == asio::error::operation_aborted) {
            rec = beast::error::timeout;
          }
        } else {
          if (buffer.size() == 0) {
            stream.expires_after(options_.idle_timeout);
          } else {
            stream.expires_at(*head_deadline);
          }
          std::tie(rec, rn) = co_await stream.async_read_some(buffer.prepare(8192), kNoThrow);
        }
        if (rec) {
          timed_out = rec == beast::error::timeout && buffer.size() > 0;
          closed = true;
          break;
        }
        if (buffer.size() == 0 && rn > 0) {
          head_deadline = std::chrono::steady_clock::now() + options_.header_timeout;
        }
        buffer.commit(rn);
      }
      if (timed_out) {
        HttpResponse r = handler_.Reject(RawTarget(buffer), 408,
                                         fmt::format("the request head did not arrive within {} s",
                                                     options_.header_timeout.count()));
        co_await Reply(stream, r, 11, false, false);
        break;
      }
      if (closed) {
        break;
      }
      if (pr == ParseResult::kTooManyFields) {
        HttpResponse r = handler_.Reject(
            RawTarget(buffer), 431,
            fmt::format("the request head has more than {} header fields", kMaxHeaderFields));
        co_await Reply(stream, r, 11, false, false);
        break;
      }
      // A malformed head is refused here, on the API's paths and the services' alike, and the
      // connection closed: handing it to another parser could read it differently.
      if (pr == ParseResult::kInvalid) {
        HttpResponse r = handler_.Reject(
            RawTarget(buffer), 400,
            fmt::format("malformed request: {} (RFC 9110, RFC 9112)", mh.error));
        co_await Reply(stream, r, 11, false, false);
        break;
      }
      // A head that arrived whole in the last read may still be over the limit: Beast's parser
      // below refuses it in the route's error shape.
      if (pr == ParseResult::kComplete && mh.head_bytes > options_.max_header_bytes) {
        pr = ParseResult::kIncomplete;
      }
      if (watch) {
        watch->Suspend();  // the proxy and the API handle their own timeouts from here
      }
      if (pr == ParseResult::kComplete && gateway_ != nullptr) {
        if (auto match = gateway_->routes().Match(mh.target)) {
          busy_.fetch_add(1);
          bool again = co_await gateway_->Serve(stream, buffer, mh, *match, peer_ip,
                                                watch ? &*watch : nullptr);
          busy_.fetch_sub(1);
          if (!again || stopped_.load()) {
            break;
          }
          continue;
        }
      }
      http::request_parser<http::empty_body> head_parser;
      head_parser.header_limit(static_cast<std::uint32_t>(options_.max_header_bytes));
      head_parser.body_limit(boost::none);  // checked below, per route
      stream.expires_after(options_.idle_timeout);
      auto [hec, hn] = co_await http::async_read_header(stream, buffer, head_parser, kNoThrow);
      if (hec) {
        // The error's shape depends on the route. Beast consumes the start line before the
        // fields, so the target may be in the parser already; before that it is in the buffer.
        // (A named variable, not a temporary: GCC 12 mishandles temporaries in co_await.)
        std::string target(head_parser.get().target());
        if (target.empty()) {
          target = RawTarget(buffer);
        }
        co_await RejectRead(stream, hec, target);
        break;
      }
      const auto& head = head_parser.get();
      HttpRequest request = ToHttpRequest(head, peer);
      bool keep_alive = head.keep_alive();
      unsigned version = head.version();
      bool is_head = head.method() == http::verb::head;
      bool expect_continue = beast::iequals(head[http::field::expect], "100-continue");
      auto upload = handler_.Upload(request.method, request.target);
      uint64_t limit = upload ? upload->max_bytes : options_.max_body_bytes;
      if (auto len = head_parser.content_length(); len && *len > limit) {
        co_await RejectRead(stream, http::error::body_limit, head.target(), limit);
        break;
      }
      if (expect_continue) {
        http::response<http::empty_body> cont{http::status::continue_, version};
        co_await http::async_write(stream, cont, kNoThrow);
      }
      boost::system::error_code bec;
      if (upload) {
        request.body_file = fmt::format("{}/upload-{}-{}", upload->dir, ::getpid(),
                                        upload_seq_.fetch_add(1));
        http::request_parser<http::file_body> parser{std::move(head_parser)};
        parser.body_limit(limit);
        parser.get().body().open(request.body_file.c_str(), beast::file_mode::write, bec);
        if (!bec) {
          // Large uploads take long; the idle timeout applies to each read, not the whole body.
          while (!bec && !parser.is_done()) {
            stream.expires_after(options_.idle_timeout);
            auto [rec, rn] = co_await http::async_read_some(stream, buffer, parser, kNoThrow);
            bec = rec;
          }
          parser.get().body().close();
        }
        if (bec) {
          ::unlink(request.body_file.c_str());
          co_await RejectRead(stream, bec, request.target, limit);
          break;
        }
      } else {
        http::request_parser<http::string_body> parser{std::move(head_parser)};
        parser.body_limit(limit);
        auto [rec, rn] = co_await http::async_read(stream, buffer, parser, kNoThrow);
        bec = rec;
        if (bec) {
          co_await RejectRead(stream, bec, request.target, limit);
          break;
        }
        request.body = std::move(parser.get().body());
      }
      HttpResponse response;
      busy_.fetch_add(1);
      if (!ParseTarget(request.target, request)) {
        response = handler_.Reject(request.target, 400,
                                   "request target is not an absolute path with valid "
                                   "percent-encoding");
        keep_alive = false;
      } else if (request.method == "GET" || request.method == "HEAD") {
        response = handler_.Handle(request);
      } else {
        // Changes (store writes, process starts) run on their own threads, so that reads
        // (status, lists, the gateway's login) never queue behind them here; uploads (unpacking
        // up to 1 GiB, a bundle's build for up to --build-timeout) on threads of theirs, so
        // that changes never queue behind them.
        response = co_await asio::co_spawn(
            request.body_file.empty() ? changes_.context() : uploads_.context(),
            [this, &request]() -> asio::awaitable<HttpResponse> {
              co_return handler_.Handle(request);
            },
            asio::use_awaitable);
      }
      if (response.deferred) {
        response = co_await Later(std::move(response.deferred));
      }
      busy_.fetch_sub(1);
      if (!request.body_file.empty()) {
        ::unlink(request.body_file.c_str());
      }
      stream.expires_after(options_.idle_timeout);
      if (response.next_chunk) {
        co_await Stream(stream, response, version);
        break;
      }
      co_await Reply(stream, response, version, keep_alive, is_head);
      if (!keep_alive || stopped_.load()) {
        break;
      }
    }
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  }

  // Waits, on the connection's strand and without a thread, for a response produced later.
  // The reply is posted to the strand, so the check and the wait below never race with it.
  asio::awaitable<HttpResponse> Later(
      std::function<void(std::function<void(HttpResponse)>)> start) {
    struct State {
      explicit State(const asio::any_io_executor& e)
          : timer(e, asio::steady_timer::time_point::max()) {}
      asio::steady_timer timer;
      std::optional<HttpResponse> result;
    };
    auto state = std::make_shared<State>(co_await asio::this_coro::executor);
    start([state](HttpResponse r) {
      asio::post(state->timer.get_executor(), [state, r = std::move(r)]() mutable {
        state->result = std::move(r);
        state->timer.cancel();
      });
    });
    while (!state->result) {
      co_await state->timer.async_wait(kNoThrow);
    }
    co_return std::move(*state->result);
  }

  // Sends a chunked response whose chunks come from `r.next_chunk`, until it ends or the
  // client goes away.
  asio::awaitable<void> Stream(beast::tcp_stream& stream, HttpResponse& r, unsigned version) {
    http::response<http::empty_body> res{static_cast<http::status>(r.status), version};
    res.set(http::field::server, "berth");
    res.set(http::field::content_type, r.content_type);
    res.set(http::field::cache_control, "no-cache");
    for (auto& [k, v] : r.headers) {
      res.set(k, v);
    }
    res.chunked(true);
    res.keep_alive(false);
    http::response_serializer<http::empty_body> sr{res};
    auto [hec, hn] = co_await http::async_write_header(stream, sr, kNoThrow);
    if (hec) {
      co_return;
    }
    asio::steady_timer timer(stream.get_executor());
    std::string pending = std::move(r.body);
    while (!stopped_.load()) {
      if (!pending.empty()) {
        stream.expires_after(options_.idle_timeout);
        auto [wec, wn] =
            co_await asio::async_write(stream, http::make_chunk(asio::buffer(pending)), kNoThrow);
        if (wec) {
          co_return;
        }
      }
      std::optional<std::string> next = r.next_chunk();
      if (!next) {
        break;
      }
      pending = std::move(*next);
      if (pending.empty()) {
        timer.expires_after(std::chrono::milliseconds(r.poll_every_ms));
        co_await timer.async_wait(kNoThrow);
      }
    }
    stream.expires_after(std::chrono::seconds(5));
    co_await asio::async_write(stream, http::make_chunk_last(), kNoThrow);
  }

  // Answers a request the parser refused, then the connection closes. Clean ends (peer closed,
  // idle timeout) get no answer.
  asio::awaitable<void> RejectRead(beast::tcp_stream& stream, boost::system::error_code ec,
                                   std::string_view target, uint64_t body_limit = 0) {
    if (ec == http::error::end_of_stream || ec == asio::error::eof ||
        ec == asio::error::connection_reset || ec == beast::error::timeout ||
        ec == asio::error::operation_aborted) {
      co_return;
    }
    int status = 400;
    std::string message = fmt::format("malformed HTTP request: {}", ec.message());
    if (ec == http::error::body_limit) {
      status = 413;
      message = fmt::format("request body is larger than the limit of {} bytes",
                            body_limit ? body_limit : options_.max_body_bytes);
    } else if (ec == http::error::header_limit) {
      status = 431;
      message = fmt::format("request headers are larger than the limit of {} bytes",
                            options_.max_header_bytes);
    }
    HttpResponse r = handler_.Reject(target, status, message);
    stream.expires_after(std::chrono::seconds(5));
    co_await Reply(stream, r, 11, false, false);
    // Lingering close (as nginx does): a client still sending the body it was refused would
    // get a reset, not the answer, if the connection closed with its bytes unread. Read and
    // drop them for a moment (bounded in time and bytes), with the sending side shut.
    boost::system::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
    std::array<char, 4096> sink;  // in the coroutine frame: nothing shared between threads
    size_t drained = 0;
    while (drained < (size_t{64} << 20)) {
      stream.expires_after(std::chrono::seconds(2));
      auto [rec, rn] = co_await stream.async_read_some(asio::buffer(sink), kNoThrow);
      if (rec) {
        break;
      }
      drained += rn;
    }
  }

  ServerOptions options_;
  HttpHandler& handler_;
  Gateway* gateway_;
  asio::io_context ioc_;
  WorkerPool changes_{"berth-changes", 2, 5};  // requests that change something
  WorkerPool uploads_{"berth-uploads", 4, 5};  // uploads (bundles, their builds)
  tcp::acceptor acceptor_;
  tcp::endpoint local_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stopped_{false};
  std::atomic<int> busy_{0};
  std::atomic<uint64_t> upload_seq_{0};
};

}  // namespace

void BlockShutdownSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

Result<std::unique_ptr<HttpServer>> HttpServer::Start(const ServerOptions& options,
                                                      HttpHandler& handler, Gateway* gateway) {
  auto server = std::make_unique<BeastServer>(options, handler, gateway);
  if (auto s = server->Listen(); !s.ok()) {
    return s;
  }
  return std::unique_ptr<HttpServer>(std::move(server));
}

}  // namespace berth
