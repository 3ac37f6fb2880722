// The gateway's per-route metrics: how a finished exchange is counted in its route's
// RouteStats (route_table.h) and how every route's stats read in Prometheus' text format.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>

#include "gateway/route_table.h"

namespace berth {

// Counts one exchange: `status` 0 when no response reached the client.
void RecordRequest(RouteStats& stats, int status, std::chrono::microseconds took);

// berth_gateway_requests_total (by status class), berth_gateway_request_duration_seconds
// (a histogram) and berth_gateway_bytes_total (by direction), labelled by route prefix.
std::string FormatRouteMetrics(const std::map<std::string, std::shared_ptr<RouteStats>>& routes);

}  // namespace berth
