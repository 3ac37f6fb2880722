// The servicectl dialect (seed 002): CloudFlow's REST lifecycle under /servicectl-1/, shaped
// so that CloudFlow's Python client (clfpy.ServicesClient) works unchanged. Where the client
// and the reference manual differ, the client wins:
//  - status is the plain GET of a service (the client sends no ?view=status; we accept it),
//    answered as {"status": {...}};
//  - ?view=docker answers repo_uri/user/password/proxy_endpoint at the top level;
//  - errors are {"Error": "..."}; a missing token is 400, an invalid one 403, an existing
//    name on create 405 (the client raises MethodNotAllowedException for it).
#include <fmt/format.h>

#include <boost/json.hpp>

#include "api/api_context.h"
#include "api/errors.h"
#include "common/time.h"
#include "model/definition.h"
#include "model/names.h"

namespace berth {
namespace json = boost::json;
namespace {

HttpResponse Error(int status, std::string_view message) {
  return JsonResponse(status, json::object{{"Error", message}});
}

// Status codes map as in the native API, except the ones the client treats specially.
HttpResponse Error(const Status& s) {
  int status = HttpStatusFor(s.code());
  if (s.code() == StatusCode::kAlreadyExists) {
    status = 405;
  } else if (s.code() == StatusCode::kUnauthenticated) {
    status = 403;
  }
  return Error(status, s.message());
}

// "2018-12-10 08:08:06", the form CloudFlow's status and logs views print.
std::string ServicectlTime(int64_t unix_millis) {
  std::string t = FormatRfc3339(unix_millis);  // 2018-12-10T08:08:06Z
  t[10] = ' ';
  t.pop_back();
  return t;
}

class ServicectlApi : public std::enable_shared_from_this<ServicectlApi> {
 public:
  explicit ServicectlApi(ApiContext& ctx) : ctx_(ctx) {}

  void Register(Router& r) {
    Bind(r, "GET", "/servicectl-1/services", &ServicectlApi::List);
    Bind(r, "POST", "/servicectl-1/services", &ServicectlApi::Create);
    Bind(r, "GET", "/servicectl-1/services/{name}", &ServicectlApi::Get);
    Bind(r, "PUT", "/servicectl-1/services/{name}", &ServicectlApi::Update);
    Bind(r, "DELETE", "/servicectl-1/services/{name}", &ServicectlApi::Delete);
  }

 private:
  using Method = HttpResponse (ServicectlApi::*)(const HttpRequest&, const std::string& project,
                                                 const PathParams&);

  void Bind(Router& r, std::string_view method, std::string_view pattern, Method m) {
    r.Add(method, pattern, [self = shared_from_this(), m](const HttpRequest& req,
                                                          const PathParams& params) {
      std::string_view token = req.Header("x-auth-token");
      if (token.empty()) {
        token = BearerToken(req.Header("authorization"));
      }
      if (token.empty()) {
        return Error(400, "missing X-Auth-Token header; send the project's token in it");
      }
      auto who = self->ctx_.auth.Authenticate(token);
      if (!who.ok()) {
        return Error(403, "token validation failed: " + who.status().message());
      }
      auto project = ResolveProject(*who, req.Query("project"));
      if (!project.ok()) {
        return Error(project.status());
      }
      return ((*self).*m)(req, *project, params);
    });
  }

  json::object ServiceLinks(const HttpRequest& req, const std::string& project,
                            std::string_view name) const {
    return {{"name", name},
            {"links", json::array{json::object{{"rel", "self"},
                                               {"href", fmt::format("/services/{}", name)}},
                                  json::object{{"rel", "deployment"},
                                               {"href", ctx_.PublicBaseUrl(req) +
                                                            DeploymentPath(project, name)}}}}};
  }

  HttpResponse List(const HttpRequest& req, const std::string& project, const PathParams&) {
    auto list = ctx_.store.ListServices(project);
    if (!list.ok()) {
      return Error(list.status());
    }
    json::array out;
    for (const auto& s : *list) {
      out.push_back(ServiceLinks(req, project, s.name));
    }
    return JsonResponse(200, out);
  }

