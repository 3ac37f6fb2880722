#include "http_server.h"

// GCC 12 reports a false -Wmismatched-new-delete for Asio's coroutine frames in some builds
// (-O1 with sanitizers); the frame's operator new and delete do match.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

#include <array>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <chrono>
#include <csignal>
#include <optional>
#include <thread>
#include <vector>

#include "berth/log.h"

namespace berth::sdk {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

constexpr std::uint64_t kMaxBodyBytes = 32 << 20;
constexpr std::uint32_t kMaxHeaderBytes = 16 << 10;
constexpr std::chrono::seconds kIdleTimeout{60};
constexpr std::chrono::seconds kDrainTimeout{5};

void AppendNumber(std::string& out, std::uint64_t n) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, n);
  out.append(buf, r.ptr);
}

// The response head, written by hand into a reused string: Beast's fields container would
// allocate per header line, and these few lines are all a reply has.
void BuildHead(std::string& head, const Reply& reply, unsigned version, bool keep_alive) {
  head.clear();
  head += version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
  AppendNumber(head, static_cast<unsigned>(reply.status));
  head += ' ';
  beast::string_view reason = http::obsolete_reason(static_cast<http::status>(reply.status));
  head.append(reason.data(), reason.size());
  head += "\r\nServer: berth-sdk\r\nContent-Type: ";
  head += reply.content_type.empty() ? std::string_view("application/json") : reply.content_type;
  head += "\r\nContent-Length: ";
  AppendNumber(head, reply.body.size());
  if (!reply.allow.empty()) {
    head += "\r\nAllow: ";
    head += reply.allow;
  }
  if (!keep_alive) {
    head += "\r\nConnection: close";
  } else if (version == 10) {
    head += "\r\nConnection: keep-alive";
  }
  head += "\r\n\r\n";
}

bool IsQuietEnd(const boost::system::error_code& ec) {
  return ec == http::error::end_of_stream || ec == asio::error::eof ||
         ec == asio::error::connection_reset || ec == beast::error::timeout ||
         ec == asio::error::operation_aborted || ec == http::error::partial_message;
}

class Server {
 public:
  Server(const Router& router, const ServerOptions& options)
      : router_(router),
        options_(options),
        ioc_(options.threads),
        acceptor_(ioc_),
        signals_(ioc_, SIGINT, SIGTERM),
        drain_timer_(ioc_) {}

