// The live side of discovery (seed 000): each project's services that have a ready instance,
// as `BERTH_SERVICE_<NAME>_HOST` / `_PORT` lines in a file under the project's data folder,
// which every instance and step finds at `$BERTH_SERVICES_FILE`. The same variables in a
// program's environment are a snapshot of its start (services started together do not see
// each other there); this file follows readiness as the supervisor publishes it.
//
// Writes are coalesced: a burst of changes (a mass start of thousands of instances) rewrites
// each project's file once per interval, not once per change, on a thread of its own so that
// the supervisor's hooks never wait for a disk.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "common/mutex.h"

namespace berth {

struct ServiceAddress {
  std::string host;
  int port = 0;
  bool operator==(const ServiceAddress&) const = default;
};

class ServiceDirectory {
 public:
  // `file_of(project)`: where that project's file goes (its directory is created).
  ServiceDirectory(std::function<std::string(const std::string& project)> file_of,
                   std::chrono::milliseconds interval = std::chrono::milliseconds(200));
  ~ServiceDirectory();  // writes what is pending, then stops its thread
  ServiceDirectory(const ServiceDirectory&) = delete;
  ServiceDirectory& operator=(const ServiceDirectory&) = delete;

  // Where `name` of `project` answers now; nullopt: nowhere (no ready instance, deleted).
  void Set(const std::string& project, const std::string& name,
           std::optional<ServiceAddress> address) EXCLUDES(mu_);
  // Writes every pending project's file now.
  void Flush() EXCLUDES(mu_);

  // The file's text for these services (by name).
  static std::string Format(const std::map<std::string, ServiceAddress>& services);

 private:
  void Run() EXCLUDES(mu_);
  // Writes the dirty projects' files, stepping out of mu_ for the disk. One writer at a time
  // (the thread, Flush: write_mu_, taken before mu_): two could rename one project's file in
  // the wrong order, leaving the older text.
  void WritePending() REQUIRES(mu_, write_mu_);

  std::function<std::string(const std::string&)> file_of_;
  std::chrono::milliseconds interval_;
  Mutex write_mu_ ACQUIRED_BEFORE(mu_);
  Mutex mu_;
  CondVar cv_;
  std::map<std::string, std::map<std::string, ServiceAddress>> projects_ GUARDED_BY(mu_);
  std::set<std::string> dirty_ GUARDED_BY(mu_);
  bool stop_ GUARDED_BY(mu_) = false;
  std::thread writer_;
};

// The services file of the project whose data folder is `data_dir` (as its programs see it).
inline std::string ServicesFileOf(const std::string& data_dir) {
  return data_dir + "/.berth/services.env";
}

// "BERTH_SERVICE_MY_REDIS_": the prefix of a service's discovery variables.
std::string ServiceEnvPrefix(const std::string& name);

}  // namespace berth
