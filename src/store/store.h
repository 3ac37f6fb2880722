// Store persists the platform's desired state: projects, tokens, services and their
// definition revisions. Every mutating call is one transaction: after a crash at any moment the
// store reopens consistent, holding every change whose call returned.
//
// Implementations are safe to call from multiple threads.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace berth {

struct Project {
  std::string name;
  int64_t created_at = 0;  // unix millis
  // Stable, never reused (projects are not deleted): the project's instances run as the
  // unprivileged uid derived from it.
  int64_t id = 0;
};

struct TokenInfo {
  std::string id;  // public handle, e.g. "tk_1a2b3c4d5e6f"
  std::optional<std::string> project;  // nullopt for an admin token
  std::string description;
  int64_t created_at = 0;
  std::optional<int64_t> revoked_at;
  bool admin() const { return !project.has_value(); }
};

struct ServiceRecord {
  std::string project;
  std::string name;
  int64_t created_at = 0;
  int64_t updated_at = 0;
  int revision = 0;  // 0 until the first definition is PUT
  std::string definition_json;  // of `revision`; empty when revision == 0
  // Definition keys given when the service was created (servicectl's health_check), applied
  // to PUT definitions that leave them out. A JSON object.
  std::string defaults_json = "{}";
  bool desired_running = true;  // false after `stop`
  int active_revision = 0;  // the revision that last became healthy (serves traffic)
  int failed_revision = 0;  // the newest revision rolled back; not retried
  std::string main_version;  // the MAIN version (seed 001); empty when it has no versions
};

// An immutable, named revision of a service (`berth deploy NAME VERSION`). Versions run side
// by side: MAIN gets the service's traffic, the others are shadows.
struct VersionRecord {
  std::string version;
  int revision = 0;
  int64_t created_at = 0;
};

// A notification raised by a service (`notify(msg, severity)`) or by the platform. Identical
// ones (project, service, version, severity, message) are one record with a counter.
struct NotificationRecord {
  int64_t id = 0;
  std::string project;
  std::string service;
  std::string version;
  std::string instance;
  std::string severity;  // INFO, WARNING, CRITICAL
  std::string message;
  int64_t count = 1;
  int64_t first_at = 0;  // unix millis
  int64_t last_at = 0;
  std::string emails_json = "[]";  // addresses to mail, a JSON array
  int timer_s = 0;  // email suppression: at most one email per this many seconds
};

struct ArtifactRecord {
  std::string tag;
  std::string digest;  // "sha256:<hex>"
  int64_t size = 0;
  int64_t created_at = 0;
};

struct EventRecord {
  int64_t time = 0;
  std::string kind;  // "created", "revision", "started", "exited", "oom-killed", ...
  std::string message;
};

struct Revision {
  int revision = 0;
  std::string definition_json;
  int64_t created_at = 0;
};

// A session (seed 004): the interactive services of a project running for a pipeline.
struct SessionRecord {
  std::string project;
  std::string pipeline;
  std::string state;  // "running" once started; "stopping" after DELETE
  int64_t created_at = 0;
};


// A pipeline (seed 004) as stored: its definition in Orchest's pipeline.json form.
struct PipelineRecord {
  std::string project;
  std::string name;
  std::string uuid;
  std::string definition_json;
  std::string project_dir;  // where its interactive runs execute; empty: the project's own
  int64_t created_at = 0;
  int64_t updated_at = 0;
};

// A recipe (seed 003) as stored: its definition in berth's recipe form, and whether it should
// be running (a daemon restart starts it again, with the same overrides).
struct RecipeRecord {
  std::string project;
  std::string name;
  std::string url;
  std::string definition_json;
  bool started = false;
  std::string overrides_json = "{}";  // of the last start
  int64_t created_at = 0;
  int64_t updated_at = 0;
};

// A node type pushed as a bundle: its program runs as a recipe's node.
struct NodeTypeRecord {
  std::string project;
  std::string name;
  std::string digest;  // "sha256:<hex>", in the artifact store
  int64_t created_at = 0;
};

// One step of a run. Statuses only move forward: PENDING -> STARTED -> SUCCESS | FAILURE |
// ABORTED (and PENDING -> ABORTED); the store refuses to change an end state.
struct StepRunRecord {
  std::string step;  // the step's uuid
  std::string title;
  int position = 0;  // in the run's plan (topological order)
  std::string status = "PENDING";
  int64_t started_at = 0;  // unix millis; 0: not yet
  int64_t finished_at = 0;
  std::optional<int> exit_code;
  std::string message;  // why it failed or was aborted
};

