// One health probe of an instance: HTTP (GET path, status in a set) or TCP (connect).
// Blocking with a timeout; called from the supervisor's health thread, never from its loop.
#pragma once

#include <string>

#include "model/definition.h"

namespace berth {

struct ProbeResult {
  bool healthy = false;
  std::string detail;  // "HTTP 503", "connection refused", ...
};

// `path` is the request path including the context root when the service preserves it.
ProbeResult ProbeInstance(const std::string& host, int port, const HealthCheck& check,
                          const StatusCodeSet& codes, const std::string& path);

}  // namespace berth
