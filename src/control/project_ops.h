// ProjectOps is the one door for the changes a user makes around services: projects, tokens,
// the project environment, notifications, and the sessions of seed 000 (a pipeline's
// interactive services, started with its first session and stopped with its last). Like
// ServiceOps, every dialect calls these and translates only requests and answers.
// Thread-safe.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "control/service_ops.h"
#include "store/store.h"

namespace berth {

// A token as issued: its record and the secret, shown once.
struct IssuedToken {
  TokenInfo info;
  std::string secret;
};

// The project's services whose scope includes "interactive" (a session's services), by name.
std::vector<ServiceRecord> InteractiveServices(Store& store, const std::string& project);
// The project's services scoped to jobs only (scope: [jobs]): they run while a job run does.
std::vector<ServiceRecord> JobServices(Store& store, const std::string& project);

class ProjectOps {
 public:
  // `store`, `controller` and `services` must outlive this.
  ProjectOps(Store& store, Controller& controller, ServiceOps& services)
      : store_(store), controller_(controller), services_(services) {}

  // InvalidArgument for a bad name; AlreadyExists.
  Result<Project> CreateProject(const std::string& name);
  // A token of `project`, or an admin token when it is empty.
  Result<IssuedToken> CreateToken(const std::optional<std::string>& project,
                                  const std::string& description);
  // FailedPrecondition for the last active admin token: nobody could administer berth.
  Status RevokeToken(const TokenInfo& token);
  // Replaces the project's environment and re-resolves its services with it.
  Status SetProjectEnv(const std::string& project,
                       const std::vector<std::pair<std::string, std::string>>& vars);
  Status ClearNotifications(const std::string& project);
  Status DeleteNotification(const std::string& project, int64_t id);

  // Starts the pipeline's session: AlreadyExists when it has one; the project's interactive
  // services that are not running start, owned by the sessions (a failure leaves no session
  // behind).
  Result<SessionRecord> StartSession(const std::string& project, const std::string& pipeline);
  // Ends it (NotFound without one); the services sessions started stop with the project's
  // last session, the others keep running. Returns the session as it ended (state "stopping").
  Result<SessionRecord> StopSession(const std::string& project, const std::string& pipeline);
  Result<SessionRecord> FindSession(const std::string& project, const std::string& pipeline);
  // Starts (or stops) the project's jobs-only services: for the lifetime of its job runs.
  Status SetJobServicesRunning(const std::string& project, bool running);
  // True once every jobs-only service of the project has a ready instance (or it has none).
  bool JobServicesReady(const std::string& project);

 private:
  // Starts the project's interactive services that are not running, recording each as the
  // sessions'; stops only those (with the last session) and forgets them.
  Status StartSessionServices(const std::string& project, const std::string& why);
  Status StopSessionServices(const std::string& project, const std::string& why);

  Store& store_;
  Controller& controller_;
  ServiceOps& services_;
};

}  // namespace berth