// A run of a pipeline: exactly the definition it was posted with, frozen.
struct RunRecord {
  std::string id;  // a uuid
  std::string project;
  std::string pipeline;       // the pipeline's name
  std::string pipeline_uuid;  // Orchest's pipeline uuid, as given
  std::string client_project_uuid;  // Orchest's project_uuid, kept as given
  std::string run_type;       // full, selection, incoming
  std::string kind;           // interactive, job
  std::string job;            // the job's id for a job run
  std::string definition_json;  // frozen, Orchest's form
  std::string plan_json;        // {"steps": [...], "parents": {...}}
  std::string project_dir;      // the steps' working directory
  std::string status = "PENDING";
  int64_t created_at = 0;
  int64_t started_at = 0;
  int64_t finished_at = 0;
  std::string message;
  std::vector<StepRunRecord> steps;  // in plan order
};

// A job (seed 004): a pipeline run once, at a time, or on a cron schedule, once per
// parameter set each time. Its pipeline is frozen when the job is created.
struct JobRecord {
  std::string id;  // a uuid
  std::string project;
  std::string name;
  std::string pipeline;         // the pipeline's name
  std::string definition_json;  // frozen, Orchest's form
  std::string project_dir;      // what each run snapshots
  std::string schedule;         // five cron fields; empty: once (at `at`, or now)
  std::string time_zone;
  int64_t at = 0;                  // unix seconds for a one-off job; 0: at once
  std::string parameters_json = "[{}]";  // a list of parameter sets
  std::string status = "PENDING";  // PENDING STARTED PAUSED SUCCESS FAILURE ABORTED
  int64_t next_fire = 0;           // unix seconds; 0: none
  int64_t last_fire = 0;
  int64_t created_at = 0;  // unix millis
  int64_t finished_at = 0;
  std::string message;
};

// What one write of run progress changes, in one transaction. Changes to end states are
// ignored (an end state is final), so a late report can never move a run backwards.
struct RunProgress {
  std::string run;
  std::optional<std::string> status;  // the run's new status
  int64_t started_at = 0;             // set when non-zero and not yet set
  int64_t finished_at = 0;
  std::optional<std::string> message;
  std::vector<StepRunRecord> steps;  // by step uuid: status, times, exit code, message
};

class Store {
 public:
  virtual ~Store() = default;

  // AlreadyExists if a project of that name exists. Names are validated by the caller.
  virtual Result<Project> CreateProject(std::string_view name) = 0;
  virtual Result<std::vector<Project>> ListProjects() = 0;
  // NotFound if there is no such project.
  virtual Result<Project> GetProject(std::string_view name) = 0;

  // Stores a token under its SHA-256 `hash`. `project` nullopt makes an admin token.
  // NotFound if the project does not exist.
  virtual Result<TokenInfo> CreateToken(std::string_view id, std::string_view hash,
                                        const std::optional<std::string>& project,
                                        std::string_view description) = 0;
  // Tokens of `project`, or every token when nullopt; revoked ones included.
  virtual Result<std::vector<TokenInfo>> ListTokens(const std::optional<std::string>& project) = 0;
  virtual Result<TokenInfo> GetToken(std::string_view id) = 0;
  // Marks a token revoked; NotFound if unknown. Revoking twice is not an error.
  virtual Status RevokeToken(std::string_view id) = 0;
  // How many revocations this store has made since it was opened: whoever caches tokens
  // (the Authenticator) drops its cache when the count moves, whichever door revoked.
  virtual uint64_t TokenRevocations() const = 0;
  // NotFound if no token has this hash. Revoked tokens are returned with revoked_at set.
  virtual Result<TokenInfo> FindTokenByHash(std::string_view hash) = 0;
  // Number of admin tokens that are not revoked.
  virtual Result<int64_t> CountActiveAdminTokens() = 0;

