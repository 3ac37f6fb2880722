// Recipes (seed 003): the native API under /api/v1/recipes and /api/v1/nodes, and the Neptune
// dialect under /neptune with Neptune's own paths and shapes (states as integers, urls as
// /serve/<url>, 200 with a text message for start, stop, construct and destruct). Both
// translate into the RecipeEngine; neither writes the store.
//
// Neptune's clients send no credentials. When the daemon listens on loopback only, the dialect
// answers them without a token and acts on the `default` project; on any other listener it
// needs a token like the rest of the API (ApiOptions::neptune_without_token).
#include <fmt/format.h>

#include <boost/json.hpp>
#include <cmath>

#include "api/api_context.h"
#include "api/errors.h"
#include "common/time.h"
#include "graph/recipe_engine.h"

namespace berth {
namespace json = boost::json;
namespace {

std::string EndpointName(const Recipe& r, int index) {
  if (index == kGraphTerminal) {
    return "";
  }
  return r.nodes[static_cast<size_t>(index)].name;
}

// Messages per second to two decimals; a whole number as an integer ("12", not "1.2E1").
json::value Rate(double per_second) {
  double r = std::round(per_second * 100) / 100;
  if (r == std::floor(r) && std::fabs(r) < 1e15) {
    return static_cast<int64_t>(r);
  }
  return r;
}

json::object RecipeViewJson(const RecipeView& v) {
  json::array nodes;
  for (const auto& n : v.nodes) {
    nodes.push_back(json::object{{"name", n.name},
                                 {"type", n.type},
                                 {"state", n.state},
                                 {"pid", n.pid},
                                 {"restarts", n.restarts},
                                 {"last_exit", n.last_exit}});
  }
  json::array edges;
  for (const auto& e : v.edges) {
    edges.push_back(json::object{
        {"source", e.source == kGraphTerminal ? json::value("START")
                                              : json::value(EndpointName(v.recipe, e.source))},
        {"sink", e.sink == kGraphTerminal ? json::value("END")
                                          : json::value(EndpointName(v.recipe, e.sink))},
        {"messages", e.messages},
        {"per_second", Rate(e.per_second)}});
  }
  boost::system::error_code ec;
  json::value overrides = json::parse(v.record.overrides_json, ec);
  return {{"name", v.record.name},
          {"project", v.record.project},
          {"url", v.record.url},
          {"state", RecipeStateName(v.state)},
          {"message", v.message},
          {"since",
           v.state_since ? json::value(FormatRfc3339Millis(v.state_since)) : json::value(nullptr)},
          {"dead_count", v.dead_count},
          {"throughput", Rate(v.throughput)},
          {"nodes", std::move(nodes)},
          {"edges", std::move(edges)},
          {"overrides", ec ? json::value(json::object{}) : std::move(overrides)},
          {"created_at", FormatRfc3339Millis(v.record.created_at)},
          {"recipe", RecipeToJson(v.recipe)}};
}

// The request's data for a handler chain: a JSON body, form fields, or the query string.
Result<json::value> ServeData(const HttpRequest& req) {
  if (!req.body.empty() && req.Header("content-type").find("application/x-www-form-urlencoded") !=
                               std::string_view::npos) {
    HttpRequest form;
    if (!ParseTarget("/?" + req.body, form)) {
      return Status::InvalidArgument("the form body has invalid percent-encoding");
    }
    json::object o;
    for (const auto& [k, v] : form.query) {
      o[k] = v;
    }
    return json::value(std::move(o));
  }
  if (!req.body.empty()) {
    boost::system::error_code ec;
    json::value v = json::parse(req.body, ec);
    if (ec) {
      return Status::InvalidArgument(
          fmt::format("the body is not JSON ({}); send JSON or form fields", ec.message()));
    }
    return v;
  }
  json::object o;
  for (const auto& [k, v] : req.query) {
    o[k] = v;
  }
  return json::value(std::move(o));
}

HttpResponse FromAnswer(const ServeAnswer& a) {
  HttpResponse r;
  r.status = a.status;
  r.content_type = a.content_type;
  r.body = a.body;
  return r;
}

// A request through the recipe's handler chain, answered when the graph answers.
HttpResponse ServeLater(RecipeEngine& engine, const std::string& project, const std::string& name,
                        ServeRequest req) {
  HttpResponse r;
  r.deferred = [&engine, project, name,
                req = std::move(req)](std::function<void(HttpResponse)> reply) {
    engine.Serve(project, name, req,
                 [reply = std::move(reply)](ServeAnswer a) { reply(FromAnswer(a)); });
  };
  return r;
}

// Overrides from a start request: {"overrides": {...}} (native) or {"args": {...}} (Neptune).
Result<json::object> OverridesOf(const HttpRequest& req, std::string_view key) {
  if (req.body.empty()) {
    return json::object{};
  }
  auto body = ParseJsonBody(req);
  if (!body.ok()) {
    return body.status();
  }
  if (!body->is_object()) {
    return Status::InvalidArgument(fmt::format("the body must be a JSON object with '{}'", key));
  }
  const json::value* o = body->as_object().if_contains(key);
  if (o == nullptr || o->is_null()) {
    return json::object{};
  }
  if (!o->is_object()) {
    return Status::InvalidArgument(
        fmt::format("'{}' must be an object keyed by node name: {{\"<node>\": {{\"add\": {{...}}, "
                    "\"remove\": {{...}}}}}}",
                    key));
  }
  return o->as_object();
}

// --- the Neptune dialect ---

json::object NeptuneListEntry(const RecipeView& v) {
  return {{"name", v.record.name},
          {"state", NeptuneStateCode(v.state)},
          {"url", "/serve/" + v.record.url},
          {"throughput", Rate(v.throughput)}};
}

using NeptuneHandler =
    std::function<HttpResponse(const HttpRequest&, const std::string& project, const PathParams&)>;

// Neptune's clients send no token: on a loopback-only listener they act on `default`.
RouteHandler Neptune(ApiContext& ctx, NeptuneHandler h) {
  return [&ctx, h = std::move(h)](const HttpRequest& req, const PathParams& params) {
    std::string_view token = BearerToken(req.Header("authorization"));
    if (token.empty() && ctx.options.neptune_without_token) {
      return h(req, std::string(kDefaultProject), params);
    }
    auto who = ctx.auth.Authenticate(token);
    if (!who.ok()) {
      HttpResponse r = TextResponse(401, who.status().message() +
                                             "; this listener is not loopback-only, so the Neptune "
                                             "dialect needs a token (Authorization: Bearer ...)");
      r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"berth\"");
      return r;
    }
    auto project = ResolveProject(*who, req.Query("project"));
    if (!project.ok()) {
      return TextResponse(403, project.status().message());
    }
    return h(req, *project, params);
  };
}

std::string StartText(const std::string& name, const Result<RecipeView>& v) {
  if (!v.ok()) {
    return fmt::format("service {} was not started: {}", name, v.status().message());
  }
  switch (v->state) {
    case RecipeState::kStarted:
      return fmt::format("service {} started", name);
    case RecipeState::kDead:
      return fmt::format("service {} failed to start and is DEAD: {}", name, v->message);
    default:
      return fmt::format("service {} is {}: {}", name, RecipeStateName(v->state), v->message);
  }
}

void AddNeptuneRoutes(ApiContext& ctx, Router& r) {
  RecipeEngine& engine = ctx.recipes;
  r.Add("GET", "/neptune/services/list",
        Neptune(ctx, [&engine](const HttpRequest&, const std::string& project, const PathParams&) {
          json::array services;
          for (const auto& v : engine.List(project)) {  // by name
            services.push_back(NeptuneListEntry(v));
          }
          return JsonResponse(200, json::object{{"services", std::move(services)}});
        }));
  r.Add("GET", "/neptune/services/query",
        Neptune(
            ctx, [&engine](const HttpRequest& req, const std::string& project, const PathParams&) {
              auto v = engine.Get(project, std::string(req.Query("service")));
              if (!v.ok()) {
                return JsonResponse(200, json::object{});  // Neptune's answer for an unknown one
              }
              return JsonResponse(200, json::object{{"args", RecipeToNeptune(v->recipe).at("args")},
                                                    {"state", NeptuneStateCode(v->state)},
                                                    {"throughput", Rate(v->throughput)},
                                                    {"url", "/serve/" + v->record.url}});
            }));
  auto start = [&engine](const HttpRequest& req, const std::string& project, const PathParams&) {
    std::string name(req.Query("id"));
    json::object overrides;
    if (req.method == "POST" && !req.body.empty()) {
      auto body = ParseJsonBody(req);
      if (!body.ok() || !body->is_object()) {
        return TextResponse(400, "the body must be JSON: {\"id\": \"<service>\", \"args\": {...}}");
      }
      if (const json::value* id = body->as_object().if_contains("id"); id && id->is_string()) {
        name = std::string(id->as_string());
      }
      auto o = OverridesOf(req, "args");
      if (!o.ok()) {
        return TextResponse(400, o.status().message());
      }
      overrides = std::move(*o);
    }
    if (name.empty()) {
      return TextResponse(400,
                          "say which service to start: {\"id\": \"<service>\"} or ?id=<service>");
    }
    return TextResponse(200, StartText(name, engine.StartRecipe(project, name, overrides)));
  };
  r.Add("GET", "/neptune/services/start", Neptune(ctx, start));
  r.Add("POST", "/neptune/services/start", Neptune(ctx, start));
  r.Add("GET", "/neptune/services/stop",
        Neptune(
            ctx, [&engine](const HttpRequest& req, const std::string& project, const PathParams&) {
              std::string name(req.Query("id"));
              if (name.empty()) {
                return TextResponse(400, "say which service to stop: ?id=<service>");
              }
              auto v = engine.StopRecipe(project, name);
              if (!v.ok()) {
                return TextResponse(
                    200, fmt::format("service {} was not stopped: {}", name, v.status().message()));
              }
              return TextResponse(200, fmt::format("service {} stopped", name));
            }));
  r.Add("POST", "/neptune/services/construct",
        Neptune(ctx,
                [&engine](const HttpRequest& req, const std::string& project, const PathParams&) {
                  auto body = ParseJsonBody(req);
                  if (!body.ok()) {
                    return TextResponse(400, body.status().message());
                  }
                  auto v = engine.Construct(project, *body);
                  if (!v.ok()) {
                    return TextResponse(HttpStatusFor(v.status().code()),
                                        "the recipe was not constructed: " + v.status().message());
                  }
                  return TextResponse(200, fmt::format("service {} constructed at /serve/{}",
                                                       v->record.name, v->record.url));
                }));
  r.Add("POST", "/neptune/services/destruct",
        Neptune(
            ctx, [&engine](const HttpRequest& req, const std::string& project, const PathParams&) {
              HttpRequest form;
              if (!ParseTarget("/?" + req.body, form)) {
                return TextResponse(400, "the form body has invalid percent-encoding");
              }
              std::string name(form.Query("name"));
              std::string url(form.Query("url"));
              if (name.empty() && !url.empty()) {
                auto by_url = engine.NameByUrl(project, url);
                if (by_url.ok()) {
                  name = *by_url;
                }
              }
              if (name.empty()) {
                return TextResponse(400, "say which service to destruct: form fields url and name");
              }
              if (auto s = engine.Destruct(project, name); !s.ok()) {
                return TextResponse(
                    200, fmt::format("service {} was not destructed: {}", name, s.message()));
              }
              return TextResponse(200, fmt::format("service {} destructed", name));
            }));
  auto serve = [&engine](const HttpRequest& req, const std::string& project,
                         const PathParams& params) {
    auto name = engine.NameByUrl(project, params[0]);
    if (!name.ok()) {
      return TextResponse(404, name.status().message() + "; see them at /neptune/services/list");
    }
    auto data = ServeData(req);
    if (!data.ok()) {
      return TextResponse(400, data.status().message());
    }
    return ServeLater(engine, project, *name, ServeRequest{req.method, std::move(*data)});
  };
  for (const char* m : {"GET", "POST", "PATCH"}) {
    r.Add(m, "/neptune/serve/{url}", Neptune(ctx, serve));
  }
}

// A native route acting on the request's project (?project=, else the token's).
using ProjectHandler =
    std::function<HttpResponse(const HttpRequest&, const std::string& project, const PathParams&)>;
RouteHandler OnProject(ApiContext& ctx, ProjectHandler h) {
  return WithAuth(ctx, [h = std::move(h)](const HttpRequest& req, const Principal& who,
                                          const PathParams& params) {
    auto project = RequestProject(req, who);
    if (!project.ok()) {
      return ErrorResponse(project.status());
    }
    return h(req, *project, params);
  });
}

}  // namespace

