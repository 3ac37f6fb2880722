#include "pipeline/pipeline_ops.h"

#include <fmt/format.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cstdlib>
#include <string>

namespace berth {
namespace json = boost::json;

bool ProgramOnPath(std::string_view program) {
  const char* path = std::getenv("PATH");
  std::string_view dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  while (!dirs.empty()) {
    size_t colon = dirs.find(':');
    std::string_view dir = dirs.substr(0, colon);
    std::string candidate = fmt::format("{}/{}", dir.empty() ? "." : dir, program);
    if (::access(candidate.c_str(), X_OK) == 0) {
      return true;
    }
    if (colon == std::string_view::npos) {
      break;
    }
    dirs.remove_prefix(colon + 1);
  }
  return false;
}

Result<std::pair<PipelineRecord, bool>> PipelineOps::Add(const std::string& project,
                                                         std::string_view text,
                                                         const std::string& project_dir) {
  auto p = ParsePipeline(text, ProgramOnPath);
  if (!p.ok()) {
    return p.status();
  }
  if (p->name.empty() || p->name.size() > 128 ||
      p->name.find_first_of("/\\\n\r\t") != std::string::npos) {
    return Status::InvalidArgument(fmt::format(
        "pipeline name {:?} must be 1-128 characters without '/', '\\' or control characters; "
        "set \"name\" in the file",
        p->name.substr(0, 64)));
  }
  bool created = store_.GetPipeline(project, p->name).status().code() == StatusCode::kNotFound;
  PipelineRecord rec;
  rec.project = project;
  rec.name = p->name;
  rec.uuid = p->uuid;
  rec.definition_json = json::serialize(PipelineToJson(*p));
  rec.project_dir = project_dir;
  auto stored = store_.PutPipeline(rec);
  if (!stored.ok()) {
    return stored.status();
  }
  return std::make_pair(std::move(*stored), created);
}

Status PipelineOps::Remove(const std::string& project, const std::string& name) {
  return store_.DeletePipeline(project, name);
}

Result<Pipeline> PipelineOps::Load(const std::string& project, const std::string& name,
                                   PipelineRecord* record) {
  auto rec = store_.GetPipeline(project, name);
  if (!rec.ok()) {
    return rec.status();
  }
  boost::system::error_code ec;
  json::value v = json::parse(rec->definition_json, ec);
  if (ec) {
    return Status::Internal(fmt::format("stored pipeline {} is not JSON", name));
  }
  auto p = PipelineFromJson(v, ProgramOnPath);
  if (!p.ok()) {
    return p.status().WithContext(fmt::format("stored pipeline {}", name));
  }
  if (record) {
    *record = std::move(*rec);
  }
  return p;
}

Result<RunRecord> PipelineOps::GetRun(const std::string& project, const std::string& run) {
  auto rec = store_.GetRun(run);
  if (!rec.ok()) {
    return rec.status();
  }
  if (!project.empty() && rec->project != project) {
    return Status::NotFound(fmt::format("there is no run {} in project '{}'", run, project));
  }
  return rec;
}

Result<RunRecord> PipelineOps::Cancel(const std::string& project, const std::string& run) {
  if (auto rec = GetRun(project, run); !rec.ok()) {
    return rec.status();
  }
  return engine_.CancelRun(run);
}

Status PipelineOps::DeleteRun(const std::string& project, const std::string& run) {
  auto rec = GetRun(project, run);
  if (!rec.ok()) {
    return rec.status();
  }
  if (!RunStatusEnded(rec->status)) {
    return Status::FailedPrecondition(fmt::format(
        "run {} is {}; cancel it first (berth runs cancel {})", run, rec->status, run));
  }
  if (auto s = engine_.ForgetRun(*rec); !s.ok()) {
    return s;
  }
  return store_.DeleteRun(run);
}

}  // namespace berth
