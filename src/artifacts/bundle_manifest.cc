#include "artifacts/bundle_manifest.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>

#include "common/file_util.h"

namespace berth {

Result<BundleManifest> ParseBundleManifest(std::string_view yaml) {
  BundleManifest b;
  try {
    YAML::Node root = YAML::Load(std::string(yaml));
    if (!root.IsMap()) {
      return Status::InvalidArgument("berth.yaml: must be a mapping");
    }
    for (const auto& kv : root) {
      std::string key = kv.first.as<std::string>();
      const YAML::Node& v = kv.second;
      if (key == "command") {
        if (v.IsSequence()) {
          for (const auto& item : v) {
            b.command.push_back(item.as<std::string>());
          }
        } else {
          b.command = {"/bin/sh", "-c", v.as<std::string>()};
        }
      } else if (key == "port") {
        b.port = v.as<int>();
        if (*b.port < 1 || *b.port > 65535) {
          return Status::InvalidArgument("berth.yaml: port must be between 1 and 65535");
        }
      } else if (key == "env") {
        if (v.IsMap()) {
          for (const auto& e : v) {
            b.env.emplace_back(e.first.as<std::string>(), e.second.as<std::string>());
          }
        } else if (v.IsSequence()) {
          for (const auto& e : v) {
            b.env.emplace_back(e["name"].as<std::string>(), e["value"].as<std::string>());
          }
        } else {
          return Status::InvalidArgument("berth.yaml: env must be a mapping NAME: value");
        }
      } else if (key == "health-check") {
        HealthCheck hc;
        for (const auto& h : v) {
          std::string hk = h.first.as<std::string>();
          if (hk == "type") {
            hc.type = h.second.as<std::string>();
          } else if (hk == "rel_path") {
            hc.rel_path = h.second.as<std::string>();
          } else if (hk == "status_codes") {
            hc.status_codes = h.second.as<std::string>();
          } else if (hk == "interval") {
            hc.interval_s = h.second.as<int>();
          } else if (hk == "timeout") {
            hc.timeout_s = h.second.as<int>();
          }
        }
        b.health_check = hc;
      } else if (key == "build") {
        b.build = v.as<std::string>();
      } else {
        return Status::InvalidArgument(fmt::format(
            "berth.yaml: unknown key '{}'; known keys are command, port, env, health-check, build",
            key));
      }
    }
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument(fmt::format("berth.yaml: {}", e.what()));
  }
  return b;
}

Result<BundleManifest> ReadBundleManifest(const std::string& dir) {
  std::string path = dir + "/berth.yaml";
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return BundleManifest{};
  }
  auto text = ReadFile(path);
  if (!text.ok()) {
    return text.status();
  }
  return ParseBundleManifest(*text);
}

}  // namespace berth
