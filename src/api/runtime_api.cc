// Runtime endpoints of the native API: a service's artifacts, status, logs, stop and start.
#include <fmt/format.h>

#include <boost/json.hpp>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <map>
#include <utility>

#include "api/api_context.h"
#include "api/errors.h"
#include "common/mutex.h"
#include "common/time.h"
#include "model/definition.h"

namespace berth {
namespace json = boost::json;

Result<size_t> QueryCount(const HttpRequest& req, std::string_view key, size_t fallback) {
  std::string_view v = req.Query(key);
  if (v.empty()) {
    return fallback;
  }
  size_t n = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || p != v.data() + v.size()) {
    return Status::InvalidArgument(
        fmt::format("{}: must be a non-negative integer, got '{}'", key, v.substr(0, 32)));
  }
  return n;
}

namespace {

// Version labels by revision, for services deployed as versions (empty for the others).
std::map<int, std::string> VersionLabels(Store& store, const std::string& project,
                                         const std::string& name) {
  std::map<int, std::string> labels;
  if (auto versions = store.ListVersions(project, name); versions.ok()) {
    for (const auto& v : *versions) {
      labels[v.revision] = v.version;
    }
  }
  return labels;
}

// `labels`: version labels by revision (services deployed as versions); else the revision.
json::object LogLineJson(const LogLine& l, const std::map<int, std::string>& labels) {
  auto label = labels.find(l.revision);
  return {{"time", l.time},
          {"stream", l.stream},
          {"message", l.message},
          {"instance", l.instance},
          {"revision", l.revision},
          {"version", label != labels.end() ? label->second : std::to_string(l.revision)}};
}

class RuntimeApi : public std::enable_shared_from_this<RuntimeApi> {
 public:
  explicit RuntimeApi(ApiContext& ctx) : ctx_(ctx) {}

  void Register(Router& r) {
    Bind(r, "PUT", "/api/v1/services/{name}/artifacts/{tag}", &RuntimeApi::PushArtifact);
    Bind(r, "GET", "/api/v1/services/{name}/artifacts", &RuntimeApi::ListArtifacts);
    Bind(r, "GET", "/api/v1/services/{name}/status", &RuntimeApi::GetStatus);
    Bind(r, "GET", "/api/v1/services/{name}/logs", &RuntimeApi::GetLogs);
    Bind(r, "POST", "/api/v1/services/{name}/stop", &RuntimeApi::Stop);
    Bind(r, "POST", "/api/v1/services/{name}/start", &RuntimeApi::Start);
  }

 private:
  using Method = HttpResponse (RuntimeApi::*)(const HttpRequest&, const std::string& project,
                                              const PathParams&);

  // The routes share ownership of this object.
  void Bind(Router& r, std::string_view method, std::string_view pattern, Method m) {
    r.Add(method, pattern,
          WithService(ctx_, [self = shared_from_this(), m](const HttpRequest& req,
                                                           const std::string& project,
                                                           const ServiceRecord&,
                                                           const PathParams& params) {
            return ((*self).*m)(req, project, params);
          }));
  }

  HttpResponse PushArtifact(const HttpRequest& req, const std::string& project,
                            const PathParams& params) {
    if (auto s = ValidateTag(params[1]); !s.ok()) {
      return ErrorResponse(s);
    }
    if (req.body_file.empty()) {
      return ErrorResponse(Status::InvalidArgument(
          "send the bundle (tar, tar.gz or tar.zst) as the request body"));
    }
    auto watch = req.BoolQuery("progress");
    if (!watch.ok()) {
      return ErrorResponse(watch.status());
    }
    if (*watch) {
      return PushWithProgress(req, project, params);
    }
    auto rec = ctx_.controller.PushArtifact(project, params[0], params[1], req.body_file);
    if (!rec.ok()) {
      return ErrorResponse(rec.status());
    }
    return JsonResponse(201, ArtifactJson(*rec));
  }

  static json::object ArtifactJson(const ArtifactRecord& rec) {
    return {{"tag", rec.tag},
            {"digest", rec.digest},
            {"size", rec.size},
            {"created_at", FormatRfc3339(rec.created_at)}};
  }