void AddRecipeRoutes(ApiContext& ctx, Router& native, Router& neptune) {
  RecipeEngine& engine = ctx.recipes;
  native.Add(
      "GET", "/api/v1/recipes",
      OnProject(ctx, [&engine](const HttpRequest&, const std::string& project, const PathParams&) {
        json::array out;
        for (const auto& v : engine.List(project)) {
          out.push_back(RecipeViewJson(v));
        }
        return JsonResponse(200, json::object{{"recipes", std::move(out)}});
      }));
  native.Add("POST", "/api/v1/recipes",
             OnProject(ctx, [&engine](const HttpRequest& req, const std::string& project,
                                      const PathParams&) {
               auto body = ParseJsonBody(req);
               if (!body.ok()) {
                 return ErrorResponse(body.status());
               }
               auto v = engine.Construct(project, *body);
               if (!v.ok()) {
                 return ErrorResponse(v.status());
               }
               return JsonResponse(201, RecipeViewJson(*v));
             }));
  native.Add(
      "POST", "/api/v1/recipes/reset",
      OnProject(ctx, [&engine](const HttpRequest&, const std::string& project, const PathParams&) {
        if (auto s = engine.Reset(project); !s.ok()) {
          return ErrorResponse(s);
        }
        json::array out;
        for (const auto& v : engine.List(project)) {
          out.push_back(RecipeViewJson(v));
        }
        return JsonResponse(200, json::object{{"recipes", std::move(out)}});
      }));
  using RecipeHandler = std::function<HttpResponse(const HttpRequest&, const std::string& project,
                                                   const std::string& name)>;
  auto on_recipe = [&ctx](RecipeHandler h) {
    return OnProject(
        ctx, [h = std::move(h)](const HttpRequest& req, const std::string& project,
                                const PathParams& params) { return h(req, project, params[0]); });
  };
  native.Add(
      "GET", "/api/v1/recipes/{name}",
      on_recipe([&engine](const HttpRequest&, const std::string& project, const std::string& name) {
        auto v = engine.Get(project, name);
        return v.ok() ? JsonResponse(200, RecipeViewJson(*v)) : ErrorResponse(v.status());
      }));
  native.Add(
      "DELETE", "/api/v1/recipes/{name}",
      on_recipe([&engine](const HttpRequest&, const std::string& project, const std::string& name) {
        if (auto s = engine.Destruct(project, name); !s.ok()) {
          return ErrorResponse(s);
        }
        return JsonResponse(200, json::object{{"destructed", name}});
      }));
  native.Add("POST", "/api/v1/recipes/{name}/start",
             on_recipe([&engine](const HttpRequest& req, const std::string& project,
                                 const std::string& name) {
               auto overrides = OverridesOf(req, "overrides");
               if (!overrides.ok()) {
                 return ErrorResponse(overrides.status());
               }
               auto v = engine.StartRecipe(project, name, *overrides);
               if (!v.ok()) {
                 return ErrorResponse(v.status());
               }
               if (v->state == RecipeState::kDead) {
                 // The failure is known: say it now, with its reason.
                 return ErrorResponse(500, "start_failed",
                                      fmt::format("recipe {} is DEAD: {}", name, v->message));
               }
               return JsonResponse(200, RecipeViewJson(*v));
             }));
  native.Add(
      "POST", "/api/v1/recipes/{name}/stop",
      on_recipe([&engine](const HttpRequest&, const std::string& project, const std::string& name) {
        auto v = engine.StopRecipe(project, name);
        return v.ok() ? JsonResponse(200, RecipeViewJson(*v)) : ErrorResponse(v.status());
      }));
  native.Add(
      "GET", "/api/v1/recipes/{name}/throughput",
      on_recipe([&engine](const HttpRequest&, const std::string& project, const std::string& name) {
        auto v = engine.Get(project, name);
        if (!v.ok()) {
          return ErrorResponse(v.status());
        }
        json::object o = RecipeViewJson(*v);
        return JsonResponse(200, json::object{{"name", name},
                                              {"state", o["state"]},
                                              {"throughput", Rate(v->throughput)},
                                              {"edges", o["edges"]}});
      }));
  auto serve = [&engine](const HttpRequest& req, const std::string& project,
                         const std::string& name) {
    auto data = ServeData(req);
    if (!data.ok()) {
      return ErrorResponse(data.status());
    }
    return ServeLater(engine, project, name, ServeRequest{req.method, std::move(*data)});
  };
  for (const char* m : {"GET", "POST", "PATCH"}) {
    native.Add(m, "/api/v1/recipes/{name}/serve", on_recipe(serve));
  }
  // Node types: the built-in ones and the bundles pushed for a project.
  native.Add(
      "GET", "/api/v1/nodes",
      OnProject(ctx, [&ctx](const HttpRequest&, const std::string& project, const PathParams&) {
        json::array out;
        for (const std::string& b : RecipeEngine::BuiltinNodes()) {
          out.push_back(json::object{{"name", b}, {"builtin", true}});
        }
        auto pushed = ctx.store.ListNodeTypes(project);
        if (!pushed.ok()) {
          return ErrorResponse(pushed.status());
        }
        json::value handlers = nullptr;
        for (const auto& n : *pushed) {
          if (n.name == RecipeEngine::kHandlersBundle) {
            handlers = json::object{{"digest", n.digest},
                                    {"created_at", FormatRfc3339Millis(n.created_at)}};
            continue;
          }
          out.push_back(json::object{{"name", n.name},
                                     {"builtin", false},
                                     {"digest", n.digest},
                                     {"created_at", FormatRfc3339Millis(n.created_at)}});
        }
        return JsonResponse(
            200, json::object{{"nodes", std::move(out)}, {"handlers", std::move(handlers)}});
      }));
  native.Add("PUT", "/api/v1/nodes/{type}",
             OnProject(ctx, [&ctx, &engine](const HttpRequest& req, const std::string& project,
                                            const PathParams& params) {
               if (req.body_file.empty()) {
                 return ErrorResponse(Status::InvalidArgument(
                     "send the node's bundle (a .tar.gz of its folder) as the body"));
               }
               auto ingested = ctx.controller.IngestBundle(req.body_file);
               if (!ingested.ok()) {
                 return ErrorResponse(ingested.status());
               }
               auto rec = engine.PutNodeType(project, params[0], ingested->digest);
               if (!rec.ok()) {
                 return ErrorResponse(rec.status());
               }
               return JsonResponse(200, json::object{{"name", rec->name},
                                                     {"project", rec->project},
                                                     {"digest", rec->digest}});
             }));
  native.Add(
      "PUT", "/api/v1/handlers",
      OnProject(ctx, [&ctx, &engine](const HttpRequest& req, const std::string& project,
                                     const PathParams&) {
        if (req.body_file.empty()) {
          return ErrorResponse(Status::InvalidArgument(
              "send the handlers' bundle (a .tar.gz of the folder with the modules) as "
              "the body"));
        }
        auto ingested = ctx.controller.IngestBundle(req.body_file);
        if (!ingested.ok()) {
          return ErrorResponse(ingested.status());
        }
        auto rec = engine.PutHandlers(project, ingested->digest);
        if (!rec.ok()) {
          return ErrorResponse(rec.status());
        }
        return JsonResponse(200, json::object{{"project", rec->project}, {"digest", rec->digest}});
      }));
  native.Add("DELETE", "/api/v1/nodes/{type}",
             OnProject(ctx, [&ctx](const HttpRequest&, const std::string& project,
                                   const PathParams& params) {
               if (auto s = ctx.store.DeleteNodeType(project, params[0]); !s.ok()) {
                 return ErrorResponse(s);
               }
               return JsonResponse(200, json::object{{"deleted", params[0]}});
             }));
  AddNeptuneRoutes(ctx, neptune);
}

}  // namespace berth
