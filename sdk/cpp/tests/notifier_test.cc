// Notifier against a fake platform: one HTTP exchange on a local socket.
#include "notifier.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/parse.hpp>
#include <chrono>
#include <future>
#include <string>
#include <thread>

namespace berth::sdk {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;

// Accepts one connection, records its request and answers `status`.
class FakePlatform {
 public:
  explicit FakePlatform(int status)
      : acceptor_(ioc_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    thread_ = std::thread([this, status] {
      boost::system::error_code ec;
      tcp::socket socket(ioc_);
      acceptor_.accept(socket, ec);
      if (ec) {
        received_.set_value({});
        return;
      }
      beast::flat_buffer buffer;
      http::request<http::string_body> request;
      http::read(socket, buffer, request, ec);
      http::response<http::string_body> response{static_cast<http::status>(status), 11};
      response.body() = R"({"id": 1})";
      response.prepare_payload();
      http::write(socket, response, ec);
      received_.set_value(std::move(request));
      done_ = true;
    });
  }
  ~FakePlatform() {
    if (!done_) {
      // Nobody came: connect, so that the blocking accept returns.
      boost::system::error_code ignored;
      tcp::socket poke(ioc_);
      poke.connect(acceptor_.local_endpoint(), ignored);
      poke.close(ignored);
    }
    thread_.join();
  }

  std::string url() const {
    return "http://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port()) + "/base/";
  }
  std::future<http::request<http::string_body>> request() { return received_.get_future(); }

 private:
  asio::io_context ioc_;
  tcp::acceptor acceptor_;
  std::promise<http::request<http::string_body>> received_;
  std::atomic<bool> done_{false};
  std::thread thread_;
};

NotifierOptions Options(std::string url) {
  NotifierOptions o;
  o.url = std::move(url);
  o.token = "secret";
  o.service = "hello";
  o.version = "3";
  o.instance = "hello-3-a";
  return o;
}

TEST(NotifierTest, PostsTheNotificationWithTheToken) {
  FakePlatform platform(201);
  auto received = platform.request();
  Notifier notifier(Options(platform.url()));
  ASSERT_TRUE(notifier.Post({"the World again", Severity::kWarning, {"ops@example.com"}, 60}));
  ASSERT_EQ(received.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  auto request = received.get();
  EXPECT_EQ(request.method(), http::verb::post);
  EXPECT_EQ(request.target(), "/base/api/v1/notifications");
  EXPECT_EQ(request[http::field::authorization], "Bearer secret");
  EXPECT_EQ(request[http::field::content_type], "application/json");
  EXPECT_EQ(boost::json::parse(request.body()), boost::json::parse(R"({
      "message": "the World again", "severity": "WARNING", "service": "hello",
      "version": "3", "instance": "hello-3-a", "emails": ["ops@example.com"], "timer": 60})"));
}

TEST(NotifierTest, BodyHasEveryField) {
  Notifier notifier(Options(""));
  EXPECT_EQ(notifier.Body({"hi \"there\"", Severity::kCritical, {}, 0}),
            R"({"message":"hi \"there\"","severity":"CRITICAL","service":"hello",)"
            R"("version":"3","instance":"hello-3-a","emails":[],"timer":0})");
}

TEST(NotifierTest, WithoutAUrlNothingIsQueued) {
  Notifier notifier(Options(""));
  EXPECT_FALSE(notifier.Post({"x", Severity::kInfo, {}, 0}));
}

TEST(NotifierTest, AFullQueueDropsInsteadOfBlocking) {
  // A platform that accepts connections and never answers keeps the first notification in
  // flight until its timeout.
  asio::io_context ioc;
  tcp::acceptor silent(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  NotifierOptions o = Options("http://127.0.0.1:" + std::to_string(silent.local_endpoint().port()));
  o.capacity = 2;
  o.timeout = std::chrono::milliseconds(300);
  o.exit_grace = std::chrono::milliseconds(100);
  Notifier notifier(o);
  int accepted = 0;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 10; ++i) {
    accepted += notifier.Post({"n" + std::to_string(i), Severity::kInfo, {}, 0}) ? 1 : 0;
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(100));
  EXPECT_GE(accepted, 2);
  EXPECT_LE(accepted, 3);  // the queue, plus the one the thread may have taken already
}

TEST(NotifierTest, UnreachablePlatformIsOnlyAWarning) {
  NotifierOptions o = Options("http://127.0.0.1:1");
  o.timeout = std::chrono::milliseconds(500);
  {
    Notifier notifier(o);
    EXPECT_TRUE(notifier.Post({"x", Severity::kInfo, {}, 0}));
  }  // the destructor waits for the attempt, which fails quietly
  NotifierOptions https = Options("https://example.invalid");
  Notifier notifier(https);
  EXPECT_TRUE(notifier.Post({"x", Severity::kInfo, {}, 0}));
}

TEST(NotifierTest, NotifyWithoutThePlatformOnlyLogs) {
  // BERTH_URL is not set in the test environment; this must return at once and not throw.
  notify("just a log line", Severity::kInfo);
  notify("with emails", Severity::kCritical, {"a@example.com"}, 5);
}

}  // namespace
}  // namespace berth::sdk
