#include "api/router.h"

#include <gtest/gtest.h>

namespace berth {
namespace {

HttpResponse Respond(int status) {
  HttpResponse r;
  r.status = status;
  return r;
}

TEST(RouterTest, MatchesCapturesAndMethods) {
  Router r;
  r.Add("GET", "/api/v1/services/{name}", [](const HttpRequest&, const PathParams&) {
    return Respond(200);
  });
  r.Add("PUT", "/api/v1/services/{name}", [](const HttpRequest&, const PathParams&) {
    return Respond(201);
  });
  auto m = r.Find("GET", "/api/v1/services/hello");
  ASSERT_NE(m.handler, nullptr);
  ASSERT_EQ(m.params.size(), 1u);
  EXPECT_EQ(m.params[0], "hello");
  EXPECT_EQ((*m.handler)(HttpRequest{}, m.params).status, 200);

  auto trailing = r.Find("PUT", "/api/v1/services/hello/");
  ASSERT_NE(trailing.handler, nullptr);
  EXPECT_EQ((*trailing.handler)(HttpRequest{}, trailing.params).status, 201);

  auto head = r.Find("HEAD", "/api/v1/services/hello");
  EXPECT_NE(head.handler, nullptr);
}

TEST(RouterTest, WrongMethodListsAllowedOnes) {
  Router r;
  r.Add("GET", "/a/{x}", [](const HttpRequest&, const PathParams&) { return Respond(200); });
  r.Add("DELETE", "/a/{x}", [](const HttpRequest&, const PathParams&) { return Respond(200); });
  auto m = r.Find("POST", "/a/b");
  EXPECT_EQ(m.handler, nullptr);
  EXPECT_EQ(m.allowed, (std::vector<std::string>{"GET", "DELETE"}));
}

TEST(RouterTest, UnknownPathAndEmptyCaptureDoNotMatch) {
  Router r;
  r.Add("GET", "/a/{x}", [](const HttpRequest&, const PathParams&) { return Respond(200); });
  EXPECT_TRUE(r.Find("GET", "/b/c").allowed.empty());
  EXPECT_EQ(r.Find("GET", "/b/c").handler, nullptr);
  EXPECT_EQ(r.Find("GET", "/a//").handler, nullptr);
  EXPECT_EQ(r.Find("GET", "/a/b/c").handler, nullptr);
}

TEST(ParseTargetTest, DecodesPathAndQuery) {
  HttpRequest req;
  ASSERT_TRUE(ParseTarget("/api/v1/services?project=exp_2&x=a%20b+c&flag", req));
  EXPECT_EQ(req.path, "/api/v1/services");
  EXPECT_EQ(req.Query("project"), "exp_2");
  EXPECT_EQ(req.Query("x"), "a b c");
  EXPECT_EQ(req.Query("flag"), "");
  EXPECT_EQ(req.query.count("flag"), 1u);
  EXPECT_FALSE(ParseTarget("no-slash", req));
  EXPECT_FALSE(ParseTarget("/bad%zz", req));
  EXPECT_FALSE(ParseTarget("/cut%2", req));
}

}  // namespace
}  // namespace berth
