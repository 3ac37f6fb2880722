// The native API under /api/v1: projects, tokens and the service registry.
#include <fmt/format.h>

#include <boost/json.hpp>

#include "api/api_context.h"
#include "common/embedded.h"
#include "api/errors.h"
#include "common/time.h"
#include "model/definition.h"
#include "model/names.h"

namespace berth {
namespace json = boost::json;
namespace {

class NativeApi : public std::enable_shared_from_this<NativeApi> {
 public:
  explicit NativeApi(ApiContext& ctx) : ctx_(ctx) {}

  void Register(Router& r) {
    r.Add("GET", "/api/v1/health", [](const HttpRequest&, const PathParams&) {
      return JsonResponse(200, json::object{{"status", "ok"}});
    });
    // The API's reference needs no token: it documents, it does not reveal.
    for (auto [path, doc, doc_type] :
         {std::tuple{"/api/v1/openapi.json", "openapi.json", "application/json"},
          std::tuple{"/api/v1/docs", "docs.html", "text/html; charset=utf-8"}}) {
      // Copies: clang 14 cannot capture structured bindings.
      const char* file = doc;
      const char* type = doc_type;
      r.Add("GET", path, [file, type](const HttpRequest&, const PathParams&) {
        const embedded::EmbeddedFile* f = embedded::Find(embedded::api_docs(), file);
        if (f == nullptr) {
          return ErrorResponse(Status::NotFound("this berth was built without its API docs"));
        }
        HttpResponse resp;
        resp.content_type = type;
        resp.body = std::string(f->content);
        return resp;
      });
    }
    Bind(r, "GET", "/api/v1/whoami", &NativeApi::WhoAmI);
    Bind(r, "GET", "/api/v1/projects", &NativeApi::ListProjects);
    Bind(r, "POST", "/api/v1/projects", &NativeApi::CreateProject);
    Bind(r, "GET", "/api/v1/projects/{p}", &NativeApi::GetProject);
    Bind(r, "GET", "/api/v1/tokens", &NativeApi::ListTokens);
    Bind(r, "POST", "/api/v1/tokens", &NativeApi::CreateToken);
    Bind(r, "GET", "/api/v1/tokens/{id}", &NativeApi::GetToken);
    Bind(r, "DELETE", "/api/v1/tokens/{id}", &NativeApi::RevokeToken);
    Bind(r, "GET", "/api/v1/services", &NativeApi::ListServices);
    Bind(r, "POST", "/api/v1/services", &NativeApi::CreateService);
    Bind(r, "GET", "/api/v1/services/{name}", &NativeApi::GetService);
    Bind(r, "PUT", "/api/v1/services/{name}", &NativeApi::PutService);
    Bind(r, "DELETE", "/api/v1/services/{name}", &NativeApi::DeleteService);
    Bind(r, "GET", "/api/v1/services/{name}/revisions", &NativeApi::ListRevisions);
  }

 private:
  using Method = HttpResponse (NativeApi::*)(const HttpRequest&, const Principal&,
                                             const PathParams&);

  // Every route but /health needs a principal. The routes share ownership of this object, so
  // it lives as long as the router.
  void Bind(Router& r, std::string_view method, std::string_view pattern, Method m) {
    r.Add(method, pattern,
          WithAuth(ctx_, [self = shared_from_this(), m](const HttpRequest& req,
                                                        const Principal& who,
                                                        const PathParams& params) {
            return ((*self).*m)(req, who, params);
          }));
  }

  static json::object ProjectJson(const Project& p) {
    return {{"name", p.name}, {"created_at", FormatRfc3339(p.created_at)}};
  }

  static json::object TokenJson(const TokenInfo& t) {
    json::object o{{"id", t.id},
                   {"admin", t.admin()},
                   {"project", t.project ? json::value(*t.project) : json::value(nullptr)},
                   {"description", t.description},
                   {"created_at", FormatRfc3339(t.created_at)},
                   {"revoked", t.revoked_at.has_value()}};
    if (t.revoked_at) {
      o["revoked_at"] = FormatRfc3339(*t.revoked_at);
    }
    return o;
  }

