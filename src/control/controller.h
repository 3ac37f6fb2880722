// Controller joins the control plane's parts: it turns what the store holds (definitions,
// artifact tags, desired state) into what the supervisor runs, and the supervisor's news
// (rollouts, events) back into the store. The API calls it after every change a user makes.
// Thread-safe.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <boost/json/value.hpp>
#include <array>
#include <atomic>
#include <string_view>
#include <functional>
#include <map>

#include "control/confinement.h"
#include "common/mutex.h"
#include "artifacts/artifact_store.h"
#include "control/event_hub.h"
#include "control/service_directory.h"
#include "gateway/route_table.h"
#include "common/clock.h"
#include "common/status.h"
#include "model/definition.h"
#include "runtime/supervisor.h"
#include "store/store.h"

namespace berth {

struct ControllerOptions {
  std::string data_dir;  // holds artifacts/, instances/, services/
  std::string berth_url;  // given to instances as BERTH_URL
  uint64_t max_artifact_bytes = uint64_t{1} << 30;
  // Memory the machine offers for reservations; 0: MemTotal from /proc/meminfo.
  uint64_t memory_capacity_mb = 0;
  // The gateway's routes, kept up to date with ready instances; may be null (no gateway).
  RouteTable* routes = nullptr;
  // The Python SDK's package directory, put on instances' PYTHONPATH; empty: none.
  std::string sdk_python_dir;
  // Called once a notification is stored (email and webhook delivery); may be empty.
  std::function<void(const NotificationRecord&)> on_notification;
  // Whether and how programs run as their project's user (decision 9).
  ConfinementOptions confinement;
  // A bundle's build command is killed after this long (the push is then refused).
  std::chrono::seconds build_timeout{600};
  // "NAME=value" every build gets besides PATH, LANG, HOME and BERTH_PROJECT
  // (CMAKE_PREFIX_PATH for the C++ SDK).
  std::vector<std::string> build_env;
};

// What a definition reserves while it runs: replicas x memory-reservation, in MB.
uint64_t ReservedMb(const Definition& def);
// Admission by memory reservation, a pure function: FailedPrecondition when `def`'s
// reservation does not fit in `capacity_mb` beside what the other running services reserve.
Status CheckReservations(uint64_t capacity_mb, uint64_t reserved_by_others_mb,
                         const Definition& def);

// The JSON form of a notification, shared by the API and the event stream.
boost::json::object NotificationJson(const NotificationRecord& n);

// What a task of a project (a pipeline step) is given besides its own command: where berth is,
// a token of the project, the project's environment and directories.
struct TaskContext {
  std::string berth_url;
  std::string token;  // a token of the project, for the SDK (get_service)
  std::map<std::string, std::string> project_env;
  std::string data_dir;     // the project's /data
  std::string project_dir;  // the project's own directory
  std::string sdk_python_dir;
  // PATH, PYTHONPATH (the SDK first), HOME and LANG, as services get them.
  std::map<std::string, std::string> base_env;
  // The project's sandbox (empty: unconfined); a task adds its own directories to its binds.
  Sandbox sandbox;
};

struct LogLine {
  std::string time;  // RFC 3339 with microseconds
  std::string stream;  // stdout, stderr, berth
  std::string message;
  std::string instance;
  int revision = 0;
};

struct LogQuery {
  size_t tail = 100;  // 0: all
  std::string since;  // RFC 3339 prefix comparison; empty: no bound
  std::string instance;  // empty: every instance
  std::optional<int> revision;
};

// The log lines of one instance or task directory (its logs/ inside), oldest first, as
// `query` asks (tail, since); `instance` and `revision` label them.
std::vector<LogLine> ReadLogLines(const std::string& dir, const std::string& instance,
                                  int revision, const LogQuery& query);

class Controller {
 public:
  // `store`, `launcher` and `clock` must outlive the controller.
  Controller(Store& store, Launcher& launcher, Clock& clock, ControllerOptions options);
  ~Controller();

  // Applies every stored service to the supervisor, re-adopts running instances, starts it.
  Status Start();
  void Shutdown();

  // Checks a definition against the machine before it is stored: FailedPrecondition (409)
  // when its memory reservations exceed what is left, naming the numbers. Admission gives the
  // same check to run inside the store's write transaction (Store::PutDefinition).
  Status Admit(const ServiceRecord& service, const Definition& def);
  Store::AdmitFn Admission(const Definition& def) const;
  // Memory the machine offers for reservations, in MB (0: unknown, nothing is refused).
  uint64_t MemoryCapacityMb() const;
  // Re-reads the service from the store and hands it to the supervisor.
  Status Refresh(const std::string& project, const std::string& name);
  // Deletes the service from the store, stops its instances and removes its artifacts (those
  // no other tag uses), instance token and logs.
  Status Forget(const std::string& project, const std::string& name);

