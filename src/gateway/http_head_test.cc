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

// Each shape RFC 9110 §5.5 / RFC 9112 refuse, and why, so that the 400 can say it.
TEST(HttpHeadTest, RefusesWhatRfc9112Refuses) {
  struct Case {
    std::string head;
    std::string_view why;
  };
  const Case cases[] = {
      {"GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n", "bare CR"},
      {"GET / HTTP/1.1\r\nHost: h\r\nX: a" + std::string(1, '\0') + "b\r\n\r\n",
       "control character"},
      {"GET / HTTP/1.1\r\nHost: h\r\nX: a\x01\r\n\r\n", "control character"},
      {"GET / HTTP/1.1\r\nHost: h\r\nX\x01Y: a\r\n\r\n", "field name"},
      {"GET / HTTP/1.1\r\nHost: h\r\nX Y: a\r\n\r\n", "field name"},
      {"GET / HTTP/1.1\r\nHost: h\r\n: a\r\n\r\n", "field name"},
      {"GET / HTTP/1.1\r\nHost: h\r\nno colon\r\n\r\n", "colon"},
      {"GET /a\rb HTTP/1.1\r\nHost: h\r\n\r\n", "request target"},
      {"GET /a\x7f HTTP/1.1\r\nHost: h\r\n\r\n", "request target"},
      {"GET  / HTTP/1.1\r\nHost: h\r\n\r\n", "request target"},
      {"G(T / HTTP/1.1\r\nHost: h\r\n\r\n", "method"},
      {"GET / HTTP/1.1 \r\nHost: h\r\n\r\n", "HTTP version"},
      {"GET /\r\n\r\n", "request line"},
      {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
       "after chunked"},
      {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
       "other than chunked"},
      {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n",
       "other than chunked"},
      {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
       "Transfer-Encoding: chunked\r\n\r\n",
       "more than one Transfer-Encoding"},
      {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \r\n\r\n", "empty"},
      {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4, 4\r\n\r\n", "decimal"},
      {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +4\r\n\r\n", "decimal"},
      {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: \r\n\r\n", "decimal"},
      {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n",
       "decimal"},
      {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n"
       "\r\n",
       "both"},
      {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "more than one Host"},
      {"GET / HTTP/1.1\r\nX: y\r\n\r\n", "without a Host"},
      {"GET / HTTP/1.1\r\nHost: h\r\n\tfolded\r\n\r\n", "obs-fold"},
      {"GET / HTTP/1.1\r\nHost: h\r\n\r\r\n", "bare CR"},
  };
  for (const Case& c : cases) {
    MessageHead h;
    EXPECT_EQ(ParseRequestHead(c.head, h), ParseResult::kInvalid) << c.head;
    EXPECT_NE(h.error.find(c.why), std::string_view::npos) << c.head << " -> " << h.error;
  }
}

TEST(HttpHeadTest, RefusesABadLineBeforeTheHeadIsComplete) {
  MessageHead h;
  EXPECT_EQ(ParseRequestHead("GET /a\x01 HTTP/1.1\r\n", h), ParseResult::kInvalid);
  EXPECT_EQ(ParseRequestHead("GET / HTTP/1.1\r\nX: a\rb\r\nHost:", h), ParseResult::kInvalid);
}

TEST(HttpHeadTest, AcceptsWhatClientsSend) {
  MessageHead h;
  // Bare LF line ends (RFC 9112 §2.2 lets a recipient accept them: the gateway rewrites the
  // head with CRLF), HTTP/1.0 without Host, obs-text and tabs in values, one chunked coding.
  EXPECT_EQ(ParseRequestHead("GET / HTTP/1.1\nHost: h\n\n", h), ParseResult::kComplete);
  EXPECT_EQ(ParseRequestHead("GET / HTTP/1.0\r\n\r\n", h), ParseResult::kComplete);
  ASSERT_EQ(ParseRequestHead("POST /x?a=%20 HTTP/1.1\r\nHost: h\r\nX: caf\xc3\xa9\tok\r\n"
                             "Transfer-Encoding: Chunked\r\n\r\n",
                             h),
            ParseResult::kComplete);
  EXPECT_TRUE(h.chunked);
  EXPECT_EQ(h.Get("x"), "caf\xc3\xa9\tok");
  // Responses may carry other codings before a final chunked; chunked wins over a length.
  ASSERT_EQ(ParseResponseHead("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n"
                              "Content-Length: 3\r\n\r\n",
                              h),
            ParseResult::kComplete);
  EXPECT_TRUE(h.chunked);
  EXPECT_FALSE(h.content_length);
  EXPECT_EQ(ParseResponseHead("HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", h), ParseResult::kInvalid);
  EXPECT_EQ(ParseResponseHead("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", h),
            ParseResult::kInvalid);
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

TEST(ChunkedTrackerTest, RefusesLooseChunkLines) {
  using namespace std::literals;
  for (std::string_view body : {"3 \r\nabc\r\n0\r\n\r\n"sv, "3;a\nb\r\nabc\r\n0\r\n\r\n"sv,
                                "3;a\x01\r\nabc\r\n0\r\n\r\n"sv, "3\nabc\r\n0\r\n\r\n"sv,
                                "1234567890abcdef\r\n"sv, "-3\r\n"sv, "0\r\nX: a\x00\r\n\r\n"sv,
                                "0\r\n\x01\r\n\r\n"sv}) {
    ChunkedTracker t;
    t.Feed(body);
    EXPECT_TRUE(t.invalid()) << body;
  }
  for (std::string_view body : {"3 ;ext=1\r\nabc\r\n0\r\n\r\n"sv, "3;a=\"b c\"\r\nabc\r\n0\r\n\r\n"sv,
                                "0\r\nX-Sum: 1\r\n\r\n"sv}) {
    ChunkedTracker t;
    EXPECT_EQ(t.Feed(body), body.size()) << body;
    EXPECT_TRUE(t.done()) << body;
  }
}

TEST(HttpHeadTest, TellsTooManyFieldsFromMalformedOnes) {
  std::string head = "GET / HTTP/1.1\r\nHost: h\r\n";
  for (size_t i = 0; i < kMaxHeaderFields; ++i) {
    head += "X-F" + std::to_string(i) + ": v\r\n";
  }
  MessageHead h;
  head.resize(head.rfind("X-F"));  // kMaxHeaderFields fields with Host
  ASSERT_EQ(ParseRequestHead(head + "\r\n", h), ParseResult::kComplete);
  EXPECT_EQ(h.field_count, kMaxHeaderFields);
  EXPECT_EQ(ParseRequestHead(head + "X-More: v\r\n\r\n", h), ParseResult::kTooManyFields);
}

}  // namespace
}  // namespace berth
