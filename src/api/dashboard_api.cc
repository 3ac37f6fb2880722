// The dashboard's pages: its index at / and its built assets (src/dashboard, embedded at build
// time) at /_berth/ui/<file>. The app logs in at /_berth/login (gateway_api.cc) and calls the
// native API with the login cookie (see WithAuth in api.cc).
#include <fmt/format.h>

#include "api/api_context.h"
#include "api/errors.h"
#include "common/embedded.h"

namespace berth {
namespace {

std::string_view ContentType(std::string_view path) {
  auto ends = [&](std::string_view ext) { return path.ends_with(ext); };
  if (ends(".html")) return "text/html; charset=utf-8";
  if (ends(".js")) return "text/javascript; charset=utf-8";
  if (ends(".css")) return "text/css; charset=utf-8";
  if (ends(".svg")) return "image/svg+xml";
  if (ends(".png")) return "image/png";
  if (ends(".json")) return "application/json";
  if (ends(".woff2")) return "font/woff2";
  return "application/octet-stream";
}

// Everything the page loads comes from this daemon: no CDN, no request leaves the machine.
void AddPageHeaders(HttpResponse& r) {
  r.headers.emplace_back("Content-Security-Policy",
                         "default-src 'self'; img-src 'self' data:; style-src 'self' "
                         "'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; "
                         "form-action 'self'");
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  r.headers.emplace_back("Referrer-Policy", "same-origin");
}

HttpResponse Asset(std::string_view path) {
  const embedded::EmbeddedFile* f = embedded::Find(embedded::dashboard(), path);
  if (f == nullptr) {
    return ErrorResponse(Status::NotFound(fmt::format("no dashboard file '{}'", path)));
  }
  HttpResponse r;
  r.content_type = std::string(ContentType(path));
  r.body = std::string(f->content);
  AddPageHeaders(r);
  // Vite names every asset by its content's hash: a name never changes what it serves.
  r.headers.emplace_back("Cache-Control",
                         path == "index.html" ? "no-cache" : "public, max-age=31536000, immutable");
  return r;
}

}  // namespace

void AddDashboardRoutes(ApiContext&, Router& router) {
  router.Add("GET", "/", [](const HttpRequest&, const PathParams&) {
    if (embedded::dashboard().empty()) {
      HttpResponse r;
      r.content_type = "text/html; charset=utf-8";
      r.body =
          "<!doctype html><title>berth</title><h1>berth</h1><p>This berth was built without its "
          "dashboard (node and npm were missing, or -DBERTH_DASHBOARD=OFF). The API's reference "
          "is at <a href=\"/api/v1/docs\">/api/v1/docs</a>.</p>\n";
      return r;
    }
    return Asset("index.html");
  });
  router.Add("GET", "/_berth/ui/{file}",
             [](const HttpRequest&, const PathParams& p) { return Asset(p[0]); });
}

}  // namespace berth
