// ApiHandler dispatches by path prefix: each API has its own router and its own error shape,
// so that a servicectl client always sees {"Error": ...} and a native one {"error": {...}}.
#include "api/api.h"

#include <fmt/format.h>

#include <boost/json.hpp>

#include "api/api_context.h"
#include "api/errors.h"
#include "common/log.h"
#include "gateway/proxy_head.h"

namespace berth {

std::string ApiContext::PublicBaseUrl(const HttpRequest& req) const {
  if (!options.public_url.empty()) {
    std::string url = options.public_url;
    while (!url.empty() && url.back() == '/') {
      url.pop_back();
    }
    return url;
  }
  std::string_view host = req.Header("host");
  return fmt::format("http://{}", host.empty() ? "localhost" : host);
}

Result<boost::json::value> ParseJsonBody(const HttpRequest& req) {
  if (req.body.empty()) {
    return Status::InvalidArgument("request body is empty; send a JSON object");
  }
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(req.body, ec);
  if (ec) {
    return Status::InvalidArgument(fmt::format("malformed JSON in request body: {}", ec.message()));
  }
  return v;
}

RouteHandler WithAuth(ApiContext& ctx, AuthedHandler h) {
  return [&ctx, h = std::move(h)](const HttpRequest& req, const PathParams& params) {
    // A bearer token, else the login cookie the dashboard's browser sends by itself: on the
    // native API and /metrics only, which are what the dashboard calls; the dialects' clients
    // send tokens, and a cookie there would only widen what another site's page could reach.
    std::string_view token = BearerToken(req.Header("authorization"));
    bool by_cookie = false;
    bool cookie_allowed = req.path.starts_with("/api/v1/") || req.path == "/metrics";
    if (token.empty() && !req.HasHeader("authorization") && cookie_allowed) {
      token = CookieToken(req.Header("cookie"));
      by_cookie = !token.empty();
    }
    auto who = ctx.auth.Authenticate(token);
    if (!who.ok()) {
      HttpResponse resp = ErrorResponse(who.status());
      resp.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"berth\"");
      return resp;
    }
    // A cookie is sent by the browser to any request for this origin, including a form
    // another site posts here; a header of berth's own is not (a cross-site page can only set
    // it through CORS, which berth never allows), so a change made by cookie must carry it.
    if (by_cookie && req.method != "GET" && req.method != "HEAD" &&
        req.Header("x-berth-request").empty()) {
      return ErrorResponse(Status::PermissionDenied(
          "a change authenticated by the login cookie must carry the header "
          "'X-Berth-Request: 1' (the dashboard sends it); scripts send "
          "'Authorization: Bearer <token>'"));
    }
    return h(req, *who, params);
  };
}

RouteHandler WithService(ApiContext& ctx, ServiceHandler h) {
  return WithAuth(ctx, [&ctx, h = std::move(h)](const HttpRequest& req, const Principal& who,
                                                  const PathParams& params) {
    auto project = RequestProject(req, who);
    if (!project.ok()) {
      return ErrorResponse(project.status());
    }
    auto svc = ctx.store.GetService(*project, params[0]);
    if (!svc.ok()) {
      return ErrorResponse(svc.status());
    }
    return h(req, *project, *svc, params);
  });
}

Result<std::string> RequestProject(const HttpRequest& req, const Principal& who,
                                   std::string_view body_project) {
  std::string_view requested = req.Query("project");
  if (requested.empty()) {
    requested = body_project;
  }
  return ResolveProject(who, requested);
}

