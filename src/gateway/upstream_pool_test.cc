#include "gateway/upstream_pool.h"

#include <gtest/gtest.h>
#include <poll.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

namespace berth {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;

// Connections from the pool's side to a loopback listener, with the listener's ends kept.
class UpstreamPoolTest : public ::testing::Test {
 protected:
  UpstreamPoolTest() : acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {}

  std::unique_ptr<UpstreamConn> Connect() {
    auto conn = std::make_unique<UpstreamConn>(io_.get_executor());
    conn->stream.socket().connect(acceptor_.local_endpoint());
    peers_.push_back(acceptor_.accept());
    return conn;
  }

  // Waits until what the peer did (a FIN, bytes) has arrived on `conn`.
  static void WaitReadable(UpstreamConn& conn) {
    pollfd p{conn.stream.socket().native_handle(), POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 5000), 1);
  }

  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::vector<tcp::socket> peers_;
};

TEST_F(UpstreamPoolTest, AVerifiedTakeSkipsConnectionsTheInstanceClosedOrWroteTo) {
  UpstreamPool pool(8);
  pool.GiveBack("a", Connect());
  auto closed = Connect();
  peers_[1].close();  // the instance restarted
  WaitReadable(*closed);
  auto chatty = Connect();
  asio::write(peers_[2], asio::buffer("HTTP/1.1 408 Request Timeout\r\n\r\n"));
  WaitReadable(*chatty);
  pool.GiveBack("a", std::move(closed));
  pool.GiveBack("a", std::move(chatty));
  std::unique_ptr<UpstreamConn> conn = pool.TakeIdle("a", true);
  ASSERT_NE(conn, nullptr);
  asio::write(conn->stream.socket(), asio::buffer("x", 1));
  char c = 0;
  peers_[0].read_some(asio::buffer(&c, 1));
  EXPECT_EQ(c, 'x') << "the verified connection is the one still open and quiet";
  EXPECT_EQ(pool.TakeIdle("a", true), nullptr);
  EXPECT_EQ(pool.IdleCount("a"), 0u) << "the dead ones are dropped, not kept";
}

TEST_F(UpstreamPoolTest, KeepsAtMostItsLimitPerInstanceAndTakesUnverifiedAsIs) {
  UpstreamPool pool(2);
  for (int i = 0; i < 3; ++i) {
    pool.GiveBack("a", Connect());
  }
  pool.GiveBack("b", Connect());
  EXPECT_EQ(pool.IdleCount("a"), 2u);
  EXPECT_EQ(pool.IdleCount("b"), 1u);
  peers_[3].close();
  EXPECT_NE(pool.TakeIdle("b", false), nullptr) << "unverified: the taker retries instead";
  EXPECT_EQ(pool.TakeIdle("c", false), nullptr);
  pool.Clear();
  EXPECT_EQ(pool.IdleCount("a"), 0u);
}

}  // namespace
}  // namespace berth
