#include "control/service_ops.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <boost/json.hpp>

#include "model/names.h"

namespace berth {

Result<ServiceRecord> ServiceOps::Create(const std::string& project, const std::string& name,
                                         std::string_view defaults_json, std::string_view event) {
  if (auto s = ValidateServiceName(project, name); !s.ok()) {
    return s;
  }
  auto rec = store_.CreateService(project, name, defaults_json);
  if (!rec.ok()) {
    return rec.status();
  }
  (void)store_.AddEvent(project, name, "created", event);
  return rec;
}

Result<ServiceRecord> ServiceOps::Define(const std::string& project, const std::string& name,
                                         const Definition& def) {
  auto existing = store_.GetService(project, name);
  if (!existing.ok()) {
    return existing.status();
  }
  if (!existing->main_version.empty()) {
    return Status::FailedPrecondition(
        fmt::format("'{}' is deployed as versions (MAIN is {}), which are immutable: deploy a new "
                    "version with berth deploy {} VERSION DIR, then berth assign {} VERSION",
                    name, existing->main_version, name, name));
  }
  if (def.container_tag) {
    if (auto s = RequirePushedTag(project, name, *def.container_tag); !s.ok()) {
      return s;
    }
  }
  auto rec = store_.PutDefinition(project, name, boost::json::serialize(DefinitionToJson(def)),
                                  ReservedMb(def), controller_.Admission(def));
  if (!rec.ok()) {
    return rec.status();
  }
  Refresh(project, name);
  return rec;
}

Status ServiceOps::RequirePushedTag(const std::string& project, const std::string& name,
                                    const std::string& tag) {
  // Refused now rather than stored to fail at start: the user learns which tags exist.
  auto artifacts = store_.ListArtifacts(project, name);
  if (!artifacts.ok()) {
    return artifacts.status();
  }
  std::vector<std::string> tags;
  for (const ArtifactRecord& a : *artifacts) {
    tags.push_back(a.tag);
  }
  if (std::find(tags.begin(), tags.end(), tag) != tags.end()) {
    return Status::Ok();
  }
  return Status::InvalidArgument(fmt::format(
      "container-tag: no bundle tagged '{}' was pushed to '{}' ({}); push it with: berth push "
      "{} DIR --tag {}",
      tag, name,
      tags.empty() ? "none was pushed yet" : fmt::format("pushed: {}", fmt::join(tags, ", ")),
      name, tag));
}

Result<ServiceRecord> ServiceOps::CreateDefined(const std::string& project, const std::string& name,
                                                const Definition& def, std::string_view event) {
  // Admitted before anything is created, and again inside the definition's transaction.
  ServiceRecord probe;
  probe.project = project;
  probe.name = name;
  if (auto s = controller_.Admit(probe, def); !s.ok()) {
    return s;
  }
  auto created = Create(project, name, "{}", event);
  if (!created.ok()) {
    return created.status();
  }
  auto rec = Define(project, name, def);
  if (!rec.ok()) {
    (void)store_.DeleteService(project, name);  // nothing half-made stays behind
    return rec.status();
  }
  return rec;
}

Status ServiceOps::SetRunning(const std::string& project, const std::string& name, bool running,
                              std::string_view why) {
  if (auto s = store_.SetDesiredRunning(project, name, running); !s.ok()) {
    return s;
  }
  (void)store_.AddEvent(project, name, running ? "start" : "stop", why);
  return controller_.Refresh(project, name);
}

Result<ServiceRecord> ServiceOps::Delete(const std::string& project, const std::string& name) {
  auto rec = store_.GetService(project, name);
  if (!rec.ok()) {
    return rec.status();
  }
  if (auto s = controller_.Forget(project, name); !s.ok()) {
    return s;
  }
  return rec;
}

void ServiceOps::Refresh(const std::string& project, const std::string& name) {
  if (auto s = controller_.Refresh(project, name); !s.ok()) {
    (void)store_.AddEvent(project, name, "error", "cannot apply: " + s.message());
  }
}

}  // namespace berth