  HttpResponse Create(const HttpRequest& req, const std::string& project, const PathParams&) {
    auto body = ParseJsonBody(req);
    if (!body.ok()) {
      return Error(body.status());
    }
    if (!body->is_object()) {
      return Error(400, "request body must be a JSON object like {\"name\": \"my-service\"}");
    }
    const json::object& o = body->get_object();
    const json::value* name = o.if_contains("name");
    if (name == nullptr || !name->is_string()) {
      return Error(400, "name: is required and must be a string");
    }
    std::string svc(name->get_string());
    if (auto s = ValidateServiceName(project, svc); !s.ok()) {
      return Error(400, s.message());
    }
    std::string defaults = "{}";
    if (const json::value* hc = o.if_contains("health_check")) {
      auto converted = ConvertHealthCheck(*hc, project, svc);
      if (!converted.ok()) {
        return Error(400, converted.status().message());
      }
      defaults = json::serialize(json::object{{"health-check", *converted}});
    }
    auto rec = ctx_.store.CreateService(project, svc, defaults);
    if (!rec.ok()) {
      return Error(rec.status());
    }
    return JsonResponse(201, ServiceLinks(req, project, svc));
  }

  // CloudFlow health checks name the path with the deployment prefix ("proj-svc/MyService?wsdl");
  // berth's are relative to the context root. Validated by ParseDefinition.
  static Result<json::value> ConvertHealthCheck(const json::value& hc, const std::string& project,
                                                const std::string& name) {
    if (!hc.is_object()) {
      return Status::InvalidArgument(
          "health_check: must be an object with rel_path, status_codes and interval");
    }
    json::object out;
    for (const auto& kv : hc.get_object()) {
      if (kv.key() == "rel_path" && kv.value().is_string()) {
        std::string_view p = kv.value().get_string();
        while (p.starts_with('/')) {
          p.remove_prefix(1);
        }
        std::string prefix = DeploymentPath(project, name).substr(1);
        if (p.starts_with(prefix) && (p.size() == prefix.size() || p[prefix.size()] == '/' ||
                                      p[prefix.size()] == '?')) {
          p.remove_prefix(prefix.size());
        }
        while (p.starts_with('/')) {
          p.remove_prefix(1);
        }
        out["rel_path"] = "/" + std::string(p);
      } else {
        out[kv.key()] = kv.value();
      }
    }
    // Let the definition parser check every key with its own messages.
    json::object probe{{"command", json::array{"probe"}}, {"health-check", out}};
    auto parsed = ParseDefinition(probe);
    if (!parsed.ok()) {
      return Status::InvalidArgument("health_check: " + parsed.status().message());
    }
    return json::value(std::move(out));
  }

  HttpResponse Get(const HttpRequest& req, const std::string& project, const PathParams& params) {
    auto rec = ctx_.store.GetService(project, params[0]);
    if (!rec.ok()) {
      return Error(rec.status());
    }
    std::string_view view = req.Query("view");
    if (view.empty() || view == "status") {
      return StatusView(req, *rec);
    }
    if (view == "logs") {
      return LogsView(req, *rec);
    }
    if (view == "docker") {
      return DockerView(req, *rec);
    }
    return Error(400, fmt::format("unknown view '{}'; use status, logs or docker",
                                  view.substr(0, 32)));
  }

  HttpResponse StatusView(const HttpRequest& req, const ServiceRecord& rec) {
    std::string qualified = DeploymentPath(rec.project, rec.name).substr(1);
    json::object status;
    json::array events;
    HealthCheck hc;
    if (rec.revision == 0) {
      // Nothing defined yet: CloudFlow answers "unknown" for these.
      status["service_status"] = "unknown";
      status["count_desired"] = "unknown";
      status["count_running"] = "unknown";
      status["count_pending"] = "unknown";
      auto defaults = json::parse(rec.defaults_json);
      if (const json::value* h = defaults.get_object().if_contains("health-check")) {
        auto parsed = ParseDefinition(json::object{{"command", json::array{"probe"}},
                                                   {"health-check", *h}});
        if (parsed.ok()) {
          hc = parsed->health_check;
        }
      }
    } else {
      auto def = ParseDefinition(json::parse(rec.definition_json));
      if (!def.ok()) {
        return Error(500, "stored definition is unreadable: " + def.status().message());
      }
      hc = def->health_check;
      // No instances run yet: what is desired is pending.
      status["service_status"] = def->replicas > 0 ? "ACTIVE" : "INACTIVE";
      status["count_desired"] = def->replicas;
      status["count_running"] = 0;
      status["count_pending"] = def->replicas;
      auto revs = ctx_.store.ListRevisions(rec.project, rec.name);
      if (!revs.ok()) {
        return Error(revs.status());
      }
      for (auto it = revs->rbegin(); it != revs->rend() && events.size() < 20; ++it) {
        events.push_back(json::object{
            {"created_at", ServicectlTime(it->created_at)},
            {"message", fmt::format("(service {}) definition revision {} stored", qualified,
                                    it->revision)}});
      }
    }
    events.push_back(json::object{{"created_at", ServicectlTime(rec.created_at)},
                                  {"message", fmt::format("(service {}) created", qualified)}});
    status["tasks"] = json::array();
    status["events"] = std::move(events);
    status["target_health"] =
        json::object{{"health_check_path", ctx_.PublicBaseUrl(req) + "/" + qualified +
                                               (hc.rel_path == "/" ? "/" : hc.rel_path)},
                     {"interval", hc.interval_s},
                     {"status_codes", hc.status_codes},
                     {"targets", json::array()}};
    return JsonResponse(200, json::object{{"name", rec.name}, {"status", std::move(status)}});
  }

