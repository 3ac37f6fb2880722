// Router answers a service's HTTP requests without touching a socket, as Beast's
// handle_request does: it strips the context root, picks the route, validates and calls the
// entrypoint, and fills a Reply. The server and Service::handle both go through it.
#pragma once

#include <boost/json/object.hpp>
#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "berth/service.h"
#include "config.h"
#include "parameter_store.h"

namespace berth::sdk {

using EntrypointMap = std::map<std::string, detail::EntrypointSpec, std::less<>>;

// One answer. The server keeps one per connection and reuses its body's storage.
struct Reply {
  int status = 200;
  std::string body;
  std::string_view content_type;  // static text
  std::string_view allow;         // static text, for 405s
  bool quiet = false;             // left out of the access log (health checks)

  void Reset() {
    status = 200;
    body.clear();
    content_type = {};
    allow = {};
    quiet = false;
  }
};

class Router {
 public:
  // All three must outlive the Router. `entrypoints` must not change while it is in use;
  // `parameters` may (it has its own lock).
  Router(const Config& config, const EntrypointMap& entrypoints, ParameterStore& parameters)
      : config_(config), entrypoints_(entrypoints), parameters_(parameters) {}

  // Answers one request. `target` is the request-target (path and query string), with or
  // without the context root. Never throws: an exception from an entrypoint becomes a 500.
  // Safe to call from several threads at once.
  void Handle(std::string_view method, std::string_view target, std::string_view body,
              Reply& reply) const;

 private:
  void CallEntrypoint(const detail::EntrypointSpec& entrypoint, std::string_view body,
                      Reply& reply) const;
  void HandleParameter(std::string_view method, std::string_view path, std::string_view name,
                       std::string_view body, Reply& reply) const;
  boost::json::object Index() const;  // GET /
  void NotFound(std::string_view path, Reply& reply) const;

  const Config& config_;
  const EntrypointMap& entrypoints_;
  ParameterStore& parameters_;
};

// Writes {"error": {"code": code, "message": message}} with `status` into `reply`.
void ErrorReply(int status, std::string_view code, std::string_view message, Reply& reply);

}  // namespace berth::sdk
