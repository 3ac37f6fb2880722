// Pipelines, runs and jobs (seed 004): the native API under /api/v1/pipelines, /api/v1/runs and
// /api/v1/jobs, and the orchest-api dialect under /orchest/api/ (runs/ and jobs/ with Orchest's
// own payloads and answers, errors as {"message": ...}). Both translate into PipelineOps and
// Jobs; neither writes the store.
#include <fmt/format.h>

#include <boost/json.hpp>
#include <filesystem>
#include <set>

#include "api/api_context.h"
#include "api/errors.h"
#include "common/time.h"
#include "control/controller.h"
#include "pipeline/pipeline_ops.h"

namespace berth {
namespace json = boost::json;
namespace fs = std::filesystem;
namespace {

json::value Time(int64_t millis) {
  return millis ? json::value(FormatRfc3339Millis(millis)) : json::value(nullptr);
}

json::object StepRunJson(const StepRunRecord& s) {
  json::object o{{"step", s.step},           {"title", s.title},
                 {"position", s.position},   {"status", s.status},
                 {"started_at", Time(s.started_at)}, {"finished_at", Time(s.finished_at)},
                 {"exit_code", s.exit_code ? json::value(*s.exit_code) : json::value(nullptr)},
                 {"message", s.message}};
  return o;
}

json::object RunJson(const RunRecord& r, const std::string& waiting) {
  json::array steps;
  for (const auto& s : r.steps) {
    steps.push_back(StepRunJson(s));
  }
  return {{"uuid", r.id},
          {"project", r.project},
          {"pipeline", r.pipeline},
          {"pipeline_uuid", r.pipeline_uuid},
          {"run_type", r.run_type},
          {"kind", r.kind},
          {"status", r.status},
          {"waiting", waiting.empty() ? json::value(nullptr) : json::value(waiting)},
          {"message", r.message},
          {"project_dir", r.project_dir},
          {"created_at", Time(r.created_at)},
          {"started_at", Time(r.started_at)},
          {"finished_at", Time(r.finished_at)},
          {"steps", std::move(steps)}};
}

// Orchest's answer: both uuid and run_uuid, its project_uuid as given, pipeline_steps.
json::object OrchestRunJson(const RunRecord& r, const std::string& waiting) {
  json::array steps;
  for (const auto& s : r.steps) {
    steps.push_back(json::object{{"run_uuid", r.id},
                                 {"step_uuid", s.step},
                                 {"status", s.status},
                                 {"started_time", Time(s.started_at)},
                                 {"finished_time", Time(s.finished_at)}});
  }
  return {{"uuid", r.id},
          {"run_uuid", r.id},
          {"pipeline_uuid", r.pipeline_uuid},
          {"project_uuid", r.client_project_uuid},
          {"run_type", r.run_type},
          {"status", r.status},
          {"waiting", waiting.empty() ? json::value(nullptr) : json::value(waiting)},
          {"started_time", Time(r.started_at)},
          {"finished_time", Time(r.finished_at)},
          {"pipeline_steps", std::move(steps)}};
}

json::object PipelineJson(const PipelineRecord& p, const Pipeline* parsed) {
  boost::system::error_code ec;
  json::value def = json::parse(p.definition_json, ec);
  json::object o{{"name", p.name},
                 {"uuid", p.uuid},
                 {"project", p.project},
                 {"project_dir", p.project_dir},
                 {"created_at", Time(p.created_at)},
                 {"updated_at", Time(p.updated_at)},
                 {"definition", ec ? json::value(nullptr) : def}};
  if (parsed) {
    o["steps"] = parsed->steps.size();
  }
  return o;
}

json::object JobJson(const JobRecord& j, Store& store) {
  Store::RunFilter f;
  f.job = j.id;
  size_t total = 0, succeeded = 0, failed = 0, open = 0;
  if (auto runs = store.ListRuns(f); runs.ok()) {
    for (const auto& r : *runs) {
      ++total;
      succeeded += r.status == kSuccess ? 1 : 0;
      failed += r.status == kFailure || r.status == kAborted ? 1 : 0;
      open += RunStatusEnded(r.status) ? 0 : 1;
    }
  }
  boost::system::error_code ec;
  json::value sets = json::parse(j.parameters_json, ec);
  auto secs = [](int64_t s) { return s ? json::value(FormatRfc3339(s * 1000)) : json::value(nullptr); };
  return {{"uuid", j.id},
          {"name", j.name},
          {"project", j.project},
          {"pipeline", j.pipeline},
          {"schedule", j.schedule.empty() ? json::value(nullptr) : json::value(j.schedule)},
          {"time_zone", j.time_zone.empty() ? json::value(nullptr) : json::value(j.time_zone)},
          {"at", secs(j.at)},
          {"status", j.status},
          {"next_run", secs(j.next_fire)},
          {"last_run", secs(j.last_fire)},
          {"parameters", ec ? json::value(nullptr) : sets},
          {"project_dir", j.project_dir},
          {"created_at", Time(j.created_at)},
          {"finished_at", Time(j.finished_at)},
          {"message", j.message},
          {"runs", json::object{{"total", total},
                                {"succeeded", succeeded},
                                {"failed", failed},
                                {"running", open}}}};
}

class RunsApi : public std::enable_shared_from_this<RunsApi> {
 public:
  RunsApi(ApiContext& ctx) : ctx_(ctx) {}

