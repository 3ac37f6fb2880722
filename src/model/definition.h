// A service definition: what CloudFlow's servicectl PUTs (container-tag, memory-reservation,
// memory-limit, container-port, environment) plus what Orchest configures (command,
// entrypoint, inherited environment, scope, mounts) plus berth's own keys. All keys are
// kebab-case in JSON and YAML. Each PUT of a definition becomes a new revision.
//
// The fields are a strict subset of what maps 1:1 onto a Kubernetes Deployment + Service +
// Ingress, so that a definition can later be exported to a cluster unchanged.
#pragma once

#include <boost/json/fwd.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace berth {

struct EnvVar {
  std::string name;
  std::string value;
  bool operator==(const EnvVar&) const = default;
};

// A set of HTTP status codes written as ranges: "200-299,301".
class StatusCodeSet {
 public:
  // InvalidArgument unless every element is a code 100–599 or an ascending range of them.
  static Result<StatusCodeSet> Parse(std::string_view text);
  bool Contains(int code) const;
  const std::string& text() const { return text_; }

 private:
  std::string text_;
  std::vector<std::pair<int, int>> ranges_;
};

struct HealthCheck {
  std::string type = "http";  // "http", "tcp", or "exec" (a command that exits 0 when ready)
  std::vector<std::string> command;  // exec: argv, with $(HOST) and $(PORT) expanded
  std::string rel_path = "/";  // under the service's context root
  std::string status_codes = "200-499";  // CloudFlow's default
  int interval_s = 30;
  int timeout_s = 5;
  bool operator==(const HealthCheck&) const = default;
};

struct Mount {
  std::string source;  // "data" (the project's /data) or "project" (the project directory)
  std::string target;  // absolute path inside the instance's view of the filesystem
  bool operator==(const Mount&) const = default;
};

struct Definition {
  std::optional<std::string> container_tag;  // artifact tag in the service's repository
  std::optional<int64_t> memory_reservation_mb;  // admission
  std::optional<int64_t> memory_limit_mb;  // hard limit, enforced by the cgroup
  std::optional<int> container_port;
  std::vector<EnvVar> environment;
  std::vector<std::string> inherited_environment;
  std::vector<std::string> command;
  std::vector<std::string> entrypoint;
  int replicas = 1;
  // After a rollout, the replaced revision keeps running (out of the route) until the new one
  // has stayed healthy this long; a failure within it rolls back to it at once (Nomad's
  // min_healthy_time, Kubernetes' minReadySeconds). 0: the old revision stops at the switch.
  int min_healthy_time_s = 10;
  // Processes and threads an instance may have at once (its cgroup's pids.max): a fork bomb
  // stops there instead of taking the machine's pids. 0: no limit.
  int64_t pids_limit = 4096;
  HealthCheck health_check;
  std::string base_path = "preserve";  // "preserve" | "strip"
  std::string auth = "token";  // "token" | "public"
  // "http": reachable through the gateway; "internal": only at its own address, from steps
  // and other services (Redis, Postgres).
  std::string expose = "http";
  // A shadow version (seed 001) with this set gets a copy of MAIN's requests; its answers are
  // discarded.
  bool mirror_traffic = false;
  std::vector<std::string> scope = {"interactive", "jobs"};
  std::vector<Mount> mounts;
  // Programs run as their project's unprivileged user (decision 9); one that needs root says
  // so here (Kubernetes' securityContext.runAsUser: 0). It then also sees what root sees.
  bool run_as_root = false;
  bool operator==(const Definition&) const = default;
};

// Validates `json` and returns the definition with defaults filled in. Unknown keys and every
// broken rule are InvalidArgument naming the field: "memory-limit: must be >= memory-reservation
// (150 < 200)". Requires container-tag or command, so that there is something to run.
Result<Definition> ParseDefinition(const boost::json::value& json);

// The definition as JSON with every key present (defaults included); ParseDefinition(ToJson(d))
// == d.
boost::json::object DefinitionToJson(const Definition& def);

// Artifact tags follow Docker's grammar: [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}. InvalidArgument
// naming the rule otherwise.
Status ValidateTag(std::string_view tag);

// Keys ParseDefinition accepts, in documentation order.
const std::vector<std::string>& DefinitionKeys();

}  // namespace berth