  // NotFound if the project is missing; AlreadyExists if the service exists.
  virtual Result<ServiceRecord> CreateService(std::string_view project, std::string_view name,
                                              std::string_view defaults_json = "{}") = 0;
  virtual Result<std::vector<ServiceRecord>> ListServices(std::string_view project) = 0;
  virtual Result<ServiceRecord> GetService(std::string_view project, std::string_view name) = 0;
  // How many services the project has, counting no further than `at_most`: a caller that
  // only asks "more than k?" costs k steps, not one per service. NotFound if the project is
  // missing.
  virtual Result<int64_t> CountServices(std::string_view project, int64_t at_most) = 0;
  // Admission: called inside a write's transaction with the memory (MB) that the other
  // services meant to run reserve, as stored with their current revisions; a refusal aborts
  // the write and is returned, so that two concurrent writes cannot both pass a check only
  // one of them fits. The store keeps that sum as it goes: a write does not read every service.
  using AdmitFn = std::function<Status(uint64_t reserved_by_others_mb)>;
  // Appends a revision holding `definition_json` and makes it current, if `admit` (when
  // given) agrees. The revision reserves `reserved_mb` (replicas x memory-reservation) while
  // the service is meant to run. NotFound if the service does not exist.
  virtual Result<ServiceRecord> PutDefinition(std::string_view project, std::string_view name,
                                              std::string_view definition_json,
                                              uint64_t reserved_mb = 0,
                                              const AdmitFn& admit = nullptr) = 0;
  // What the services meant to run reserve (MB), but for project/name (which may not exist).
  virtual Result<uint64_t> ReservedByOthers(std::string_view project, std::string_view name) = 0;
  // Oldest first. NotFound if the service does not exist.
  virtual Result<std::vector<Revision>> ListRevisions(std::string_view project,
                                                      std::string_view name) = 0;
  // Removes the service with its revisions, artifacts and events. NotFound if it does not
  // exist.
  virtual Status DeleteService(std::string_view project, std::string_view name) = 0;
  // Every service of every project (the daemon's start-up view).
  virtual Result<std::vector<ServiceRecord>> ListAllServices() = 0;
  virtual Status SetDesiredRunning(std::string_view project, std::string_view name,
                                   bool running) = 0;
  virtual Status SetRolloutResult(std::string_view project, std::string_view name,
                                  int active_revision, int failed_revision) = 0;

  // Points `tag` of the service's repository at `digest` (replacing an earlier push).
  virtual Result<ArtifactRecord> PutArtifact(std::string_view project, std::string_view name,
                                             std::string_view tag, std::string_view digest,
                                             int64_t size) = 0;
  // Newest first.
  virtual Result<std::vector<ArtifactRecord>> ListArtifacts(std::string_view project,
                                                            std::string_view name) = 0;
  // True while any tag of any service points at `digest`.
  virtual Result<bool> DigestInUse(std::string_view digest) = 0;

  // Stores `definition_json` as a new revision labelled `version`, in one transaction, and
  // marks the service running. The first version of a service becomes MAIN. AlreadyExists if
  // the version exists. The revision reserves `reserved_mb`, as with PutDefinition.
  virtual Result<VersionRecord> AddVersion(std::string_view project, std::string_view name,
                                           std::string_view version,
                                           std::string_view definition_json,
                                           uint64_t reserved_mb = 0) = 0;
  // Oldest first.
  virtual Result<std::vector<VersionRecord>> ListVersions(std::string_view project,
                                                          std::string_view name) = 0;
  // NotFound if the service has no such version.
  virtual Status SetMainVersion(std::string_view project, std::string_view name,
                                std::string_view version) = 0;
  // Forgets a version (its revision stays in the history). Removing MAIN leaves none; removing
  // the last one stops the service (desired_running false) until a version is deployed again.
  virtual Status RemoveVersion(std::string_view project, std::string_view name,
                               std::string_view version) = 0;

  // Runtime parameter values set through the platform, as JSON text, by parameter name.
  virtual Status PutParameter(std::string_view project, std::string_view name,
                              std::string_view parameter, std::string_view value_json) = 0;
  virtual Result<std::vector<std::pair<std::string, std::string>>> ListParameters(
      std::string_view project, std::string_view name) = 0;

  // Records a notification, or counts one more of an identical record (count + 1, last_at
  // now, emails and timer updated). Returns the record as stored. NotFound for no project.
  virtual Result<NotificationRecord> AddNotification(const NotificationRecord& n) = 0;
  // The project's notifications, the most recent first (at most 500).
  virtual Result<std::vector<NotificationRecord>> ListNotifications(
      std::string_view project) = 0;
  // NotFound if the project has no notification `id`.
  virtual Status DeleteNotification(std::string_view project, int64_t id) = 0;
  virtual Status DeleteNotifications(std::string_view project) = 0;

  // Project-level environment variables, which definitions inherit by name
  // (inherited-environment). SetProjectEnv replaces them all. NotFound for no project.
  virtual Status SetProjectEnv(std::string_view project,
                               const std::vector<std::pair<std::string, std::string>>& env) = 0;
  virtual Result<std::vector<std::pair<std::string, std::string>>> GetProjectEnv(
      std::string_view project) = 0;