  void Register(Router& native, Router& orchest) {
    Bind(native, "GET", "/api/v1/pipelines", &RunsApi::ListPipelines);
    Bind(native, "POST", "/api/v1/pipelines", &RunsApi::AddPipeline);
    Bind(native, "GET", "/api/v1/pipelines/{name}", &RunsApi::GetPipeline);
    Bind(native, "DELETE", "/api/v1/pipelines/{name}", &RunsApi::DeletePipeline);
    Bind(native, "POST", "/api/v1/pipelines/{name}/runs", &RunsApi::RunPipeline);
    Bind(native, "POST", "/api/v1/runs", &RunsApi::PostRun);
    Bind(native, "GET", "/api/v1/runs", &RunsApi::ListRuns);
    Bind(native, "GET", "/api/v1/runs/{id}", &RunsApi::GetRun);
    Bind(native, "POST", "/api/v1/runs/{id}/cancel", &RunsApi::CancelRun);
    Bind(native, "DELETE", "/api/v1/runs/{id}", &RunsApi::DeleteRun);
    Bind(native, "GET", "/api/v1/runs/{id}/steps/{step}/logs", &RunsApi::StepLogs);
    Bind(native, "POST", "/api/v1/jobs", &RunsApi::CreateJob);
    Bind(native, "GET", "/api/v1/jobs", &RunsApi::ListJobs);
    Bind(native, "GET", "/api/v1/jobs/{id}", &RunsApi::GetJob);
    Bind(native, "POST", "/api/v1/jobs/{id}/pause", &RunsApi::PauseJob);
    Bind(native, "POST", "/api/v1/jobs/{id}/resume", &RunsApi::ResumeJob);
    Bind(native, "POST", "/api/v1/jobs/{id}/cancel", &RunsApi::CancelJob);

    Bind(orchest, "POST", "/orchest/api/runs", &RunsApi::OrchestPostRun);
    Bind(orchest, "GET", "/orchest/api/runs", &RunsApi::OrchestListRuns);
    Bind(orchest, "GET", "/orchest/api/runs/{id}", &RunsApi::OrchestGetRun);
    Bind(orchest, "DELETE", "/orchest/api/runs/{id}", &RunsApi::OrchestCancelRun);
    Bind(orchest, "GET", "/orchest/api/runs/{id}/{step}", &RunsApi::OrchestGetStep);
    Bind(orchest, "PUT", "/orchest/api/runs/{id}/{step}", &RunsApi::OrchestPutStep);
    Bind(orchest, "POST", "/orchest/api/jobs", &RunsApi::OrchestCreateJob);
    Bind(orchest, "GET", "/orchest/api/jobs", &RunsApi::OrchestListJobs);
    Bind(orchest, "GET", "/orchest/api/jobs/{id}", &RunsApi::OrchestGetJob);
    Bind(orchest, "DELETE", "/orchest/api/jobs/{id}", &RunsApi::OrchestCancelJob);
  }

 private:
  using Method = HttpResponse (RunsApi::*)(const HttpRequest&, const Principal&,
                                           const PathParams&);
  void Bind(Router& r, std::string_view method, std::string_view pattern, Method m) {
    r.Add(method, pattern,
          WithAuth(ctx_, [self = shared_from_this(), m](const HttpRequest& req,
                                                        const Principal& who,
                                                        const PathParams& params) {
            return ((*self).*m)(req, who, params);
          }));
  }
  static HttpResponse OrchestError(const Status& s) {
    return JsonResponse(HttpStatusFor(s.code()), json::object{{"message", s.message()}});
  }

  // The steps' working directory: the pipeline's, the request's, else the project's own. A
  // project token may only name directories inside its project's.
  Result<std::string> ProjectDir(const Principal& who, const std::string& project,
                                 const std::string& requested) {
    if (requested.empty()) {
      return std::string();
    }
    if (!fs::path(requested).is_absolute()) {
      return Status::InvalidArgument(fmt::format(
          "project_dir {:?} must be an absolute path (the steps run there)", requested));
    }
    if (!who.admin()) {
      auto c = ctx_.controller.TaskContextOf(project);
      if (!c.ok()) {
        return c.status();
      }
      std::string root = fs::path(c->project_dir).parent_path().string();
      std::string norm = fs::path(requested).lexically_normal().string();
      if (norm != root && norm.rfind(root + "/", 0) != 0) {
        return Status::PermissionDenied(fmt::format(
            "a project token may run steps only inside its project's directory ({}); "
            "{:?} is outside it (an admin token may name any directory)",
            root, requested));
      }
    }
    return requested;
  }

