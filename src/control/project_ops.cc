#include "control/project_ops.h"

#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <boost/json.hpp>

#include "common/crypto.h"
#include "model/names.h"

namespace berth {

namespace {

// The project's services whose scope satisfies `keep`.
std::vector<ServiceRecord> ServicesByScope(
    Store& store, const std::string& project,
    const std::function<bool(const std::vector<std::string>&)>& keep) {
  std::vector<ServiceRecord> out;
  auto services = store.ListServices(project);
  if (!services.ok()) {
    return out;
  }
  for (auto& svc : *services) {
    boost::system::error_code ec;
    auto parsed = boost::json::parse(svc.definition_json, ec);
    if (ec || svc.definition_json.empty()) {
      continue;
    }
    auto def = ParseDefinition(parsed);
    if (def.ok() && keep(def->scope)) {
      out.push_back(std::move(svc));
    }
  }
  return out;
}

bool Has(const std::vector<std::string>& scope, std::string_view s) {
  return std::find(scope.begin(), scope.end(), s) != scope.end();
}

}  // namespace

std::vector<ServiceRecord> InteractiveServices(Store& store, const std::string& project) {
  return ServicesByScope(store, project,
                         [](const auto& scope) { return Has(scope, "interactive"); });
}

std::vector<ServiceRecord> JobServices(Store& store, const std::string& project) {
  return ServicesByScope(store, project, [](const auto& scope) {
    return Has(scope, "jobs") && !Has(scope, "interactive");
  });
}

Result<Project> ProjectOps::CreateProject(const std::string& name) {
  if (auto s = ValidateProjectName(name); !s.ok()) {
    return s;
  }
  return store_.CreateProject(name);
}

Result<IssuedToken> ProjectOps::CreateToken(const std::optional<std::string>& project,
                                            const std::string& description) {
  auto fresh = GenerateToken();
  if (!fresh.ok()) {
    return fresh.status();
  }
  auto info = store_.CreateToken(fresh->id, fresh->hash, project, description);
  if (!info.ok()) {
    return info.status();
  }
  return IssuedToken{*info, fresh->secret};
}

Status ProjectOps::RevokeToken(const TokenInfo& token) {
  if (token.admin() && !token.revoked_at) {
    auto active = store_.CountActiveAdminTokens();
    if (!active.ok()) {
      return active.status();
    }
    if (*active <= 1) {
      return Status::FailedPrecondition(
          "refusing to revoke the last admin token: nobody could administer berth "
          "afterwards; create another admin token first (berth tokens create --admin)");
    }
  }
  return store_.RevokeToken(token.id);
}

Status ProjectOps::SetProjectEnv(const std::string& project,
                                 const std::vector<std::pair<std::string, std::string>>& vars) {
  if (auto s = store_.SetProjectEnv(project, vars); !s.ok()) {
    return s;
  }
  if (auto services = store_.ListServices(project); services.ok()) {
    for (const auto& svc : *services) {
      (void)controller_.Refresh(project, svc.name);
    }
  }
  return Status::Ok();
}

Status ProjectOps::ClearNotifications(const std::string& project) {
  return store_.DeleteNotifications(project);
}

Status ProjectOps::DeleteNotification(const std::string& project, int64_t id) {
  return store_.DeleteNotification(project, id);
}

Result<SessionRecord> ProjectOps::FindSession(const std::string& project,
                                              const std::string& pipeline) {
  auto list = store_.ListSessions(project);
  if (!list.ok()) {
    return list.status();
  }
  for (const auto& s : *list) {
    if (s.pipeline == pipeline) {
      return s;
    }
  }
  return Status::NotFound(
      fmt::format("project '{}' has no session for pipeline '{}'", project, pipeline));
}

Status ProjectOps::StartSessionServices(const std::string& project, const std::string& why) {
  for (const auto& s : InteractiveServices(store_, project)) {
    if (s.desired_running) {
      continue;  // running already (berth add, deploy, start): the session uses it, never stops it
    }
    // Recorded before it starts: a crash in between leaves it owned, so a session stops it.
    if (auto st = store_.AddSessionService(project, s.name); !st.ok()) {
      return st;
    }
    if (auto st = services_.SetRunning(project, s.name, true, why); !st.ok()) {
      return st;
    }
  }
  return Status::Ok();
}

Status ProjectOps::StopSessionServices(const std::string& project, const std::string& why) {
  auto owned = store_.SessionServices(project);
  if (!owned.ok()) {
    return owned.status();
  }
  for (const auto& name : *owned) {
    if (auto st = services_.SetRunning(project, name, false, why);
        !st.ok() && st.code() != StatusCode::kNotFound) {  // deleted meanwhile: nothing to stop
      return st;
    }
  }
  return store_.ClearSessionServices(project);
}

Status ProjectOps::SetJobServicesRunning(const std::string& project, bool running) {
  for (const auto& s : JobServices(store_, project)) {
    if (s.desired_running == running) {
      continue;
    }
    if (auto st = services_.SetRunning(
            project, s.name, running,
            running ? "started for the project's job runs" : "the project's job runs ended");
        !st.ok()) {
      return st;
    }
  }
  return Status::Ok();
}

bool ProjectOps::JobServicesReady(const std::string& project) {
  for (const auto& s : JobServices(store_, project)) {
    if (controller_.Ready(project, s.name).empty()) {
      return false;
    }
  }
  return true;
}

Result<SessionRecord> ProjectOps::StartSession(const std::string& project,
                                               const std::string& pipeline) {
  if (auto s = ValidateSessionName(pipeline); !s.ok()) {
    return s;
  }
  if (auto existing = FindSession(project, pipeline); existing.ok()) {
    return Status::AlreadyExists(
        fmt::format("pipeline '{}' already has a session ({}); stop it first with DELETE "
                    "/api/v1/sessions/{}",
                    pipeline, existing->state, pipeline));
  }
  auto rec = store_.CreateSession(project, pipeline);
  if (!rec.ok()) {
    return rec.status();
  }
  if (auto s =
          StartSessionServices(project, "started for the session of pipeline " + pipeline);
      !s.ok()) {
    (void)store_.DeleteSession(project, pipeline);  // a retry must not find it half-made
    return s;
  }
  return rec;
}

Result<SessionRecord> ProjectOps::StopSession(const std::string& project,
                                              const std::string& pipeline) {
  auto rec = FindSession(project, pipeline);
  if (!rec.ok()) {
    return rec.status();
  }
  if (auto s = store_.SetSessionState(project, pipeline, "stopping"); !s.ok()) {
    return s;
  }
  // The services sessions started serve every session of the project: they stop with the
  // last one. What the user started keeps running.
  auto sessions = store_.ListSessions(project);
  bool others = sessions.ok() && std::any_of(sessions->begin(), sessions->end(), [&](auto& s) {
                  return s.pipeline != pipeline && s.state != "stopping";
                });
  if (!others) {
    if (auto s =
            StopSessionServices(project, "the session of pipeline " + pipeline + " ended");
        !s.ok()) {
      return s;
    }
  }
  rec->state = "stopping";
  if (auto s = store_.DeleteSession(project, pipeline); !s.ok()) {
    return s;
  }
  return rec;
}

}  // namespace berth
