// One health probe of an instance: HTTP (GET path, status in a set) or TCP (connect).
// Blocking with a timeout; called from the supervisor's health thread, never from its loop.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>

#include "model/definition.h"

namespace berth {

struct ProbeResult {
  bool healthy = false;
  std::string detail;  // "HTTP 503", "connection refused", ...
};

// Starts an exec check's command (in a process group of its own, stdio on /dev/null, none of
// the daemon's descriptors): "" and the pid, or why it could not. The default is posix_spawnp;
// a confined instance's checks start in its sandbox (LinuxLauncher).
using ExecSpawner =
    std::function<std::string(char* const* argv, char* const* envp, pid_t* pid)>;

// `path` is the request path including the context root when the service preserves it.
ProbeResult ProbeInstance(const std::string& host, int port, const HealthCheck& check,
                          const StatusCodeSet& codes, const std::string& path,
                          const ExecSpawner& spawn = {});

}  // namespace berth