  // Common fields of a run request: type, steps, include_selected, project_dir.
  Status FillRun(const json::object& o, RunRequest& req, const Principal& who) {
    for (const auto& [k, v] : o) {
      if (k == "type" || k == "run_type") {
        if (!v.is_string()) {
          return Status::InvalidArgument("type: must be \"full\", \"selection\" or \"incoming\"");
        }
        auto t = ParseRunType(v.as_string());
        if (!t.ok()) {
          return t.status();
        }
        req.type = *t;
      } else if (k == "steps" || k == "uuids") {
        if (!v.is_array()) {
          return Status::InvalidArgument(fmt::format("{}: must be a list of step uuids", k));
        }
        for (const auto& s : v.as_array()) {
          if (!s.is_string()) {
            return Status::InvalidArgument(fmt::format("{}: must be a list of step uuids", k));
          }
          req.selection.emplace_back(s.as_string());
        }
      } else if (k == "include_selected") {
        if (!v.is_bool()) {
          return Status::InvalidArgument("include_selected: must be true or false");
        }
        req.include_selected = v.as_bool();
      } else if (k == "project_dir") {
        if (!v.is_string()) {
          return Status::InvalidArgument("project_dir: must be a string");
        }
        auto dir = ProjectDir(who, req.project, std::string(v.as_string()));
        if (!dir.ok()) {
          return dir.status();
        }
        req.project_dir = *dir;
      } else if (k == "pipeline" || k == "definition" || k == "project") {
        // read by the caller
      } else {
        return Status::InvalidArgument(fmt::format(
            "{}: unknown field; a run takes type, steps, include_selected, project_dir",
            std::string_view(k).substr(0, 64)));
      }
    }
    if (req.type == RunType::kFull) {
      req.selection.clear();  // Orchest sends every uuid with a full run
    }
    return Status::Ok();
  }

  std::string Waiting(const RunRecord& r) { return ctx_.runs.WaitReason(r.id); }

  HttpResponse ListPipelines(const HttpRequest& req, const Principal& who, const PathParams&) {
    auto project = RequestProject(req, who);
    if (!project.ok()) {
      return ErrorResponse(project.status());
    }
    auto list = ctx_.store.ListPipelines(*project);
    if (!list.ok()) {
      return ErrorResponse(list.status());
    }
    json::array out;
    for (const auto& p : *list) {
      out.push_back(PipelineJson(p, nullptr));
    }
    return JsonResponse(200, json::object{{"pipelines", std::move(out)}});
  }

  // The body is the pipeline file itself (berth's YAML/JSON or Orchest's pipeline.json).
  HttpResponse AddPipeline(const HttpRequest& req, const Principal& who, const PathParams&) {
    auto project = RequestProject(req, who);
    if (!project.ok()) {
      return ErrorResponse(project.status());
    }
    if (req.body.empty()) {
      return ErrorResponse(Status::InvalidArgument(
          "the body must be a pipeline file (berth's YAML/JSON form or Orchest's "
          "pipeline.json); e.g. berth pipelines add pipeline.yaml"));
    }
    auto dir = ProjectDir(who, *project, std::string(req.Query("project_dir")));
    if (!dir.ok()) {
      return ErrorResponse(dir.status());
    }
    auto added = ctx_.pipelines.Add(*project, req.body, *dir);
    if (!added.ok()) {
      return ErrorResponse(added.status());
    }
    auto parsed = ctx_.pipelines.Load(*project, added->first.name);
    return JsonResponse(added->second ? 201 : 200,
                        PipelineJson(added->first, parsed.ok() ? &*parsed : nullptr));
  }

  HttpResponse GetPipeline(const HttpRequest& req, const Principal& who,
                           const PathParams& params) {
    auto project = RequestProject(req, who);
    if (!project.ok()) {
      return ErrorResponse(project.status());
    }
    PipelineRecord rec;
    auto p = ctx_.pipelines.Load(*project, params[0], &rec);
    if (!p.ok()) {
      return ErrorResponse(p.status());
    }
    json::object o = PipelineJson(rec, &*p);
    Store::RunFilter f;
    f.project = *project;
    f.pipeline = params[0];
    f.limit = 10;
    json::array runs;
    if (auto list = ctx_.store.ListRuns(f); list.ok()) {
      for (const auto& r : *list) {
        runs.push_back(RunJson(r, Waiting(r)));
      }
    }
    o["runs"] = std::move(runs);
    return JsonResponse(200, o);
  }

  HttpResponse DeletePipeline(const HttpRequest& req, const Principal& who,
                              const PathParams& params) {
    auto project = RequestProject(req, who);
    if (!project.ok()) {
      return ErrorResponse(project.status());
    }
    if (auto s = ctx_.pipelines.Remove(*project, params[0]); !s.ok()) {
      return ErrorResponse(s);
    }
    return JsonResponse(200, json::object{{"name", params[0]}, {"deleted", true}});
  }

  HttpResponse StartRun(const std::string& project, const json::object& body,
                        RunRequest req, const Principal& who) {
    req.project = project;
    if (auto s = FillRun(body, req, who); !s.ok()) {
      return ErrorResponse(s);
    }
    auto run = ctx_.pipelines.Run(std::move(req));
    if (!run.ok()) {
      return ErrorResponse(run.status());
    }
    return JsonResponse(201, RunJson(*run, Waiting(*run)));
  }

  static Result<json::object> BodyObject(const HttpRequest& req, bool optional) {
    if (req.body.empty() && optional) {
      return json::object{};
    }
    auto body = ParseJsonBody(req);
    if (!body.ok()) {
      return body.status();
    }
    if (!body->is_object()) {
      return Status::InvalidArgument("the body must be a JSON object");
    }
    return body->as_object();
  }

  // POST /api/v1/pipelines/{name}/runs {"type": "selection", "steps": ["b"]}
  HttpResponse RunPipeline(const HttpRequest& req, const Principal& who,
                           const PathParams& params) {
    auto project = RequestProject(req, who);
    if (!project.ok()) {
      return ErrorResponse(project.status());
    }
    auto body = BodyObject(req, true);
    if (!body.ok()) {
      return ErrorResponse(body.status());
    }
    PipelineRecord rec;
    auto p = ctx_.pipelines.Load(*project, params[0], &rec);
    if (!p.ok()) {
      return ErrorResponse(p.status());
    }
    RunRequest r;
    r.pipeline = std::move(*p);
    r.project_dir = rec.project_dir;
    return StartRun(*project, *body, std::move(r), who);
  }