  // `?progress=1`: 200 and NDJSON while the push runs in the background: {"build": line} for
  // each line the build writes, then {"artifact": {...}} or {"error": {"code", "message"}}.
  // The status line is sent before the outcome is known, as Docker's build API does.
  HttpResponse PushWithProgress(const HttpRequest& req, const std::string& project,
                                const PathParams& params) {
    // The listener removes the body file once this answer starts: the push takes it first.
    std::string file = req.body_file + ".push";
    if (::rename(req.body_file.c_str(), file.c_str()) != 0) {
      return ErrorResponse(ErrnoStatus("taking the upload " + req.body_file, errno));
    }
    struct Feed {
      Mutex mu;
      std::string partial GUARDED_BY(mu);  // a line not yet ended
      std::string ready GUARDED_BY(mu);    // NDJSON lines not yet sent
      bool done GUARDED_BY(mu) = false;
    };
    auto feed = std::make_shared<Feed>();
    auto line = [](json::object o) { return json::serialize(o) + "\n"; };
    ctx_.controller.PushArtifactInBackground(
        project, params[0], params[1], file,
        [feed, line](std::string_view out) {
          MutexLock lock(feed->mu);
          feed->partial.append(out);
          size_t eol;
          while ((eol = feed->partial.find('\n')) != std::string::npos) {
            feed->ready += line({{"build", feed->partial.substr(0, eol)}});
            feed->partial.erase(0, eol + 1);
          }
        },
        [feed, line](Result<ArtifactRecord> rec) {
          MutexLock lock(feed->mu);
          if (!feed->partial.empty()) {
            feed->ready += line({{"build", feed->partial}});
            feed->partial.clear();
          }
          if (rec.ok()) {
            feed->ready += line({{"artifact", ArtifactJson(*rec)}});
          } else {
            feed->ready +=
                line({{"error", json::object{{"code", StatusCodeName(rec.status().code())},
                                             {"message", rec.status().message()}}}});
          }
          feed->done = true;
        });
    HttpResponse r;
    r.status = 200;
    r.content_type = "application/x-ndjson";
    r.poll_every_ms = 50;
    r.next_chunk = [feed]() -> std::optional<std::string> {
      MutexLock lock(feed->mu);
      if (!feed->ready.empty()) {
        return std::exchange(feed->ready, std::string());
      }
      if (feed->done) {
        return std::nullopt;
      }
      return std::string();
    };
    return r;
  }

  HttpResponse ListArtifacts(const HttpRequest&, const std::string& project,
                             const PathParams& params) {
    auto list = ctx_.store.ListArtifacts(project, params[0]);
    if (!list.ok()) {
      return ErrorResponse(list.status());
    }
    json::array out;
    for (const auto& a : *list) {
      out.push_back(json::object{{"tag", a.tag},
                                 {"digest", a.digest},
                                 {"size", a.size},
                                 {"created_at", FormatRfc3339(a.created_at)}});
    }
    return JsonResponse(200, json::object{{"artifacts", std::move(out)}});
  }

  HttpResponse GetStatus(const HttpRequest&, const std::string& project,
                         const PathParams& params) {
    auto svc = ctx_.store.GetService(project, params[0]);
    if (!svc.ok()) {
      return ErrorResponse(svc.status());
    }
    ServiceStatus st = ctx_.controller.StatusOf(project, params[0]);
    std::map<int, std::string> labels = VersionLabels(ctx_.store, project, params[0]);
    json::array instances;
    for (const auto& i : st.instances) {
      auto label = labels.find(i.revision);
      json::object o{{"id", i.id},
                     {"version", label != labels.end() ? label->second
                                                       : std::to_string(i.revision)},
                     {"revision", i.revision},
                     {"state", InstanceStateName(i.state)},
                     {"pid", i.pid},
                     {"host", i.host},
                     {"port", i.port},
                     {"started_at", i.started_at ? json::value(FormatRfc3339Millis(i.started_at))
                                                 : json::value(nullptr)},
                     {"restarts", i.restarts},
                     {"exit_code", i.exit_code ? json::value(*i.exit_code) : json::value(nullptr)},
                     {"signal", i.signal ? json::value(*i.signal) : json::value(nullptr)},
                     {"rss_bytes", i.rss_bytes ? json::value(*i.rss_bytes) : json::value(nullptr)},
                     {"health", i.health}};
      instances.push_back(std::move(o));
    }
    json::array events;
    auto evs = ctx_.store.ListEvents(project, params[0], 50);
    if (evs.ok()) {
      for (const auto& e : *evs) {
        events.push_back(json::object{
            {"time", FormatRfc3339Millis(e.time)}, {"kind", e.kind}, {"message", e.message}});
      }
    }
    return JsonResponse(200, json::object{{"name", params[0]},
                                          {"project", project},
                                          {"desired_running", svc->desired_running},
                                          {"revision", svc->revision},
                                          {"active_revision", st.active_revision},
                                          {"failed_revision", svc->failed_revision},
                                          {"desired", st.desired},
                                          {"running", st.running},
                                          {"instances", std::move(instances)},
                                          {"events", std::move(events)}});
  }

