// Service::run over real sockets: keep-alive, pipelining, Expect: 100-continue, stopping by
// stop() and by SIGTERM, and a port that is taken.
#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <csignal>
#include <string>
#include <thread>

#include "berth/service.h"
#include "test_env.h"

namespace berth {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;

// Runs svc.run() on a thread; the constructor returns once the service is serving.
class Running {
 public:
  explicit Running(Service& svc) : svc_(svc), thread_([this] { code_ = svc_.run(); }) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (svc_.port() == 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
  ~Running() {
    if (thread_.joinable()) {
      svc_.stop();
      thread_.join();
    }
  }

  // Waits for run() to return and gives its exit code.
  int Join() {
    thread_.join();
    return code_;
  }

 private:
  Service& svc_;
  int code_ = -1;
  std::thread thread_;
};

class Client {
 public:
  explicit Client(std::uint16_t port) : socket_(ioc_) {
    socket_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  }

  http::response<http::string_body> Send(http::verb verb, const std::string& target,
                                         const std::string& body = "") {
    http::request<http::string_body> req{verb, target, 11};
    req.set(http::field::host, "127.0.0.1");
    if (!body.empty()) {
      req.set(http::field::content_type, "application/json");
      req.body() = body;
    }
    req.prepare_payload();
    http::write(socket_, req);
    return Read(verb == http::verb::head);
  }

  void WriteRaw(std::string_view text) { asio::write(socket_, asio::buffer(text)); }

  // `head`: the answer to a HEAD request, whose Content-Length announces a body that is not sent.
  http::response<http::string_body> Read(bool head = false) {
    http::response_parser<http::string_body> parser;
    parser.skip(head);
    http::read(socket_, buffer_, parser);
    return parser.release();
  }

  // The peer closed the connection.
  bool Closed() {
    char c;
    boost::system::error_code ec;
    socket_.read_some(asio::buffer(&c, 1), ec);
    return ec == asio::error::eof;
  }

 private:
  asio::io_context ioc_;
  tcp::socket socket_;
  beast::flat_buffer buffer_;
};

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    env_.Set("HOST", "127.0.0.1");
    env_.Set("PORT", "0");
    env_.Set("CONTEXT_ROOT", "/default-hello");
    service_ = std::make_unique<Service>();  // after the environment: it reads it
    svc().add_parameter("greeting_phrase", "Hello");
    svc().entrypoint("hello", {"name"}, [this](std::string name) {
      return svc().get_parameter<std::string>("greeting_phrase") + " " + name;
    });
  }

  testing::ScopedEnv env_;
  std::unique_ptr<Service> service_;
  Service& svc() { return *service_; }
};

TEST_F(ServerTest, RoundTripOnOneKeepAliveConnection) {
  Running running(svc());
  ASSERT_NE(svc().port(), 0);
  Client client(svc().port());
  auto hello = client.Send(http::verb::post, "/default-hello/hello", R"({"name": "Ada"})");
  EXPECT_EQ(hello.result_int(), 200);
  EXPECT_EQ(hello.body(), R"("Hello Ada")");
  EXPECT_EQ(hello[http::field::content_type], "application/json");
  EXPECT_TRUE(hello.keep_alive());
  auto set = client.Send(http::verb::post, "/default-hello/~parameters/greeting_phrase",
                         R"({"value": "Bonjour"})");
  EXPECT_EQ(set.result_int(), 200);
  auto again = client.Send(http::verb::post, "/hello", R"({"name": "Ada"})");  // root stripped
  EXPECT_EQ(again.body(), R"("Bonjour Ada")");
  auto wrong = client.Send(http::verb::get, "/default-hello/hello");
  EXPECT_EQ(wrong.result_int(), 405);
  EXPECT_EQ(wrong[http::field::allow], "POST");
  auto health = client.Send(http::verb::get, "/default-hello/~health");
  EXPECT_EQ(health.body(), R"({"status":"ok"})");
  auto head = client.Send(http::verb::head, "/default-hello/~health");
  EXPECT_EQ(head.result_int(), 200);
  EXPECT_EQ(head[http::field::content_length], "15");
}

TEST_F(ServerTest, PipelinedRequestsAreAnsweredInOrder) {
  Running running(svc());
  Client client(svc().port());
  std::string one =
      "POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 14\r\n\r\n{\"name\":\"Ada\"}";
  std::string two =
      "POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 14\r\n\r\n{\"name\":\"Bob\"}";
  client.WriteRaw(one + two);
  EXPECT_EQ(client.Read().body(), R"("Hello Ada")");
  EXPECT_EQ(client.Read().body(), R"("Hello Bob")");
}

TEST_F(ServerTest, ExpectContinueIsAnswered) {
  Running running(svc());
  Client client(svc().port());
  client.WriteRaw(
      "POST /hello HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 14\r\n\r\n");
  auto cont = client.Read();
  EXPECT_EQ(cont.result_int(), 100);
  client.WriteRaw("{\"name\":\"Ada\"}");
  EXPECT_EQ(client.Read().body(), R"("Hello Ada")");
}

TEST_F(ServerTest, Http10ClosesAfterTheAnswer) {
  Running running(svc());
  Client client(svc().port());
  client.WriteRaw("GET /~health HTTP/1.0\r\n\r\n");
  auto res = client.Read();
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_TRUE(client.Closed());
}

TEST_F(ServerTest, MalformedRequestIs400) {
  Running running(svc());
  Client client(svc().port());
  client.WriteRaw("NOT HTTP\r\n\r\n");
  EXPECT_EQ(client.Read().result_int(), 400);
}

TEST_F(ServerTest, StopReturnsZero) {
  Running running(svc());
  svc().stop();
  EXPECT_EQ(running.Join(), 0);
  EXPECT_EQ(svc().port(), 0);
}

TEST_F(ServerTest, SigtermStopsCleanly) {
  Running running(svc());
  Client client(svc().port());  // an idle keep-alive connection must not hold shutdown up
  ASSERT_EQ(::raise(SIGTERM), 0);
  EXPECT_EQ(running.Join(), 0);
}

TEST_F(ServerTest, StopBeforeServingMakesRunReturnAtOnce) {
  svc().stop();
  EXPECT_EQ(svc().run(), 0);
}

TEST_F(ServerTest, ATakenPortFailsWithOne) {
  asio::io_context ioc;
  tcp::acceptor taken(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  env_.Set("PORT", std::to_string(taken.local_endpoint().port()));
  Service svc;
  EXPECT_EQ(svc.run(), 1);
}

}  // namespace
}  // namespace berth