  // POST /api/v1/runs {"pipeline": "etl"} or {"definition": {...}}, plus the run's fields.
  HttpResponse PostRun(const HttpRequest& req, const Principal& who, const PathParams&) {
    auto body = BodyObject(req, false);
    if (!body.ok()) {
      return ErrorResponse(body.status());
    }
    std::string_view body_project;
    if (const auto* p = body->if_contains("project"); p && p->is_string()) {
      body_project = p->as_string();
    }
    auto project = RequestProject(req, who, body_project);
    if (!project.ok()) {
      return ErrorResponse(project.status());
    }
    RunRequest r;
    if (const auto* name = body->if_contains("pipeline"); name && name->is_string()) {
      PipelineRecord rec;
      auto p = ctx_.pipelines.Load(*project, std::string(name->as_string()), &rec);
      if (!p.ok()) {
        return ErrorResponse(p.status());
      }
      r.pipeline = std::move(*p);
      r.project_dir = rec.project_dir;
    } else if (const auto* def = body->if_contains("definition")) {
      auto p = PipelineFromJson(*def, ProgramOnPath);
      if (!p.ok()) {
        return ErrorResponse(p.status().WithContext("definition"));
      }
      r.pipeline = std::move(*p);
    } else {
      return ErrorResponse(Status::InvalidArgument(
          "a run needs \"pipeline\" (the name of a stored pipeline) or \"definition\" (a "
          "pipeline object): {\"pipeline\": \"etl\", \"type\": \"full\"}"));
    }
    return StartRun(*project, *body, std::move(r), who);
  }

  HttpResponse ListRuns(const HttpRequest& req, const Principal& who, const PathParams&) {
    auto project = RequestProject(req, who);
    if (!project.ok()) {
      return ErrorResponse(project.status());
    }
    auto limit = QueryCount(req, "limit", 100);
    if (!limit.ok()) {
      return ErrorResponse(limit.status());
    }
    Store::RunFilter f;
    f.project = *project;
    f.pipeline = std::string(req.Query("pipeline"));
    f.limit = *limit;
    auto list = ctx_.store.ListRuns(f);
    if (!list.ok()) {
      return ErrorResponse(list.status());
    }
    json::array out;
    for (const auto& r : *list) {
      out.push_back(RunJson(r, Waiting(r)));
    }
    return JsonResponse(200, json::object{{"runs", std::move(out)}});
  }

  Result<RunRecord> FindRun(const HttpRequest& req, const Principal& who,
                            const std::string& id) {
    // An admin sees every project's runs; a project token its own.
    std::string project;
    if (!who.admin()) {
      project = *who.project;
    } else if (!req.Query("project").empty()) {
      project = std::string(req.Query("project"));
    }
    return ctx_.pipelines.GetRun(project, id);
  }

  HttpResponse GetRun(const HttpRequest& req, const Principal& who, const PathParams& params) {
    auto run = FindRun(req, who, params[0]);
    if (!run.ok()) {
      return ErrorResponse(run.status());
    }
    return JsonResponse(200, RunJson(*run, Waiting(*run)));
  }

  HttpResponse CancelRun(const HttpRequest& req, const Principal& who,
                         const PathParams& params) {
    auto run = FindRun(req, who, params[0]);
    if (!run.ok()) {
      return ErrorResponse(run.status());
    }
    auto done = ctx_.pipelines.Cancel(run->project, run->id);
    if (!done.ok()) {
      return ErrorResponse(done.status());
    }
    return JsonResponse(200, RunJson(*done, ""));
  }

  HttpResponse DeleteRun(const HttpRequest& req, const Principal& who,
                         const PathParams& params) {
    auto run = FindRun(req, who, params[0]);
    if (!run.ok()) {
      return ErrorResponse(run.status());
    }
    if (auto s = ctx_.pipelines.DeleteRun(run->project, run->id); !s.ok()) {
      return ErrorResponse(s);
    }
    return JsonResponse(200, json::object{{"uuid", run->id}, {"deleted", true}});
  }