  Status Listen() {
    unsigned port = 0;
    const std::string& text = options_.port;
    auto [ptr, perr] = std::from_chars(text.data(), text.data() + text.size(), port);
    if (perr != std::errc() || ptr != text.data() + text.size() || port > 65535) {
      return Status::Unavailable("PORT '" + text + "' is not a number from 0 to 65535");
    }
    boost::system::error_code ec;
    tcp::endpoint endpoint;
    asio::ip::address address = asio::ip::make_address(options_.host, ec);
    if (!ec) {
      endpoint = tcp::endpoint(address, static_cast<unsigned short>(port));
    } else {
      tcp::resolver resolver(ioc_);
      auto results = resolver.resolve(options_.host, text, ec);
      if (ec || results.empty()) {
        return Status::Unavailable("cannot resolve HOST '" + options_.host +
                                   "': " + (ec ? ec.message() : std::string("no address")));
      }
      endpoint = results.begin()->endpoint();
    }
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) {
      acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    }
    if (!ec) {
      acceptor_.bind(endpoint, ec);
    }
    if (!ec) {
      acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    }
    if (!ec) {
      local_ = acceptor_.local_endpoint(ec);
    }
    if (ec) {
      return Status::Unavailable("cannot listen on " + options_.host + ":" + text + ": " +
                                 ec.message());
    }
    return Status::Ok();
  }

  void Run(ServerControl& control) {
    signals_.async_wait([this](const boost::system::error_code& ec, int signal) {
      if (!ec) {
        log_info(signal == SIGINT ? "SIGINT received, stopping" : "SIGTERM received, stopping");
        BeginShutdown();
      }
    });
    asio::co_spawn(ioc_, Accept(), asio::detached);
    bool start =
        control.Attach([this] { asio::post(ioc_, [this] { BeginShutdown(); }); }, local_.port());
    std::string url = "http://" + local_.address().to_string() + ":" +
                      std::to_string(local_.port()) + options_.context_root;
    log_info("serving on " + url + " with " + std::to_string(options_.threads) + " threads");
    if (!start) {
      asio::post(ioc_, [this] { BeginShutdown(); });
    }
    std::vector<std::thread> threads;
    for (int i = 1; i < options_.threads; ++i) {
      threads.emplace_back([this] { ioc_.run(); });
    }
    ioc_.run();
    for (auto& t : threads) {
      t.join();
    }
    control.Detach();
    log_info("stopped");
  }

 private:
  // Runs on an io_context thread. Idempotent.
  void BeginShutdown() {
    if (stopping_.exchange(true)) {
      return;
    }
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    signals_.cancel(ignored);
    asio::co_spawn(ioc_, Drain(), asio::detached);
  }

  // Requests being handled get a moment to finish; idle keep-alive connections do not hold
  // shutdown up. Stopping the io_context abandons them, and destroying it frees them.
  asio::awaitable<void> Drain() {
    auto deadline = std::chrono::steady_clock::now() + kDrainTimeout;
    while (busy_.load() > 0 && std::chrono::steady_clock::now() < deadline) {
      drain_timer_.expires_after(std::chrono::milliseconds(5));
      co_await drain_timer_.async_wait(kNoThrow);
    }
    ioc_.stop();
  }

  asio::awaitable<void> Accept() {
    for (;;) {
      // Named, not a temporary: GCC 12 may destroy temporaries that live across a co_await
      // twice. One strand per connection keeps its timer and I/O handlers apart.
      auto strand = asio::make_strand(ioc_);
      auto [ec, socket] = co_await acceptor_.async_accept(strand, kNoThrow);
      if (ec) {
        if (stopping_.load() || ec == asio::error::operation_aborted) {
          co_return;
        }
        // Running out of descriptors must not end the accept loop; back off briefly.
        log_warning("accept failed: " + ec.message());
        asio::steady_timer pause(ioc_, std::chrono::milliseconds(50));
        co_await pause.async_wait(kNoThrow);
        continue;
      }
      auto executor = socket.get_executor();
      asio::co_spawn(executor, Session(std::move(socket)), [](const std::exception_ptr& e) {
        if (e) {
          try {
            std::rethrow_exception(e);
          } catch (const std::exception& ex) {
            log_warning(std::string("connection ended by an exception: ") + ex.what());
          }
        }
      });
    }
  }

  // Writes a reply the parser produced and closes the connection.
  asio::awaitable<void> Refuse(beast::tcp_stream& stream, const boost::system::error_code& ec,
                               Reply& reply, std::string& head) {
    if (IsQuietEnd(ec)) {
      co_return;
    }
    if (ec == http::error::body_limit) {
      ErrorReply(413, "payload_too_large",
                 "the body is larger than " + std::to_string(kMaxBodyBytes >> 20) + " MiB", reply);
    } else if (ec == http::error::header_limit) {
      ErrorReply(
          431, "headers_too_large",
          "the request head is larger than " + std::to_string(kMaxHeaderBytes >> 10) + " KiB",
          reply);
    } else {
      ErrorReply(400, "bad_request", "malformed HTTP request: " + ec.message(), reply);
    }
    BuildHead(head, reply, 11, false);
    std::array<asio::const_buffer, 2> buffers{asio::buffer(head), asio::buffer(reply.body)};
    stream.expires_after(std::chrono::seconds(5));
    co_await asio::async_write(stream, buffers, kNoThrow);
  }

  // "POST /default-hello/hello 200 0.1 ms", as the Python SDK writes it.
  static void AccessLog(std::string& line, const http::request<http::string_body>& request,
                        int status, std::chrono::steady_clock::duration took) {
    line.clear();
    line += request.method_string();
    line += ' ';
    beast::string_view target = request.target();
    line += target.substr(0, target.find('?'));
    line += ' ';
    AppendNumber(line, static_cast<unsigned>(status));
    line += ' ';
    auto tenths = (std::chrono::duration_cast<std::chrono::microseconds>(took).count() + 50) / 100;
    AppendNumber(line, static_cast<std::uint64_t>(tenths / 10));
    line += '.';
    line += static_cast<char>('0' + tenths % 10);
    line += " ms";
    log_info(line);
  }

  asio::awaitable<void> Session(tcp::socket socket) {
    boost::system::error_code ec;
    socket.set_option(tcp::no_delay(true), ec);
    beast::tcp_stream stream(std::move(socket));
    // Kept for the whole connection, so a keep-alive client costs no allocations for them
    // after its first request.
    beast::flat_buffer buffer;
    std::string body;
    Reply reply;
    std::string head;
    std::string log_line;
    for (;;) {
      body.clear();
      http::request_parser<http::string_body> parser(std::piecewise_construct,
                                                     std::make_tuple(std::move(body)));
      parser.header_limit(kMaxHeaderBytes);
      parser.body_limit(kMaxBodyBytes);
      parser.eager(true);
      stream.expires_after(kIdleTimeout);
      auto [hec, hn] = co_await http::async_read_header(stream, buffer, parser, kNoThrow);
      if (hec) {
        co_await Refuse(stream, hec, reply, head);
        break;
      }
      auto& request = parser.get();
      if (beast::iequals(request[http::field::expect], "100-continue")) {
        static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
        asio::const_buffer interim(kContinue.data(), kContinue.size());
        auto [cec, cn] = co_await asio::async_write(stream, interim, kNoThrow);
        if (cec) {
          break;
        }
      }
      // The body usually came with the head: parse what is buffered before going back to the
      // socket, which would cost a round through the scheduler.
      boost::system::error_code bec;
      while (!parser.is_done() && buffer.size() > 0 && !bec) {
        std::size_t used = parser.put(buffer.data(), bec);
        buffer.consume(used);
        if (used == 0) {
          break;
        }
      }
      if (bec == http::error::need_more) {
        bec = {};
      }
      if (!bec && !parser.is_done()) {
        auto [rec, rn] = co_await http::async_read(stream, buffer, parser, kNoThrow);
        bec = rec;
      }
      if (bec) {
        co_await Refuse(stream, bec, reply, head);
        break;
      }
      busy_.fetch_add(1);
      auto start = std::chrono::steady_clock::now();
      router_.Handle(request.method_string(), request.target(), request.body(), reply);
      bool keep_alive = request.keep_alive() && !stopping_.load();
      BuildHead(head, reply, request.version(), keep_alive);
      std::size_t body_bytes = request.method() == http::verb::head ? 0 : reply.body.size();
      std::array<asio::const_buffer, 2> buffers{asio::buffer(head),
                                                asio::buffer(reply.body.data(), body_bytes)};
      auto [wec, wn] = co_await asio::async_write(stream, buffers, kNoThrow);
      busy_.fetch_sub(1);
      if (!reply.quiet) {
        AccessLog(log_line, request, reply.status, std::chrono::steady_clock::now() - start);
      }
      body = std::move(request.body());
      if (wec || !keep_alive) {
        break;
      }
    }
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  }

  const Router& router_;
  const ServerOptions& options_;
  asio::io_context ioc_;
  tcp::acceptor acceptor_;
  asio::signal_set signals_;
  asio::steady_timer drain_timer_;
  tcp::endpoint local_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> busy_{0};  // requests read and not yet answered
};

}  // namespace

void ServerControl::RequestStop() {
  // Under the lock, so that the server cannot go away between the check and the call; the
  // call only posts to the server's io_context.
  std::lock_guard lock(mu_);
  if (stop_) {
    stop_();
  } else {
    stop_requested_ = true;
  }
}

bool ServerControl::Attach(std::function<void()> stop, std::uint16_t port) {
  std::lock_guard lock(mu_);
  stop_ = std::move(stop);
  port_.store(port);
  bool start = !stop_requested_;
  stop_requested_ = false;
  return start;
}

void ServerControl::Detach() {
  std::lock_guard lock(mu_);
  stop_ = nullptr;
  port_.store(0);
}

Status Serve(const Router& router, const ServerOptions& options, ServerControl& control) {
  Server server(router, options);
  if (Status s = server.Listen(); !s.ok()) {
    return s;
  }
  server.Run(control);
  return Status::Ok();
}

}  // namespace berth::sdk
