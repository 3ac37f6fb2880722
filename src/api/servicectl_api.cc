// The servicectl dialect (seed 002): CloudFlow's REST lifecycle under /servicectl-1/, shaped
// so that CloudFlow's Python client (clfpy.ServicesClient) works unchanged. Where the client
// and the reference manual differ, the client wins:
//  - status is the plain GET of a service (the client sends no ?view=status; we accept it),
//    answered as {"status": {...}};
//  - ?view=docker answers repo_uri/user/password/proxy_endpoint at the top level;
//  - errors are {"Error": "..."}; a missing token is 400, an invalid one 403, an existing
//    name on create 405 (the client raises MethodNotAllowedException for it).
#include <fmt/format.h>

#include <algorithm>
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
    // CloudFlow's services authenticate their callers themselves and answer at their link
    // without a platform token: public at the gateway unless an update says "auth": "token".
    json::object defaults{{"auth", "public"}};
    if (const json::value* hc = o.if_contains("health_check")) {
      auto converted = ConvertHealthCheck(*hc, project, svc);
      if (!converted.ok()) {
        return Error(400, converted.status().message());
      }
      defaults["health-check"] = *converted;
    }
    auto rec = ctx_.ops.Create(project, svc, json::serialize(defaults));
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
    json::array tasks;
    json::array targets;
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
      int desired = rec.desired_running ? def->replicas : 0;
      int running = 0;
      {
        ServiceStatus st = ctx_.controller.StatusOf(rec.project, rec.name);
        running = st.running;
        for (const auto& i : st.instances) {
          bool alive = i.state == InstanceState::kStarting || i.state == InstanceState::kRunning || i.state == InstanceState::kUnhealthy;
          json::object task_def{{"name", qualified},
                                {"revision", i.revision},
                                {"status", "ACTIVE"},
                                {"container_image", def->container_tag
                                                        ? fmt::format("{}:{}", qualified,
                                                                      *def->container_tag)
                                                        : qualified},
                                {"container_memory_reservation",
                                 def->memory_reservation_mb ? *def->memory_reservation_mb : 0},
                                {"container_memory_limit",
                                 def->memory_limit_mb ? *def->memory_limit_mb : 0},
                                {"container_port", i.port}};
          tasks.push_back(json::object{
              {"task_name", i.id},
              {"created_at", i.started_at ? ServicectlTime(i.started_at) : std::string("-")},
              {"desired_status", alive ? "RUNNING" : "STOPPED"},
              {"last_status", i.state == InstanceState::kRunning ? "RUNNING"
                              : alive              ? "PENDING"
                                                   : "STOPPED"},
              {"task_definition", std::move(task_def)}});
          if (alive) {
            json::object target{{"target", i.id},
                                {"port", i.port},
                                {"health", i.state == InstanceState::kRunning ? "healthy"
                                           : i.state == InstanceState::kStarting ? "initial"
                                                                   : "unhealthy"}};
            if (i.state != InstanceState::kRunning && !i.health.empty()) {
              target["description"] = i.health;
            }
            targets.push_back(std::move(target));
          }
        }
      }
      status["service_status"] = rec.desired_running ? "ACTIVE" : "INACTIVE";
      status["count_desired"] = desired;
      status["count_running"] = running;
      status["count_pending"] = std::max(0, desired - running);
      auto evs = ctx_.store.ListEvents(rec.project, rec.name, 20);
      if (!evs.ok()) {
        return Error(evs.status());
      }
      for (const auto& e : *evs) {
        if (e.kind == "created") {
          continue;  // added below from the service itself
        }
        events.push_back(json::object{
            {"created_at", ServicectlTime(e.time)},
            {"message", fmt::format("(service {}) {}", qualified, e.message)}});
      }
    }
    events.push_back(json::object{{"created_at", ServicectlTime(rec.created_at)},
                                  {"message", fmt::format("(service {}) created", qualified)}});
    status["tasks"] = std::move(tasks);
    status["events"] = std::move(events);
    status["target_health"] =
        json::object{{"health_check_path", ctx_.PublicBaseUrl(req) + "/" + qualified +
                                               (hc.rel_path == "/" ? "/" : hc.rel_path)},
                     {"interval", hc.interval_s},
                     {"status_codes", hc.status_codes},
                     {"targets", std::move(targets)}};
    return JsonResponse(200, json::object{{"name", rec.name}, {"status", std::move(status)}});
  }

  HttpResponse LogsView(const HttpRequest& req, const ServiceRecord& rec) {
    size_t counts[2] = {20, 1};  // CloudFlow's defaults: 20 events of the newest stream
    const char* keys[2] = {"tail", "streams"};
    for (int k = 0; k < 2; ++k) {
      std::string_view v = req.Query(keys[k]);
      if (v.empty()) {
        continue;
      }
      if (v.find_first_not_of("0123456789") != std::string_view::npos || v.size() > 9) {
        return Error(400, fmt::format("{} must be a non-negative integer, got '{}'", keys[k],
                                      v.substr(0, 32)));
      }
      counts[k] = static_cast<size_t>(std::stoul(std::string(v)));
    }
    json::array logs;
    {
      std::string qualified = DeploymentPath(rec.project, rec.name).substr(1);
      // One stream per instance, newest instance first; events oldest first within a stream.
      ServiceStatus st = ctx_.controller.StatusOf(rec.project, rec.name);
      std::vector<InstanceStatus> order = st.instances;
      std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
        return a.started_at > b.started_at;
      });
      for (const auto& inst : order) {
        if (logs.size() >= counts[1]) {
          break;
        }
        LogQuery q;
        q.tail = counts[0];
        q.instance = inst.id;
        json::array events;
        for (const auto& l : ctx_.controller.Logs(rec.project, rec.name, q)) {
          std::string t = l.time.substr(0, 19);
          if (t.size() > 10) {
            t[10] = ' ';
          }
          events.push_back(json::object{{"time", t}, {"message", l.message}});
        }
        logs.push_back(json::object{
            {"stream_name", fmt::format("{}/{}/{}", qualified, qualified, inst.id)},
            {"log_events", std::move(events)}});
      }
    }
    return JsonResponse(200, json::object{{"logs", std::move(logs)}});
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
        200, json::object{{"repo_uri", fmt::format("{}/api/v1/services/{}/artifacts",
                                                   base, rec.name)},
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
    auto updated = ctx_.ops.Define(project, params[0], *def);
    if (!updated.ok()) {
      return Error(updated.status());
    }
    return JsonResponse(
        200, json::object{{"Success", fmt::format("service {} updated to revision {}",
                                                  params[0], updated->revision)},
                          {"revision", updated->revision}});
  }

  HttpResponse Delete(const HttpRequest&, const std::string& project, const PathParams& params) {
    if (auto deleted = ctx_.ops.Delete(project, params[0]); !deleted.ok()) {
      return Error(deleted.status());
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
