// Seed 000 (Orchest services): templates a service is added from, project environment that
// definitions inherit, and sessions that run a project's interactive services for a pipeline.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <boost/json.hpp>

#include "api/api_context.h"
#include "api/errors.h"
#include "common/embedded.h"
#include "common/time.h"
#include "control/controller.h"
#include "model/definition.h"
#include "model/names.h"
#include "model/template.h"

namespace berth {
namespace json = boost::json;
namespace {

// Every template carried in the binary, parsed once.
const std::vector<Template>& Templates() {
  static const std::vector<Template> all = [] {
    std::vector<Template> out;
    for (const auto& f : embedded::templates()) {
      std::string name(f.path.substr(0, f.path.rfind('.')));
      if (auto t = ParseTemplate(name, std::string(f.content)); t.ok()) {
        out.push_back(std::move(*t));
      }
    }
    return out;
  }();
  return all;
}

Result<const Template*> FindTemplate(std::string_view name) {
  std::vector<std::string> names;
  for (const auto& t : Templates()) {
    if (t.name == name) {
      return &t;
    }
    names.push_back(t.name);
  }
  return Status::NotFound(fmt::format("there is no template '{}'; templates are: {}",
                                      name.substr(0, 64), fmt::join(names, ", ")));
}

json::object TemplateJson(const Template& t) {
  json::array values;
  for (const auto& v : t.values) {
    values.push_back(json::object{{"name", v.name},
                                  {"default", v.default_value},
                                  {"required", v.required},
                                  {"description", v.description}});
  }
  json::array needs;
  for (const auto& r : t.requirements) {
    needs.push_back(json::object{{"program", r.program}, {"package", r.package}});
  }
  return {{"name", t.name},
          {"description", t.description},
          {"values", std::move(values)},
          {"requires", std::move(needs)},
          {"installed", CheckRequirements(t).ok()},
          {"ports", t.ports},
          {"definition", t.definition}};
}

// What a session reports of one of its services.
struct SessionService {
  std::string name;
  std::string state;  // launching, running, failed, stopped
  std::string reason;
};

class OrchestApi : public std::enable_shared_from_this<OrchestApi> {
 public:
  explicit OrchestApi(ApiContext& ctx) : ctx_(ctx) {}

  void Register(Router& r) {
    Bind(r, "GET", "/api/v1/templates", &OrchestApi::ListTemplates);
    Bind(r, "GET", "/api/v1/templates/{t}", &OrchestApi::GetTemplate);
    Bind(r, "POST", "/api/v1/templates/{t}/services", &OrchestApi::AddFromTemplate);
    Bind(r, "GET", "/api/v1/projects/{p}/env", &OrchestApi::GetEnv);
    Bind(r, "PUT", "/api/v1/projects/{p}/env", &OrchestApi::PutEnv);
    Bind(r, "POST", "/api/v1/sessions", &OrchestApi::StartSession);
    Bind(r, "GET", "/api/v1/sessions", &OrchestApi::ListSessions);
    Bind(r, "GET", "/api/v1/sessions/{pipeline}", &OrchestApi::GetSession);
    Bind(r, "DELETE", "/api/v1/sessions/{pipeline}", &OrchestApi::StopSession);
  }

  // orchest-api's sessions/ (seed 004), keyed by (project_uuid, pipeline_uuid): a berth
  // session of the token's project for pipeline `pipeline_uuid`.
  void RegisterDialect(Router& r) {
    Bind(r, "POST", "/orchest/api/sessions", &OrchestApi::OrchestStartSession);
    Bind(r, "GET", "/orchest/api/sessions", &OrchestApi::OrchestListSessions);
    Bind(r, "GET", "/orchest/api/sessions/{project}/{pipeline}", &OrchestApi::OrchestGetSession);
    Bind(r, "DELETE", "/orchest/api/sessions/{project}/{pipeline}",
         &OrchestApi::OrchestStopSession);
  }

