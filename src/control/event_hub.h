// EventHub keeps the latest platform events (service events, notifications) in a ring, each
// with a sequence number, so that server-sent-event streams can poll "what is new since N"
// without a subscriber list or a thread per stream. Thread-safe.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "common/mutex.h"

namespace berth {

struct HubEvent {
  uint64_t seq = 0;
  std::string project;
  std::string kind;  // "notification", "service-event"
  std::string data;  // JSON text
};

class EventHub {
 public:
  explicit EventHub(size_t capacity = 1000) : capacity_(capacity) {}

  void Publish(std::string project, std::string kind, std::string data) {
    MutexLock lock(mu_);
    ring_.push_back({++seq_, std::move(project), std::move(kind), std::move(data)});
    if (ring_.size() > capacity_) {
      ring_.pop_front();
    }
  }
  // Events of `project` after `after` (all projects when empty), oldest first.
  std::vector<HubEvent> Since(uint64_t after, const std::string& project) const {
    MutexLock lock(mu_);
    std::vector<HubEvent> out;
    for (const auto& e : ring_) {
      if (e.seq > after && (project.empty() || e.project == project)) {
        out.push_back(e);
      }
    }
    return out;
  }
  uint64_t last() const {
    MutexLock lock(mu_);
    return seq_;
  }

 private:
  mutable Mutex mu_;
  size_t capacity_;
  std::deque<HubEvent> ring_ GUARDED_BY(mu_);
  uint64_t seq_ GUARDED_BY(mu_) = 0;
};

}  // namespace berth
