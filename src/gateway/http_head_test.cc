#include "gateway/http_head.h"

#include <gtest/gtest.h>

namespace berth {
namespace {

TEST(HttpHeadTest, ParsesRequestHeadInPlace) {
  std::string data =
      "POST /p-s/x?y=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nConnection: keep-alive\r\n"
      "\r\nhello";
  MessageHead h;
  ASSERT_EQ(ParseRequestHead(data, h), ParseResult::kComplete);
  EXPECT_EQ(h.method, "POST");
  EXPECT_EQ(h.target, "/p-s/x?y=1");
  EXPECT_EQ(h.content_length, 5u);
  EXPECT_TRUE(h.keep_alive());
  EXPECT_EQ(h.Get("HOST"), "h");
  EXPECT_EQ(data.substr(h.head_bytes), "hello");
}

TEST(HttpHeadTest, IncompleteUntilBlankLine) {
  MessageHead h;
  EXPECT_EQ(ParseRequestHead("GET / HTTP/1.1\r\nHost: h\r\n", h), ParseResult::kIncomplete);
  EXPECT_EQ(ParseRequestHead("GET / HT", h), ParseResult::kIncomplete);
}

TEST(HttpHeadTest, RefusesSmugglingShapes) {
  MessageHead h;
  EXPECT_EQ(ParseRequestHead("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: "
                             "chunked\r\n\r\n",
                             h),
            ParseResult::kInvalid);
  EXPECT_EQ(
      ParseRequestHead("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", h),
      ParseResult::kInvalid);
  EXPECT_EQ(ParseRequestHead("GET / HTTP/1.1\r\nHost : h\r\n\r\n", h), ParseResult::kInvalid);
  EXPECT_EQ(ParseRequestHead("GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n", h),
            ParseResult::kInvalid);
  EXPECT_EQ(ParseRequestHead("GET / HTTP/2.0\r\n\r\n", h), ParseResult::kInvalid);
}

TEST(HttpHeadTest, Http10ClosesUnlessKeepAlive) {
  MessageHead h;
  ASSERT_EQ(ParseRequestHead("GET / HTTP/1.0\r\n\r\n", h), ParseResult::kComplete);
  EXPECT_FALSE(h.keep_alive());
  ASSERT_EQ(ParseRequestHead("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", h),
            ParseResult::kComplete);
  EXPECT_FALSE(h.connection_close);
}

TEST(HttpHeadTest, ResponseHeadAndUpgrade) {
  MessageHead h;
  ASSERT_EQ(ParseResponseHead("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                              "Upgrade: websocket\r\n\r\n",
                              h),
            ParseResult::kComplete);
  EXPECT_EQ(h.status, 101);
  EXPECT_TRUE(h.connection_upgrade);
  ASSERT_EQ(ParseResponseHead("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", h),
            ParseResult::kComplete);
  EXPECT_TRUE(h.chunked);
  EXPECT_FALSE(h.content_length.has_value());
  EXPECT_EQ(ParseResponseHead("HTTP/1.1 2x0 OK\r\n\r\n", h), ParseResult::kInvalid);
}

TEST(ChunkedTrackerTest, FindsTheEndAcrossPieces) {
  std::string body = "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\nNEXT";
  ChunkedTracker t;
  size_t used = 0;
  for (size_t i = 0; i < body.size() && !t.done(); i += 3) {
    used += t.Feed(std::string_view(body).substr(i, std::min<size_t>(3, body.size() - i)));
  }
  EXPECT_TRUE(t.done());
  EXPECT_EQ(body.substr(used), "NEXT");
}

TEST(ChunkedTrackerTest, RejectsBadFraming) {
  ChunkedTracker t;
  t.Feed("zz\r\n");
  EXPECT_TRUE(t.invalid());
  ChunkedTracker u;
  u.Feed("3\r\nabcX");
  EXPECT_TRUE(u.invalid());
}

TEST(HttpHeadTest, TellsTooManyFieldsFromMalformedOnes) {
  std::string head = "GET / HTTP/1.1\r\n";
  for (size_t i = 0; i < kMaxHeaderFields; ++i) {
    head += "X-F" + std::to_string(i) + ": v\r\n";
  }
  MessageHead h;
  ASSERT_EQ(ParseRequestHead(head + "\r\n", h), ParseResult::kComplete);
  EXPECT_EQ(h.field_count, kMaxHeaderFields);
  EXPECT_EQ(ParseRequestHead(head + "X-More: v\r\n\r\n", h), ParseResult::kTooManyFields);
}

}  // namespace
}  // namespace berth
