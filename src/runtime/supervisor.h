// Supervisor is the runtime's policy: it reconciles what each service should run (pushed to it
// with Apply) with what runs (learned from the Launcher), and runs tasks to completion.
//  - Each revision runs `replicas` instances, each on its own loopback address 127.x.y.z at
//    the container port.
//  - A crashed instance is restarted with exponential backoff (250 ms doubling to 30 s),
//    which resets once an instance ran 30 s; 5 quick crashes in a row mark it crash-looping.
//  - Health checks (HTTP, TCP or exec) decide readiness; 3 failures in a row make a running
//    instance unhealthy, and it is replaced.
//  - A new revision rolls: its instances start beside the live ones; once all are healthy it
//    becomes the active revision and the old instances stop. If it does not get there within
//    the rollout deadline (or crash-loops), it is rolled back: the old revision stays live.
//  - An instance leaving the route drains: it is stopped once its requests in flight are done.
//  - Tasks run once; the exit code is the result; cancel stops the whole tree.
//  - Instances and tasks are shims that outlive the daemon; Start() re-adopts them.
//
// Locking: one mutex guards the model. Every pass decides under it and acts after it: launcher
// calls (fork, shim handshake, probes, signals), hooks (store writes, route updates) and file
// removals are queued as effects and carried out with the mutex released, so that Status and
// Apply never wait behind a fork or a write. Hooks are called from one thread at a time, in
// the order they were decided.
//
// Exits arrive as events from the launcher (pidfds); only services that something happened to
// are reconciled, so that an idle node of 10,000 instances costs next to nothing.
//
// Tests drive it without threads: construct with `threads = false` in the options, call Start()
// (re-adoption) and then Step() — one pass of the loop and one round of health probes — over a
// FakeLauncher and a FakeClock.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/mutex.h"
#include "model/definition.h"
#include "runtime/launcher.h"