 private:
  using Method = HttpResponse (OrchestApi::*)(const HttpRequest&, const Principal&,
                                              const PathParams&);

  void Bind(Router& r, std::string_view method, std::string_view pattern, Method m) {
    r.Add(method, pattern,
          WithAuth(ctx_, [self = shared_from_this(), m](const HttpRequest& req,
                                                           const Principal& who,
                                                           const PathParams& params) {
            return ((*self).*m)(req, who, params);
          }));
  }

  HttpResponse ListTemplates(const HttpRequest&, const Principal&, const PathParams&) {
    json::array out;
    for (const auto& t : Templates()) {
      out.push_back(TemplateJson(t));
    }
    return JsonResponse(200, json::object{{"templates", std::move(out)}});
  }

  HttpResponse GetTemplate(const HttpRequest&, const Principal&, const PathParams& params) {
    auto t = FindTemplate(params[0]);
    if (!t.ok()) {
      return ErrorResponse(t.status());
    }
    return JsonResponse(200, TemplateJson(**t));
  }

  // {"name": "redis", "values": {"maxmemory": "512mb"}} -> a service with the rendered
  // definition, started. Every check runs before anything is stored.
  HttpResponse AddFromTemplate(const HttpRequest& req, const Principal& who,
                               const PathParams& params) {
    auto t = FindTemplate(params[0]);
    if (!t.ok()) {
      return ErrorResponse(t.status());
    }
    json::object body;
    if (!req.body.empty()) {
      auto parsed = ParseJsonBody(req);
      if (!parsed.ok()) {
        return ErrorResponse(parsed.status());
      }
      if (!parsed->is_object()) {
        return ErrorResponse(Status::InvalidArgument(
            "the body must be an object: {\"name\": \"redis\", \"values\": {...}}"));
      }
      body = parsed->as_object();
    }
    std::string name = (*t)->name;
    std::map<std::string, std::string> values;
    for (const auto& [k, v] : body) {
      if (k == "name" && v.is_string()) {
        name = std::string(v.as_string());
      } else if (k == "values" && v.is_object()) {
        for (const auto& [vk, vv] : v.as_object()) {
          values[vk] = vv.is_string() ? std::string(vv.as_string()) : json::serialize(vv);
        }
      } else {
        return ErrorResponse(Status::InvalidArgument(fmt::format(
            "{}: unknown or malformed field; send {{\"name\": \"...\", \"values\": {{...}}}}",
            std::string_view(k).substr(0, 64))));
      }
    }
    auto project = RequestProject(req, who);
    if (!project.ok()) {
      return ErrorResponse(project.status());
    }
    if (auto s = ValidateServiceName(*project, name); !s.ok()) {
      return ErrorResponse(s);
    }
    auto rendered = RenderTemplate(**t, values);
    if (!rendered.ok()) {
      return ErrorResponse(rendered.status());
    }
    auto def = ParseDefinition(rendered->definition);
    if (!def.ok()) {
      return ErrorResponse(def.status().WithContext("template " + (*t)->name));
    }
    if (auto s = CheckRequirements(**t); !s.ok()) {
      return ErrorResponse(s);
    }
    bool http = std::any_of(rendered->ports.begin(), rendered->ports.end(),
                            [](const TemplatePort& p) { return p.http; });
    def->expose = http ? "http" : "internal";
    auto rec = ctx_.ops.CreateDefined(*project, name, *def,
                                      fmt::format("service added from template {}", (*t)->name));
    if (!rec.ok()) {
      return ErrorResponse(rec.status());
    }
    std::string path = DeploymentPath(*project, name);
    json::array ports;
    for (const auto& p : rendered->ports) {
      ports.push_back(json::object{{"port", p.port}, {"http", p.http}});
    }
    return JsonResponse(
        201, json::object{{"name", name},
                          {"project", *project},
                          {"template", (*t)->name},
                          {"revision", rec->revision},
                          {"ports", std::move(ports)},
                          {"url", http ? json::value(ctx_.PublicBaseUrl(req) + path + "/")
                                       : json::value(nullptr)},
                          {"definition", DefinitionToJson(*def)}});
  }

