// Router maps (method, path pattern) to handlers. Patterns are literal segments and `{name}`
// captures: "/api/v1/services/{name}". A trailing slash on the request path is ignored.
// Immutable after setup, so Find is safe from any thread.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "api/http_types.h"

namespace berth {

// Captured `{...}` segments, in pattern order.
using PathParams = std::vector<std::string>;
using RouteHandler = std::function<HttpResponse(const HttpRequest&, const PathParams&)>;

class Router {
 public:
  void Add(std::string_view method, std::string_view pattern, RouteHandler handler);

  struct Match {
    const RouteHandler* handler = nullptr;  // null when nothing matched the method
    PathParams params;
    std::vector<std::string> allowed;  // methods whose pattern matched the path
  };
  // handler set: dispatch. handler null and allowed non-empty: 405. Both empty: 404.
  Match Find(std::string_view method, std::string_view path) const;

  // Every route as added, e.g. {"GET", "/api/v1/services/{name}"}: for the test that keeps the
  // OpenAPI document (and the access matrix generated from it) complete.
  struct RouteInfo {
    std::string method;
    std::string pattern;
  };
  std::vector<RouteInfo> Routes() const;

 private:
  struct Route {
    std::string method;
    std::string pattern;
    std::vector<std::string> segments;  // "{}" marks a capture
    RouteHandler handler;
  };
  std::vector<Route> routes_;
};

// Splits "/a/b/" into {"a", "b"}; empty segments in the middle are kept ("/a//b" -> a,"",b).
std::vector<std::string_view> SplitPath(std::string_view path);

}  // namespace berth
