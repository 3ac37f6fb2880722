// Notifications (seed 001's notify(msg, severity)) and the server-sent event stream that
// dashboards follow: service events and notifications as they happen.
#include <fmt/format.h>

#include <algorithm>
#include <boost/json.hpp>
#include <charconv>

#include "api/api_context.h"
#include "api/errors.h"
#include "control/controller.h"

namespace berth {
namespace json = boost::json;
namespace {

constexpr size_t kMaxMessage = 4096;

Result<NotificationRecord> ParseNotification(const json::value& body) {
  if (!body.is_object()) {
    return Status::InvalidArgument(
        "the body must be an object: {\"message\": \"...\", \"severity\": \"WARNING\"}");
  }
  const json::object& o = body.as_object();
  NotificationRecord n;
  auto text = [&](std::string_view key, std::string& out, size_t limit) -> Status {
    const json::value* v = o.if_contains(key);
    if (v == nullptr || v->is_null()) {
      return Status::Ok();
    }
    if (!v->is_string()) {
      return Status::InvalidArgument(fmt::format("{}: must be a string", key));
    }
    out = std::string(v->as_string());
    if (out.size() > limit) {
      return Status::InvalidArgument(fmt::format("{}: longer than {} bytes", key, limit));
    }
    return Status::Ok();
  };
  for (const auto& [k, v] : o) {
    static constexpr std::string_view kKnown[] = {"message", "msg",      "severity", "service",
                                                  "version", "instance", "emails",   "timer",
                                                  "project"};
    if (std::find(std::begin(kKnown), std::end(kKnown), k) == std::end(kKnown)) {
      return Status::InvalidArgument(fmt::format(
          "unknown field '{}'; a notification has message, severity, service, version, "
          "instance, emails and timer",
          k));
    }
  }
  if (auto s = text(o.contains("message") ? "message" : "msg", n.message, kMaxMessage); !s.ok()) {
    return s;
  }
  if (n.message.empty()) {
    return Status::InvalidArgument("message: required, the text to notify");
  }
  std::string severity = "INFO";
  if (auto s = text("severity", severity, 16); !s.ok()) {
    return s;
  }
  std::transform(severity.begin(), severity.end(), severity.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  if (severity != "INFO" && severity != "WARNING" && severity != "CRITICAL") {
    return Status::InvalidArgument(fmt::format(
        "severity: '{}' is not one of INFO, WARNING, CRITICAL", severity.substr(0, 16)));
  }
  n.severity = severity;
  for (auto [key, out] : {std::pair<std::string_view, std::string*>{"service", &n.service},
                          {"version", &n.version},
                          {"instance", &n.instance}}) {
    if (auto s = text(key, *out, 128); !s.ok()) {
      return s;
    }
  }
  json::array emails;
  if (const json::value* e = o.if_contains("emails"); e != nullptr && !e->is_null()) {
    if (!e->is_array()) {
      return Status::InvalidArgument("emails: must be a list of addresses");
    }
    for (const auto& addr : e->as_array()) {
      std::string_view a = addr.is_string() ? std::string_view(addr.as_string()) : "";
      size_t at = a.find('@');
      bool ok = !a.empty() && a.size() <= 254 && at != std::string_view::npos && at > 0 &&
                at + 1 < a.size() &&
                a.find_first_of(" \t\r\n<>,;\"") == std::string_view::npos;
      if (!ok) {
        return Status::InvalidArgument(fmt::format(
            "emails: {} is not an email address like ada@example.com",
            addr.is_string() ? fmt::format("'{}'", a.substr(0, 64)) : json::serialize(addr)));
      }
      emails.push_back(addr);
    }
  }
  n.emails_json = json::serialize(emails);
  if (const json::value* t = o.if_contains("timer"); t != nullptr && !t->is_null()) {
    if (!t->is_int64() && !t->is_uint64()) {
      return Status::InvalidArgument("timer: must be a whole number of seconds (0: no limit)");
    }
    int64_t secs = t->is_int64() ? t->as_int64() : static_cast<int64_t>(t->as_uint64());
    if (secs < 0 || secs > 7 * 24 * 3600) {
      return Status::InvalidArgument("timer: must be between 0 and 604800 seconds (a week)");
    }
    n.timer_s = static_cast<int>(secs);
  }
  return n;
}

class NotificationsApi : public std::enable_shared_from_this<NotificationsApi> {
 public:
  explicit NotificationsApi(ApiContext& ctx) : ctx_(ctx) {}

  void Register(Router& r) {
    Bind(r, "POST", "/api/v1/notifications", &NotificationsApi::Create);
    Bind(r, "GET", "/api/v1/notifications", &NotificationsApi::List);
    Bind(r, "DELETE", "/api/v1/notifications", &NotificationsApi::Clear);
    Bind(r, "DELETE", "/api/v1/notifications/{id}", &NotificationsApi::Delete);
    Bind(r, "GET", "/api/v1/events/stream", &NotificationsApi::Stream);
  }

 private:
  using Method = HttpResponse (NotificationsApi::*)(const HttpRequest&, const Principal&,
                                                    const PathParams&);

  void Bind(Router& r, std::string_view method, std::string_view pattern, Method m) {
    r.Add(method, pattern,
          WithAuth(ctx_, [self = shared_from_this(), m](const HttpRequest& req,
                                                           const Principal& who,
                                                           const PathParams& params) {
            return ((*self).*m)(req, who, params);
          }));
  }

  HttpResponse Create(const HttpRequest& req, const Principal& who, const PathParams&) {
    auto body = ParseJsonBody(req);
    if (!body.ok()) {
      return ErrorResponse(body.status());
    }
    std::string_view body_project;
    if (body->is_object()) {
      if (const json::value* p = body->as_object().if_contains("project"); p && p->is_string()) {
        body_project = p->as_string();
      }
    }
    auto project = RequestProject(req, who, body_project);
    if (!project.ok()) {
      return ErrorResponse(project.status());
    }
    auto n = ParseNotification(*body);
    if (!n.ok()) {
      return ErrorResponse(n.status());
    }
    n->project = *project;
    auto stored = ctx_.controller.Notify(*n);
    if (!stored.ok()) {
      return ErrorResponse(stored.status());
    }
    return JsonResponse(stored->count == 1 ? 201 : 200, NotificationJson(*stored));
  }

  HttpResponse List(const HttpRequest& req, const Principal& who, const PathParams&) {
    auto project = RequestProject(req, who);
    if (!project.ok()) {
      return ErrorResponse(project.status());
    }
    auto list = ctx_.store.ListNotifications(*project);
    if (!list.ok()) {
      return ErrorResponse(list.status());
    }
    std::string_view service = req.Query("service");
    std::string severity(req.Query("severity"));
    std::transform(severity.begin(), severity.end(), severity.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    json::array out;
    for (const auto& n : *list) {
      if ((!service.empty() && n.service != service) ||
          (!severity.empty() && n.severity != severity)) {
        continue;
      }
      out.push_back(NotificationJson(n));
    }
    return JsonResponse(200, json::object{{"notifications", std::move(out)}});
  }

  HttpResponse Clear(const HttpRequest& req, const Principal& who, const PathParams&) {
    auto project = RequestProject(req, who);
    if (!project.ok()) {
      return ErrorResponse(project.status());
    }
    if (auto s = ctx_.projects.ClearNotifications(*project); !s.ok()) {
      return ErrorResponse(s);
    }
    return JsonResponse(200, json::object{{"deleted", "all"}, {"project", *project}});
  }

  HttpResponse Delete(const HttpRequest& req, const Principal& who, const PathParams& params) {
    auto project = RequestProject(req, who);
    if (!project.ok()) {
      return ErrorResponse(project.status());
    }
    int64_t id = 0;
    const std::string& text = params[0];
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
    if (ec != std::errc() || p != text.data() + text.size() || id <= 0) {
      return ErrorResponse(Status::InvalidArgument(
          fmt::format("notification id: '{}' is not a positive number", text.substr(0, 32))));
    }
    if (auto s = ctx_.projects.DeleteNotification(*project, id); !s.ok()) {
      return ErrorResponse(s);
    }
    return JsonResponse(200, json::object{{"deleted", id}});
  }

  // text/event-stream: "id: N / event: notification|service-event / data: {...}". A client
  // that reconnects with Last-Event-ID (or ?since=N) gets what it missed, as far as the hub's
  // ring reaches.
  HttpResponse Stream(const HttpRequest& req, const Principal& who, const PathParams&) {
    auto project = RequestProject(req, who);
    if (!project.ok()) {
      return ErrorResponse(project.status());
    }
    const EventHub& hub = ctx_.controller.events();
    uint64_t after = hub.last();
    std::string_view since = req.Header("last-event-id");
    if (since.empty()) {
      since = req.Query("since");
    }
    if (!since.empty()) {
      uint64_t n = 0;
      auto [p, ec] = std::from_chars(since.data(), since.data() + since.size(), n);
      if (ec != std::errc() || p != since.data() + since.size()) {
        return ErrorResponse(Status::InvalidArgument(
            fmt::format("since: '{}' is not an event id", since.substr(0, 32))));
      }
      after = n;
    }
    HttpResponse r;
    r.content_type = "text/event-stream";
    r.headers.emplace_back("Cache-Control", "no-cache");
    r.body = ": berth events for project " + *project + "\n\n";
    r.poll_every_ms = 200;
    int idle_polls = 0;
    r.next_chunk = [&hub, p = *project, after, idle_polls]() mutable -> std::optional<std::string> {
      std::string chunk;
      for (const auto& e : hub.Since(after, p)) {
        chunk += fmt::format("id: {}\nevent: {}\ndata: {}\n\n", e.seq, e.kind, e.data);
        after = e.seq;
      }
      // A comment now and then keeps proxies from closing an idle stream.
      if (chunk.empty() && ++idle_polls >= 75) {
        idle_polls = 0;
        chunk = ": keep-alive\n\n";
      }
      return chunk;
    };
    return r;
  }

  ApiContext& ctx_;
};

}  // namespace

void AddNotificationRoutes(ApiContext& ctx, Router& router) {
  std::make_shared<NotificationsApi>(ctx)->Register(router);
}

}  // namespace berth