  // The project named in the path, which the caller must be allowed to act on.
  Result<std::string> PathProject(const Principal& who, const std::string& p) {
    auto project = ResolveProject(who, p);
    if (!project.ok()) {
      return project.status();
    }
    auto exists = ctx_.store.GetProject(*project);
    if (!exists.ok()) {
      return exists.status();
    }
    return *project;
  }

  HttpResponse GetEnv(const HttpRequest&, const Principal& who, const PathParams& params) {
    auto project = PathProject(who, params[0]);
    if (!project.ok()) {
      return ErrorResponse(project.status());
    }
    auto env = ctx_.store.GetProjectEnv(*project);
    if (!env.ok()) {
      return ErrorResponse(env.status());
    }
    json::object out;
    for (const auto& [k, v] : *env) {
      out[k] = v;
    }
    return JsonResponse(200, json::object{{"project", *project}, {"env", std::move(out)}});
  }

  // {"env": {"NAME": "value"}} replaces the project's variables. Running services pick them
  // up when they next start (a new revision, a restart, a session).
  HttpResponse PutEnv(const HttpRequest& req, const Principal& who, const PathParams& params) {
    auto project = PathProject(who, params[0]);
    if (!project.ok()) {
      return ErrorResponse(project.status());
    }
    auto body = ParseJsonBody(req);
    if (!body.ok()) {
      return ErrorResponse(body.status());
    }
    const json::value* env = body->is_object() ? body->as_object().if_contains("env") : nullptr;
    if (env == nullptr || !env->is_object()) {
      return ErrorResponse(Status::InvalidArgument(
          "the body must be {\"env\": {\"NAME\": \"value\", ...}}"));
    }
    std::vector<std::pair<std::string, std::string>> vars;
    for (const auto& [k, v] : env->as_object()) {
      std::string_view name = k;
      bool ok = !name.empty() && !(name[0] >= '0' && name[0] <= '9') &&
                std::all_of(name.begin(), name.end(), [](char c) {
                  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                         (c >= '0' && c <= '9') || c == '_';
                });
      if (!ok) {
        return ErrorResponse(Status::InvalidArgument(fmt::format(
            "env: '{}' is not a variable name (letters, digits and _, not starting with a "
            "digit)",
            name.substr(0, 64))));
      }
      if (!v.is_string()) {
        return ErrorResponse(
            Status::InvalidArgument(fmt::format("env.{}: the value must be a string", name)));
      }
      vars.emplace_back(std::string(k), std::string(v.as_string()));
    }
    if (auto s = ctx_.projects.SetProjectEnv(*project, vars); !s.ok()) {
      return ErrorResponse(s);
    }
    return GetEnv(req, who, params);
  }

  // The interactive services of a project, with how each is doing.
  std::vector<SessionService> Interactive(const std::string& project) {
    std::vector<SessionService> out;
    for (const auto& svc : InteractiveServices(ctx_.store, project)) {
      SessionService s{svc.name, "launching", ""};
      ServiceStatus st = ctx_.controller.StatusOf(project, svc.name);
      if (!svc.desired_running) {
        s.state = "stopped";
      } else if (st.running >= std::max(1, st.desired)) {
        s.state = "running";
      }
      if (s.state == "launching") {
        // Why it is not up, from the platform's own events: never a silent "starting".
        auto events = ctx_.store.ListEvents(project, svc.name, 20);
        if (events.ok()) {
          for (const auto& e : *events) {
            if (e.kind == "cannot-run" || e.kind == "crash-looping" ||
                e.kind == "start-failed" || e.kind == "rolled-back") {
              s.state = "failed";
              s.reason = e.message;
              break;
            }
            if (e.kind == "started" || e.kind == "start") {
              break;
            }
          }
        }
      }
      out.push_back(std::move(s));
    }
    return out;
  }

