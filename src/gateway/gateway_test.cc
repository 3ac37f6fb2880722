// The gateway's exchange end to end in one process: a front listener that parses heads and
// hands them to Gateway::Serve, as the daemon's server does, and instances that answer, drop
// requests unanswered or are not there at all.
#include "gateway/gateway.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio.hpp>
#include <thread>

namespace berth {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using asio::ip::tcp;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

enum class Behaviour { kAnswer, kDropUnanswered };

struct Instance {
  std::string name;
  Behaviour behaviour;
  int port = 0;
  std::atomic<int> requests{0};  // request heads received
};

class GatewayTest : public ::testing::Test {
 protected:
  GatewayTest()
      : gateway_(GatewayOptions{},
                 [](std::string_view token) -> std::optional<std::string> {
                   if (token == "admin-token") {
                     return "";
                   }
                   if (token == "p-token" || token == "q-token") {
                     return std::string(token.substr(0, 1));
                   }
                   return std::nullopt;
                 }),
        front_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    asio::co_spawn(io_, Accept(), asio::detached);
    thread_ = std::thread([this] { io_.run(); });
  }

  ~GatewayTest() override {
    asio::post(io_, [this] {
      gateway_.Shutdown();
      io_.stop();
    });
    thread_.join();
  }

  // An instance listening on a port of its own.
  Instance& Start(std::string name, Behaviour b) {
    auto& inst = instances_.emplace_back(std::make_unique<Instance>());
    inst->name = std::move(name);
    inst->behaviour = b;
    auto acceptor =
        std::make_shared<tcp::acceptor>(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    inst->port = acceptor->local_endpoint().port();
    asio::co_spawn(io_, Serve(acceptor, *inst), asio::detached);
    return *inst;
  }

  // A port nothing listens on: an instance that just crashed.
  static int DeadPort() {
    asio::io_context io;
    tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    return a.local_endpoint().port();
  }

  void Route(int active, std::vector<std::pair<int, int>> port_revision, int fallback = 0,
             bool public_access = true) {
    ServiceRoute r;
    r.project = "p";
    r.name = "s";
    r.prefix = "/p-s";
    r.public_access = public_access;
    r.active_revision = active;
    r.fallback_revision = fallback;
    for (auto [port, revision] : port_revision) {
      r.upstreams.push_back({"127.0.0.1", port, revision, "", nullptr});
    }
    gateway_.routes().Update(std::move(r));
  }

  // One request on a connection of its own; the whole response.
  std::string Send(const std::string& request) {
    asio::io_context io;
    tcp::socket s(io);
    s.connect(front_.local_endpoint());
    asio::write(s, asio::buffer(request));
    std::string out;
    boost::system::error_code ec;
    char buf[4096];
    while (!ec) {
      size_t n = s.read_some(asio::buffer(buf), ec);
      out.append(buf, n);
    }
    return out;
  }

  static std::string Get(std::string_view path, std::string_view extra = "") {
    return fmt::format("GET {} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n{}\r\n", path, extra);
  }

 private:
  asio::awaitable<void> Accept() {
    while (true) {
      auto [ec, socket] = co_await front_.async_accept(kNoThrow);
      if (ec) {
        co_return;
      }
      asio::co_spawn(io_, Front(beast::tcp_stream(std::move(socket))), asio::detached);
    }
  }

  // The daemon's server, reduced to what the gateway needs: a complete head, matched.
  asio::awaitable<void> Front(beast::tcp_stream stream) {
    beast::flat_buffer buffer;
    while (true) {
      MessageHead head;
      ParseResult pr;
      while ((pr = ParseRequestHead({static_cast<const char*>(buffer.data().data()), buffer.size()},
                                    head)) == ParseResult::kIncomplete) {
        auto [ec, n] = co_await stream.async_read_some(buffer.prepare(8192), kNoThrow);
        if (ec) {
          co_return;
        }
        buffer.commit(n);
      }
      std::optional<RouteMatch> match;
      if (pr == ParseResult::kComplete) {
        match = gateway_.routes().Match(head.target);
      }
      if (!match) {
        co_return;  // the tests send only routed, well-formed requests
      }
      if (!co_await gateway_.Serve(stream, buffer, head, *match, "127.0.0.1", nullptr)) {
        co_return;
      }
    }
  }

  asio::awaitable<void> Serve(std::shared_ptr<tcp::acceptor> acceptor, Instance& inst) {
    while (true) {
      auto [ec, socket] = co_await acceptor->async_accept(kNoThrow);
      if (ec) {
        co_return;
      }
      asio::co_spawn(io_, Answer(std::move(socket), inst), asio::detached);
    }
  }

  static asio::awaitable<void> Answer(tcp::socket socket, Instance& inst) {
    std::string data;
    char buf[4096];
    while (true) {
      MessageHead head;
      ParseResult pr;
      while ((pr = ParseRequestHead(data, head)) == ParseResult::kIncomplete) {
        auto [ec, n] = co_await socket.async_read_some(asio::buffer(buf), kNoThrow);
        if (ec) {
          co_return;
        }
        data.append(buf, n);
      }
      if (pr != ParseResult::kComplete) {
        co_return;
      }
      inst.requests.fetch_add(1);
      size_t body = static_cast<size_t>(head.content_length.value_or(0));
      while (data.size() < head.head_bytes + body) {
        auto [ec, n] = co_await socket.async_read_some(asio::buffer(buf), kNoThrow);
        if (ec) {
          co_return;
        }
        data.append(buf, n);
      }
      if (inst.behaviour == Behaviour::kDropUnanswered) {
        co_return;  // closes the connection: the instance crashed mid-request
      }
      data.erase(0, head.head_bytes + body);
      std::string resp = fmt::format("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{}",
                                     inst.name.size(), inst.name);
      auto [wec, wn] = co_await asio::async_write(socket, asio::buffer(resp), kNoThrow);
      if (wec) {
        co_return;
      }
    }
  }

 protected:
  asio::io_context io_;
  Gateway gateway_;
  tcp::acceptor front_;
  std::vector<std::unique_ptr<Instance>> instances_;
  std::thread thread_;
};

std::string Body(const std::string& response) {
  size_t at = response.find("\r\n\r\n");
  return at == std::string::npos ? "" : response.substr(at + 4);
}

TEST_F(GatewayTest, ARequestNoInstanceAcceptedGoesToAnotherReadyOne) {
  Instance& b = Start("b", Behaviour::kAnswer);
  Route(1, {{DeadPort(), 1}, {b.port, 1}});
  for (int i = 0; i < 6; ++i) {  // whichever instance is picked first
    std::string r = Send(Get("/p-s/"));
    EXPECT_TRUE(r.starts_with("HTTP/1.1 200 OK\r\n")) << r;
    EXPECT_EQ(Body(r), "b");
  }
  EXPECT_EQ(b.requests.load(), 6);
}

TEST_F(GatewayTest, WhileTheLiveRevisionSettlesTheOneItReplacedTakesWhatItCannot) {
  Instance& old = Start("old", Behaviour::kAnswer);
  int crashed = DeadPort();
  Route(2, {{crashed, 2}, {old.port, 1}}, /*fallback=*/1);
  std::string r = Send(Get("/p-s/"));
  EXPECT_TRUE(r.starts_with("HTTP/1.1 200 OK\r\n")) << r;
  EXPECT_EQ(Body(r), "old");
  // A request pinned to the live revision wants that revision, not another.
  std::string pinned = Send(Get("/p-s@2/"));
  EXPECT_TRUE(pinned.starts_with("HTTP/1.1 502 Bad Gateway\r\n")) << pinned;
  EXPECT_NE(pinned.find("cannot connect to instance 127.0.0.1:" + std::to_string(crashed)),
            std::string::npos)
      << pinned;
  // Once settled (or rolled back), there is no fallback: the failure is the client's answer.
  Route(2, {{crashed, 2}, {old.port, 1}});
  std::string settled = Send(Get("/p-s/"));
  EXPECT_TRUE(settled.starts_with("HTTP/1.1 502 Bad Gateway\r\n")) << settled;
  EXPECT_EQ(old.requests.load(), 1);
}

TEST_F(GatewayTest, OnlyARequestSafeToSendAgainIsRetriedAfterAnInstanceDroppedIt) {
  Instance& dropping = Start("dropping", Behaviour::kDropUnanswered);
  Instance& old = Start("old", Behaviour::kAnswer);
  Route(2, {{dropping.port, 2}, {old.port, 1}}, /*fallback=*/1);
  std::string get = Send(Get("/p-s/"));
  EXPECT_EQ(Body(get), "old") << get;
  EXPECT_EQ(dropping.requests.load(), 1);
  // A POST may have been acted on before the instance went away: never sent twice.
  std::string post = Send(
      "POST /p-s/orders HTTP/1.1\r\nHost: h\r\nConnection: close\r\nContent-Length: 5\r\n\r\n"
      "order");
  EXPECT_TRUE(post.starts_with("HTTP/1.1 502 Bad Gateway\r\n")) << post;
  EXPECT_NE(post.find("closed the connection"), std::string::npos) << post;
  EXPECT_EQ(dropping.requests.load(), 2);
  EXPECT_EQ(old.requests.load(), 1) << "the POST reached a second instance";
  // And a bodiless DELETE is idempotent: retried.
  std::string del = Send("DELETE /p-s/x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(Body(del), "old") << del;
}

TEST_F(GatewayTest, ARequestIsTriedOnAtMostThreeInstances) {
  std::vector<std::pair<int, int>> dead;
  for (int i = 0; i < 5; ++i) {
    dead.emplace_back(Start("x" + std::to_string(i), Behaviour::kDropUnanswered).port, 1);
  }
  Route(1, dead);
  std::string r = Send(Get("/p-s/"));
  EXPECT_TRUE(r.starts_with("HTTP/1.1 502 Bad Gateway\r\n")) << r;
  int tried = 0;
  for (auto& inst : instances_) {
    tried += inst->requests.load();
  }
  EXPECT_EQ(tried, 3);
}

TEST_F(GatewayTest, NoReadyInstanceIsA503ThatSaysWhenToRetry) {
  Route(1, {});
  std::string r = Send(Get("/p-s/"));
  EXPECT_TRUE(r.starts_with("HTTP/1.1 503 Service Unavailable\r\n")) << r;
  EXPECT_NE(r.find("Retry-After: 1\r\n"), std::string::npos);
  EXPECT_NE(r.find("/p-s has no ready instance right now"), std::string::npos) << r;
}

TEST_F(GatewayTest, ATokenServiceWantsATokenOfItsProject) {
  Instance& a = Start("a", Behaviour::kAnswer);
  Route(1, {{a.port, 1}}, 0, /*public_access=*/false);
  std::string none = Send(Get("/p-s/"));
  EXPECT_TRUE(none.starts_with("HTTP/1.1 401 Unauthorized\r\n")) << none;
  EXPECT_NE(none.find("WWW-Authenticate: Bearer realm=\"berth\""), std::string::npos);
  std::string browser = Send(Get("/p-s/app?tab=1", "Accept: text/html\r\n"));
  EXPECT_TRUE(browser.starts_with("HTTP/1.1 302 Found\r\n")) << browser;
  EXPECT_NE(browser.find("\r\nLocation: /_berth/login?next=/p-s/app%3Ftab%3D1\r\n"),
            std::string::npos)
      << browser;
  std::string other = Send(Get("/p-s/", "Authorization: Bearer q-token\r\n"));
  EXPECT_TRUE(other.starts_with("HTTP/1.1 403 Forbidden\r\n")) << other;
  EXPECT_EQ(Body(Send(Get("/p-s/", "Authorization: Bearer p-token\r\n"))), "a");
  EXPECT_EQ(Body(Send(Get("/p-s/", "Cookie: berth_token=admin-token\r\n"))), "a");
  EXPECT_EQ(a.requests.load(), 2);
}

}  // namespace
}  // namespace berth
