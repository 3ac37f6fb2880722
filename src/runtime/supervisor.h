// Supervisor is the runtime's policy: it reconciles what each service should run (pushed to it
// with Apply) with what runs (learned from the Launcher), on its own thread.
//  - Each revision runs `replicas` instances, each on its own loopback address 127.x.y.z at
//    the container port.
//  - A crashed instance is restarted with exponential backoff (250 ms doubling to 30 s),
//    which resets once an instance ran 30 s; 5 quick crashes in a row mark it crash-looping.
//  - Health checks (HTTP or TCP) decide readiness; 3 failures in a row make a running
//    instance unhealthy, and it is replaced.
//  - A new revision rolls: its instances start beside the live ones; once all are healthy it
//    becomes the active revision and the old instances stop. If it does not get there within
//    the rollout deadline (or crash-loops), it is rolled back: the old revision stays live.
//  - Instances are shims that outlive the daemon; Start() re-adopts the ones still running.
// Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

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
  std::vector<std::string> env;  // "NAME=value", without the per-instance HOST/PORT
  std::string cwd;
  int port = 8080;  // container port
  std::string health_path;  // full request path of the HTTP health check
  std::string error;  // why it cannot run (e.g. the artifact was never pushed)
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

struct InstanceStatus {
  std::string id;
  int revision = 0;
  int slot = 0;
  std::string state;  // starting running unhealthy exited oom-killed crash-looping stopping
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
  bool strip = false;  // base-path: strip
  bool public_access = false;  // auth: public
  bool internal = false;  // expose: internal; no gateway route
  std::vector<Endpoint> ready;  // ready instances of every revision (not draining)
  std::map<std::string, int> versions;  // version label -> revision, for pinned routes
  std::vector<int> mirrors;  // shadow revisions that get a copy of the live traffic
};

struct SupervisorOptions {
  std::string instances_dir;  // one directory per instance
  std::chrono::milliseconds tick{250};
  // A full look at each live instance (shim alive, RSS) this often; exits recorded by the shim
  // are noticed on the next tick.
  std::chrono::milliseconds full_probe_every{10000};
  std::chrono::seconds rollout_deadline{60};
  std::chrono::milliseconds backoff_base{250};
  std::chrono::seconds backoff_max{30};
  std::chrono::seconds healthy_reset{30};
  int crash_loop_after = 5;
  int exited_dirs_kept = 5;  // per service, for their logs
  // An instance leaving the route is stopped once its requests in flight are done, or after
  // this long.
  std::chrono::seconds drain_timeout{30};
};

struct SupervisorHooks {
  // An event for the service's event log ("started", "exited", "oom-killed", "rolled-back"...).
  std::function<void(const ServiceKey&, const std::string& kind, const std::string& message)>
      event;
  // The live revision changed (rollout done) or a revision was rolled back.
  std::function<void(const ServiceKey&, int active_revision, int failed_revision)> rollout;
  // The service's routable instances changed. Called with the supervisor's lock held: must
  // not call back into the supervisor.
  std::function<void(const ServiceKey&, const RouteUpdate&)> routes;
  // Requests in flight to an instance (from the gateway); 0 when unknown.
  std::function<int(const std::string& host, int port)> in_flight;
};

// Expands "$(NAME)" in a command argument from the instance's environment, as Kubernetes does:
// `python3 -m http.server --bind $(HOST) $(PORT)`. Unknown names stay as written; "$$" is "$".
std::string ExpandVariables(std::string_view text, const std::map<std::string, std::string>& env);

class Supervisor {
 public:
  Supervisor(Launcher& launcher, SupervisorOptions options, SupervisorHooks hooks);
  ~Supervisor();

  // Re-adopts instances left by an earlier daemon (call after the first Apply of every
  // service, so that adopted instances find their service) and starts the loop.
  void Start();
  // Stops the loop. Instances keep running: they belong to their shims.
  void Shutdown();

  // Sets what a service should run. Replaces the previous desired state of that service.
  void Apply(DesiredService desired);
  // Stops and forgets a service; its instance directories (and logs) are removed once its
  // instances have exited.
  void Remove(const ServiceKey& key);

  ServiceStatus Status(const ServiceKey& key) const;
  // Ready instances of the active revision, or of `revision` when given.
  std::vector<Endpoint> Ready(const ServiceKey& key, std::optional<int> revision = {}) const;
  // Instance directories of a service, oldest first (for logs), with their revision.
  std::vector<std::pair<std::string, int>> InstanceDirs(const ServiceKey& key) const;

 private:
  struct Instance;
  struct Slot;
  struct Service;

  void Loop();
  void Tick();
  void HealthLoop();
  void Reconcile(Service& svc);
  void Launch(Service& svc, const RevisionSpec& spec, int slot);
  void RunRevision(Service& svc, const RevisionSpec& spec, bool allow_new);
  void StopInstance(Service& svc, Instance& inst, const std::string& why);
  void Observe(Service& svc);
  void Adopt();
  std::string AllocateHost(int port);
  void Event(const Service& svc, const std::string& kind, const std::string& message);
  void PruneDirs(Service& svc);
  void PublishRoutes(Service& svc);

  Launcher& launcher_;
  SupervisorOptions options_;
  SupervisorHooks hooks_;

  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::map<ServiceKey, std::unique_ptr<Service>> services_;  // GUARDED_BY(mu_)
  std::vector<std::unique_ptr<Service>> removed_;  // GUARDED_BY(mu_): draining
  std::set<std::string> hosts_in_use_;  // GUARDED_BY(mu_)
  uint32_t next_host_ = 0;  // GUARDED_BY(mu_)
  bool stop_ = false;  // GUARDED_BY(mu_)
  bool dirty_ = false;  // GUARDED_BY(mu_): something changed; reconcile now
  std::thread loop_;
  std::thread health_;
};

}  // namespace berth
