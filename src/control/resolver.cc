#include "control/resolver.h"

#include "control/service_directory.h"

#include <fmt/format.h>

#include <boost/json.hpp>
#include <cctype>

#include "model/names.h"

namespace berth {

RevisionSpec ResolveRevision(const ResolveInputs& in) {
  const Definition& def = in.def;
  RevisionSpec spec;
  spec.revision = in.revision;
  spec.version = in.version;
  spec.def = def;
  spec.error = in.bundle_error;
  std::string context_root = DeploymentPath(in.project, in.service);
  const BundleManifest& bundle = in.manifest;
  spec.cwd = in.bundle_dir.empty() ? in.work_dir : in.bundle_dir;
  spec.argv = def.entrypoint;
  spec.argv.insert(spec.argv.end(), def.command.begin(), def.command.end());
  if (spec.argv.empty()) {
    spec.argv = bundle.command;
  }
  if (spec.argv.empty() && spec.error.empty()) {
    spec.error =
        "nothing to run: the definition has no command or entrypoint and the bundle "
        "has no berth.yaml 'command'";
  }
  spec.port = def.container_port.value_or(bundle.port.value_or(8080));
  if (bundle.health_check && spec.def.health_check == HealthCheck{}) {
    spec.def.health_check = *bundle.health_check;
  }
  std::string rel = spec.def.health_check.rel_path;
  spec.health_path = spec.def.base_path == "strip" ? rel
                     : rel == "/"                  ? context_root + "/"
                                                   : context_root + rel;
  auto host = [&](const std::string& name) -> const std::string* {
    auto it = in.host_env.find(name);
    return it == in.host_env.end() ? nullptr : &it->second;
  };
  std::map<std::string, std::string> env;
  // Inherited names come from the project's environment, else the daemon's own; the
  // definition's `environment` wins over both (an explicit value beats an inherited one).
  for (const auto& name : def.inherited_environment) {
    if (auto it = in.project_env.find(name); it != in.project_env.end()) {
      env[name] = it->second;
    } else if (const std::string* v = host(name)) {
      env[name] = *v;
    }
  }
  for (const auto& [name, ep] : in.peers) {
    std::string key = ServiceEnvPrefix(name);
    env[key + "HOST"] = ep.host;
    env[key + "PORT"] = std::to_string(ep.port);
  }
  env["BERTH_DATA"] = in.data_dir;
  env["BERTH_PROJECT_DIR"] = in.project_dir;
  // The sandbox: the project's, with this revision's bundle (shared by every revision pushed
  // with the same content, so never written: each instance writes to a layer of its own over
  // it) or work directory. The project's /data and project
  // directory are bind-mounted at the definition's targets (where the daemon may mount, else
  // given as paths).
  Sandbox& sb = spec.sandbox;
  sb = in.sandbox;
  bool confined = !sb.empty();
  if (confined) {
    if (!in.bundle_dir.empty()) {
      sb.binds.push_back({in.bundle_dir, in.bundle_dir, false, true});
    } else if (!in.work_dir.empty()) {
      sb.binds.push_back({in.work_dir, in.work_dir, true});
    }
    if (def.run_as_root) {
      sb.uid = sb.gid = 0;
    }
  }
  if (!def.mounts.empty() && (confined || in.can_mount)) {
    for (const auto& m : def.mounts) {
      bool data = m.source == "data";
      sb.binds.push_back({data ? in.data_dir : in.project_dir, m.target, true});
      env[data ? "BERTH_DATA" : "BERTH_PROJECT_DIR"] = m.target;
    }
  }
  // The live list of the project's services (the BERTH_SERVICE_* above are a snapshot).
  env["BERTH_SERVICES_FILE"] = ServicesFileOf(env["BERTH_DATA"]);
  if (confined && !in.home_dir.empty()) {
    env["HOME"] = in.home_dir;
  }
  const std::string* path = host("PATH");
  env["PATH"] = path ? *path : "/usr/local/bin:/usr/bin:/bin";
  env["CONTEXT_ROOT"] = context_root;
  env["BERTH_URL"] = in.berth_url;
  env["BERTH_TOKEN"] = in.token;
  env["BERTH_PROJECT"] = in.project;
  env["BERTH_SERVICE"] = in.service;
  env["BERTH_VERSION"] = in.version.empty() ? std::to_string(in.revision) : in.version;
  // Parameter values set through the platform: the SDKs start with them (restarts and new
  // instances included), the defaults in code fill the rest.
  if (!in.parameters.empty()) {
    std::string obj = "{";
    for (const auto& [k, v] : in.parameters) {
      obj += (obj.size() > 1 ? "," : "") + boost::json::serialize(boost::json::value(k)) + ":" + v;
    }
    env["BERTH_PARAMETERS"] = obj + "}";
  }
  // Services written with the Python SDK import `berth` without installing it.
  if (!in.sdk_python_dir.empty()) {
    const std::string* pp = host("PYTHONPATH");
    env["PYTHONPATH"] = pp && !pp->empty() ? in.sdk_python_dir + ":" + *pp : in.sdk_python_dir;
  }
  for (const auto& [k, v] : bundle.env) {
    env[k] = v;
  }
  for (const auto& e : def.environment) {
    env[e.name] = e.value;
  }
  // "$BASE_PATH_PREFIX" in env values and the command is the external base path (Orchest's
  // placeholder), for programs that must be told where they are served.
  auto expand_prefix = [&](std::string& text) {
    constexpr std::string_view kPlaceholder = "$BASE_PATH_PREFIX";
    for (size_t at = text.find(kPlaceholder); at != std::string::npos;
         at = text.find(kPlaceholder, at + context_root.size())) {
      text.replace(at, kPlaceholder.size(), context_root);
    }
  };
  env["BASE_PATH_PREFIX"] = context_root;
  for (auto& [k, v] : env) {
    expand_prefix(v);
    spec.env.push_back(k + "=" + v);
  }
  for (auto& arg : spec.argv) {
    expand_prefix(arg);
  }
  return spec;
}

}  // namespace berth