  // A bundle's build output as it comes (pieces of lines), for a client watching the push.
  using BuildProgress = std::function<void(std::string_view output)>;
  // Stores an uploaded bundle (the file at `upload_path` is consumed) under `tag`, running the
  // bundle's build command once per content. InvalidArgument for a refused archive.
  Result<ArtifactRecord> PushArtifact(const std::string& project, const std::string& name,
                                      const std::string& tag, const std::string& upload_path,
                                      const BuildProgress& progress = {});
  // PushArtifact on a thread of its own, for an answer streamed while the build runs: `done`
  // gets the result, from that thread. Shutdown fails the builds under way and waits for them.
  void PushArtifactInBackground(std::string project, std::string name, std::string tag,
                                std::string upload_path, BuildProgress progress,
                                std::function<void(Result<ArtifactRecord>)> done);
  // The artifact half of a push, for bundles that are not a service's (recipe node types):
  // stores the upload by content and runs its build command once per content, confined as
  // `project`'s programs are (empty: as the daemon's user), with a clean environment and
  // ControllerOptions::build_timeout.
  Result<IngestedArtifact> IngestBundle(const std::string& upload_path,
                                        const std::string& project = "",
                                        const BuildProgress& progress = {});
  // Where the bundle of `digest` is unpacked.
  std::string BundleDir(const std::string& digest) const;

  // Versions (seed 001). DeployVersion stores the definition as an immutable version (the
  // first becomes MAIN, later ones run beside it); AssignMain moves MAIN, which the gateway
  // switches to atomically once its instances are ready; KillVersion stops one.
  Result<VersionRecord> DeployVersion(const std::string& project, const std::string& name,
                                      const std::string& version, const Definition& def);
  Status AssignMain(const std::string& project, const std::string& name,
                    const std::string& version);
  Status KillVersion(const std::string& project, const std::string& name,
                     const std::string& version);

  // Runtime parameters. SetParameter hands the value to every running instance (the first
  // one's refusal — unknown parameter, wrong type — is returned as is, and nothing is stored),
  // then stores it so that restarts and new instances start with it.
  struct ParameterReply {
    int status = 200;
    boost::json::value body;
  };
  Result<ParameterReply> SetParameter(const std::string& project, const std::string& name,
                                      const std::string& parameter,
                                      const boost::json::value& value);
  // The parameters as a running instance reports them, marked with those stored; only the
  // stored ones when nothing runs.
  Result<ParameterReply> GetParameters(const std::string& project, const std::string& name,
                                       const std::string& parameter);

  // Tasks (pipeline steps) run on the same supervisor as services. The listener hears of every
  // task's end, including those that ended while the daemon was down; set it before Start.
  Supervisor& runtime() { return *supervisor_; }
  void SetTaskListener(std::function<void(const TaskStatus&)> listener) {
    task_listener_ = std::move(listener);
  }
  Result<TaskContext> TaskContextOf(const std::string& project);
  // The sandbox every program of `project` starts from (empty when confinement is off).
  Result<Sandbox> SandboxOf(const std::string& project);

  // Stores a notification (deduplicated), streams it and hands it to delivery.
  Result<NotificationRecord> Notify(const NotificationRecord& n);
  const EventHub& events() const { return hub_; }
  // Publishes an event of another part (pipeline runs) on the same stream.
  void Publish(std::string project, std::string kind, std::string data) {
    hub_.Publish(std::move(project), std::move(kind), std::move(data));
  }

  ServiceStatus StatusOf(const std::string& project, const std::string& name) const;
  Supervisor::Readiness ReadinessOf(const std::string& project, const std::string& name) const;
  std::vector<Endpoint> Ready(const std::string& project, const std::string& name,
                              std::optional<int> revision = {}) const;
  // Log lines of the service's instances, oldest first.
  std::vector<LogLine> Logs(const std::string& project, const std::string& name,
                            const LogQuery& query) const;

  const ControllerOptions& options() const { return options_; }
  // Set before Start, once the listener's address is known.
  void SetBerthUrl(std::string url) { options_.berth_url = std::move(url); }
  // Where uploads are written before PushArtifact takes them.
  std::string UploadDir() const { return options_.data_dir + "/uploads"; }

 private:
  Result<DesiredService> Desire(const ServiceRecord& rec);
  Result<RevisionSpec> Resolve(const ServiceRecord& rec, int revision,
                               const std::string& definition_json, const std::string& version);
  Result<std::string> ServiceToken(const std::string& project, const std::string& name);
  std::string ServiceDir(const std::string& project, const std::string& name) const;

  Store& store_;
  ControllerOptions options_;
  std::function<void(const TaskStatus&)> task_listener_;
  ArtifactStore artifacts_;
  // Each project's services file ($BERTH_SERVICES_FILE): before supervisor_, whose hooks feed it.
  ServiceDirectory directory_;
  std::unique_ptr<Supervisor> supervisor_;
  Mutex token_mu_;
  EventHub hub_;
  // Serialises Refresh and Forget of one service (striped by name).
  Mutex& ServiceLock(const std::string& project, const std::string& name);
  std::array<Mutex, 64> service_locks_;
  // Pushes running in the background, and the flag that makes their builds stop.
  Mutex pushes_mu_;
  CondVar pushes_cv_;
  int pushes_ GUARDED_BY(pushes_mu_) = 0;
  std::atomic<bool> stopping_{false};
};

}  // namespace berth