  json::object SessionJson(const SessionRecord& rec) {
    auto services = Interactive(rec.project);
    std::string state = rec.state;
    if (state == "running") {
      bool all_up = std::all_of(services.begin(), services.end(),
                                [](const auto& s) { return s.state == "running"; });
      bool failed = std::any_of(services.begin(), services.end(),
                                [](const auto& s) { return s.state == "failed"; });
      state = failed ? "failed" : all_up ? "running" : "launching";
    }
    json::array list;
    for (const auto& s : services) {
      json::object o{{"name", s.name}, {"state", s.state}};
      if (!s.reason.empty()) {
        o["reason"] = s.reason;
      }
      list.push_back(std::move(o));
    }
    return {{"project", rec.project},
            {"pipeline", rec.pipeline},
            {"state", state},
            {"created_at", FormatRfc3339(rec.created_at)},
            {"services", std::move(list)}};
  }

  Result<SessionRecord> FindSession(const std::string& project, const std::string& pipeline) {
    return ctx_.projects.FindSession(project, pipeline);
  }

  HttpResponse StartSession(const HttpRequest& req, const Principal& who, const PathParams&) {
    // A `?project=` the token may not act on is refused before the body is looked at.
    if (auto named = RequestProject(req, who); !named.ok()) {
      return ErrorResponse(named.status());
    }
    auto body = ParseJsonBody(req);
    if (!body.ok()) {
      return ErrorResponse(body.status());
    }
    const json::object* o = body->is_object() ? &body->as_object() : nullptr;
    const json::value* pipeline = o ? o->if_contains("pipeline") : nullptr;
    if (pipeline == nullptr || !pipeline->is_string()) {
      return ErrorResponse(Status::InvalidArgument(
          "pipeline: required, a name of up to 128 characters: {\"project\": \"default\", "
          "\"pipeline\": \"etl\"}"));
    }
    std::string_view body_project;
    if (const json::value* p = o->if_contains("project"); p && p->is_string()) {
      body_project = p->as_string();
    }
    auto project = RequestProject(req, who, body_project);
    if (!project.ok()) {
      return ErrorResponse(project.status());
    }
    std::string name(pipeline->as_string());
    auto rec = ctx_.projects.StartSession(*project, name);
    if (!rec.ok()) {
      return ErrorResponse(rec.status());
    }
    return JsonResponse(201, SessionJson(*rec));
  }

  HttpResponse ListSessions(const HttpRequest& req, const Principal& who, const PathParams&) {
    auto project = RequestProject(req, who);
    if (!project.ok()) {
      return ErrorResponse(project.status());
    }
    auto list = ctx_.store.ListSessions(*project);
    if (!list.ok()) {
      return ErrorResponse(list.status());
    }
    json::array out;
    for (const auto& s : *list) {
      out.push_back(SessionJson(s));
    }
    return JsonResponse(200, json::object{{"sessions", std::move(out)}});
  }

  HttpResponse GetSession(const HttpRequest& req, const Principal& who,
                          const PathParams& params) {
    auto project = RequestProject(req, who);
    if (!project.ok()) {
      return ErrorResponse(project.status());
    }
    auto rec = FindSession(*project, params[0]);
    if (!rec.ok()) {
      return ErrorResponse(rec.status());
    }
    return JsonResponse(200, SessionJson(*rec));
  }

  // Stops the session's services and forgets the session; what they wrote under /data stays.
  HttpResponse StopSession(const HttpRequest& req, const Principal& who,
                           const PathParams& params) {
    auto project = RequestProject(req, who);
    if (!project.ok()) {
      return ErrorResponse(project.status());
    }
    auto ended = ctx_.projects.StopSession(*project, params[0]);
    if (!ended.ok()) {
      return ErrorResponse(ended.status());
    }
    return JsonResponse(200, SessionJson(*ended));
  }