  // A service as JSON text. The stored definition is spliced in as the text berth wrote,
  // not parsed and serialised again: listing 1,000 services stays cheap.
  std::string ServiceJson(const HttpRequest& req, const ServiceRecord& s) const {
    std::string path = DeploymentPath(s.project, s.name);
    auto ready = ctx_.controller.ReadinessOf(s.project, s.name);
    std::string out = json::serialize(json::object{{"name", s.name},
                                                   {"project", s.project},
                                                   {"path", path},
                                                   {"url", ctx_.PublicBaseUrl(req) + path},
                                                   {"created_at", FormatRfc3339(s.created_at)},
                                                   {"updated_at", FormatRfc3339(s.updated_at)},
                                                   {"revision", s.revision},
                                                   {"main_version", s.main_version},
                                                   {"desired", ready.desired},
                                                   {"running", ready.running}});
    out.pop_back();  // the closing brace
    out += ",\"definition\":";
    out += s.definition_json.empty() ? "null" : s.definition_json;
    out += '}';
    return out;
  }

  static HttpResponse RawJson(int status, std::string body) {
    HttpResponse r;
    r.status = status;
    r.body = std::move(body);
    return r;
  }

  HttpResponse WhoAmI(const HttpRequest&, const Principal& who, const PathParams&) {
    return JsonResponse(200, json::object{{"token_id", who.token_id},
                                          {"admin", who.admin()},
                                          {"project", who.project ? json::value(*who.project)
                                                                  : json::value(nullptr)}});
  }

  HttpResponse ListProjects(const HttpRequest&, const Principal& who, const PathParams&) {
    json::array out;
    if (who.admin()) {
      auto all = ctx_.store.ListProjects();
      if (!all.ok()) {
        return ErrorResponse(all.status());
      }
      for (const auto& p : *all) {
        out.push_back(ProjectJson(p));
      }
    } else {
      auto p = ctx_.store.GetProject(*who.project);
      if (!p.ok()) {
        return ErrorResponse(p.status());
      }
      out.push_back(ProjectJson(*p));
    }
    return JsonResponse(200, json::object{{"projects", std::move(out)}});
  }

  HttpResponse CreateProject(const HttpRequest& req, const Principal& who, const PathParams&) {
    if (!who.admin()) {
      return ErrorResponse(Status::PermissionDenied(
          "only an admin token can create projects; this token belongs to project '" +
          *who.project + "'"));
    }
    auto body = ParseJsonBody(req);
    if (!body.ok()) {
      return ErrorResponse(body.status());
    }
    auto name = RequiredString(*body, "name", "{\"name\": \"experiment_2\"}");
    if (!name.ok()) {
      return ErrorResponse(name.status());
    }
    auto p = ctx_.projects.CreateProject(*name);
    if (!p.ok()) {
      return ErrorResponse(p.status());
    }
    return JsonResponse(201, ProjectJson(*p));
  }

  HttpResponse GetProject(const HttpRequest&, const Principal& who, const PathParams& params) {
    auto project = ResolveProject(who, params[0]);
    if (!project.ok()) {
      return ErrorResponse(project.status());
    }
    auto p = ctx_.store.GetProject(*project);
    if (!p.ok()) {
      return ErrorResponse(p.status());
    }
    return JsonResponse(200, ProjectJson(*p));
  }

  HttpResponse ListTokens(const HttpRequest& req, const Principal& who, const PathParams&) {
    std::optional<std::string> filter;
    if (!who.admin() || !req.Query("project").empty()) {
      auto project = RequestProject(req, who);
      if (!project.ok()) {
        return ErrorResponse(project.status());
      }
      filter = *project;
    }
    auto tokens = ctx_.store.ListTokens(filter);
    if (!tokens.ok()) {
      return ErrorResponse(tokens.status());
    }
    json::array out;
    for (const auto& t : *tokens) {
      out.push_back(TokenJson(t));
    }
    return JsonResponse(200, json::object{{"tokens", std::move(out)}});
  }