namespace berth {

struct ServiceKey {
  std::string project;
  std::string name;
  auto operator<=>(const ServiceKey&) const = default;
};

// One revision, resolved into something runnable by the daemon.
struct RevisionSpec {
  int revision = 0;
  std::string version;  // the version label (seed 001), or empty
  Definition def;
  std::vector<std::string> argv;  // empty when `error` is set
  std::vector<std::string> env;   // "NAME=value", without the per-instance HOST/PORT
  std::string cwd;
  int port = 8080;          // container port
  std::string health_path;  // full request path of the HTTP health check
  std::string error;        // why it cannot run (e.g. the artifact was never pushed)
  Sandbox sandbox;          // how its instances (and exec health checks) are confined
};

struct DesiredService {
  ServiceKey key;
  bool running = true;
  std::optional<RevisionSpec> latest;  // the newest definition
  std::optional<RevisionSpec> active;  // the live one, when it differs from latest
  // Versions that run beside the live one (MVI shadows): kept running, reachable only by a
  // pinned route, never rolled to or from.
  std::vector<RevisionSpec> shadows;
  int active_revision = 0;
  int failed_revision = 0;
};

// What an instance is doing, as the API shows it.
enum class InstanceState {
  kStarting,
  kRunning,
  kUnhealthy,
  kStopping,
  kExited,
  kOomKilled,
  kCrashLooping
};
// "starting", "running", "unhealthy", "stopping", "exited", "oom-killed", "crash-looping".
const char* InstanceStateName(InstanceState s);

struct InstanceStatus {
  std::string id;
  int revision = 0;
  int slot = 0;
  InstanceState state = InstanceState::kStarting;
  int pid = 0;
  std::string host;
  int port = 0;
  int64_t started_at = 0;
  int restarts = 0;
  std::optional<int> exit_code;
  std::optional<int> signal;
  std::optional<uint64_t> rss_bytes;
  std::string health;  // last probe detail
};

struct ServiceStatus {
  int desired = 0;
  int running = 0;  // ready instances of the active revision
  int active_revision = 0;
  int target_revision = 0;
  std::vector<InstanceStatus> instances;  // live ones, then the latest exit of each slot
};

struct Endpoint {
  std::string host;
  int port = 0;
  int revision = 0;
};

// Where a service's traffic may go, published whenever it changes.
struct RouteUpdate {
  bool removed = false;  // the service is gone
  int active_revision = 0;
  bool strip = false;                   // base-path: strip
  bool public_access = false;           // auth: public
  bool internal = false;                // expose: internal; no gateway route
  std::vector<Endpoint> ready;          // ready instances of every revision (not draining)
  std::map<std::string, int> versions;  // version label -> revision, for pinned routes
  std::vector<int> mirrors;             // shadow revisions that get a copy of the live traffic
  // The revision the live one replaced, while it still runs for the live one's
  // min-healthy-time (0: none): it takes the requests the live revision's instances fail.
  int fallback_revision = 0;
};

// A run-to-completion workload: a command in its own cgroup with limits and logs.
struct TaskSpec {
  std::string id;     // unique among tasks and instances; also its directory's name
  std::string owner;  // who asked (a pipeline run, a build), for listing; free text
  std::vector<std::string> argv;
  std::vector<std::string> env;  // "NAME=value"
  std::string cwd = "/";
  uint64_t memory_limit_bytes = 0;  // 0: none
  int grace_seconds = 10;           // cancel: SIGTERM, then SIGKILL of the tree after this long
  Sandbox sandbox;                  // how it is confined (instance_spec.h)
};

enum class TaskState { kPending, kRunning, kSucceeded, kFailed, kCancelled };
// "pending", "running", "succeeded", "failed", "cancelled".
const char* TaskStateName(TaskState s);
inline bool TaskEnded(TaskState s) { return s >= TaskState::kSucceeded; }

struct TaskStatus {
  std::string id;
  std::string owner;
  std::string dir;  // its directory: spec, logs/, exit record
  TaskState state = TaskState::kPending;
  int pid = 0;
  int64_t started_at = 0;  // unix millis
  int64_t ended_at = 0;
  std::optional<int> exit_code;
  int signal = 0;
  bool oom_killed = false;
  std::string error;  // why it could not start, or how it ended when not by its own exit
};

struct SupervisorOptions {
  std::string instances_dir;  // one directory per instance and per task
  bool threads = true;        // false: no loop threads; the caller drives Step() (tests)
  std::chrono::milliseconds tick{250};
  // A full look at each live instance (is its shim alive?) this often, and at every exit
  // event. Exits come as events: this is the net under them, and 10,000 instances cost
  // 33 looks a second.
  std::chrono::milliseconds full_probe_every{300000};
  // Health checks of ready instances due within this window are run together.
  std::chrono::milliseconds health_batch_window{100};
  std::chrono::seconds rollout_deadline{60};
  std::chrono::milliseconds backoff_base{250};
  std::chrono::seconds backoff_max{30};
  std::chrono::seconds healthy_reset{30};
  int crash_loop_after = 5;
  int exited_dirs_kept = 5;  // per service, for their logs
  // An instance leaving the route is stopped once its requests in flight are done, or after
  // this long.
  std::chrono::seconds drain_timeout{30};
  // Launcher starts carried out at once (each waits for its shim's handshake).
  int start_parallelism = 8;
  // New instances are probed this often until ready, so that a fast program is ready within
  // milliseconds.
  std::chrono::milliseconds startup_probe_every{5};
};

// The supervisor's news. Called without the supervisor's lock, one at a time: a hook may call
// the supervisor's read methods (Status, Ready, Task) but not Step.
struct SupervisorHooks {
  // An event for the service's event log ("started", "exited", "oom-killed", "rolled-back"...).
  // `version`: the version it concerns (its label, else its revision number), or empty.
  std::function<void(const ServiceKey&, const std::string& kind, const std::string& message,
                     const std::string& version)>
      event;
  // The live revision changed (rollout done) or a revision was rolled back.
  std::function<void(const ServiceKey&, int active_revision, int failed_revision)> rollout;
  // The service's routable instances changed.
  std::function<void(const ServiceKey&, const RouteUpdate&)> routes;
  // Requests in flight to an instance (from the gateway); 0 when unknown.
  std::function<int(const std::string& host, int port)> in_flight;
  // A task ended (also one that ended while the daemon was down, once, after re-adoption).
  std::function<void(const TaskStatus&)> task_ended;
};

// Expands "$(NAME)" in a command argument from the instance's environment, as Kubernetes does:
// `python3 -m http.server --bind $(HOST) $(PORT)`. Unknown names stay as written; "$$" is "$".
std::string ExpandVariables(std::string_view text, const std::map<std::string, std::string>& env);

class Supervisor {
 public:
  // `launcher` and `clock` must outlive the supervisor.
  Supervisor(Launcher& launcher, Clock& clock, SupervisorOptions options, SupervisorHooks hooks);
  ~Supervisor();

