// The daemon: `berth serve`. The only code that names concrete backends: it opens the SQLite
// store, builds the API, binds the listener and waits for a signal.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace CLI {
class App;
}

namespace berth {

struct DaemonConfig {
  bool confine = true;  // programs run as their project's user (decision 9)
  int build_timeout_s = 600;  // a bundle's build command is killed after this long
  std::string data_dir = "./berth-data";
  std::string listen = "127.0.0.1:8080";
  int threads = 2;
  std::string public_url;  // empty: derived from each request's Host header
  size_t max_body_bytes = 1 << 20;
  // Notification delivery: email over SMTP (smtp://host:port or smtps://), and webhooks.
  std::string smtp_url;
  std::string smtp_from = "berth@localhost";
  std::string smtp_user;
  std::string smtp_password;
  bool smtp_starttls = false;
  std::vector<std::string> webhooks;
};

// Settings as given on the command line; unset ones fall back to env (BERTH_DATA_DIR,
// BERTH_LISTEN, BERTH_THREADS, BERTH_PUBLIC_URL, BERTH_SMTP_URL, BERTH_SMTP_FROM,
// BERTH_SMTP_USER, BERTH_SMTP_PASSWORD), then the config file, then defaults.
struct DaemonFlags {
  std::optional<bool> confine;
  std::optional<int> build_timeout_s;
  std::optional<std::string> data_dir;
  std::optional<std::string> listen;
  std::optional<int> threads;
  std::optional<std::string> public_url;
  std::optional<std::string> config_file;
  std::optional<std::string> smtp_url;
  std::optional<std::string> smtp_from;
  std::vector<std::string> webhooks;
};

// Resolves flags, environment and the optional YAML config file into a config.
// InvalidArgument names the bad setting and where it came from.
Result<DaemonConfig> ResolveDaemonConfig(const DaemonFlags& flags);

// Runs until SIGINT/SIGTERM. Returns the process exit code; startup errors are logged.
int RunDaemon(const DaemonConfig& config);

// Adds the `serve` subcommand to `app`.
void AddServeCommand(CLI::App& app);

}  // namespace berth
