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

#include "artifacts/artifact_store.h"
#include "gateway/route_table.h"
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

class Controller {
 public:
  // `store` and `launcher` must outlive the controller.
  Controller(Store& store, Launcher& launcher, ControllerOptions options);
  ~Controller();

  // Applies every stored service to the supervisor, re-adopts running instances, starts it.
  Status Start();
  void Shutdown();

  // Checks a definition against the machine before it is stored: FailedPrecondition (409)
  // when its memory reservations exceed what is left, naming the numbers.
  Status Admit(const ServiceRecord& service, const Definition& def);
  // Re-reads the service from the store and hands it to the supervisor.
  Status Refresh(const std::string& project, const std::string& name);
  // Deletes the service from the store, stops its instances and removes its artifacts (those
  // no other tag uses), instance token and logs.
  Status Forget(const std::string& project, const std::string& name);

  // Stores an uploaded bundle (the file at `upload_path` is consumed) under `tag`, running the
  // bundle's build command once per content. InvalidArgument for a refused archive.
  Result<ArtifactRecord> PushArtifact(const std::string& project, const std::string& name,
                                      const std::string& tag, const std::string& upload_path);

  ServiceStatus StatusOf(const std::string& project, const std::string& name) const;
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
                               const std::string& definition_json);
  Result<std::string> ServiceToken(const std::string& project, const std::string& name);
  std::string ServiceDir(const std::string& project, const std::string& name) const;

  Store& store_;
  ControllerOptions options_;
  ArtifactStore artifacts_;
  std::unique_ptr<Supervisor> supervisor_;
  std::mutex token_mu_;
};

}  // namespace berth