  HttpResponse CreateToken(const HttpRequest& req, const Principal& who, const PathParams&) {
    json::value body = json::object();
    if (!req.body.empty()) {
      auto parsed = ParseJsonBody(req);
      if (!parsed.ok()) {
        return ErrorResponse(parsed.status());
      }
      body = std::move(*parsed);
    }
    if (!body.is_object()) {
      return ErrorResponse(Status::InvalidArgument(
          "request body must be a JSON object like {\"project\": \"default\"}"));
    }
    const json::object& o = body.get_object();
    bool admin = false;
    std::string project_requested;
    std::string description;
    for (const auto& kv : o) {
      if (kv.key() == "admin") {
        if (!kv.value().is_bool()) {
          return ErrorResponse(Status::InvalidArgument("admin: must be true or false"));
        }
        admin = kv.value().get_bool();
      } else if (kv.key() == "project") {
        if (!kv.value().is_string()) {
          return ErrorResponse(Status::InvalidArgument("project: must be a string"));
        }
        project_requested = std::string(kv.value().get_string());
      } else if (kv.key() == "description") {
        if (!kv.value().is_string() || kv.value().get_string().size() > 256) {
          return ErrorResponse(
              Status::InvalidArgument("description: must be a string of at most 256 bytes"));
        }
        description = std::string(kv.value().get_string());
      } else {
        return ErrorResponse(Status::InvalidArgument(fmt::format(
            "{}: unknown field; known fields are project, admin, description",
            std::string_view(kv.key()).substr(0, 64))));
      }
    }
    std::optional<std::string> project;
    if (admin) {
      if (!who.admin()) {
        return ErrorResponse(
            Status::PermissionDenied("only an admin token can create admin tokens"));
      }
      if (!project_requested.empty()) {
        return ErrorResponse(Status::InvalidArgument(
            "admin: an admin token belongs to no project; leave out 'project' or 'admin'"));
      }
    } else {
      auto p = ResolveProject(who, project_requested);
      if (!p.ok()) {
        return ErrorResponse(p.status());
      }
      project = *p;
    }
    auto issued = ctx_.projects.CreateToken(project, description);
    if (!issued.ok()) {
      return ErrorResponse(issued.status());
    }
    json::object out = TokenJson(issued->info);
    out["token"] = issued->secret;
    return JsonResponse(201, out);
  }

  // A token `who` may see: its own project's, or any for an admin. Others are NotFound, so a
  // project token cannot even learn that another project's token id exists.
  Result<TokenInfo> VisibleToken(const Principal& who, std::string_view id) {
    auto t = ctx_.store.GetToken(id);
    if (!t.ok()) {
      return t.status();
    }
    if (!who.admin() && t->project != who.project) {
      return Status::NotFound(fmt::format("token '{}' does not exist", id));
    }
    return t;
  }

  HttpResponse GetToken(const HttpRequest&, const Principal& who, const PathParams& params) {
    auto t = VisibleToken(who, params[0]);
    if (!t.ok()) {
      return ErrorResponse(t.status());
    }
    return JsonResponse(200, TokenJson(*t));
  }

  HttpResponse RevokeToken(const HttpRequest&, const Principal& who, const PathParams& params) {
    auto t = VisibleToken(who, params[0]);
    if (!t.ok()) {
      return ErrorResponse(t.status());
    }
    if (auto s = ctx_.projects.RevokeToken(*t); !s.ok()) {
      return ErrorResponse(s);
    }
    ctx_.auth.Invalidate();
    auto after = ctx_.store.GetToken(t->id);
    if (!after.ok()) {
      return ErrorResponse(after.status());
    }
    return JsonResponse(200, TokenJson(*after));
  }

  HttpResponse ListServices(const HttpRequest& req, const Principal& who, const PathParams&) {
    auto project = RequestProject(req, who);
    if (!project.ok()) {
      return ErrorResponse(project.status());
    }
    auto list = ctx_.store.ListServices(*project);
    if (!list.ok()) {
      return ErrorResponse(list.status());
    }
    std::string out = "{\"project\":" + json::serialize(json::value(*project)) + ",\"services\":[";
    for (size_t i = 0; i < list->size(); ++i) {
      if (i > 0) {
        out += ',';
      }
      out += ServiceJson(req, (*list)[i]);
    }
    out += "]}";
    return RawJson(200, std::move(out));
  }

