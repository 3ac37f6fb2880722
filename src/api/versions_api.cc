// Versions (seed 001: deploy NAME VERSION, assign, kill, ls), runtime parameters reaching every
// instance, and discovery of a service's address (seed 000's get_service).
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <boost/json.hpp>

#include "api/api_context.h"
#include "api/errors.h"
#include "common/time.h"
#include "control/controller.h"
#include "model/definition.h"
#include "model/names.h"

namespace berth {
namespace json = boost::json;
namespace {

// How a version is doing, from its instances: what `berth ls` prints.
struct VersionState {
  std::string state = "pending";
  int ready = 0;
  int64_t since = 0;  // unix millis: the oldest ready instance's start
};

VersionState StateOf(const ServiceStatus& st, int revision, int desired, bool running) {
  VersionState v;
  bool any = false;
  bool crash_looping = false;
  bool unhealthy = false;
  for (const auto& i : st.instances) {
    if (i.revision != revision) {
      continue;
    }
    any = true;
    if (i.state == InstanceState::kRunning) {
      ++v.ready;
      if (v.since == 0 || (i.started_at != 0 && i.started_at < v.since)) {
        v.since = i.started_at;
      }
    }
    crash_looping |= i.state == InstanceState::kCrashLooping;
    unhealthy |= i.state == InstanceState::kUnhealthy;
  }
  if (!running) {
    v.state = "stopped";
  } else if (v.ready >= desired && v.ready > 0) {
    v.state = "running";
  } else if (crash_looping) {
    v.state = "crash-looping";
  } else if (unhealthy) {
    v.state = "unhealthy";
  } else if (any) {
    v.state = "starting";
  }
  return v;
}

Status ValidateVersion(std::string_view v) {
  if (v.empty() || v.size() > 64) {
    return Status::InvalidArgument("version: must be 1 to 64 characters, e.g. 1.0.0");
  }
  auto alnum = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  };
  if (!alnum(v.front())) {
    return Status::InvalidArgument(fmt::format(
        "version: '{}' must begin with a letter or digit, e.g. 1.0.0", v.substr(0, 64)));
  }
  for (char c : v) {
    if (!alnum(c) && c != '.' && c != '-' && c != '_') {
      return Status::InvalidArgument(fmt::format(
          "version: '{}' may hold only letters, digits, '.', '-' and '_'", v.substr(0, 64)));
    }
  }
  return Status::Ok();
}

class VersionsApi : public std::enable_shared_from_this<VersionsApi> {
 public:
  explicit VersionsApi(ApiContext& ctx) : ctx_(ctx) {}

  void Register(Router& r) {
    Bind(r, "GET", "/api/v1/services/{name}/versions", &VersionsApi::List);
    Bind(r, "POST", "/api/v1/services/{name}/versions", &VersionsApi::Deploy);
    Bind(r, "GET", "/api/v1/services/{name}/versions/{version}", &VersionsApi::Show);
    Bind(r, "POST", "/api/v1/services/{name}/versions/{version}/assign", &VersionsApi::Assign);
    Bind(r, "DELETE", "/api/v1/services/{name}/versions/{version}", &VersionsApi::Kill);
    Bind(r, "GET", "/api/v1/services/{name}/parameters", &VersionsApi::GetParameters);
    Bind(r, "GET", "/api/v1/services/{name}/parameters/{p}", &VersionsApi::GetParameters);
    Bind(r, "POST", "/api/v1/services/{name}/parameters/{p}", &VersionsApi::SetParameter);
    Bind(r, "GET", "/api/v1/services/{name}/endpoint", &VersionsApi::Endpoint);
    auto self = shared_from_this();
    r.Add("GET", "/api/v1/endpoints",
          WithAuth(ctx_, [self](const HttpRequest& req, const Principal& who,
                                   const PathParams&) { return self->Endpoints(req, who); }));
  }

 private:
  using Method = HttpResponse (VersionsApi::*)(const HttpRequest&, const std::string& project,
                                               const ServiceRecord&, const PathParams&);

  void Bind(Router& r, std::string_view method, std::string_view pattern, Method m) {
    r.Add(method, pattern,
          WithService(ctx_, [self = shared_from_this(), m](
                                const HttpRequest& req, const std::string& project,
                                const ServiceRecord& svc, const PathParams& params) {
            return ((*self).*m)(req, project, svc, params);
          }));
  }

