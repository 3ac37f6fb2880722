// RouteTable maps a request path to a service's ready instances: "/<project>-<service>/..."
// goes to the live (MAIN) revision, "/<project>-<service>@<version>/..." to that version and
// "/<project>-<service>@<revision>/..." to that revision (a version label wins over a number).
// Readers take an immutable snapshot, so a switch of revision is atomic for every request: a
// request routed before the switch finishes where it started; one after goes to the new
// instances. Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/mutex.h"

namespace berth {

// Per-route traffic statistics (kept across route updates), exported at /metrics.
struct RouteStats {
  static constexpr double kBuckets[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1,
                                        0.25,  0.5,   1,    2.5,   5,    10};  // seconds
  static constexpr size_t kBucketCount = std::size(kBuckets);
  std::atomic<uint64_t> requests[6] = {};  // by status class: 0 (no response), 1xx..5xx
  std::atomic<uint64_t> bucket[kBucketCount + 1] = {};
  std::atomic<uint64_t> latency_us_sum{0};
  std::atomic<uint64_t> bytes_in{0};
  std::atomic<uint64_t> bytes_out{0};
};

struct Upstream {
  std::string host;
  int port = 0;
  int revision = 0;
  std::string key;  // "host:port", filled by RouteTable
  // Requests being relayed to this instance right now (least-outstanding balancing, draining).
  std::shared_ptr<std::atomic<int>> in_flight;
};

// Holds a request count up (an instance's in_flight, the copies out to mirrors) for as long
// as it lives.
class InFlight {
 public:
  explicit InFlight(std::shared_ptr<std::atomic<int>> c) : c_(std::move(c)) { c_->fetch_add(1); }
  ~InFlight() { c_->fetch_sub(1); }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;

 private:
  std::shared_ptr<std::atomic<int>> c_;
};

struct ServiceRoute {
  std::string project;
  std::string name;
  std::string prefix;          // "/<project>-<service>"
  bool strip = false;          // base-path: strip
  bool public_access = false;  // auth: public
  int active_revision = 0;
  std::map<std::string, int, std::less<>> versions;  // version label -> revision
  std::vector<int> mirrors;  // revisions that get a copy of requests to the live one
  // The revision the live one replaced, still running while the live one settles (0: none):
  // requests the live revision cannot take go there (PickFor).
  int fallback_revision = 0;
  std::shared_ptr<RouteStats> stats;  // filled by RouteTable
  std::vector<Upstream> upstreams;    // ready instances of every revision
};

struct RouteMatch {
  std::shared_ptr<const ServiceRoute> route;
  std::optional<int> pinned_revision;  // "@<revision>" or "@<version>" in the path
  std::string_view pinned_label;       // what followed the "@", as written
  size_t prefix_len = 0;               // bytes of the path that name the route
};

class RouteTable {
 public:
  // Replaces a service's route (or adds it). Keeps in-flight counters of instances that stay.
  void Update(ServiceRoute route);
  void Remove(const std::string& prefix);
  // The route for a request target ("/p-s/x?y"); nullopt when no service has that prefix.
  std::optional<RouteMatch> Match(std::string_view target) const;
  // Requests in flight to host:port (0 if unknown): the supervisor waits for 0 before
  // stopping an instance that left the route.
  int InFlight(const std::string& host, int port) const;
  // Every route's statistics, by prefix, for /metrics.
  std::map<std::string, std::shared_ptr<RouteStats>> Stats() const;
  // Picks the ready instance of `revision` with the fewest requests in flight; ties go round
  // robin. nullopt when there is none.
  std::optional<Upstream> Pick(const ServiceRoute& route, int revision) const;
  // Where a request goes: an instance of the pinned revision, or of the live one and then of
  // the fallback revision; none whose key is in `tried` (instances that failed this request).
  std::optional<Upstream> PickFor(const ServiceRoute& route, std::optional<int> pinned,
                                  const std::vector<std::string>& tried = {}) const;
  // The current route with this prefix ("/p-s"), or null.
  std::shared_ptr<const ServiceRoute> Find(std::string_view prefix) const;

 private:
  std::optional<Upstream> PickOf(const ServiceRoute& route, int revision,
                                 const std::vector<std::string>& tried) const;
  using Table = std::map<std::string, std::shared_ptr<const ServiceRoute>, std::less<>>;
  mutable Mutex mu_;
  // Routes are immutable once made: an update replaces one entry, and a request holds the
  // route it matched (copied out under the lock) for as long as it needs it.
  Table table_ GUARDED_BY(mu_);
  // Counters outlive route updates so that draining sees requests routed before a switch.
  std::map<std::string, std::shared_ptr<std::atomic<int>>> counters_ GUARDED_BY(mu_);
  std::map<std::string, std::shared_ptr<RouteStats>> stats_ GUARDED_BY(mu_);
  mutable std::atomic<uint32_t> round_robin_{0};
};

}  // namespace berth