  // Step logs: ?tail=N (default 100, 0: all), ?follow=1 streams NDJSON until the step ends.
  HttpResponse StepLogs(const HttpRequest& req, const Principal& who, const PathParams& params) {
    auto run = FindRun(req, who, params[0]);
    if (!run.ok()) {
      return ErrorResponse(run.status());
    }
    const StepRunRecord* step = nullptr;
    for (const auto& s : run->steps) {
      if (s.step == params[1] || s.title == params[1]) {
        step = &s;
      }
    }
    if (step == nullptr) {
      std::vector<std::string> names;
      for (const auto& s : run->steps) {
        names.push_back(s.step);
      }
      return ErrorResponse(Status::NotFound(fmt::format(
          "run {} has no step {:?}; its steps are: {}", run->id, params[1].substr(0, 64),
          fmt::join(names, ", "))));
    }
    auto tail = QueryCount(req, "tail", 100);
    if (!tail.ok()) {
      return ErrorResponse(tail.status());
    }
    LogQuery q;
    q.tail = *tail;
    q.since = std::string(req.Query("since"));
    std::string dir = ctx_.runs.StepDir(run->id, step->position);
    std::vector<LogLine> lines;
    if (!dir.empty()) {
      lines = ReadLogLines(dir, step->step, 0, q);
    }
    auto line_json = [](const LogLine& l) {
      return json::object{{"time", l.time}, {"stream", l.stream}, {"message", l.message}};
    };
    auto follow = req.BoolQuery("follow");
    if (!follow.ok()) {
      return ErrorResponse(follow.status());
    }
    if (!*follow) {
      json::array out;
      for (const auto& l : lines) {
        out.push_back(line_json(l));
      }
      return JsonResponse(200, json::object{{"run", run->id},
                                            {"step", step->step},
                                            {"status", step->status},
                                            {"lines", std::move(out)}});
    }
    HttpResponse r;
    r.content_type = "application/x-ndjson";
    std::string since = q.since;
    for (const auto& l : lines) {
      r.body += json::serialize(line_json(l)) + "\n";
      since = std::max(since, l.time);
    }
    q.tail = 0;
    RunEngine* engine = &ctx_.runs;
    Store* store = &ctx_.store;
    std::string run_id = run->id;
    int position = step->position;
    bool last_pass = false;
    r.next_chunk = [engine, store, run_id, position, q, since, line_json,
                    last_pass]() mutable -> std::optional<std::string> {
      if (last_pass) {
        return std::nullopt;
      }
      // Read the status before the lines: lines written before the end are all sent.
      bool ended = true;
      if (auto rec = store->GetRun(run_id); rec.ok()) {
        for (const auto& s : rec->steps) {
          if (s.position == position) {
            ended = RunStatusEnded(s.status);
          }
        }
      }
      std::string dir = engine->StepDir(run_id, position);
      q.since = since;
      std::string chunk;
      if (!dir.empty()) {
        for (const auto& l : ReadLogLines(dir, "", 0, q)) {
          chunk += json::serialize(line_json(l)) + "\n";
          since = std::max(since, l.time);
        }
      }
      if (ended) {
        last_pass = true;
        if (chunk.empty()) {
          return std::nullopt;
        }
      }
      return chunk;
    };
    return r;
  }

  // --- orchest-api dialect ------------------------------------------------------------------

  // The pipeline of an Orchest payload: pipeline_definition, or the 2020 key
  // pipeline_description.
  static Result<Pipeline> OrchestPipeline(const json::object& body) {
    const json::value* def = body.if_contains("pipeline_definition");
    if (def == nullptr) {
      def = body.if_contains("pipeline_description");
    }
    if (def == nullptr) {
      return Status::InvalidArgument(
          "pipeline_definition: required (the pipeline.json object to run)");
    }
    auto p = PipelineFromJson(*def, ProgramOnPath);
    if (!p.ok()) {
      return p.status().WithContext("pipeline_definition");
    }
    return p;
  }

  // POST /orchest/api/runs/ {uuids, project_uuid, run_type, pipeline_definition (or the 2020
  // key pipeline_description), run_config: {project_dir, pipeline_path}}
  HttpResponse OrchestPostRun(const HttpRequest& req, const Principal& who, const PathParams&) {
    auto body = BodyObject(req, false);
    if (!body.ok()) {
      return OrchestError(body.status());
    }
    auto project = RequestProject(req, who);
    if (!project.ok()) {
      return OrchestError(project.status());
    }
    RunRequest r;
    r.project = *project;
    auto p = OrchestPipeline(*body);
    if (!p.ok()) {
      return OrchestError(p.status());
    }
    r.pipeline = std::move(*p);
    for (const auto& [k, v] : *body) {
      if (k == "pipeline_definition" || k == "pipeline_description") {
        continue;
      }
      if (k == "uuids") {
        if (!v.is_array()) {
          return OrchestError(Status::InvalidArgument("uuids: must be a list of step uuids"));
        }
        for (const auto& s : v.as_array()) {
          if (!s.is_string()) {
            return OrchestError(Status::InvalidArgument("uuids: must be a list of step uuids"));
          }
          r.selection.emplace_back(s.as_string());
        }
      } else if (k == "project_uuid") {
        if (!v.is_string()) {
          return OrchestError(Status::InvalidArgument("project_uuid: must be a string"));
        }
        r.client_project_uuid = std::string(v.as_string());
      } else if (k == "run_type") {
        if (!v.is_string()) {
          return OrchestError(Status::InvalidArgument(
              "run_type: must be \"full\", \"selection\" or \"incoming\""));
        }
        auto t = ParseRunType(v.as_string());
        if (!t.ok()) {
          return OrchestError(t.status().WithContext("run_type"));
        }
        r.type = *t;
      } else if (k == "run_config") {
        if (!v.is_object()) {
          return OrchestError(Status::InvalidArgument(
              "run_config: must be an object {\"project_dir\": ..., \"pipeline_path\": ...}"));
        }
        if (const auto* d = v.as_object().if_contains("project_dir"); d && d->is_string()) {
          auto dir = ProjectDir(who, *project, std::string(d->as_string()));
          if (!dir.ok()) {
            return OrchestError(dir.status());
          }
          r.project_dir = *dir;
        }
      } else {
        // Orchest's clients send more than a run needs (e.g. run_config extras): ignored.
      }
    }
    if (body->if_contains("run_type") == nullptr) {
      return OrchestError(Status::InvalidArgument(
          "run_type: required, one of \"full\", \"selection\", \"incoming\""));
    }
    if (r.type == RunType::kFull) {
      r.selection.clear();
    }
    auto run = ctx_.pipelines.Run(std::move(r));
    if (!run.ok()) {
      return OrchestError(run.status());
    }
    return JsonResponse(201, OrchestRunJson(*run, Waiting(*run)));
  }