  // Replicas each revision's definition asks for (1 where it cannot be read), read once per
  // request rather than once per version.
  std::map<int, int> Replicas(const ServiceRecord& svc) {
    std::map<int, int> out;
    auto revs = ctx_.store.ListRevisions(svc.project, svc.name);
    if (!revs.ok()) {
      return out;
    }
    for (const auto& r : *revs) {
      boost::system::error_code ec;
      auto parsed = json::parse(r.definition_json, ec);
      if (auto def = ec ? Result<Definition>(Status::Internal("")) : ParseDefinition(parsed);
          def.ok()) {
        out[r.revision] = def->replicas;
      }
    }
    return out;
  }

  json::object VersionJson(const ServiceRecord& svc, const VersionRecord& v,
                           const ServiceStatus& st, const std::map<int, int>& replicas) {
    auto it = replicas.find(v.revision);
    int desired = it == replicas.end() ? 1 : it->second;
    VersionState vs = StateOf(st, v.revision, desired, svc.desired_running);
    return {{"version", v.version},
            {"revision", v.revision},
            {"main", v.version == svc.main_version},
            {"state", vs.state},
            {"ready", vs.ready},
            {"desired", desired},
            {"since", vs.since ? json::value(FormatRfc3339(vs.since)) : json::value(nullptr)},
            {"created_at", FormatRfc3339(v.created_at)}};
  }

  Result<VersionRecord> Find(const ServiceRecord& svc, const std::string& version) {
    auto list = ctx_.store.ListVersions(svc.project, svc.name);
    if (!list.ok()) {
      return list.status();
    }
    for (const auto& v : *list) {
      if (v.version == version) {
        return v;
      }
    }
    std::vector<std::string> known;
    for (const auto& v : *list) {
      known.push_back(v.version);
    }
    return Status::NotFound(fmt::format("'{}' has no version {}{}", svc.name, version,
                                        known.empty() ? std::string("; it has none yet")
                                                      : "; it has " + fmt::format("{}", fmt::join(known, ", "))));
  }

  HttpResponse List(const HttpRequest&, const std::string& project, const ServiceRecord& svc,
                    const PathParams&) {
    auto list = ctx_.store.ListVersions(project, svc.name);
    if (!list.ok()) {
      return ErrorResponse(list.status());
    }
    ServiceStatus st = ctx_.controller.StatusOf(project, svc.name);
    std::map<int, int> replicas = Replicas(svc);
    json::array out;
    for (const auto& v : *list) {
      out.push_back(VersionJson(svc, v, st, replicas));
    }
    return JsonResponse(200, json::object{{"name", svc.name},
                                          {"main", svc.main_version},
                                          {"versions", std::move(out)}});
  }