  static HttpResponse OrchestError(const Status& s) {
    return JsonResponse(HttpStatusFor(s.code()), json::object{{"message", s.message()}});
  }

  json::object OrchestSessionJson(const SessionRecord& rec, const std::string& project_uuid) {
    json::object berth = SessionJson(rec);
    std::string state(berth["state"].as_string());
    std::string status = state == "running"     ? "RUNNING"
                         : state == "launching" ? "LAUNCHING"
                         : state == "stopping"  ? "STOPPING"
                                                : "FAILED";
    return {{"project_uuid", project_uuid},
            {"pipeline_uuid", rec.pipeline},
            {"status", status},
            {"user_services", berth["services"]},
            {"created_at", berth["created_at"]}};
  }

  HttpResponse OrchestStartSession(const HttpRequest& req, const Principal& who,
                                   const PathParams&) {
    auto project = RequestProject(req, who);
    if (!project.ok()) {
      return OrchestError(project.status());
    }
    auto body = ParseJsonBody(req);
    if (!body.ok()) {
      return OrchestError(body.status());
    }
    const json::object* o = body->is_object() ? &body->as_object() : nullptr;
    const json::value* pipeline = o ? o->if_contains("pipeline_uuid") : nullptr;
    if (pipeline == nullptr || !pipeline->is_string() || pipeline->as_string().empty() ||
        pipeline->as_string().size() > 128) {
      return OrchestError(Status::InvalidArgument(
          "pipeline_uuid: required, up to 128 characters: {\"project_uuid\": \"...\", "
          "\"pipeline_uuid\": \"...\"}"));
    }
    std::string project_uuid;
    if (const json::value* p = o->if_contains("project_uuid"); p && p->is_string()) {
      project_uuid = std::string(p->as_string());
    }
    auto rec = ctx_.projects.StartSession(*project, std::string(pipeline->as_string()));
    if (!rec.ok()) {
      return OrchestError(rec.status());
    }
    return JsonResponse(201, OrchestSessionJson(*rec, project_uuid));
  }

  HttpResponse OrchestListSessions(const HttpRequest& req, const Principal& who,
                                   const PathParams&) {
    auto project = RequestProject(req, who);
    if (!project.ok()) {
      return OrchestError(project.status());
    }
    auto list = ctx_.store.ListSessions(*project);
    if (!list.ok()) {
      return OrchestError(list.status());
    }
    std::string_view pipeline = req.Query("pipeline_uuid");
    std::string project_uuid(req.Query("project_uuid"));
    json::array out;
    for (const auto& s : *list) {
      if (pipeline.empty() || s.pipeline == pipeline) {
        out.push_back(OrchestSessionJson(s, project_uuid));
      }
    }
    return JsonResponse(200, json::object{{"sessions", std::move(out)}});
  }

  HttpResponse OrchestGetSession(const HttpRequest& req, const Principal& who,
                                 const PathParams& params) {
    auto project = RequestProject(req, who);
    if (!project.ok()) {
      return OrchestError(project.status());
    }
    auto rec = FindSession(*project, params[1]);
    if (!rec.ok()) {
      return OrchestError(rec.status());
    }
    return JsonResponse(200, OrchestSessionJson(*rec, params[0]));
  }

  HttpResponse OrchestStopSession(const HttpRequest& req, const Principal& who,
                                  const PathParams& params) {
    auto project = RequestProject(req, who);
    if (!project.ok()) {
      return OrchestError(project.status());
    }
    auto ended = ctx_.projects.StopSession(*project, params[1]);
    if (!ended.ok()) {
      return OrchestError(ended.status());
    }
    return JsonResponse(200, json::object{{"message", "Session shutdown was successful"}});
  }

  ApiContext& ctx_;
};

}  // namespace

void AddOrchestRoutes(ApiContext& ctx, Router& native, Router& orchest) {
  auto api = std::make_shared<OrchestApi>(ctx);
  api->Register(native);
  api->RegisterDialect(orchest);
}

}  // namespace berth
