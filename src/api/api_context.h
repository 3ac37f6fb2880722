// What every API handler needs: the store, the authenticator, options, and small helpers
// shared by the native API and the dialects. Internal to src/api.
#pragma once

#include <boost/json/value.hpp>
#include <string>
#include <string_view>

#include "api/api.h"
#include "api/auth.h"
#include "api/http_types.h"
#include "api/router.h"
#include "store/store.h"

namespace berth {

struct ApiContext {
  ApiContext(Store& s, ApiOptions o) : store(s), auth(s), options(std::move(o)) {}
  Store& store;
  Authenticator auth;
  ApiOptions options;

  // "https://host" without a trailing slash: options.public_url or http://<Host header>.
  std::string PublicBaseUrl(const HttpRequest& req) const;
};

// Parses the request body as JSON. InvalidArgument for an empty or malformed body, naming
// where parsing failed.
Result<boost::json::value> ParseJsonBody(const HttpRequest& req);

// Native API routes (/api/v1/...).
void AddNativeRoutes(ApiContext& ctx, Router& router);
// servicectl dialect routes (/servicectl-1/...).
void AddServicectlRoutes(ApiContext& ctx, Router& router);

}  // namespace berth