  HttpResponse Deploy(const HttpRequest& req, const std::string& project,
                      const ServiceRecord& svc, const PathParams&) {
    auto body = ParseJsonBody(req);
    if (!body.ok()) {
      return ErrorResponse(body.status());
    }
    if (!body->is_object()) {
      return ErrorResponse(Status::InvalidArgument(
          "the body must be an object: {\"version\": \"1.0.0\", \"definition\": {...}}"));
    }
    const json::object& o = body->as_object();
    const json::value* version = o.if_contains("version");
    if (version == nullptr || !version->is_string()) {
      return ErrorResponse(Status::InvalidArgument("version: required, a string such as 1.0.0"));
    }
    std::string v(version->as_string());
    if (auto s = ValidateVersion(v); !s.ok()) {
      return ErrorResponse(s);
    }
    json::object def_json;
    if (const json::value* d = o.if_contains("definition"); d != nullptr && !d->is_null()) {
      if (!d->is_object()) {
        return ErrorResponse(Status::InvalidArgument("definition: must be an object"));
      }
      def_json = d->as_object();
    }
    for (const auto& [k, val] : o) {
      if (k != "version" && k != "definition") {
        return ErrorResponse(Status::InvalidArgument(fmt::format(
            "unknown field '{}'; a version takes \"version\" and \"definition\"", k)));
      }
    }
    // The bundle pushed under the version's tag, unless the definition says what to run.
    if (!def_json.contains("container-tag") && !def_json.contains("command") &&
        !def_json.contains("entrypoint")) {
      if (auto s = ValidateTag(v); !s.ok()) {
        return ErrorResponse(s.WithContext("version as an artifact tag"));
      }
      def_json["container-tag"] = v;
    }
    auto def = ParseDefinition(def_json);
    if (!def.ok()) {
      return ErrorResponse(def.status());
    }
    if (def->container_tag) {
      if (auto s = ctx_.ops.RequirePushedTag(project, svc.name, *def->container_tag); !s.ok()) {
        return ErrorResponse(s.code() != StatusCode::kInvalidArgument
                                 ? s
                                 : Status::InvalidArgument(fmt::format(
                                       "{}; or berth deploy {} {} DIR, which does both",
                                       s.message(), svc.name, v)));
      }
    }
    if (auto s = ctx_.controller.Admit(svc, *def); !s.ok()) {
      return ErrorResponse(s);
    }
    auto rec = ctx_.controller.DeployVersion(project, svc.name, v, *def);
    if (!rec.ok()) {
      return ErrorResponse(rec.status());
    }
    auto updated = ctx_.store.GetService(project, svc.name);
    HttpResponse r =
        JsonResponse(201, VersionJson(updated.ok() ? *updated : svc, *rec,
                                      ctx_.controller.StatusOf(project, svc.name),
                                      Replicas(svc)));
    r.headers.emplace_back("Location",
                           fmt::format("/api/v1/services/{}/versions/{}", svc.name, v));
    return r;
  }

  HttpResponse Show(const HttpRequest&, const std::string& project, const ServiceRecord& svc,
                    const PathParams& params) {
    auto v = Find(svc, params[1]);
    if (!v.ok()) {
      return ErrorResponse(v.status());
    }
    return JsonResponse(200, VersionJson(svc, *v, ctx_.controller.StatusOf(project, svc.name),
                                         Replicas(svc)));
  }

  HttpResponse Assign(const HttpRequest&, const std::string& project, const ServiceRecord& svc,
                      const PathParams& params) {
    auto v = Find(svc, params[1]);
    if (!v.ok()) {
      return ErrorResponse(v.status());
    }
    std::string previous = svc.main_version;
    if (auto s = ctx_.controller.AssignMain(project, svc.name, v->version); !s.ok()) {
      return ErrorResponse(s);
    }
    auto updated = ctx_.store.GetService(project, svc.name);
    json::object out = VersionJson(updated.ok() ? *updated : svc, *v,
                                   ctx_.controller.StatusOf(project, svc.name), Replicas(svc));
    out["previous_main"] = previous;
    return JsonResponse(200, out);
  }

  HttpResponse Kill(const HttpRequest& req, const std::string& project, const ServiceRecord& svc,
                    const PathParams& params) {
    auto all_query = req.BoolQuery("all");
    if (!all_query.ok()) {
      return ErrorResponse(all_query.status());
    }
    bool all = *all_query;
    auto list = ctx_.store.ListVersions(project, svc.name);
    if (!list.ok()) {
      return ErrorResponse(list.status());
    }
    auto v = Find(svc, params[1]);
    if (!v.ok()) {
      return ErrorResponse(v.status());
    }
    std::vector<std::string> victims{v->version};
    if (v->version == svc.main_version && list->size() > 1) {
      if (!all) {
        std::vector<std::string> shadows;
        for (const auto& other : *list) {
          if (other.version != v->version) {
            shadows.push_back(other.version);
          }
        }
        return ErrorResponse(Status::FailedPrecondition(fmt::format(
            "version {} is MAIN and {} still run beside it: assign another version first "
            "(berth assign {} VERSION), or kill every version with --all",
            v->version, fmt::join(shadows, ", "), svc.name)));
      }
      victims.clear();
      for (const auto& other : *list) {
        victims.push_back(other.version);
      }
    }
    for (const auto& victim : victims) {
      if (auto s = ctx_.controller.KillVersion(project, svc.name, victim); !s.ok()) {
        return ErrorResponse(s);
      }
    }
    return JsonResponse(200, json::object{{"name", svc.name},
                                          {"killed", json::value_from(victims)}});
  }