  HttpResponse CreateService(const HttpRequest& req, const Principal& who, const PathParams&) {
    auto body = ParseJsonBody(req);
    if (!body.ok()) {
      return ErrorResponse(body.status());
    }
    if (!body->is_object()) {
      return ErrorResponse(Status::InvalidArgument(
          "request body must be a JSON object like {\"name\": \"hello\"}"));
    }
    std::string body_project;
    for (const auto& kv : body->get_object()) {
      if (kv.key() == "project") {
        if (!kv.value().is_string()) {
          return ErrorResponse(Status::InvalidArgument("project: must be a string"));
        }
        body_project = std::string(kv.value().get_string());
      } else if (kv.key() != "name") {
        return ErrorResponse(Status::InvalidArgument(fmt::format(
            "{}: unknown field; a service is created with {{\"name\"}} (and optionally "
            "\"project\"); PUT its definition afterwards",
            std::string_view(kv.key()).substr(0, 64))));
      }
    }
    auto name = RequiredString(*body, "name", "{\"name\": \"hello\"}");
    if (!name.ok()) {
      return ErrorResponse(name.status());
    }
    auto project = RequestProject(req, who, body_project);
    if (!project.ok()) {
      return ErrorResponse(project.status());
    }
    auto rec = ctx_.ops.Create(*project, *name);
    if (!rec.ok()) {
      return ErrorResponse(rec.status());
    }
    HttpResponse r = RawJson(201, ServiceJson(req, *rec));
    r.headers.emplace_back("Location", "/api/v1/services/" + *name +
                                           (req.Query("project").empty() && body_project.empty()
                                                ? std::string()
                                                : "?project=" + *project));
    return r;
  }

  HttpResponse GetService(const HttpRequest& req, const Principal& who, const PathParams& params) {
    auto project = RequestProject(req, who);
    if (!project.ok()) {
      return ErrorResponse(project.status());
    }
    auto rec = ctx_.store.GetService(*project, params[0]);
    if (!rec.ok()) {
      return ErrorResponse(rec.status());
    }
    return RawJson(200, ServiceJson(req, *rec));
  }

  HttpResponse PutService(const HttpRequest& req, const Principal& who, const PathParams& params) {
    auto project = RequestProject(req, who);
    if (!project.ok()) {
      return ErrorResponse(project.status());
    }
    // 404 before 400: a definition for a service that does not exist is pointless to check.
    if (auto existing = ctx_.store.GetService(*project, params[0]); !existing.ok()) {
      return ErrorResponse(existing.status());
    }
    auto body = ParseJsonBody(req);
    if (!body.ok()) {
      return ErrorResponse(body.status());
    }
    auto def = ParseDefinition(*body);
    if (!def.ok()) {
      return ErrorResponse(def.status());
    }
    auto rec = ctx_.ops.Define(*project, params[0], *def);
    if (!rec.ok()) {
      return ErrorResponse(rec.status());
    }
    return RawJson(200, ServiceJson(req, *rec));
  }

  HttpResponse DeleteService(const HttpRequest& req, const Principal& who,
                             const PathParams& params) {
    auto project = RequestProject(req, who);
    if (!project.ok()) {
      return ErrorResponse(project.status());
    }
    auto rec = ctx_.ops.Delete(*project, params[0]);
    if (!rec.ok()) {
      return ErrorResponse(rec.status());
    }
    return RawJson(200, "{\"deleted\":" + ServiceJson(req, *rec) + "}");
  }

  HttpResponse ListRevisions(const HttpRequest& req, const Principal& who,
                             const PathParams& params) {
    auto project = RequestProject(req, who);
    if (!project.ok()) {
      return ErrorResponse(project.status());
    }
    auto revs = ctx_.store.ListRevisions(*project, params[0]);
    if (!revs.ok()) {
      return ErrorResponse(revs.status());
    }
    json::array out;
    for (const auto& r : *revs) {
      out.push_back(json::object{{"revision", r.revision},
                                 {"created_at", FormatRfc3339(r.created_at)},
                                 {"definition", json::parse(r.definition_json)}});
    }
    return JsonResponse(200, json::object{{"revisions", std::move(out)}});
  }

  static Result<std::string> RequiredString(const json::value& body, std::string_view key,
                                            std::string_view example) {
    if (!body.is_object()) {
      return Status::InvalidArgument(
          fmt::format("request body must be a JSON object like {}", example));
    }
    const json::value* v = body.get_object().if_contains(key);
    if (v == nullptr) {
      return Status::InvalidArgument(
          fmt::format("{}: is required; send a JSON object like {}", key, example));
    }
    if (!v->is_string()) {
      return Status::InvalidArgument(fmt::format("{}: must be a string", key));
    }
    return std::string(v->get_string());
  }

  ApiContext& ctx_;
};

}  // namespace

void AddNativeRoutes(ApiContext& ctx, Router& router) {
  std::make_shared<NativeApi>(ctx)->Register(router);
}

}  // namespace berth