  HttpResponse OrchestListRuns(const HttpRequest& req, const Principal& who, const PathParams&) {
    auto project = RequestProject(req, who);
    if (!project.ok()) {
      return OrchestError(project.status());
    }
    Store::RunFilter f;
    f.project = *project;
    f.pipeline_uuid = std::string(req.Query("pipeline_uuid"));
    auto list = ctx_.store.ListRuns(f);
    if (!list.ok()) {
      return OrchestError(list.status());
    }
    std::string_view client_project = req.Query("project_uuid");
    json::array out;
    for (const auto& r : *list) {
      if (!client_project.empty() && r.client_project_uuid != client_project) {
        continue;
      }
      out.push_back(OrchestRunJson(r, Waiting(r)));
    }
    return JsonResponse(200, json::object{{"runs", std::move(out)}});
  }

  HttpResponse OrchestGetRun(const HttpRequest& req, const Principal& who,
                             const PathParams& params) {
    auto run = FindRun(req, who, params[0]);
    if (!run.ok()) {
      return OrchestError(run.status());
    }
    return JsonResponse(200, OrchestRunJson(*run, Waiting(*run)));
  }

  HttpResponse OrchestCancelRun(const HttpRequest& req, const Principal& who,
                                const PathParams& params) {
    auto run = FindRun(req, who, params[0]);
    if (!run.ok()) {
      return OrchestError(run.status());
    }
    auto done = ctx_.pipelines.Cancel(run->project, run->id);
    if (!done.ok()) {
      return OrchestError(done.status());
    }
    return JsonResponse(200, json::object{{"message", "Run termination was successful"}});
  }

  Result<std::pair<RunRecord, StepRunRecord>> FindStep(const HttpRequest& req,
                                                       const Principal& who,
                                                       const PathParams& params) {
    auto run = FindRun(req, who, params[0]);
    if (!run.ok()) {
      return run.status();
    }
    for (const auto& s : run->steps) {
      if (s.step == params[1]) {
        return std::make_pair(*run, s);
      }
    }
    return Status::NotFound(fmt::format("run {} has no step {:?} (steps outside the run's "
                                        "selection are not part of it)",
                                        params[0], params[1].substr(0, 64)));
  }

  HttpResponse OrchestGetStep(const HttpRequest& req, const Principal& who,
                              const PathParams& params) {
    auto found = FindStep(req, who, params);
    if (!found.ok()) {
      return OrchestError(found.status());
    }
    const auto& [run, s] = *found;
    return JsonResponse(200, json::object{{"run_uuid", run.id},
                                          {"step_uuid", s.step},
                                          {"status", s.status},
                                          {"started_time", Time(s.started_at)},
                                          {"finished_time", Time(s.finished_at)}});
  }

  // Orchest's steps reported their own status with this PUT; berth's runtime knows it first
  // hand. A PUT that agrees is answered; one that would move an end state, or contradict the
  // runtime, is refused with the status berth has.
  HttpResponse OrchestPutStep(const HttpRequest& req, const Principal& who,
                              const PathParams& params) {
    auto found = FindStep(req, who, params);
    if (!found.ok()) {
      return OrchestError(found.status());
    }
    const auto& [run, s] = *found;
    auto body = BodyObject(req, false);
    if (!body.ok()) {
      return OrchestError(body.status());
    }
    const json::value* status = body->if_contains("status");
    if (status == nullptr || !status->is_string()) {
      return OrchestError(Status::InvalidArgument(
          "status: required, one of PENDING, STARTED, SUCCESS, FAILURE, ABORTED"));
    }
    if (status->as_string() == s.status) {
      return JsonResponse(200, json::object{{"message", "Status was updated successfully"}});
    }
    if (RunStatusEnded(s.status)) {
      return OrchestError(Status::FailedPrecondition(fmt::format(
          "step {} of run {} has ended ({}); an end state is final", s.step, run.id, s.status)));
    }
    return OrchestError(Status::FailedPrecondition(fmt::format(
        "step {} of run {} is {}: berth tracks step statuses from the processes it runs; "
        "cancel the run with DELETE /orchest/api/runs/{} to stop it",
        s.step, run.id, s.status, run.id)));
  }

  // --- jobs -----------------------------------------------------------------------------

