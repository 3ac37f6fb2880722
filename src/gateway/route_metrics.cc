#include "gateway/route_metrics.h"

#include <fmt/format.h>

#include <algorithm>

namespace berth {

void RecordRequest(RouteStats& stats, int status, std::chrono::microseconds took) {
  stats.requests[std::clamp(status / 100, 0, 5)].fetch_add(1, std::memory_order_relaxed);
  auto us = took.count();
  stats.latency_us_sum.fetch_add(static_cast<uint64_t>(std::max<int64_t>(us, 0)),
                                 std::memory_order_relaxed);
  size_t b = 0;
  while (b<RouteStats::kBucketCount&& static_cast<double>(us) / 1e6> RouteStats::kBuckets[b]) {
    ++b;
  }
  stats.bucket[b].fetch_add(1, std::memory_order_relaxed);
}

std::string FormatRouteMetrics(const std::map<std::string, std::shared_ptr<RouteStats>>& routes) {
  std::string out =
      "# HELP berth_gateway_requests_total Requests proxied, by route and status class.\n"
      "# TYPE berth_gateway_requests_total counter\n";
  std::string lat =
      "# HELP berth_gateway_request_duration_seconds Time from request head to response end.\n"
      "# TYPE berth_gateway_request_duration_seconds histogram\n";
  std::string bytes =
      "# HELP berth_gateway_bytes_total Body bytes relayed, by route and direction.\n"
      "# TYPE berth_gateway_bytes_total counter\n";
  for (const auto& [prefix, m] : routes) {
    static constexpr const char* kClass[] = {"error", "1xx", "2xx", "3xx", "4xx", "5xx"};
    uint64_t total = 0;
    for (int c = 0; c < 6; ++c) {
      uint64_t n = m->requests[c].load();
      total += n;
      out += fmt::format("berth_gateway_requests_total{{route=\"{}\",code=\"{}\"}} {}\n", prefix,
                         kClass[c], n);
    }
    uint64_t cumulative = 0;
    for (size_t b = 0; b <= RouteStats::kBucketCount; ++b) {
      cumulative += m->bucket[b].load();
      lat += fmt::format(
          "berth_gateway_request_duration_seconds_bucket{{route=\"{}\",le=\"{}\"}} {}\n", prefix,
          b < RouteStats::kBucketCount ? fmt::format("{}", RouteStats::kBuckets[b]) : "+Inf",
          cumulative);
    }
    lat += fmt::format("berth_gateway_request_duration_seconds_sum{{route=\"{}\"}} {}\n", prefix,
                       static_cast<double>(m->latency_us_sum.load()) / 1e6);
    lat += fmt::format("berth_gateway_request_duration_seconds_count{{route=\"{}\"}} {}\n", prefix,
                       total);
    bytes += fmt::format("berth_gateway_bytes_total{{route=\"{}\",direction=\"in\"}} {}\n", prefix,
                         m->bytes_in.load());
    bytes += fmt::format("berth_gateway_bytes_total{{route=\"{}\",direction=\"out\"}} {}\n", prefix,
                         m->bytes_out.load());
  }
  return out + lat + bytes;
}

}  // namespace berth
