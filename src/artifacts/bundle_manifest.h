// A bundle's manifest, `berth.yaml` at its root: what the bundle says about running it. The
// service's definition overrides each of these.
//   command: python3 app.py          (a string runs with /bin/sh -c; a list is the argv)
//   port: 8080
//   env: {NAME: value}               (or a list of {name, value})
//   health-check: {type, rel_path, status_codes, interval, timeout}
//   build: pip install -r requirements.txt   (run once per pushed content)
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "model/definition.h"

namespace berth {

struct BundleManifest {
  std::vector<std::string> command;
  std::optional<int> port;
  std::vector<std::pair<std::string, std::string>> env;
  std::optional<HealthCheck> health_check;
  std::string build;
};

// Parses the text of a berth.yaml. InvalidArgument naming the key for anything else than the
// keys above, a port out of 1-65535, or malformed YAML.
Result<BundleManifest> ParseBundleManifest(std::string_view yaml);

// The manifest of the bundle unpacked at `dir`; an empty one when it has no berth.yaml.
Result<BundleManifest> ReadBundleManifest(const std::string& dir);

}  // namespace berth
