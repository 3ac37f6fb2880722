#include "gateway/route_metrics.h"

#include <gtest/gtest.h>

namespace berth {
namespace {

using std::chrono::microseconds;

TEST(RouteMetricsTest, ExchangesAreCountedByStatusClassAndLatencyBucket) {
  RouteStats s;
  RecordRequest(s, 200, microseconds(800));       // <= 1 ms
  RecordRequest(s, 204, microseconds(1000));      // <= 1 ms (le is inclusive)
  RecordRequest(s, 503, microseconds(30'000));    // <= 50 ms
  RecordRequest(s, 0, microseconds(20'000'000));  // no response, over every bucket
  EXPECT_EQ(s.requests[2].load(), 2u);
  EXPECT_EQ(s.requests[5].load(), 1u);
  EXPECT_EQ(s.requests[0].load(), 1u);
  EXPECT_EQ(s.bucket[0].load(), 2u);
  EXPECT_EQ(s.bucket[4].load(), 1u);
  EXPECT_EQ(s.bucket[RouteStats::kBucketCount].load(), 1u);
  EXPECT_EQ(s.latency_us_sum.load(), 20'031'800u);
}

TEST(RouteMetricsTest, TheTextIsPrometheusWithCumulativeBuckets) {
  auto s = std::make_shared<RouteStats>();
  RecordRequest(*s, 200, microseconds(800));
  RecordRequest(*s, 404, microseconds(7000));
  s->bytes_in = 5;
  s->bytes_out = 12;
  std::string text = FormatRouteMetrics({{"/p-s", s}});
  for (const char* line : {
           "berth_gateway_requests_total{route=\"/p-s\",code=\"2xx\"} 1\n",
           "berth_gateway_requests_total{route=\"/p-s\",code=\"4xx\"} 1\n",
           "berth_gateway_requests_total{route=\"/p-s\",code=\"5xx\"} 0\n",
           "berth_gateway_request_duration_seconds_bucket{route=\"/p-s\",le=\"0.001\"} 1\n",
           "berth_gateway_request_duration_seconds_bucket{route=\"/p-s\",le=\"0.005\"} 1\n",
           "berth_gateway_request_duration_seconds_bucket{route=\"/p-s\",le=\"0.01\"} 2\n",
           "berth_gateway_request_duration_seconds_bucket{route=\"/p-s\",le=\"+Inf\"} 2\n",
           "berth_gateway_request_duration_seconds_sum{route=\"/p-s\"} 0.0078\n",
           "berth_gateway_request_duration_seconds_count{route=\"/p-s\"} 2\n",
           "berth_gateway_bytes_total{route=\"/p-s\",direction=\"in\"} 5\n",
           "berth_gateway_bytes_total{route=\"/p-s\",direction=\"out\"} 12\n",
       }) {
    EXPECT_NE(text.find(line), std::string::npos) << line << " not in\n" << text;
  }
  EXPECT_NE(text.find("# TYPE berth_gateway_request_duration_seconds histogram\n"),
            std::string::npos);
}

}  // namespace
}  // namespace berth
