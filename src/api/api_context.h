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
#include "control/project_ops.h"
#include "control/service_ops.h"
#include "pipeline/jobs.h"
#include "pipeline/pipeline_ops.h"
#include "graph/recipe_engine.h"
#include "pipeline/run_engine.h"
#include "store/store.h"

namespace berth {

struct ApiContext {
  ApiContext(Store& s, ApiOptions o, Controller& c, RunEngine& r, Jobs& j, RecipeEngine& re,
             Gateway* g, Authenticator& a)
      : store(s),
        auth(a),
        options(std::move(o)),
        controller(c),
        ops(s, c),
        projects(s, c, ops),
        runs(r),
        pipelines(s, r),
        jobs(j),
        recipes(re),
        gateway(g) {}
  // Reads go to the store and the controller; every change goes through `ops` (or the
  // controller's own use cases: artifacts, versions, parameters, notifications).
  Store& store;
  Authenticator& auth;
  ApiOptions options;
  Controller& controller;
  ServiceOps ops;
  ProjectOps projects;
  RunEngine& runs;
  PipelineOps pipelines;
  Jobs& jobs;
  RecipeEngine& recipes;
  Gateway* gateway;  // null in unit tests

  // "https://host" without a trailing slash: options.public_url or http://<Host header>.
  std::string PublicBaseUrl(const HttpRequest& req) const;
};

// Parses the request body as JSON. InvalidArgument for an empty or malformed body, naming
// where parsing failed.
Result<boost::json::value> ParseJsonBody(const HttpRequest& req);

// A query parameter that must be a non-negative integer; `fallback` when absent.
Result<size_t> QueryCount(const HttpRequest& req, std::string_view key, size_t fallback);

// A native route handler that runs only for an authenticated caller.
using AuthedHandler =
    std::function<HttpResponse(const HttpRequest&, const Principal&, const PathParams&)>;
// Wraps `h` with bearer-token authentication (401 with WWW-Authenticate otherwise).
RouteHandler WithAuth(ApiContext& ctx, AuthedHandler h);
// A native route on one service ("/api/v1/services/{name}/..."): runs `h` for an
// authenticated caller once the project is resolved and the service exists.
using ServiceHandler = std::function<HttpResponse(const HttpRequest&, const std::string& project,
                                                  const ServiceRecord& service,
                                                  const PathParams&)>;
RouteHandler WithService(ApiContext& ctx, ServiceHandler h);
// The project a native request acts on: ?project=, else `body_project`, else the token's own.
Result<std::string> RequestProject(const HttpRequest& req, const Principal& who,
                                   std::string_view body_project = {});

// Native API routes (/api/v1/...).
void AddNativeRoutes(ApiContext& ctx, Router& router);
// Runtime routes: artifacts, status, logs, stop/start (/api/v1/services/{name}/...).
void AddRuntimeRoutes(ApiContext& ctx, Router& router);
// Versions, runtime parameters and discovery (/api/v1/services/{name}/versions|parameters|
// endpoint, /api/v1/endpoints).
void AddVersionRoutes(ApiContext& ctx, Router& router);
// Notifications and the server-sent event stream (/api/v1/notifications, /api/v1/events/...).
void AddNotificationRoutes(ApiContext& ctx, Router& router);
// Templates, project environment and sessions (seed 000: /api/v1/templates, /projects/{p}/env,
// /sessions), and the orchest-api dialect's sessions/ (/orchest/api/sessions/...).
void AddOrchestRoutes(ApiContext& ctx, Router& native, Router& orchest);
// /metrics and the browser login page (/_berth/login).
void AddGatewayRoutes(ApiContext& ctx, Router& router);
// The dashboard at / and its assets at /_berth/ui/ (dashboard_api.cc).
void AddDashboardRoutes(ApiContext& ctx, Router& router);
// Pipelines, runs and jobs: native (/api/v1/pipelines, /api/v1/runs, /api/v1/jobs) and the
// orchest-api dialect (/orchest/api/runs/..., /orchest/api/jobs/...).
void AddRunRoutes(ApiContext& ctx, Router& native, Router& orchest);
// Recipes and node types (/api/v1/recipes, /api/v1/nodes) and the Neptune dialect (/neptune/...).
void AddRecipeRoutes(ApiContext& ctx, Router& native, Router& neptune);
// servicectl dialect routes (/servicectl-1/...).
void AddServicectlRoutes(ApiContext& ctx, Router& router);

}  // namespace berth
