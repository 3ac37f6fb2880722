// Where the CLI finds the daemon: `berth login` saves URL and token to
// $XDG_CONFIG_HOME/berth/config.json (default ~/.config/berth), mode 0600. The environment
// variables BERTH_URL and BERTH_TOKEN override what was saved.
#pragma once

#include <string>

#include "common/status.h"

namespace berth {

struct ClientConfig {
  std::string url = "http://127.0.0.1:8080";
  std::string token;
};

std::string ClientConfigPath();
// Saved config overlaid with BERTH_URL / BERTH_TOKEN. A missing file is not an error.
Result<ClientConfig> LoadClientConfig();
Status SaveClientConfig(const ClientConfig& config);

}  // namespace berth
