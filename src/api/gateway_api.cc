// Endpoints that belong to the gateway but live on the API router: Prometheus metrics and the
// login page that gives browsers a token cookie for token-protected services.
#include <fmt/format.h>

#include <boost/json.hpp>

#include "api/api_context.h"
#include "api/errors.h"

namespace berth {
namespace {

std::string HtmlEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// Where a login sends the browser back to: a path of this origin only ("//host", "/\\host" and
// "https://..." leave it), with every byte that could end the Location header or that browsers
// drop from URLs (CR, LF, tab, controls, space, non-ASCII) percent-encoded; else "/".
std::string SafeNext(std::string_view next) {
  if (next.empty() || next[0] != '/' || (next.size() > 1 && (next[1] == '/' || next[1] == '\\'))) {
    return "/";
  }
  std::string out;
  for (char ch : next) {
    auto c = static_cast<unsigned char>(ch);
    if (c > 0x20 && c < 0x7f && c != '"' && c != '<' && c != '>' && c != '\\') {
      out += ch;
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

HttpResponse LoginPage(std::string_view next, std::string_view error) {
  HttpResponse r;
  r.status = error.empty() ? 200 : 401;
  r.content_type = "text/html; charset=utf-8";
  r.body = fmt::format(
      R"(<!doctype html><html><head><meta charset="utf-8"><title>berth login</title>
<style>body{{font-family:sans-serif;max-width:28em;margin:4em auto}}input{{width:100%;padding:.4em}}
.err{{color:#b00}}</style></head><body><h1>berth</h1>
<p>Paste a token of the service's project (see <code>berth tokens create</code>).</p>
{}<form method="post" action="/_berth/login"><input type="password" name="token" autofocus
placeholder="berth_..."><input type="hidden" name="next" value="{}"><p><button>Log in</button></p>
</form></body></html>)",
      error.empty() ? "" : fmt::format("<p class=\"err\">{}</p>", HtmlEscape(error)),
      HtmlEscape(SafeNext(next)));
  return r;
}

// Decodes one application/x-www-form-urlencoded field.
std::string FormField(std::string_view body, std::string_view name) {
  HttpRequest tmp;
  if (!ParseTarget("/?" + std::string(body), tmp)) {
    return {};
  }
  return std::string(tmp.Query(name));
}

// The login cookie's Set-Cookie value; logout sends it empty with Max-Age=0, and a browser only
// drops it when every other attribute matches the one login set. HttpOnly: scripts of the
// services cannot read it; Lax: sent on top-level navigation.
std::string LoginCookie(std::string_view token, int max_age_seconds) {
  return fmt::format("berth_token={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}", token,
                     max_age_seconds);
}

}  // namespace

void AddGatewayRoutes(ApiContext& ctx, Router& router) {
  router.Add("GET", "/metrics", WithAuth(ctx, [&ctx](const HttpRequest&, const Principal& who,
                                                     const PathParams&) {
               if (!who.admin()) {
                 return ErrorResponse(Status::PermissionDenied(
                     "metrics cover every project: use an admin token"));
               }
               HttpResponse r;
               r.content_type = "text/plain; version=0.0.4";
               r.body = ctx.gateway ? ctx.gateway->MetricsText() : std::string();
               return r;
             }));
  router.Add("GET", "/_berth/login", [](const HttpRequest& req, const PathParams&) {
    return LoginPage(req.Query("next"), "");
  });
  router.Add("POST", "/_berth/login", [&ctx](const HttpRequest& req, const PathParams&) {
    std::string token = FormField(req.body, "token");
    std::string next = SafeNext(FormField(req.body, "next"));
    // The dashboard posts the same form and asks for JSON: its own page shows the outcome.
    bool wants_json = req.Header("accept").find("application/json") != std::string_view::npos;
    auto who = ctx.auth.Authenticate(token);
    if (!who.ok()) {
      if (wants_json) {
        return ErrorResponse(who.status());
      }
      return LoginPage(next, "That token is not valid: " + who.status().message());
    }
    HttpResponse r;
    if (wants_json) {
      r.body = boost::json::serialize(boost::json::object{
          {"token_id", who->token_id},
          {"admin", who->admin()},
          {"project", who->project ? boost::json::value(*who->project) : nullptr}});
    } else {
      r.status = 303;
      r.content_type = "text/plain";
      r.headers.emplace_back("Location", next);
      r.body = "logged in\n";
    }
    r.headers.emplace_back("Set-Cookie", LoginCookie(token, 30 * 24 * 3600));
    return r;
  });
  router.Add("POST", "/_berth/logout", [](const HttpRequest&, const PathParams&) {
    HttpResponse r;
    r.body = "{}";
    r.headers.emplace_back("Set-Cookie", LoginCookie("", 0));
    return r;
  });
}

}  // namespace berth
