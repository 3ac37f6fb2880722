#include "gateway/proxy_head.h"

#include <gtest/gtest.h>

#include <memory>

namespace berth {
namespace {

struct Parsed {
  std::string data;
  MessageHead head;
};

std::unique_ptr<Parsed> Request(std::string data) {
  auto p = std::make_unique<Parsed>();
  p->data = std::move(data);
  EXPECT_EQ(ParseRequestHead(p->data, p->head), ParseResult::kComplete) << p->head.error;
  return p;
}

RouteMatch MatchFor(std::shared_ptr<ServiceRoute> route, std::string_view target) {
  RouteTable table;
  table.Update(*route);
  std::optional<RouteMatch> m = table.Match(target);
  EXPECT_TRUE(m.has_value());
  return *m;
}

std::shared_ptr<ServiceRoute> TokenRoute() {
  auto r = std::make_shared<ServiceRoute>();
  r->project = "p";
  r->name = "s";
  r->prefix = "/p-s";
  r->active_revision = 1;
  r->versions["v2"] = 2;
  return r;
}

TEST(ProxyHeadTest, TheUpstreamHeadCarriesNoBerthCredentialsNorHopByHopFields) {
  auto req = Request(
      "GET /p-s/x?y=1 HTTP/1.1\r\nHost: example.test\r\nAuthorization: Bearer secret\r\n"
      "Cookie: a=1; berth_token=secret; b=2\r\nConnection: keep-alive, te\r\nTE: trailers\r\n"
      "Keep-Alive: timeout=5\r\nExpect: 100-continue\r\nX-Forwarded-For: 6.6.6.6\r\n"
      "Accept: */*\r\n\r\n");
  std::string out =
      UpstreamRequestHead(req->head, MatchFor(TokenRoute(), "/p-s/x?y=1"), "10.0.0.7");
  EXPECT_EQ(out,
            "GET /p-s/x?y=1 HTTP/1.1\r\nHost: example.test\r\nCookie: a=1; b=2\r\n"
            "Accept: */*\r\nX-Forwarded-For: 10.0.0.7\r\nX-Forwarded-Proto: http\r\n"
            "X-Forwarded-Host: example.test\r\nX-Forwarded-Prefix: /p-s\r\n\r\n");
}

TEST(ProxyHeadTest, APublicServiceGetsTheAuthorizationHeaderAndACookieOfOnlyBerthsIsDropped) {
  auto route = TokenRoute();
  route->public_access = true;
  auto req = Request(
      "GET /p-s/ HTTP/1.1\r\nHost: h\r\nAuthorization: Basic dTpw\r\n"
      "Cookie: berth_token=secret\r\n\r\n");
  std::string out = UpstreamRequestHead(req->head, MatchFor(route, "/p-s/"), "1.2.3.4");
  EXPECT_NE(out.find("\r\nAuthorization: Basic dTpw\r\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("Cookie"), std::string::npos) << out;
}

TEST(ProxyHeadTest, StripAndPinnedRoutesRewriteThePath) {
  auto route = TokenRoute();
  auto pinned = Request("GET /p-s@v2/docs?q HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_TRUE(UpstreamRequestHead(pinned->head, MatchFor(route, "/p-s@v2/docs?q"), "ip")
                  .starts_with("GET /p-s/docs?q HTTP/1.1\r\n"));
  route->strip = true;
  EXPECT_TRUE(UpstreamRequestHead(pinned->head, MatchFor(route, "/p-s@v2/docs?q"), "ip")
                  .starts_with("GET /docs?q HTTP/1.1\r\n"));
  auto bare = Request("GET /p-s?q=1 HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_TRUE(UpstreamRequestHead(bare->head, MatchFor(route, "/p-s?q=1"), "ip")
                  .starts_with("GET /?q=1 HTTP/1.1\r\n"));
}

TEST(ProxyHeadTest, AnUpgradeIsPassedOnAsOne) {
  auto req = Request(
      "GET /p-s/ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
      "Sec-WebSocket-Key: k\r\n\r\n");
  EXPECT_TRUE(IsUpgrade(req->head));
  std::string out = UpstreamRequestHead(req->head, MatchFor(TokenRoute(), "/p-s/ws"), "ip");
  EXPECT_NE(out.find("Sec-WebSocket-Key: k\r\n"), std::string::npos);
  EXPECT_TRUE(out.ends_with("Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n")) << out;
  auto plain = Request("GET /p-s/ HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\n\r\n");
  EXPECT_FALSE(IsUpgrade(plain->head)) << "no Upgrade field: nothing to upgrade to";
}

TEST(ProxyHeadTest, AnHttp10RequestGoesOnAsAnHttp11OneWithAHost) {
  auto req = Request("GET /p-s/ HTTP/1.0\r\nAccept: */*\r\n\r\n");
  std::string out = UpstreamRequestHead(req->head, MatchFor(TokenRoute(), "/p-s/"), "ip");
  EXPECT_TRUE(out.starts_with("GET /p-s/ HTTP/1.1\r\nHost: \r\nAccept: */*\r\n")) << out;
  MessageHead again;
  EXPECT_EQ(ParseRequestHead(out, again), ParseResult::kComplete) << again.error;
}

TEST(ProxyHeadTest, OnlyABrowserPageLoadIsSentToTheLoginPageWithWhereItWasGoing) {
  auto page = Request(
      "GET /p-s/notebooks/a%20b.ipynb?x=1&y=/ HTTP/1.1\r\nHost: h\r\n"
      "Accept: text/html,application/xhtml+xml,*/*;q=0.8\r\n\r\n");
  EXPECT_EQ(LoginRedirect(page->head),
            "/_berth/login?next=/p-s/notebooks/a%2520b.ipynb%3Fx%3D1%26y%3D/");
  EXPECT_EQ(LoginRedirect(Request("GET /p-s/ HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n")->head),
            "")
      << "curl and API clients keep their 401";
  EXPECT_EQ(
      LoginRedirect(Request("POST /p-s/ HTTP/1.1\r\nHost: h\r\nAccept: text/html\r\n\r\n")->head),
      "");
}

TEST(ProxyHeadTest, TheTokenComesFromTheBearerHeaderOrBerthsOwnCookie) {
  EXPECT_EQ(
      RequestToken(Request("GET / HTTP/1.1\r\nHost: h\r\nAuthorization: bearer t1\r\n\r\n")->head),
      "t1");
  EXPECT_EQ(
      RequestToken(
          Request("GET / HTTP/1.1\r\nHost: h\r\nCookie: x=1; berth_token=t2; y=2\r\n\r\n")->head),
      "t2");
  EXPECT_EQ(
      RequestToken(Request("GET / HTTP/1.1\r\nHost: h\r\nCookie: notberth_token=t3\r\n\r\n")->head),
      "");
  EXPECT_EQ(
      RequestToken(Request("GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Basic x\r\n\r\n")->head),
      "");
}

TEST(ProxyHeadTest, TheClientGetsTheGatewaysConnectionFieldsNotTheInstances) {
  std::string raw =
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n"
      "Keep-Alive: timeout=99\r\nX-Id: 7\r\n\r\nok";
  MessageHead resp;
  ASSERT_EQ(ParseResponseHead(raw, resp), ParseResult::kComplete);
  EXPECT_EQ(ClientResponseHead(resp, raw, true),
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Id: 7\r\n\r\n");
  EXPECT_EQ(ClientResponseHead(resp, raw, false),
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Id: 7\r\nConnection: close\r\n\r\n");
  // Bare LF line ends from an instance: the client still gets one CRLF head, whole.
  std::string lf = "HTTP/1.1 200 OK\nContent-Length: 2\n\r\nok";
  MessageHead bare;
  ASSERT_EQ(ParseResponseHead(lf, bare), ParseResult::kComplete);
  EXPECT_EQ(ClientResponseHead(bare, lf, true), "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n");
  std::string switching =
      "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
  MessageHead up;
  ASSERT_EQ(ParseResponseHead(switching, up), ParseResult::kComplete);
  EXPECT_EQ(ClientResponseHead(up, switching, false), switching);
}

TEST(ProxyHeadTest, ErrorBodiesAreJsonWhateverTheMessageHolds) {
  std::string r = ErrorResponse(502, "Bad Gateway", "bad_gateway", "a \"quoted\" \\ line\nnext",
                                false, "Retry-After: 1\r\n");
  std::string body =
      R"({"error":{"code":"bad_gateway","message":"a \"quoted\" \\ line\u000anext"}})";
  EXPECT_TRUE(r.starts_with("HTTP/1.1 502 Bad Gateway\r\n")) << r;
  EXPECT_NE(r.find("Content-Length: " + std::to_string(body.size()) + "\r\n"), std::string::npos);
  EXPECT_NE(r.find("Connection: close\r\nRetry-After: 1\r\n\r\n"), std::string::npos) << r;
  EXPECT_TRUE(r.ends_with(body)) << r;
  EXPECT_EQ(ErrorResponse(503, "Service Unavailable", "unavailable", "m", true).find("Connection"),
            std::string::npos);
}

}  // namespace
}  // namespace berth
