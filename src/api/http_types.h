// Plain HTTP request and response values exchanged between the listener (server.cc, the only
// file that sees Beast) and the pure request handlers. Handlers never touch sockets, so tests
// call them directly.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace berth {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // as received: "/api/v1/services?project=x"
  std::string path;  // percent-decoded path without the query
  std::map<std::string, std::string, std::less<>> query;  // decoded; last value wins
  std::vector<std::pair<std::string, std::string>> headers;  // names lowercase
  std::string body;
  // Set instead of `body` for upload routes: the file the listener streamed the body into.
  // The handler may take it (rename); the listener removes whatever is left afterwards.
  std::string body_file;
  std::string peer;  // "127.0.0.1:51234"

  // The first header named `name` (lowercase), or "" when absent.
  std::string_view Header(std::string_view name) const;
  bool HasHeader(std::string_view name) const;
  // The query parameter `name`, or "" when absent.
  std::string_view Query(std::string_view name) const;
  // A yes/no query parameter: absent or "" is false; true/1/yes and false/0/no; anything
  // else is InvalidArgument naming the parameter ("follow=maybe").
  Result<bool> BoolQuery(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // For streamed answers (logs -f, event streams): after `body`, the listener sends chunks
  // from `next_chunk`, polling it every `poll_every` while it returns "", until it returns
  // nullopt or the client goes away. Called from a listener thread; must not block.
  std::function<std::optional<std::string>()> next_chunk;
  int poll_every_ms = 200;
  // For answers that come later (a recipe's graph): the listener calls `deferred` once with a
  // `reply` function, which the producer calls exactly once, from any thread, with the real
  // response. The connection waits for it without holding a thread.
  std::function<void(std::function<void(HttpResponse)> reply)> deferred;
};

// Where and how large an upload route's body may be.
struct UploadPolicy {
  std::string dir;  // temp files are made here
  uint64_t max_bytes = 0;
};

// Splits `target` into path and query, percent-decoding both. Returns false for a target that
// is not an absolute path or has invalid percent-encoding.
bool ParseTarget(std::string_view target, HttpRequest& req);

// Anything that turns requests into responses: the API router, later the gateway.
class HttpHandler {
 public:
  virtual ~HttpHandler() = default;
  // Called for every well-formed request. Must not throw.
  virtual HttpResponse Handle(const HttpRequest& req) = 0;
  // Called when the listener refuses a request itself (too large, malformed), so that the
  // error has the shape its path's API uses. `target` may be empty.
  virtual HttpResponse Reject(std::string_view target, int status, std::string_view message) = 0;
  // For routes that take large bodies: the body goes to a file instead of memory. nullopt for
  // ordinary routes.
  virtual std::optional<UploadPolicy> Upload(std::string_view method, std::string_view target) {
    (void)method;
    (void)target;
    return std::nullopt;
  }
};

}  // namespace berth