  // The fields of a job both dialects share: schedule, time zone, at, parameter sets or grid.
  Status FillJob(const json::object& o, JobRequest& req, const Principal& who,
                 const char* schedule_key, const char* at_key) {
    for (const auto& [k, v] : o) {
      if (k == schedule_key) {
        if (!v.is_string() && !v.is_null()) {
          return Status::InvalidArgument(fmt::format(
              "{}: must be five cron fields, e.g. \"0 3 * * *\"", schedule_key));
        }
        if (v.is_string()) {
          req.schedule = std::string(v.as_string());
        }
      } else if (k == "time_zone") {
        if (!v.is_string()) {
          return Status::InvalidArgument("time_zone: must be an IANA name, e.g. \"Europe/Amsterdam\"");
        }
        req.time_zone = std::string(v.as_string());
      } else if (k == at_key) {
        if (v.is_null()) {
          continue;
        }
        if (!v.is_string()) {
          return Status::InvalidArgument(fmt::format(
              "{}: must be an RFC 3339 time, e.g. \"2026-12-24T06:00:00Z\"", at_key));
        }
        auto t = ParseRfc3339(v.as_string());
        if (!t) {
          return Status::InvalidArgument(fmt::format(
              "{}: {:?} is not an RFC 3339 time such as \"2026-12-24T06:00:00Z\"", at_key,
              std::string_view(v.as_string()).substr(0, 64)));
        }
        req.at = *t / 1000;
      } else if (k == "parameters") {
        if (!v.is_array()) {
          return Status::InvalidArgument(
              "parameters: must be a list of parameter sets, one run each: "
              "[{\"<step>\": {\"param\": value}}, ...]");
        }
        req.parameter_sets = v.as_array();
      } else if (k == "parameter_grid") {
        if (!v.is_object()) {
          return Status::InvalidArgument(
              "parameter_grid: must be an object {\"<step>\": {\"param\": [values...]}}");
        }
        auto sets = ParameterGrid(v.as_object());
        if (!sets.ok()) {
          return sets.status();
        }
        req.parameter_sets = std::move(*sets);
      } else if (k == "project_dir") {
        if (!v.is_string()) {
          return Status::InvalidArgument("project_dir: must be a string");
        }
        auto dir = ProjectDir(who, req.project, std::string(v.as_string()));
        if (!dir.ok()) {
          return dir.status();
        }
        req.project_dir = *dir;
      }
    }
    return Status::Ok();
  }

  Result<JobRecord> FindJob(const HttpRequest& req, const Principal& who, const std::string& id) {
    std::string project;
    if (!who.admin()) {
      project = *who.project;
    } else if (!req.Query("project").empty()) {
      project = std::string(req.Query("project"));
    }
    return ctx_.jobs.Get(project, id);
  }

  // POST /api/v1/jobs {"name", "pipeline" | "definition", "schedule", "time_zone", "at",
  // "parameters" | "parameter_grid", "project_dir"}
  HttpResponse CreateJob(const HttpRequest& req, const Principal& who, const PathParams&) {
    auto body = BodyObject(req, false);
    if (!body.ok()) {
      return ErrorResponse(body.status());
    }
    std::string_view body_project;
    if (const auto* p = body->if_contains("project"); p && p->is_string()) {
      body_project = p->as_string();
    }
    auto project = RequestProject(req, who, body_project);
    if (!project.ok()) {
      return ErrorResponse(project.status());
    }
    JobRequest r;
    r.project = *project;
    for (const auto& [k, v] : *body) {
      static const std::set<std::string_view> known = {
          "name", "pipeline", "definition", "schedule", "time_zone", "at", "parameters",
          "parameter_grid", "project_dir", "project"};
      if (known.count(k) == 0) {
        return ErrorResponse(Status::InvalidArgument(fmt::format(
            "{}: unknown field; a job takes name, pipeline or definition, schedule, time_zone, "
            "at, parameters or parameter_grid, project_dir",
            std::string_view(k).substr(0, 64))));
      }
    }
    if (const auto* name = body->if_contains("pipeline"); name && name->is_string()) {
      PipelineRecord rec;
      auto p = ctx_.pipelines.Load(*project, std::string(name->as_string()), &rec);
      if (!p.ok()) {
        return ErrorResponse(p.status());
      }
      r.pipeline = std::move(*p);
      r.project_dir = rec.project_dir;
    } else if (const auto* def = body->if_contains("definition")) {
      auto p = PipelineFromJson(*def, ProgramOnPath);
      if (!p.ok()) {
        return ErrorResponse(p.status().WithContext("definition"));
      }
      r.pipeline = std::move(*p);
    } else {
      return ErrorResponse(Status::InvalidArgument(
          "a job needs \"pipeline\" (a stored pipeline's name) or \"definition\": "
          "{\"name\": \"nightly\", \"pipeline\": \"etl\", \"schedule\": \"0 3 * * *\"}"));
    }
    if (const auto* n = body->if_contains("name"); n && n->is_string()) {
      r.name = std::string(n->as_string());
    } else {
      r.name = r.pipeline.name;
    }
    if (auto s = FillJob(*body, r, who, "schedule", "at"); !s.ok()) {
      return ErrorResponse(s);
    }
    auto job = ctx_.jobs.Create(std::move(r));
    if (!job.ok()) {
      return ErrorResponse(job.status());
    }
    return JsonResponse(201, JobJson(*job, ctx_.store));
  }

  HttpResponse ListJobs(const HttpRequest& req, const Principal& who, const PathParams&) {
    auto project = RequestProject(req, who);
    if (!project.ok()) {
      return ErrorResponse(project.status());
    }
    auto list = ctx_.store.ListJobs(*project, false);
    if (!list.ok()) {
      return ErrorResponse(list.status());
    }
    json::array out;
    for (const auto& j : *list) {
      out.push_back(JobJson(j, ctx_.store));
    }
    return JsonResponse(200, json::object{{"jobs", std::move(out)}});
  }

  HttpResponse GetJob(const HttpRequest& req, const Principal& who, const PathParams& params) {
    auto job = FindJob(req, who, params[0]);
    if (!job.ok()) {
      return ErrorResponse(job.status());
    }
    json::object o = JobJson(*job, ctx_.store);
    Store::RunFilter f;
    f.job = job->id;
    f.limit = 20;
    json::array runs;
    if (auto list = ctx_.store.ListRuns(f); list.ok()) {
      for (const auto& r : *list) {
        runs.push_back(RunJson(r, Waiting(r)));
      }
    }
    o["recent_runs"] = std::move(runs);
    return JsonResponse(200, o);
  }