namespace {

constexpr std::string_view kServicectlPrefix = "/servicectl-1";

bool IsServicectlPath(std::string_view path) {
  return path.starts_with(kServicectlPrefix) &&
         (path.size() == kServicectlPrefix.size() || path[kServicectlPrefix.size()] == '/');
}

constexpr std::string_view kOrchestPrefix = "/orchest/api";

bool IsOrchestPath(std::string_view path) {
  return path.starts_with(kOrchestPrefix) &&
         (path.size() == kOrchestPrefix.size() || path[kOrchestPrefix.size()] == '/');
}

constexpr std::string_view kNeptunePrefix = "/neptune";

bool IsNeptunePath(std::string_view path) {
  return path.starts_with(kNeptunePrefix) &&
         (path.size() == kNeptunePrefix.size() || path[kNeptunePrefix.size()] == '/');
}

// The orchest-api dialect's error shape.
HttpResponse OrchestError(int status, std::string_view message) {
  return JsonResponse(status, boost::json::object{{"message", message}});
}

HttpResponse ServicectlError(int status, std::string_view message) {
  return JsonResponse(status, boost::json::object{{"Error", message}});
}

class ApiHandler final : public HttpHandler {
 public:
  ApiHandler(Store& store, ApiOptions options, Controller& controller, RunEngine& runs,
             Jobs& jobs, RecipeEngine& recipes, Gateway* gateway, Authenticator* auth)
      : own_auth_(auth ? nullptr : std::make_unique<Authenticator>(store)),
        ctx_(store, std::move(options), controller, runs, jobs, recipes, gateway,
             auth ? *auth : *own_auth_) {
    AddNativeRoutes(ctx_, native_);
    AddRuntimeRoutes(ctx_, native_);
    AddVersionRoutes(ctx_, native_);
    AddNotificationRoutes(ctx_, native_);
    AddOrchestRoutes(ctx_, native_, orchest_);
    AddGatewayRoutes(ctx_, native_);
    AddDashboardRoutes(ctx_, native_);
    AddServicectlRoutes(ctx_, servicectl_);
    AddRunRoutes(ctx_, native_, orchest_);
    AddRecipeRoutes(ctx_, native_, neptune_);
  }

  HttpResponse Handle(const HttpRequest& req) override {
    if (IsOrchestPath(req.path)) {
      return HandleOrchest(req);
    }
    if (IsNeptunePath(req.path)) {
      return HandleNeptune(req);
    }
    bool dialect = IsServicectlPath(req.path);
    const Router& router = dialect ? servicectl_ : native_;
    Router::Match m = router.Find(req.method, req.path);
    if (m.handler == nullptr) {
      if (m.allowed.empty()) {
        std::string msg = fmt::format("no such endpoint: {} {}", req.method, req.path.substr(0, 200));
        std::string_view first = std::string_view(req.path).substr(0, req.path.find('/', 1));
        if (!dialect && first.find('-') != std::string_view::npos) {
          msg = fmt::format("no service is deployed at {}; services are reached at "
                            "/<project>-<service>/ once they have a definition",
                            first.substr(0, 100));
        } else if (!dialect && !req.path.starts_with("/api/")) {
          msg += "; the API lives under /api/v1 (e.g. GET /api/v1/services)";
        }
        return dialect ? ServicectlError(404, msg) : ErrorResponse(404, "not_found", msg);
      }
      std::string allowed = fmt::format("{}", fmt::join(m.allowed, ", "));
      std::string msg = fmt::format("method {} is not allowed on {}; allowed: {}", req.method,
                                    req.path.substr(0, 200), allowed);
      HttpResponse r = dialect ? ServicectlError(405, msg)
                               : ErrorResponse(405, "method_not_allowed", msg);
      r.headers.emplace_back("Allow", allowed);
      return r;
    }
    try {
      return (*m.handler)(req, m.params);
    } catch (const std::exception& e) {
      // Handlers report errors through Status; an exception here is a bug in berth or a
      // library surprise. Answer 500 and keep serving.
      LogError("request handler threw", {{"method", req.method}, {"path", req.path},
                                         {"error", e.what()}});
      std::string msg = fmt::format("internal error while handling {} {}", req.method, req.path);
      return dialect ? ServicectlError(500, msg) : ErrorResponse(500, "internal", msg);
    }
  }

  // A dialect's request: its router, its error shape (`error`), and what its 404 says it serves.
  static HttpResponse Dispatch(const Router& router, const HttpRequest& req,
                               HttpResponse (*error)(int, std::string_view),
                               std::string_view serves) {
    Router::Match m = router.Find(req.method, req.path);
    if (m.handler == nullptr) {
      if (m.allowed.empty()) {
        return error(404, fmt::format("no such endpoint: {} {}; {}", req.method,
                                      req.path.substr(0, 200), serves));
      }
      std::string allowed = fmt::format("{}", fmt::join(m.allowed, ", "));
      HttpResponse r = error(405, fmt::format("method {} is not allowed on {}; allowed: {}",
                                              req.method, req.path.substr(0, 200), allowed));
      r.headers.emplace_back("Allow", allowed);
      return r;
    }
    try {
      return (*m.handler)(req, m.params);
    } catch (const std::exception& e) {
      LogError("request handler threw",
               {{"method", req.method}, {"path", req.path}, {"error", e.what()}});
      return error(500, fmt::format("internal error while handling {} {}", req.method, req.path));
    }
  }