  HttpResponse GetParameters(const HttpRequest&, const std::string& project,
                             const ServiceRecord& svc, const PathParams& params) {
    auto r = ctx_.controller.GetParameters(project, svc.name,
                                            params.size() > 1 ? params[1] : std::string());
    if (!r.ok()) {
      return ErrorResponse(r.status());
    }
    return JsonResponse(r->status, r->body);
  }

  HttpResponse SetParameter(const HttpRequest& req, const std::string& project,
                            const ServiceRecord& svc, const PathParams& params) {
    auto body = ParseJsonBody(req);
    if (!body.ok()) {
      return ErrorResponse(body.status());
    }
    // {"value": v}, or the seed's {"<name>": v}.
    const std::string& p = params[1];
    const json::value* value = nullptr;
    if (body->is_object()) {
      const json::object& o = body->as_object();
      if (o.size() == 1) {
        value = o.if_contains("value") ? o.if_contains("value") : o.if_contains(p);
      }
    }
    if (value == nullptr) {
      return ErrorResponse(Status::InvalidArgument(fmt::format(
          "the body must be {{\"value\": <new value>}} (or {{\"{}\": <new value>}})", p)));
    }
    auto r = ctx_.controller.SetParameter(project, svc.name, p, *value);
    if (!r.ok()) {
      return ErrorResponse(r.status());
    }
    return JsonResponse(r->status, r->body);
  }

  json::object EndpointJson(const HttpRequest& req, const ServiceRecord& svc) {
    ServiceStatus st = ctx_.controller.StatusOf(svc.project, svc.name);
    json::value host = nullptr;
    json::array ports;
    // The live revision's instance first: its address is what a step should use.
    const InstanceStatus* best = nullptr;
    for (const auto& i : st.instances) {
      if (i.host.empty() || i.state == InstanceState::kExited || i.state == InstanceState::kOomKilled) {
        continue;
      }
      bool live = i.revision == st.active_revision;
      if (best == nullptr || (live && best->revision != st.active_revision) ||
          (live == (best->revision == st.active_revision) && i.state == InstanceState::kRunning &&
           best->state != InstanceState::kRunning)) {
        best = &i;
      }
    }
    if (best != nullptr) {
      host = best->host;
      ports.push_back(best->port);
    }
    std::string path = DeploymentPath(svc.project, svc.name);
    // An internal service (Redis, Postgres) has no gateway route: no URL that would answer 404.
    boost::system::error_code ec;
    json::value def =
        svc.definition_json.empty() ? json::value() : json::parse(svc.definition_json, ec);
    const json::value* expose = def.is_object() ? def.as_object().if_contains("expose") : nullptr;
    bool routed = !(expose != nullptr && expose->is_string() && expose->as_string() == "internal");
    json::array urls, paths;
    if (routed) {
      urls.push_back(json::value(ctx_.PublicBaseUrl(req) + path + "/"));
      paths.push_back(json::value(path));
    }
    return {{"name", svc.name},
            {"project", svc.project},
            {"internal_hostname", host},
            {"ports", std::move(ports)},
            {"external_urls", std::move(urls)},
            {"base_paths", std::move(paths)},
            {"running", st.running}};
  }

  HttpResponse Endpoint(const HttpRequest& req, const std::string&, const ServiceRecord& svc,
                        const PathParams&) {
    return JsonResponse(200, EndpointJson(req, svc));
  }

  HttpResponse Endpoints(const HttpRequest& req, const Principal& who) {
    auto project = RequestProject(req, who);
    if (!project.ok()) {
      return ErrorResponse(project.status());
    }
    auto list = ctx_.store.ListServices(*project);
    if (!list.ok()) {
      return ErrorResponse(list.status());
    }
    json::object out;
    for (const auto& svc : *list) {
      out[svc.name] = EndpointJson(req, svc);
    }
    return JsonResponse(200, json::object{{"services", std::move(out)}});
  }

  ApiContext& ctx_;
};

}  // namespace

void AddVersionRoutes(ApiContext& ctx, Router& router) {
  std::make_shared<VersionsApi>(ctx)->Register(router);
}

}  // namespace berth