  // Re-adopts instances and tasks left by an earlier daemon (call after the first Apply of
  // every service, so that adopted instances find their service) and starts the loop threads
  // (unless options.threads is false).
  void Start() EXCLUDES(mu_, emit_mu_);
  // Stops the loop. Instances keep running: they belong to their shims.
  void Shutdown() EXCLUDES(mu_);
  // One pass: observe exits, reconcile what changed, carry out the effects, then one round of
  // due health probes. The loop thread calls it; tests call it directly.
  void Step() EXCLUDES(mu_, emit_mu_);

  // Sets what a service should run. Replaces the previous desired state of that service.
  void Apply(DesiredService desired) EXCLUDES(mu_);
  // Stops and forgets a service; its instance directories (and logs) are removed once its
  // instances have exited. Its route is removed before this returns.
  void Remove(const ServiceKey& key) EXCLUDES(mu_, emit_mu_);

  ServiceStatus Status(const ServiceKey& key) const EXCLUDES(mu_);
  // Of Status, only how many instances should run and how many serve: cheap enough for a
  // list of every service.
  struct Readiness {
    int desired = 0;
    int running = 0;
  };
  Readiness ReadinessOf(const ServiceKey& key) const EXCLUDES(mu_);
  // Ready instances of the active revision, or of `revision` when given.
  std::vector<Endpoint> Ready(const ServiceKey& key, std::optional<int> revision = {}) const
      EXCLUDES(mu_);
  // Instance directories of a service, oldest first (for logs), with their revision.
  std::vector<std::pair<std::string, int>> InstanceDirs(const ServiceKey& key) const EXCLUDES(mu_);

  // Queues a task; it starts on the next pass. InvalidArgument without argv or with an id that
  // is not a plain name; AlreadyExists if the id is taken.
  berth::Status StartTask(TaskSpec spec) EXCLUDES(mu_);
  // Cancels a task: a pending one ends at once, a running one is stopped (its whole tree,
  // SIGKILL after its grace period) and ends cancelled. NotFound for an unknown id; a no-op
  // for an ended task.
  berth::Status CancelTask(const std::string& id) EXCLUDES(mu_, emit_mu_);
  std::optional<TaskStatus> Task(const std::string& id) const EXCLUDES(mu_);
  // Every known task of `owner` (all tasks when empty), in start order.
  std::vector<TaskStatus> Tasks(const std::string& owner = "") const EXCLUDES(mu_);
  // Forgets an ended task and removes its directory. FailedPrecondition while it runs.
  berth::Status ForgetTask(const std::string& id) EXCLUDES(mu_);

 private:
  struct Instance;
  struct Slot;
  struct Service;
  struct TaskEntry;
  struct Effects;
  struct StartJob;

  // What the model says of a service, copied under the lock (Status adds what it reads).
  ServiceStatus Snapshot(const ServiceKey& key) const EXCLUDES(mu_);
  Readiness ReadinessLocked(const Service& svc) const REQUIRES(mu_);
  void Loop() EXCLUDES(mu_, emit_mu_);
  void HealthLoop() EXCLUDES(mu_, emit_mu_);
  // Probes due instances once; returns when the next probe is due.
  Clock::TimePoint HealthRound() EXCLUDES(mu_, emit_mu_);
  void ObservePass() EXCLUDES(mu_);
  void ReconcileAll() REQUIRES(mu_);
  void Reconcile(Service& svc) REQUIRES(mu_);
  void RecordExit(Service& svc, Instance& inst, const ExitRecord& exit) REQUIRES(mu_);
  void RecordTaskExit(TaskEntry& task, const ExitRecord& exit) REQUIRES(mu_);
  void Launch(Service& svc, const RevisionSpec& spec, int slot) REQUIRES(mu_);
  void RunRevision(Service& svc, const RevisionSpec& spec) REQUIRES(mu_);
  void StopInstance(Service& svc, Instance& inst, const std::string& why) REQUIRES(mu_);
  void Drain(Service& svc) REQUIRES(mu_);
  void CarryOutStarts(std::vector<StartJob> jobs) EXCLUDES(mu_);
  // Carries out queued effects in order, without the model's lock.
  void Flush() EXCLUDES(mu_, emit_mu_);
  // Re-adopts what an earlier daemon left; the running ones to Watch go to `watch`.
  void Adopt(std::vector<std::pair<std::string, ShimRecord>>& watch) REQUIRES(mu_);
  std::string AllocateHost(int port) REQUIRES(mu_);
  // The spec of `revision` among the service's desired, settling and shadow revisions.
  static const RevisionSpec* SpecOf(const Service& svc, int revision);
  // `revision`: the one the event concerns (0: none), named in the hook by its version.
  void Event(const Service& svc, const std::string& kind, const std::string& message,
             int revision = 0) REQUIRES(mu_);
  void PruneDirs(Service& svc) REQUIRES(mu_);
  void PublishRoutes(Service& svc) REQUIRES(mu_);
  void MarkDirty(Service& svc) REQUIRES(mu_);
  void OnExit(const std::string& dir) EXCLUDES(mu_);

