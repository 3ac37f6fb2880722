// The daemon's HTTP API: the native API under /api/v1, the servicectl dialect under
// /servicectl-1 (seed 002) and the orchest-api dialect under /orchest/api (seed 004), all over
// the same store, and the Neptune dialect under /neptune (seed 003).
#pragma once

#include <memory>
#include <string>

#include "api/http_types.h"
#include "api/auth.h"
#include "api/router.h"
#include "control/controller.h"
#include "gateway/gateway.h"
#include "graph/recipe_engine.h"
#include "pipeline/jobs.h"
#include "pipeline/run_engine.h"
#include "store/store.h"

namespace berth {

struct ApiOptions {
  // The URL users reach berth under, e.g. "https://berth.example.org"; used for deployment
  // links. Empty: "http://" + the request's Host header.
  std::string public_url;
  // The Neptune dialect answers requests without a token (acting on the `default` project):
  // set when the daemon listens on loopback only, as Neptune's clients send no credentials.
  bool neptune_without_token = false;
};

// Builds the API handler. Everything passed must outlive it. Without a gateway /metrics has
// no routes. `auth` is shared with the gateway so that a revocation reaches both; null makes
// one of its own. Thread-safe.
std::unique_ptr<HttpHandler> MakeApiHandler(Store& store, ApiOptions options,
                                            Controller& controller, RunEngine& runs,
                                            Jobs& jobs, RecipeEngine& recipes,
                                            Gateway* gateway = nullptr,
                                            Authenticator* auth = nullptr);

// Every route `api` (made by MakeApiHandler) serves, in all its dialects.
std::vector<Router::RouteInfo> ApiRoutes(const HttpHandler& api);

}  // namespace berth
