#include "cli/client_config.h"

#include "common/file_util.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <boost/json.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace berth {

std::string ClientConfigPath() {
  if (const char* xdg = std::getenv("XDG_CONFIG_HOME"); xdg && *xdg) {
    return std::string(xdg) + "/berth/config.json";
  }
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : ".") + "/.config/berth/config.json";
}

Result<ClientConfig> LoadClientConfig() {
  ClientConfig c;
  std::string path = ClientConfigPath();
  std::ifstream in(path);
  if (in) {
    std::stringstream ss;
    ss << in.rdbuf();
    boost::system::error_code ec;
    auto v = boost::json::parse(ss.str(), ec);
    if (ec || !v.is_object()) {
      return Status::InvalidArgument(fmt::format(
          "{} is not valid JSON; run 'berth login URL --token TOKEN' to rewrite it", path));
    }
    const auto& o = v.get_object();
    if (const auto* u = o.if_contains("url"); u && u->is_string()) {
      c.url = std::string(u->get_string());
    }
    if (const auto* t = o.if_contains("token"); t && t->is_string()) {
      c.token = std::string(t->get_string());
    }
  }
  if (const char* u = std::getenv("BERTH_URL"); u && *u) {
    c.url = u;
  }
  if (const char* t = std::getenv("BERTH_TOKEN"); t && *t) {
    c.token = t;
  }
  while (c.url.size() > 7 && c.url.back() == '/') {
    c.url.pop_back();
  }
  return c;
}

Status SaveClientConfig(const ClientConfig& config) {
  std::string path = ClientConfigPath();
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return Status::Internal(fmt::format("creating {}: {}", dir.string(), ec.message()));
  }
  ::chmod(dir.c_str(), 0700);
  std::string body = boost::json::serialize(
                         boost::json::object{{"url", config.url}, {"token", config.token}}) +
                     "\n";
  return WriteFileAtomic(path, body, 0600);
}

}  // namespace berth