  HttpResponse JobChange(const HttpRequest& req, const Principal& who, const std::string& id,
                         Result<JobRecord> (Jobs::*change)(const std::string&,
                                                           const std::string&)) {
    auto job = FindJob(req, who, id);
    if (!job.ok()) {
      return ErrorResponse(job.status());
    }
    auto done = (ctx_.jobs.*change)(job->project, job->id);
    if (!done.ok()) {
      return ErrorResponse(done.status());
    }
    return JsonResponse(200, JobJson(*done, ctx_.store));
  }
  HttpResponse PauseJob(const HttpRequest& req, const Principal& who, const PathParams& p) {
    return JobChange(req, who, p[0], &Jobs::Pause);
  }
  HttpResponse ResumeJob(const HttpRequest& req, const Principal& who, const PathParams& p) {
    return JobChange(req, who, p[0], &Jobs::Resume);
  }
  HttpResponse CancelJob(const HttpRequest& req, const Principal& who, const PathParams& p) {
    return JobChange(req, who, p[0], &Jobs::Cancel);
  }

  // Orchest's job: {"name", "pipeline_definition" (or "pipeline_description"), "project_uuid",
  // "pipeline_uuid", "parameters": [...], "cron_schedule", "scheduled_start",
  // "pipeline_run_spec": {"run_config": {"project_dir"}}}
  HttpResponse OrchestCreateJob(const HttpRequest& req, const Principal& who, const PathParams&) {
    auto body = BodyObject(req, false);
    if (!body.ok()) {
      return OrchestError(body.status());
    }
    auto project = RequestProject(req, who);
    if (!project.ok()) {
      return OrchestError(project.status());
    }
    JobRequest r;
    r.project = *project;
    auto p = OrchestPipeline(*body);
    if (!p.ok()) {
      return OrchestError(p.status());
    }
    r.pipeline = std::move(*p);
    const json::value* name = body->if_contains("name");
    r.name = name && name->is_string() ? std::string(name->as_string()) : r.pipeline.name;
    if (auto s = FillJob(*body, r, who, "cron_schedule", "scheduled_start"); !s.ok()) {
      return OrchestError(s);
    }
    if (const auto* spec = body->if_contains("pipeline_run_spec"); spec && spec->is_object()) {
      const auto* rc = spec->as_object().if_contains("run_config");
      const json::value* d = rc && rc->is_object() ? rc->as_object().if_contains("project_dir")
                                                   : nullptr;
      if (d && d->is_string()) {
        auto dir = ProjectDir(who, *project, std::string(d->as_string()));
        if (!dir.ok()) {
          return OrchestError(dir.status());
        }
        r.project_dir = *dir;
      }
    }
    auto job = ctx_.jobs.Create(std::move(r));
    if (!job.ok()) {
      return OrchestError(job.status());
    }
    return JsonResponse(201, OrchestJobJson(*job));
  }

  json::object OrchestJobJson(const JobRecord& j) {
    json::object o = JobJson(j, ctx_.store);
    o["cron_schedule"] = o["schedule"];
    o["scheduled_start"] = o["at"];
    o["pipeline_uuid"] = json::value(nullptr);
    boost::system::error_code ec;
    json::value def = json::parse(j.definition_json, ec);
    if (!ec && def.is_object() && def.as_object().contains("uuid")) {
      o["pipeline_uuid"] = def.as_object().at("uuid");
    }
    Store::RunFilter f;
    f.job = j.id;
    json::array runs;
    if (auto list = ctx_.store.ListRuns(f); list.ok()) {
      for (const auto& r : *list) {
        runs.push_back(OrchestRunJson(r, Waiting(r)));
      }
    }
    o["pipeline_runs"] = std::move(runs);
    return o;
  }

  HttpResponse OrchestListJobs(const HttpRequest& req, const Principal& who, const PathParams&) {
    auto project = RequestProject(req, who);
    if (!project.ok()) {
      return OrchestError(project.status());
    }
    auto list = ctx_.store.ListJobs(*project, false);
    if (!list.ok()) {
      return OrchestError(list.status());
    }
    json::array out;
    for (const auto& j : *list) {
      out.push_back(OrchestJobJson(j));
    }
    return JsonResponse(200, json::object{{"jobs", std::move(out)}});
  }

  HttpResponse OrchestGetJob(const HttpRequest& req, const Principal& who,
                             const PathParams& params) {
    auto job = FindJob(req, who, params[0]);
    if (!job.ok()) {
      return OrchestError(job.status());
    }
    return JsonResponse(200, OrchestJobJson(*job));
  }

  HttpResponse OrchestCancelJob(const HttpRequest& req, const Principal& who,
                                const PathParams& params) {
    auto job = FindJob(req, who, params[0]);
    if (!job.ok()) {
      return OrchestError(job.status());
    }
    auto done = ctx_.jobs.Cancel(job->project, job->id);
    if (!done.ok()) {
      return OrchestError(done.status());
    }
    return JsonResponse(200, json::object{{"message", "Job termination was successful"}});
  }

  ApiContext& ctx_;
};

}  // namespace

void AddRunRoutes(ApiContext& ctx, Router& native, Router& orchest) {
  std::make_shared<RunsApi>(ctx)->Register(native, orchest);
}

}  // namespace berth