  // AlreadyExists when the project has a session for `pipeline`.
  virtual Result<SessionRecord> CreateSession(std::string_view project,
                                              std::string_view pipeline) = 0;
  virtual Result<std::vector<SessionRecord>> ListSessions(std::string_view project) = 0;
  // NotFound when there is no such session.
  virtual Status SetSessionState(std::string_view project, std::string_view pipeline,
                                 std::string_view state) = 0;
  virtual Status DeleteSession(std::string_view project, std::string_view pipeline) = 0;
  // The services sessions started because they were not running (Orchest: a session owns
  // what it launched, not what the user started): recorded, listed, and forgotten when the
  // project's last session stops them.
  virtual Status AddSessionService(std::string_view project, std::string_view service) = 0;
  virtual Result<std::vector<std::string>> SessionServices(std::string_view project) = 0;
  virtual Status ClearSessionServices(std::string_view project) = 0;

  // Appends to the service's event log (the newest 200 are kept).
  virtual Status AddEvent(std::string_view project, std::string_view name, std::string_view kind,
                          std::string_view message) = 0;
  // Newest first, at most `limit`.
  virtual Result<std::vector<EventRecord>> ListEvents(std::string_view project,
                                                      std::string_view name, int limit) = 0;

  // Recipes (seed 003). AlreadyExists when the project has a recipe of that name or url.
  virtual Result<RecipeRecord> CreateRecipe(const RecipeRecord& r) = 0;
  // Every recipe of `project`, by name; of every project when `project` is empty.
  virtual Result<std::vector<RecipeRecord>> ListRecipes(std::string_view project) = 0;
  virtual Result<RecipeRecord> GetRecipe(std::string_view project, std::string_view name) = 0;
  virtual Status SetRecipeStarted(std::string_view project, std::string_view name, bool started,
                                  std::string_view overrides_json) = 0;
  virtual Status DeleteRecipe(std::string_view project, std::string_view name) = 0;
  // Node types pushed as bundles; PutNodeType replaces an earlier push of the type.
  virtual Result<NodeTypeRecord> PutNodeType(const NodeTypeRecord& n) = 0;
  virtual Result<std::vector<NodeTypeRecord>> ListNodeTypes(std::string_view project) = 0;
  virtual Status DeleteNodeType(std::string_view project, std::string_view name) = 0;
  // Small facts of the daemon's own ("recipes.seeded:<project>"); "" when unset.
  virtual Result<std::string> GetSetting(std::string_view key) = 0;
  virtual Status SetSetting(std::string_view key, std::string_view value) = 0;

  // Pipelines and their runs (seed 004).
  virtual Result<PipelineRecord> PutPipeline(const PipelineRecord& p) = 0;  // create or replace
  virtual Result<std::vector<PipelineRecord>> ListPipelines(std::string_view project) = 0;
  virtual Result<PipelineRecord> GetPipeline(std::string_view project, std::string_view name) = 0;
  virtual Status DeletePipeline(std::string_view project, std::string_view name) = 0;
  // Stores a run with its steps. AlreadyExists for a run id that exists.
  virtual Status CreateRun(const RunRecord& run) = 0;
  virtual Result<RunRecord> GetRun(std::string_view id) = 0;
  // Runs of `project` (every project when empty), newest first; `pipeline` filters by name
  // when not empty; `limit` 0: all. Definitions and plans are left out when !with_definition.
  struct RunFilter {
    std::string project;
    std::string pipeline;
    std::string pipeline_uuid;
    std::string job;
    bool unfinished_only = false;
    size_t limit = 0;
    bool with_definition = false;
  };
  virtual Result<std::vector<RunRecord>> ListRuns(const RunFilter& filter) = 0;
  virtual Status SaveRunProgress(const RunProgress& progress) = 0;
  virtual Status DeleteRun(std::string_view id) = 0;
  virtual Status CreateJob(const JobRecord& job) = 0;
  virtual Result<JobRecord> GetJob(std::string_view id) = 0;
  // Jobs of `project` (every project when empty), newest first; `active_only`: not ended.
  virtual Result<std::vector<JobRecord>> ListJobs(std::string_view project, bool active_only) = 0;
  // Writes status, next/last fire, finished_at and message. An ended job (SUCCESS, FAILURE,
  // ABORTED) is never changed: FailedPrecondition.
  virtual Status UpdateJob(const JobRecord& job) = 0;
};

struct StoreOptions {
  // "sqlite:///abs/path/state.db", "sqlite://relative/path.db" or "sqlite::memory:".
  std::string url;
};

// Opens (creating and migrating if needed) the store named by `options.url`. InvalidArgument
// for an unknown scheme; FailedPrecondition for a store written by a newer berth.
Result<std::unique_ptr<Store>> OpenStore(const StoreOptions& options);

}  // namespace berth