  Launcher& launcher_;
  Clock& clock_;
  SupervisorOptions options_;
  SupervisorHooks hooks_;
  bool exits_watched_ = false;  // the launcher tells of exits; no polling of ExitRecorded

  // Held while effects are carried out, so that hooks run one at a time and in order.
  Mutex emit_mu_ ACQUIRED_BEFORE(mu_);
  mutable Mutex mu_;
  CondVar wake_;
  std::map<ServiceKey, std::unique_ptr<Service>> services_ GUARDED_BY(mu_);
  std::vector<std::unique_ptr<Service>> removed_ GUARDED_BY(mu_);  // draining
  // Services something happened to since their last reconcile, or with timers running.
  std::set<Service*> dirty_services_ GUARDED_BY(mu_);
  // Instance directory -> its service, for exit events.
  std::unordered_map<std::string, Service*> by_dir_ GUARDED_BY(mu_);
  std::set<std::string> exited_dirs_ GUARDED_BY(mu_);  // exit events not yet observed
  std::map<std::string, std::shared_ptr<TaskEntry>> tasks_ GUARDED_BY(mu_);
  // The tasks not ended yet, by submission: what each pass looks at. Ended tasks stay in
  // tasks_ (their status is asked for) until forgotten, and a run of thousands of steps must
  // not make every pass walk all of them.
  std::map<std::pair<uint64_t, std::string>, std::shared_ptr<TaskEntry>> live_tasks_
      GUARDED_BY(mu_);  // by (seq, id)
  uint64_t task_seq_ GUARDED_BY(mu_) = 0;
  std::set<std::string> hosts_in_use_ GUARDED_BY(mu_);
  uint32_t next_host_ GUARDED_BY(mu_) = 0;
  std::unique_ptr<Effects> effects_ GUARDED_BY(mu_);
  std::vector<StartJob> starts_ GUARDED_BY(mu_);
  bool stop_ GUARDED_BY(mu_) = false;
  bool wakeup_ GUARDED_BY(mu_) = false;         // something changed; pass now
  bool health_wakeup_ GUARDED_BY(mu_) = false;  // a new instance runs; probe now
  // What an idle pass costs depends on what happened, not on how many instances run: the
  // full looks are batched (one walk over every instance per batch window), the reconcile
  // timers are walked once the earliest one is due, instances draining are listed, and health
  // checks come off a queue ordered by when they are due.
  Clock::TimePoint next_observe_walk_ GUARDED_BY(mu_){};
  Clock::TimePoint earliest_due_ GUARDED_BY(mu_){};
  std::set<std::string> draining_dirs_ GUARDED_BY(mu_);  // asked for requests in flight
  struct HealthDue {
    Clock::TimePoint at;  // the instance's next_probe when queued; stale if it moved since
    std::weak_ptr<Instance> inst;
    bool operator>(const HealthDue& o) const { return at > o.at; }
  };
  std::vector<HealthDue> health_queue_ GUARDED_BY(mu_);  // a min-heap on `at`
  void QueueHealthCheck(const std::shared_ptr<Instance>& inst) REQUIRES(mu_);
  std::thread loop_;
  std::thread health_;
};

}  // namespace berth