  HttpResponse GetLogs(const HttpRequest& req, const std::string& project,
                       const PathParams& params) {
    auto tail = QueryCount(req, "tail", 100);
    if (!tail.ok()) {
      return ErrorResponse(tail.status());
    }
    LogQuery q;
    q.tail = *tail;
    q.since = std::string(req.Query("since"));
    q.instance = std::string(req.Query("instance"));
    std::string_view version = req.Query("version");
    std::map<int, std::string> labels = VersionLabels(ctx_.store, project, params[0]);
    if (!version.empty()) {
      // A version label (berth deploy) or a revision number.
      for (const auto& [revision, label] : labels) {
        if (label == version) {
          q.revision = revision;
        }
      }
      int v = 0;
      auto [p, ec] = std::from_chars(version.data(), version.data() + version.size(), v);
      if (!q.revision && (ec != std::errc() || p != version.data() + version.size())) {
        return ErrorResponse(Status::NotFound(fmt::format(
            "version: '{}' is neither a version nor a revision number of {}",
            version.substr(0, 32), params[0])));
      }
      if (!q.revision) {
        q.revision = v;
      }
    }
    auto follow = req.BoolQuery("follow");
    if (!follow.ok()) {
      return ErrorResponse(follow.status());
    }
    auto lines = ctx_.controller.Logs(project, params[0], q);
    if (!*follow) {
      json::array out;
      for (const auto& l : lines) {
        out.push_back(LogLineJson(l, labels));
      }
      return JsonResponse(200, json::object{{"lines", std::move(out)}});
    }
    // Follow: newline-delimited JSON, one line per log line, as it happens.
    HttpResponse r;
    r.content_type = "application/x-ndjson";
    std::string since = q.since;
    for (const auto& l : lines) {
      r.body += json::serialize(LogLineJson(l, labels)) + "\n";
      since = std::max(since, l.time);
    }
    Controller* controller = &ctx_.controller;
    q.tail = 0;
    r.next_chunk = [controller, project, name = params[0], q, since, labels]() mutable
        -> std::optional<std::string> {
      q.since = since;
      std::string chunk;
      for (const auto& l : controller->Logs(project, name, q)) {
        chunk += json::serialize(LogLineJson(l, labels)) + "\n";
        since = std::max(since, l.time);
      }
      return chunk;
    };
    return r;
  }

  HttpResponse SetRunning(const std::string& project, const std::string& name, bool running) {
    if (auto s = ctx_.ops.SetRunning(project, name, running,
                                     running ? "service started by request"
                                             : "service stopped by request");
        !s.ok()) {
      return ErrorResponse(s);
    }
    return JsonResponse(200, json::object{{"name", name}, {"desired_running", running}});
  }

  HttpResponse Stop(const HttpRequest&, const std::string& project, const PathParams& params) {
    return SetRunning(project, params[0], false);
  }
  HttpResponse Start(const HttpRequest&, const std::string& project, const PathParams& params) {
    return SetRunning(project, params[0], true);
  }

  ApiContext& ctx_;
};

}  // namespace

void AddRuntimeRoutes(ApiContext& ctx, Router& router) {
  std::make_shared<RuntimeApi>(ctx)->Register(router);
}

}  // namespace berth