  // Neptune's clients read text: errors of the dialect are text too.
  HttpResponse HandleNeptune(const HttpRequest& req) {
    return Dispatch(neptune_, req, TextResponse,
                    "the Neptune dialect serves /neptune/services/list|query|start|stop|"
                    "construct|destruct and /neptune/serve/<url>");
  }

  HttpResponse HandleOrchest(const HttpRequest& req) {
    HttpResponse r =
        Dispatch(orchest_, req, OrchestError, "the orchest-api dialect serves /orchest/api/runs/");
    // Authentication answers in the native shape; the dialect's clients read "message".
    if (r.status == 401 || r.status == 403) {
      boost::system::error_code ec;
      auto v = boost::json::parse(r.body, ec);
      if (!ec && v.is_object() && v.as_object().contains("error")) {
        const auto& e = v.as_object().at("error");
        if (e.is_object() && e.as_object().contains("message")) {
          r.body =
              boost::json::serialize(boost::json::object{{"message", e.as_object().at("message")}});
        }
      }
    }
    return r;
  }

  std::optional<UploadPolicy> Upload(std::string_view method, std::string_view target) override {
    // PUT /api/v1/services/{name}/artifacts/{tag}, PUT /api/v1/nodes/{type}
    if (method != "PUT") {
      return std::nullopt;
    }
    std::string_view path = target.substr(0, target.find('?'));
    auto segs = SplitPath(path);
    if (segs.size() == 6 && segs[0] == "api" && segs[1] == "v1" && segs[2] == "services" &&
        segs[4] == "artifacts") {
      return UploadPolicy{ctx_.controller.UploadDir(),
                          ctx_.controller.options().max_artifact_bytes};
    }
    if ((segs.size() == 4 && segs[0] == "api" && segs[1] == "v1" && segs[2] == "nodes") ||
        (segs.size() == 3 && segs[0] == "api" && segs[1] == "v1" && segs[2] == "handlers")) {
      return UploadPolicy{ctx_.controller.UploadDir(),
                          ctx_.controller.options().max_artifact_bytes};
    }
    return std::nullopt;
  }

  std::vector<Router::RouteInfo> Routes() const {
    std::vector<Router::RouteInfo> out;
    for (const Router* r : {&native_, &servicectl_, &orchest_, &neptune_}) {
      auto routes = r->Routes();
      out.insert(out.end(), routes.begin(), routes.end());
    }
    return out;
  }

  HttpResponse Reject(std::string_view target, int status, std::string_view message) override {
    if (IsServicectlPath(target)) {
      return ServicectlError(status, message);
    }
    if (IsOrchestPath(target)) {
      return OrchestError(status, message);
    }
    if (IsNeptunePath(target)) {
      return TextResponse(status, message);
    }
    return ErrorResponse(status, CodeForHttpStatus(status), message);
  }

 private:
  std::unique_ptr<Authenticator> own_auth_;
  ApiContext ctx_;
  Router native_;
  Router servicectl_;
  Router orchest_;
  Router neptune_;
};

}  // namespace

std::unique_ptr<HttpHandler> MakeApiHandler(Store& store, ApiOptions options,
                                            Controller& controller, RunEngine& runs,
                                            Jobs& jobs, RecipeEngine& recipes, Gateway* gateway,
                                            Authenticator* auth) {
  return std::make_unique<ApiHandler>(store, std::move(options), controller, runs, jobs,
                                      recipes, gateway, auth);
}

std::vector<Router::RouteInfo> ApiRoutes(const HttpHandler& api) {
  const auto* handler = dynamic_cast<const ApiHandler*>(&api);
  return handler ? handler->Routes() : std::vector<Router::RouteInfo>{};
}

}  // namespace berth
