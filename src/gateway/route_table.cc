#include "gateway/route_table.h"

#include <algorithm>
#include <charconv>

namespace berth {
namespace {
std::string Key(const std::string& host, int port) { return host + ":" + std::to_string(port); }
}  // namespace

void RouteTable::Update(ServiceRoute route) {
  MutexLock lock(mu_);
  auto& stats = stats_[route.prefix];
  if (!stats) {
    stats = std::make_shared<RouteStats>();
  }
  route.stats = stats;
  for (auto& u : route.upstreams) {
    u.key = Key(u.host, u.port);
    auto& counter = counters_[u.key];
    if (!counter) {
      counter = std::make_shared<std::atomic<int>>(0);
    }
    u.in_flight = counter;
  }
  std::string prefix = route.prefix;  // the assignment below evaluates its right side first
  table_[prefix] = std::make_shared<const ServiceRoute>(std::move(route));
}

void RouteTable::Remove(const std::string& prefix) {
  MutexLock lock(mu_);
  table_.erase(prefix);
}

std::optional<RouteMatch> RouteTable::Match(std::string_view target) const {
  if (target.empty() || target[0] != '/') {
    return std::nullopt;
  }
  size_t end = target.find_first_of("/?", 1);
  std::string_view first = target.substr(0, end);  // "/p-s" or "/p-s@3"
  RouteMatch m;
  m.prefix_len = first.size();
  size_t at = first.find('@');
  std::string_view label;
  if (at != std::string_view::npos) {
    label = first.substr(at + 1);
    first = first.substr(0, at);
    if (label.empty()) {
      return std::nullopt;
    }
  }
  {
    MutexLock lock(mu_);
    auto it = table_.find(first);
    if (it == table_.end()) {
      return std::nullopt;
    }
    m.route = it->second;
  }
  if (!label.empty()) {
    m.pinned_label = label;
    if (auto v = m.route->versions.find(label); v != m.route->versions.end()) {
      m.pinned_revision = v->second;
    } else {
      int rev = 0;
      auto [p, ec] = std::from_chars(label.data(), label.data() + label.size(), rev);
      if (ec != std::errc() || p != label.data() + label.size() || rev <= 0) {
        return std::nullopt;
      }
      m.pinned_revision = rev;
    }
  }
  return m;
}

std::map<std::string, std::shared_ptr<RouteStats>> RouteTable::Stats() const {
  MutexLock lock(mu_);
  return stats_;
}

int RouteTable::InFlight(const std::string& host, int port) const {
  MutexLock lock(mu_);
  auto it = counters_.find(Key(host, port));
  return it == counters_.end() ? 0 : it->second->load();
}

std::shared_ptr<const ServiceRoute> RouteTable::Find(std::string_view prefix) const {
  MutexLock lock(mu_);
  auto it = table_.find(prefix);
  return it == table_.end() ? nullptr : it->second;
}

std::optional<Upstream> RouteTable::Pick(const ServiceRoute& route, int revision) const {
  return PickOf(route, revision, {});
}

std::optional<Upstream> RouteTable::PickFor(const ServiceRoute& route, std::optional<int> pinned,
                                            const std::vector<std::string>& tried) const {
  if (pinned) {
    return PickOf(route, *pinned, tried);
  }
  std::optional<Upstream> up = PickOf(route, route.active_revision, tried);
  if (!up && route.fallback_revision != 0) {
    up = PickOf(route, route.fallback_revision, tried);
  }
  return up;
}

std::optional<Upstream> RouteTable::PickOf(const ServiceRoute& route, int revision,
                                           const std::vector<std::string>& tried) const {
  const Upstream* best = nullptr;
  int best_load = 0;
  size_t n = route.upstreams.size();
  uint32_t start = n ? round_robin_.fetch_add(1, std::memory_order_relaxed) % n : 0;
  for (size_t k = 0; k < n; ++k) {
    const Upstream& u = route.upstreams[(start + k) % n];
    if (u.revision != revision || std::find(tried.begin(), tried.end(), u.key) != tried.end()) {
      continue;
    }
    int load = u.in_flight->load(std::memory_order_relaxed);
    if (best == nullptr || load < best_load) {
      best = &u;
      best_load = load;
    }
  }
  if (best == nullptr) {
    return std::nullopt;
  }
  return *best;
}

}  // namespace berth