  HttpResponse LogsView(const HttpRequest& req, const ServiceRecord&) {
    for (std::string_view key : {"tail", "streams"}) {
      std::string_view v = req.Query(key);
      if (!v.empty() && v.find_first_not_of("0123456789") != std::string_view::npos) {
        return Error(400, fmt::format("{} must be a non-negative integer, got '{}'", key,
                                      v.substr(0, 32)));
      }
    }
    // One stream per instance; no instance has run yet.
    return JsonResponse(200, json::object{{"logs", json::array()}});
  }

  HttpResponse DockerView(const HttpRequest& req, const ServiceRecord& rec) {
    // berth takes bundles over HTTP instead of a Docker registry; the repository is the
    // service's artifacts endpoint and the password the caller's own token.
    std::string base = ctx_.PublicBaseUrl(req);
    std::string_view token = req.Header("x-auth-token");
    if (token.empty()) {
      token = BearerToken(req.Header("authorization"));
    }
    return JsonResponse(
        200, json::object{{"repo_uri", fmt::format("{}/api/v1/services/{}/artifacts?project={}",
                                                   base, rec.name, rec.project)},
                          {"proxy_endpoint", base},
                          {"user", "berth"},
                          {"password", token}});
  }

  HttpResponse Update(const HttpRequest& req, const std::string& project,
                      const PathParams& params) {
    auto rec = ctx_.store.GetService(project, params[0]);
    if (!rec.ok()) {
      return Error(rec.status());
    }
    auto body = ParseJsonBody(req);
    if (!body.ok()) {
      return Error(body.status());
    }
    if (!body->is_object()) {
      return Error(400, "service definition must be a JSON object");
    }
    json::object def_json = body->get_object();
    for (const char* key :
         {"container-tag", "memory-reservation", "memory-limit", "container-port"}) {
      if (!def_json.contains(key)) {
        return Error(400, fmt::format("{}: is required in a service definition", key));
      }
    }
    auto defaults = json::parse(rec->defaults_json);
    for (const auto& kv : defaults.get_object()) {
      if (!def_json.contains(kv.key())) {
        def_json[kv.key()] = kv.value();
      }
    }
    auto def = ParseDefinition(def_json);
    if (!def.ok()) {
      return Error(400, def.status().message());
    }
    if (rec->revision > 0) {
      auto current = ParseDefinition(json::parse(rec->definition_json));
      if (current.ok() && current->container_port && def->container_port &&
          *current->container_port != *def->container_port) {
        return Error(400, fmt::format("container-port: is fixed after the first update (it is "
                                      "{}, got {}); create a new service to use another port",
                                      *current->container_port, *def->container_port));
      }
    }
    auto updated =
        ctx_.store.PutDefinition(project, params[0], json::serialize(DefinitionToJson(*def)));
    if (!updated.ok()) {
      return Error(updated.status());
    }
    return JsonResponse(
        200, json::object{{"Success", fmt::format("service {} updated to revision {}",
                                                  params[0], updated->revision)},
                          {"revision", updated->revision}});
  }

  HttpResponse Delete(const HttpRequest&, const std::string& project, const PathParams& params) {
    if (auto s = ctx_.store.DeleteService(project, params[0]); !s.ok()) {
      return Error(s);
    }
    return JsonResponse(200, json::object{{"Success", fmt::format("service {} deleted",
                                                                  params[0])}});
  }

  ApiContext& ctx_;
};

}  // namespace

void AddServicectlRoutes(ApiContext& ctx, Router& router) {
  std::make_shared<ServicectlApi>(ctx)->Register(router);
}

}  // namespace berth
